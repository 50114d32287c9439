/* Read-only memory maps and small whole-file reads. A model file is mapped, never read up front,
 * so a 10 GB model costs address space, not memory. */
#ifndef QS_FILE_H
#define QS_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/qs_error.h"

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

/* Scratch memory backed by a new file beside `base` (base.scratch-PID-K, removed from the folder
 * at once: only the mapping holds it), for caches larger than the memory budget: the kernel
 * writes their pages to disk as it needs the memory. NULL (and err) when the file cannot be made
 * or sized. Free with qs_scratch_unmap. */
void *qs_scratch_map(const char *base, size_t bytes, qs_error *err);
void qs_scratch_unmap(void *p, size_t bytes);

#endif
