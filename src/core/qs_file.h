/* Read-only memory maps and small whole-file reads. A model file is mapped, never read up front,
 * so a 10 GB model costs address space, not memory. */
#ifndef QS_FILE_H
#define QS_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "qs_error.h"

typedef struct {
    const uint8_t *data; /* NULL for an empty file */
    size_t size;
    char *path;
} qs_map;

/* Maps path read-only. On success *out owns the mapping; free with qs_map_close. */
int qs_map_open(qs_map *out, const char *path, qs_error *err);
void qs_map_close(qs_map *m);

/* Largest file qs_read_file accepts (texts, JSON): 1 GiB. */
#define QS_READ_FILE_MAX ((uint64_t)1 << 30)

/* Reads a whole regular file (at most QS_READ_FILE_MAX bytes) into a NUL-terminated malloc'd
 * buffer; caller frees. Devices, FIFOs and directories are refused, never waited on. Both
 * readers note the file as an input of the process (qs_output.h). */
int qs_read_file(const char *path, char **out, size_t *size, qs_error *err);

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
