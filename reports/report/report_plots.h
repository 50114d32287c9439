/* The report's figures (internal to reports/report_*.c): data files and one gnuplot script
 * under OUT/plot-data/, PNGs in OUT/. Every figure has a title, labelled axes with units and a
 * one-line caption saying how to read it; a figure the database cannot feed is not drawn, and
 * its reason is kept for the page. */
#ifndef QS_REPORT_PLOTS_H
#define QS_REPORT_PLOTS_H

#include "reports/report/report_ctx.h"

typedef struct {
    char file[96];     /* PNG name inside the report directory; "" when not drawn */
    char section[24];  /* overview, tensors, histograms, domains, plan */
    char title[200];
    char caption[900];
    char missing[300]; /* why it is not drawn (file is "" then) */
    int tensor;        /* histograms: index into ctx->t; else -1 */
} rp_figure;

typedef struct {
    int n, cap;
    rp_figure *f;
} rp_figures;

/* Writes the data, runs gnuplot once, and fills figs (caller frees figs->f). */
int rp_plots_write(const rp_ctx *c, const char *dir, rp_figures *figs, qs_error *err);

#endif
