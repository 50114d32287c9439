/* Paths: whether one exists or is a directory, joining, the directory part, and whether two
 * names are the same file. No reading or writing. */
#ifndef QS_PATH_H
#define QS_PATH_H

/* 1 if path exists and is a regular file or directory we can stat. */
int qs_path_exists(const char *path);
int qs_path_is_dir(const char *path);

/* Joins dir and name into a malloc'd path; caller frees. */
char *qs_path_join(const char *dir, const char *name);

/* malloc'd copy of the directory part of path ("." if none); caller frees. */
char *qs_path_dirname(const char *path);

/* 1 if a and b name the same file (same device and inode, or for files not yet there the same
 * resolved directory and name). */
int qs_same_file(const char *a, const char *b);

#endif
