/* Helpers for the libFuzzer targets: the loaders take paths, so each input is written to an
 * in-memory file (memfd) and its /proc path handed over. */
#ifndef QS_FUZZ_UTIL_H
#define QS_FUZZ_UTIL_H

#ifndef _GNU_SOURCE /* CMake passes -D_GNU_SOURCE; memfd_create needs it */
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data to a fresh memfd; fills path (/proc/self/fd/N); returns the fd (close it after). */
static inline int fuzz_file(const uint8_t *data, size_t size, char *path, size_t cap) {
    int fd = memfd_create("qsense-fuzz", 0);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

#endif
