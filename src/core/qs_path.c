/* Paths (see qs_path.h). */
#include "core/qs_path.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int qs_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int qs_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *qs_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a > 0 && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

char *qs_path_dirname(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

int qs_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    /* not both there yet: compare the resolved directories and the names */
    char *da = qs_path_dirname(a), *db = qs_path_dirname(b);
    char *ra = da ? realpath(da, NULL) : NULL, *rb = db ? realpath(db, NULL) : NULL;
    const char *na = strrchr(a, '/'), *nb = strrchr(b, '/');
    int same = ra && rb && !strcmp(ra, rb) && !strcmp(na ? na + 1 : a, nb ? nb + 1 : b);
    free(da);
    free(db);
    free(ra);
    free(rb);
    return same;
}
