/* Running gnuplot, the external program that draws qsense's report figures: find it, feed it a
 * script, and say how to install it when it is missing. */
#ifndef QS_GNUPLOT_H
#define QS_GNUPLOT_H

#include "core/qs_error.h"

/* 0 if a gnuplot program is on PATH (or in $QSENSE_GNUPLOT); else QS_ERR_INPUT with how to
 * install it. */
int qs_gnuplot_check(qs_error *err);

/* Runs gnuplot on the script file; its messages go to log_path. Error names the script and the
 * log's first lines. */
int qs_gnuplot_run(const char *script_path, const char *log_path, qs_error *err);

#endif
