/* qs_report: what a profile run found, for people. `qsense report` writes a self-contained
 * directory (index.html, report.css, report.js, PNG figures drawn by gnuplot) that opens with
 * no network and reads without JavaScript; --text prints the summary to a terminal. Both render
 * what the database holds and say plainly what it does not hold yet. */
#ifndef QS_REPORT_H
#define QS_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "core/qs_error.h"

typedef struct {
    const char *db_path;
    const char *out_dir;   /* HTML only: created if missing */
    int64_t run_id;        /* 0: the newest finished run (the newest at all if none finished) */
    const char *format;    /* the format for the heatmap, grids and rankings; NULL: chosen (q4_k, q4_0, ...) */
} qs_report_options;

typedef struct {
    int n_figures;         /* PNGs written */
    int n_tensors;
    char index_path[1200];
} qs_report_result;

int qs_report_write_html(const qs_report_options *o, qs_report_result *res, qs_error *err);
int qs_report_write_text(const qs_report_options *o, FILE *out, qs_error *err);

#endif
