/* Memory maps and whole-file reads (see qs_file.h). */
#include "core/qs_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs_output.h"

/* Opens path for reading without blocking (a FIFO would wait for a writer forever) and checks
 * that it is a regular file; notes it as an input (qs_output.h). Returns the fd or a negative
 * status with err set. */
static int open_regular(const char *path, struct stat *st, qs_error *err) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP) return qs_errorf(err, QS_ERR_INPUT, "%s: cannot open: a loop of symbolic links", path);
        return qs_errorf(err, QS_ERR_INPUT, "%s: cannot open: %s", path, strerror(e));
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        int dir = S_ISDIR(st->st_mode);
        close(fd);
        return qs_errorf(err, QS_ERR_INPUT, "%s: %s", path,
                         dir ? "is a directory, expected a file"
                             : "not a regular file (a device, FIFO or socket); qsense reads regular files only");
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    qs_input_note_fd(fd);
    return fd;
}

int qs_map_open(qs_map *out, const char *path, qs_error *err) {
    memset(out, 0, sizeof *out);
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return fd;
    out->size = (size_t)st.st_size;
    if (out->size > 0) {
        void *p = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return qs_errorf(err, QS_ERR_INPUT, "%s: cannot map: %s", path, strerror(e));
        }
        out->data = p;
    }
    close(fd);
    out->path = strdup(path);
    return QS_OK;
}

void qs_map_close(qs_map *m) {
    if (!m) return;
    if (m->data) munmap((void *)m->data, m->size);
    free(m->path);
    memset(m, 0, sizeof *m);
}

int qs_read_file(const char *path, char **out, size_t *size, qs_error *err) {
    *out = NULL;
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return fd;
    if ((uint64_t)st.st_size > QS_READ_FILE_MAX) {
        close(fd);
        return qs_errorf(err, QS_ERR_INPUT, "%s: %lld bytes; qsense reads such a file whole and accepts at most %llu MiB",
                         path, (long long)st.st_size, (unsigned long long)(QS_READ_FILE_MAX >> 20));
    }
    /* st_size is a hint (procfs says 0): read to the end, within the limit */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory reading %s", path);
    }
    for (;;) {
        if (n == cap) {
            if (cap > QS_READ_FILE_MAX) {
                free(buf);
                close(fd);
                return qs_errorf(err, QS_ERR_INPUT, "%s: more than %llu MiB; qsense reads such a file whole", path,
                                 (unsigned long long)(QS_READ_FILE_MAX >> 20));
            }
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                close(fd);
                return qs_errorf(err, QS_ERR_INTERNAL, "out of memory reading %s", path);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return qs_errorf(err, QS_ERR_INPUT, "%s: read error: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    if (size) *size = n;
    return QS_OK;
}

void *qs_scratch_map(const char *base, size_t bytes, qs_error *err) {
    char path[4200];
    int fd = -1;
    for (int k = 0; k < 100 && fd < 0; k++) { /* our own new file: O_EXCL, never one that exists */
        snprintf(path, sizeof path, "%s.scratch-%ld-%d", base, (long)getpid(), k);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        qs_errorf(err, QS_ERR_INPUT, "%s: cannot create a scratch file beside it: %s", base, strerror(errno));
        return NULL;
    }
    unlink(path); /* gone from the folder at once: nothing is left behind, even by a killed run */
    void *p = MAP_FAILED;
    if (posix_fallocate(fd, 0, (off_t)(bytes ? bytes : 1)) == 0)
        p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        qs_errorf(err, QS_ERR_INPUT, "%s: cannot hold %zu MiB in a scratch file beside it (disk full?)", base, bytes >> 20);
        return NULL;
    }
    return p;
}

void qs_scratch_unmap(void *p, size_t bytes) {
    if (p) munmap(p, bytes ? bytes : 1);
}
