/* qs_output: the one way qsense writes a file (docs/security.md, "Outputs").
 * Every input a command reads is noted by device and inode (qs_input_note, called by the
 * readers); an output that is, or resolves to, an input of the same process is refused, as are directories, devices, FIFOs and sockets. A file is written to a
 * uniquely named temporary file in the target's directory, flushed, fsync'd and renamed over the
 * target: a reader sees the old file or the new one, never half of one, and a failed write leaves
 * the old file (or none) and an error. A symbolic link at the target is replaced, not written
 * through. */
#ifndef QS_OUTPUT_H
#define QS_OUTPUT_H

#include <stdio.h>

#include "core/qs_error.h"

typedef struct qs_output qs_output;

/* Remembers path (if it exists) as an input of this process: no output may replace it. */
void qs_input_note(const char *path);
/* Same, for an open file descriptor. */
void qs_input_note_fd(int fd);

/* 0 if path may be written by this process; QS_ERR_INPUT naming path and why not otherwise.
 * what ("the plan", "-o") names the output in the message. */
int qs_output_check(const char *path, const char *what, qs_error *err);

/* Checks path and opens a fresh temporary file beside it. With by_name, the temporary file is
 * created empty and closed, for libraries that open files by name (HDF5): write to
 * qs_output_tmp_path. On success *out owns the temporary file until commit or discard. */
int qs_output_open(qs_output **out, const char *path, const char *what, int by_name, qs_error *err);
FILE *qs_output_stream(qs_output *o);
const char *qs_output_tmp_path(const qs_output *o);

/* Flushes, fsyncs and renames the temporary file over the target; frees o. On any failure
 * (a full disk, a file size limit) removes the temporary file, leaves the target as it was and
 * returns QS_ERR_INPUT naming the target. */
int qs_output_commit(qs_output *o, qs_error *err);
/* For a writer that saw its own write fail with errno e: removes the temporary file, frees o and
 * returns QS_ERR_INPUT with the same message as a failed commit. */
int qs_output_fail(qs_output *o, int e, qs_error *err);
/* Removes the temporary file and frees o (NULL is fine). */
void qs_output_discard(qs_output *o);

/* Writes text (NUL-terminated) to path through the discipline above. */
int qs_output_write_text(const char *path, const char *what, const char *text, qs_error *err);

/* For the CLI's main: a write past a file size limit fails with EFBIG instead of killing the
 * process (SIGXFSZ), and SIGINT/SIGTERM/SIGHUP remove the temporary files in flight before the
 * process dies as it would have. */
void qs_output_install_signal_handlers(void);

#endif
