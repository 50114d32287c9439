/* The report's figures (see report_plots.h). Each figure function writes its data files and
 * appends its gnuplot commands to one script; gnuplot then runs once for all of them, which
 * keeps a report of hundreds of histograms to seconds. */
#include "reports/report/report_plots.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/qs_output.h"
#include "quant/format.h"
#include "reports/report/gnuplot.h"
#include "store/arrays.h"
#include "store/measures.h"
#include "store/plans.h"

/* the linear kinds, in the order of a block (attn_qkv: Phi-3's fused q, k, v; ffn_gate_inp and
 * *_exps: a mixture of experts' router and stacked experts); a figure shows those a model has */
static const char *const KINDS[] = {"attn_q",   "attn_k",        "attn_v",        "attn_qkv",   "attn_output",  "ffn_gate",
                                    "ffn_up",   "ffn_down",      "ffn_gate_inp",  "ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
#define N_KINDS 12

typedef struct {
    const rp_ctx *c;
    const char *dir;
    char data_dir[1100];
    FILE *gp;
    rp_figures *figs;
    qs_output *outs[16]; /* the data files open now (through qs_output: never over an input) */
    int io_failed;
    qs_error io_err; /* the first file that could not be written, and why */
} plotter;

static rp_figure *new_figure(plotter *p, const char *section, const char *file, const char *title, const char *caption) {
    rp_figures *fs = p->figs;
    if (fs->n == fs->cap) {
        fs->cap = fs->cap ? 2 * fs->cap : 32;
        fs->f = realloc(fs->f, sizeof(rp_figure) * (size_t)fs->cap);
    }
    rp_figure *f = &fs->f[fs->n++];
    memset(f, 0, sizeof *f);
    f->tensor = -1;
    snprintf(f->section, sizeof f->section, "%s", section);
    snprintf(f->file, sizeof f->file, "%s", file);
    snprintf(f->title, sizeof f->title, "%s", title);
    snprintf(f->caption, sizeof f->caption, "%s", caption);
    return f;
}

static void missing(plotter *p, const char *section, const char *title, const char *why) {
    rp_figure *f = new_figure(p, section, "", title, "");
    snprintf(f->missing, sizeof f->missing, "%s", why);
}

static qs_error *io_err(plotter *p) {
    if (p->io_failed) return NULL; /* keep the first error */
    p->io_failed = 1;
    return &p->io_err;
}

/* a data file under plot-data/; on failure the error is kept and writes go nowhere */
static FILE *data_file(plotter *p, const char *name, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", p->data_dir, name);
    for (size_t i = 0; i < sizeof p->outs / sizeof *p->outs; i++) {
        if (p->outs[i]) continue;
        qs_error e;
        if (qs_output_open(&p->outs[i], path, "report file", 0, &e) == 0) return qs_output_stream(p->outs[i]);
        qs_errorf(io_err(p), e.code, "%s", e.msg);
        break;
    }
    return fopen("/dev/null", "w");
}

static void data_close(plotter *p, FILE *f) {
    for (size_t i = 0; i < sizeof p->outs / sizeof *p->outs; i++) {
        if (!p->outs[i] || qs_output_stream(p->outs[i]) != f) continue;
        qs_error e;
        if (qs_output_commit(p->outs[i], &e)) qs_errorf(io_err(p), e.code, "%s", e.msg);
        p->outs[i] = NULL;
        return;
    }
    fclose(f);
}

/* gnuplot single-quoted string: a quote is written twice */
static void gp_str(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* starts a figure: output file, title, axis labels */
static void gp_begin(plotter *p, const char *png, const char *title, const char *xlabel, const char *ylabel, int w, int h) {
    fprintf(p->gp, "reset\nset terminal pngcairo size %d,%d font 'DejaVu Sans,10' noenhanced\nset output ", w, h);
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", p->dir, png);
    qs_error e;
    if (qs_output_check(path, "report file", &e)) qs_errorf(io_err(p), e.code, "%s", e.msg);
    gp_str(p->gp, path);
    fprintf(p->gp, "\nset title ");
    gp_str(p->gp, title);
    fprintf(p->gp, "\nset xlabel ");
    gp_str(p->gp, xlabel);
    fprintf(p->gp, "\nset ylabel ");
    gp_str(p->gp, ylabel);
    fprintf(p->gp, "\nset grid lc rgb '#dddddd'\nset key outside right top\n");
    /* one colour per kind, kept apart (the default cycle has a pale yellow) */
    static const char *const colours[N_KINDS] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                                 "#e377c2", "#17becf", "#7f7f7f", "#bcbd22", "#393b79", "#843c39"};
    for (int k = 0; k < N_KINDS; k++) fprintf(p->gp, "set linetype %d lc rgb '%s'\n", k + 1, colours[k]);
}

static const char *cost_label(const rp_ctx *c) {
    return c->has_sensitivity ? "KL divergence vs unquantized (nats/token)" : "output error ||(W-Wq)X||^2 / ||WX||^2";
}

/* a figure SQL gave as 0 when the column was NULL, as the figures always printed it */
static double or0(double x) { return isnan(x) ? 0 : x; }

static int kind_index(const char *kind) {
    for (int k = 0; k < N_KINDS; k++)
        if (!strcmp(KINDS[k], kind)) return k;
    return -1;
}

/* column[k]: the heatmap column of KINDS[k] among the kinds this model has (-1: absent); returns
 * how many it has (a fused model has attn_qkv and no attn_q, k, v or ffn_gate) */
static int kind_columns(const rp_ctx *c, int column[N_KINDS]) {
    int present[N_KINDS] = {0}, n = 0;
    for (int i = 0; i < c->n_tensors; i++) {
        const int k = kind_index(c->t[i].kind);
        if (k >= 0 && c->t[i].layer >= 0) present[k] = 1;
    }
    for (int k = 0; k < N_KINDS; k++) column[k] = present[k] ? n++ : -1;
    return n;
}

/* ---- heatmap: layer x tensor kind, the chosen format's cost ---------------------------- */
static void fig_heatmap(plotter *p) {
    const rp_ctx *c = p->c;
    char title[200], path[1300], napath[1300];
    snprintf(title, sizeof title, "Cost of quantizing one tensor to %s (%s)", c->format, c->has_sensitivity ? "KL" : "output error");
    if (!c->format[0] || c->n_layers <= 0) {
        missing(p, "overview", title, "the run measured no formats");
        return;
    }
    int column[N_KINDS];
    const int n_columns = kind_columns(c, column);
    FILE *d = data_file(p, "heatmap.dat", path, sizeof path), *na = data_file(p, "heatmap_na.dat", napath, sizeof napath);
    int n = 0;
    for (int i = 0; i < c->n_tensors; i++) {
        const rp_tensor *t = &c->t[i];
        int k = kind_index(t->kind);
        if (k >= 0) k = column[k];
        if (k < 0 || t->layer < 0) continue;
        double v = rp_cost(c, t);
        if (isnan(v)) fprintf(na, "%d %d\n", k, t->layer);
        else fprintf(d, "%d %d %.6g\n", k, t->layer, fmax(v, 1e-9)), n++;
    }
    data_close(p, d);
    fprintf(na, "-10 -10\n"); /* never empty: gnuplot refuses an empty file */
    data_close(p, na);
    if (!n) {
        missing(p, "overview", title, "no tensor has a measurement in this format");
        return;
    }
    char caption[900];
    snprintf(caption, sizeof caption,
             "Each cell: %s when only that tensor is quantized to %s%s. Darker costs more; grey cells cannot be "
             "stored in %s (shape). Read across a row for the layer's weak spot, down a column for a kind that is "
             "sensitive everywhere.%s",
             c->has_sensitivity ? "the mean KL divergence per token" : "the activation-weighted output error",
             c->format, c->has_sensitivity ? ", everything else exact, averaged over the evaluation domains" : "",
             c->format,
             column[kind_index("attn_qkv")] >= 0
                 ? " This model's layout is fused: attn_qkv holds q, k and v in one matrix and ffn_up holds gate and up "
                   "stacked, as its GGUF stores them, so each is measured, planned and quantized as one tensor."
                 : "");
    new_figure(p, "overview", "heatmap.png", title, caption);
    gp_begin(p, "heatmap.png", title, "tensor kind", "layer", 860, 120 + 34 * (c->n_layers < 8 ? 8 : c->n_layers > 40 ? 40 : c->n_layers));
    fprintf(p->gp, "set xtics (");
    for (int k = 0; k < N_KINDS; k++)
        if (column[k] >= 0) fprintf(p->gp, "%s'%s' %d", column[k] ? ", " : "", KINDS[k], column[k]);
    fprintf(p->gp, ")%s\nset xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nset ytics %d\nset grid noxtics noytics\n",
            n_columns > 7 ? " rotate by 25 right" : "", n_columns - 1,
            c->n_layers - 1, c->n_layers > 24 ? 4 : 1);
    fprintf(p->gp, "set logscale cb\nset cblabel ");
    gp_str(p->gp, cost_label(c));
    fprintf(p->gp, "\nset palette defined (0 '#ffffcc', 1 '#fd8d3c', 2 '#800026')\nset style fill solid 1.0 noborder\nunset key\n");
    fprintf(p->gp, "plot ");
    gp_str(p->gp, napath);
    fprintf(p->gp, " using 1:2:(0.5):(0.5) with boxxy fc rgb '#d9d9d9', ");
    gp_str(p->gp, path);
    fprintf(p->gp, " using 1:2:(0.5):(0.5):3 with boxxy fc palette");
    if (c->n_layers <= 16) fprintf(p->gp, ", '' using 1:2:(sprintf('%%.2g', $3)) with labels font ',8' tc rgb '#222222'");
    fprintf(p->gp, "\n");
}

/* ---- heatmap: layer x (activation site, format): what quantizing one input or cache costs -- */
static void fig_sites(plotter *p) {
    const rp_ctx *c = p->c;
    qs_db_site_cell *cells;
    int n;
    qs_error e = {0};
    if (qs_db_site_cells(c->db, c->run_id, &cells, &n, &e) || n == 0) return; /* no site sweep in this run */
    const char *title = "Cost of quantizing one activation site (KL)";
    char path[1300], napath[1300];
    FILE *d = data_file(p, "sites.dat", path, sizeof path), *na = data_file(p, "sites_na.dat", napath, sizeof napath);
    char columns[64][72];
    int n_columns = 0, n_values = 0;
    for (int i = 0; i < n; i++) { /* one column per (kind, format), in the query's order */
        char key[72];
        snprintf(key, sizeof key, "%s %s", cells[i].kind, cells[i].format);
        int col = -1;
        for (int k = 0; k < n_columns; k++)
            if (!strcmp(columns[k], key)) col = k;
        if (col < 0 && n_columns < 64) snprintf(columns[col = n_columns++], sizeof columns[0], "%s", key);
        if (col < 0) continue;
        if (isnan(cells[i].kl)) fprintf(na, "%d %d\n", col, cells[i].layer);
        else fprintf(d, "%d %d %.6g\n", col, cells[i].layer, fmax(cells[i].kl, 1e-9)), n_values++;
    }
    free(cells);
    data_close(p, d);
    fprintf(na, "-10 -10\n");
    data_close(p, na);
    if (!n_values) {
        missing(p, "overview", title, "no activation format applied to any site");
        return;
    }
    char caption[700];
    snprintf(caption, sizeof caption,
             "Each cell: the mean KL divergence per token when only that site is quantized (qsense profile "
             "--act-formats / --kv-formats), everything else exact, averaged over the evaluation domains. attn_in is the "
             "input q, k and v share, ffn_in gate and up's, kv_cache the layer's keys and values; the head's input is the "
             "bottom row (layer %d). Grey: the format does not fit the site (a block format on narrower heads). A W8A8 "
             "plan keeps the darkest groups in 16 bits (qsense plan --act).",
             c->n_layers);
    new_figure(p, "overview", "sites.png", title, caption);
    gp_begin(p, "sites.png", title, "site and format", "layer", 240 + 44 * n_columns, 160 + 30 * (c->n_layers < 8 ? 8 : c->n_layers > 40 ? 40 : c->n_layers));
    fprintf(p->gp, "set xtics rotate by 35 right (");
    for (int k = 0; k < n_columns; k++) {
        fprintf(p->gp, "%s", k ? ", " : "");
        gp_str(p->gp, columns[k]);
        fprintf(p->gp, " %d", k);
    }
    fprintf(p->gp, ")\nset xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nset ytics %d\nset grid noxtics noytics\n", n_columns - 1,
            c->n_layers, c->n_layers > 24 ? 4 : 1);
    fprintf(p->gp, "set lmargin 16\nset bmargin 9\nset logscale cb\nset cblabel 'mean KL per token'\n");
    fprintf(p->gp, "set palette defined (0 '#ffffcc', 1 '#fd8d3c', 2 '#800026')\nset style fill solid 1.0 noborder\nunset key\n");
    fprintf(p->gp, "plot ");
    gp_str(p->gp, napath);
    fprintf(p->gp, " using 1:2:(0.5):(0.5) with boxxy fc rgb '#d9d9d9', ");
    gp_str(p->gp, path);
    fprintf(p->gp, " using 1:2:(0.5):(0.5):3 with boxxy fc palette\nunset logscale cb\nset xtics norotate\nset lmargin -1\nset bmargin -1\n");
}

/* ---- heatmap: layer x every kind with weights, how far the largest weight stands out ------ */
/* every per-layer tensor kind, matrices first, then the norms (q/k norms, Gemma's post-norms) */
static const char *const WKINDS[] = {"attn_q",        "attn_k",       "attn_v",       "attn_qkv",        "attn_output",
                                     "ffn_gate",      "ffn_up",       "ffn_down",     "ffn_gate_inp",    "ffn_gate_exps",
                                     "ffn_up_exps",   "ffn_down_exps", "attn_norm",   "attn_q_norm",     "attn_k_norm",
                                     "post_attention_norm", "ffn_norm", "post_ffw_norm"};
#define N_WKINDS ((int)(sizeof WKINDS / sizeof WKINDS[0]))

static int wkind_index(const rp_tensor *t) {
    const size_t n = strlen(t->name);
    if (n < 7 || strcmp(t->name + n - 7, ".weight")) return -1; /* biases share the kind: weights only */
    for (int k = 0; k < N_WKINDS; k++)
        if (!strcmp(WKINDS[k], t->kind)) return k;
    return -1;
}

static void fig_weight_heatmap(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = "Outlier weights: largest |w| over the root mean square, per layer and tensor kind";
    if (c->n_layers <= 0) return;
    int column[N_WKINDS], present[N_WKINDS] = {0}, n_columns = 0, n = 0;
    for (int i = 0; i < c->n_tensors; i++) {
        const int k = wkind_index(&c->t[i]);
        if (k >= 0 && c->t[i].layer >= 0) present[k] = 1;
    }
    for (int k = 0; k < N_WKINDS; k++) column[k] = present[k] ? n_columns++ : -1;
    char path[1300];
    FILE *d = data_file(p, "weights_heatmap.dat", path, sizeof path);
    for (int i = 0; i < c->n_tensors; i++) {
        const rp_tensor *t = &c->t[i];
        const int k = wkind_index(t);
        if (k < 0 || t->layer < 0) continue;
        qs_db_weight_stats ws;
        qs_db_weight_stats_of(c->db, c->run_id, t->id, &ws);
        const double rms = sqrt(ws.std * ws.std + ws.mean * ws.mean); /* norms sit around 1, matrices around 0 */
        if (!ws.found || !(rms > 0)) continue;
        fprintf(d, "%d %d %.6g\n", column[k], t->layer, ws.absmax / rms);
        n++;
    }
    data_close(p, d);
    if (!n) {
        missing(p, "overview", title, "the run has no weight statistics");
        return;
    }
    new_figure(p, "overview", "weights_heatmap.png", title,
               "Each cell: the tensor's largest absolute weight divided by the root mean square of its weights. A "
               "Gaussian matrix of a million weights reaches about 5; far above that, a few weights set the scale of "
               "every format with one scale per tensor, row or group and leave few levels for the rest. Norm weights "
               "(attention and FFN norms, q/k norms, post-norms) are kept in f32 and never quantized, but a large one "
               "(several times their root mean square) multiplies its channel of the activations the next matrices "
               "see, which is where activation outliers come from.");
    gp_begin(p, "weights_heatmap.png", title, "tensor kind", "layer", 900,
             140 + 34 * (c->n_layers < 8 ? 8 : c->n_layers > 40 ? 40 : c->n_layers));
    fprintf(p->gp, "set xtics (");
    for (int k = 0; k < N_WKINDS; k++)
        if (column[k] >= 0) fprintf(p->gp, "%s'%s' %d", column[k] ? ", " : "", WKINDS[k], column[k]);
    fprintf(p->gp, ") rotate by 30 right\nset xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nset ytics %d\nset grid noxtics noytics\n",
            n_columns - 1, c->n_layers - 1, c->n_layers > 24 ? 4 : 1);
    fprintf(p->gp, "set logscale cb\nset cblabel 'max |w| / rms(w)'\n"
                   "set palette defined (0 '#f7fbff', 1 '#6baed6', 2 '#08306b')\nset style fill solid 1.0 noborder\nunset key\nplot ");
    gp_str(p->gp, path);
    fprintf(p->gp, " using 1:2:(0.5):(0.5):3 with boxxy fc palette");
    if (c->n_layers <= 16) fprintf(p->gp, ", '' using 1:2:(sprintf('%%.0f', $3)) with labels font ',8' tc rgb '#222222'");
    fprintf(p->gp, "\n");
}

/* ---- cost vs bits per weight, one line per tensor kind --------------------------------- */
typedef struct {
    char fmt[32];
    double bpw, cost;
} fmt_point;

static int by_bpw(const void *a, const void *b) {
    double x = ((const fmt_point *)a)->bpw, y = ((const fmt_point *)b)->bpw;
    return (x > y) - (x < y);
}

static void fig_cost_vs_bpw(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = c->has_sensitivity ? "KL divergence vs bits per weight, by tensor kind"
                                           : "Output error vs bits per weight, by tensor kind";
    char files[N_KINDS][1300], best_files[N_KINDS][1300];
    int have[N_KINDS] = {0}, any = 0, several_roundings = 0;
    for (int k = 0; k < N_KINDS; k++) {
        qs_db_kind_cost rows[256];
        int nr = qs_db_kind_costs(c->db, c->run_id, c->has_sensitivity ? QS_DB_SENSITIVITY : QS_DB_QERROR, KINDS[k], rows, 256);
        fmt_point pts[256];
        int n = 0;
        for (int r = 0; r < nr; r++) {
            fmt_point *q = &pts[n];
            snprintf(q->fmt, sizeof q->fmt, "%.31s", rows[r].format);
            q->cost = rows[r].cost;
            if (c->has_sensitivity) { /* the format's true size on the smallest matrix of the kind */
                const qs_format *f = qs_format_find(q->fmt, NULL);
                if (!f) continue;
                q->bpw = qs_format_bpw(f, rows[r].rows, rows[r].cols);
            } else {
                q->bpw = rows[r].bpw;
            }
            if (q->cost > 0) n++;
        }
        if (n < 2) continue;
        qsort(pts, (size_t)n, sizeof *pts, by_bpw);
        char name[64];
        snprintf(name, sizeof name, "cost_bpw_%s.dat", KINDS[k]);
        FILE *d = data_file(p, name, files[k], sizeof files[k]);
        fprintf(d, "# bpw cost format\n");
        for (int i = 0; i < n; i++) fprintf(d, "%.4f %.6g %s\n", pts[i].bpw, pts[i].cost, pts[i].fmt);
        data_close(p, d);
        /* the line: the best format at each size (several roundings of one block type share a size) */
        snprintf(name, sizeof name, "cost_bpw_%s_best.dat", KINDS[k]);
        d = data_file(p, name, best_files[k], sizeof best_files[k]);
        fprintf(d, "# bpw cost format (the lowest cost at each bits per weight)\n");
        for (int i = 0; i < n;) {
            int b = i, j = i;
            for (; j < n && pts[j].bpw - pts[i].bpw < 1e-9; j++)
                if (pts[j].cost < pts[b].cost) b = j;
            several_roundings |= j - i > 1;
            fprintf(d, "%.4f %.6g %s\n", pts[b].bpw, pts[b].cost, pts[b].fmt);
            i = j;
        }
        data_close(p, d);
        have[k] = 1;
        any = 1;
    }
    if (!any) {
        missing(p, "overview", title, "fewer than two formats measured per tensor kind");
        return;
    }
    char caption[600];
    snprintf(caption, sizeof caption,
             "Each point: one format, its %s averaged over the layers%s, at its true storage cost (scales included). "
             "Lower is better; a line that stays high needs more bits than the others.%s The y axis is logarithmic.",
             c->has_sensitivity ? "KL divergence" : "output error", c->has_sensitivity ? " and domains" : "",
             several_roundings ? " Where several roundings share a size (q4_0, q4_0-w, q4_0-gptq), the line joins the best." : "");
    new_figure(p, "overview", "cost_vs_bpw.png", title, caption);
    gp_begin(p, "cost_vs_bpw.png", title, "bits per weight", cost_label(c), 900, 520);
    fprintf(p->gp, "set logscale y\nset format y '%%.0e'\nplot ");
    int first = 1;
    for (int k = 0; k < N_KINDS; k++) {
        if (!have[k]) continue;
        fprintf(p->gp, "%s", first ? "" : ", ");
        gp_str(p->gp, best_files[k]);
        fprintf(p->gp, " using 1:2 with linespoints lw 2 pt 7 ps 0.8 lc %d title '%s', ", k + 1, KINDS[k]);
        gp_str(p->gp, files[k]);
        fprintf(p->gp, " using 1:2 with points pt 6 ps 0.8 lc %d notitle", k + 1);
        first = 0;
    }
    fprintf(p->gp, "\n");
}

/* ---- granularity: int4 at tensor / channel / group scales ------------------------------- */
static void fig_granularity(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = "4-bit integer: output error by scale granularity";
    char fmts[16][32];
    int nf = qs_db_int4_granularities(c->db, c->run_id, fmts, 16);
    if (nf < 2) {
        missing(p, "overview", title, "the run measured fewer than two int4 granularities (profile --formats default has seven)");
        return;
    }
    char path[1300];
    FILE *d = data_file(p, "granularity.dat", path, sizeof path);
    int column[N_KINDS];
    const int n_columns = kind_columns(c, column);
    fprintf(d, "format");
    for (int k = 0; k < N_KINDS; k++)
        if (column[k] >= 0) fprintf(d, " %s", KINDS[k]);
    fprintf(d, "\n");
    for (int i = 0; i < nf; i++) {
        fprintf(d, "%s", fmts[i]);
        for (int k = 0; k < N_KINDS; k++) {
            if (column[k] < 0) continue;
            double v = qs_db_mean_output_error(c->db, c->run_id, fmts[i], KINDS[k]);
            if (v > 0) fprintf(d, " %.6g", v);
            else fprintf(d, " NaN");
        }
        fprintf(d, "\n");
    }
    data_close(p, d);
    new_figure(p, "overview", "granularity.png", title,
               "The same 4 bits with one scale per tensor, per output channel, or per group of 128/64/32 inputs (sym: no "
               "zero point, asym: with one); formats ordered by true bits per weight. Finer scales cost a little storage and "
               "usually buy a lot of accuracy; the y axis is logarithmic.");
    gp_begin(p, "granularity.png", title, "format (finer scales to the right)", "output error ||(W-Wq)X||^2 / ||WX||^2", 900, 520);
    fprintf(p->gp, "set logscale y\nset format y '%%.0e'\nset xtics rotate by 25 right\nset datafile missing 'NaN'\nplot for [k=2:%d] ",
            n_columns + 1);
    gp_str(p->gp, path);
    fprintf(p->gp, " using 0:k:xtic(1) with linespoints lw 2 pt 7 title columnheader(k)\n");
}

/* ---- histograms per tensor, with the chosen bit width's grid over the weights ----------- */
/* writes "center count" lines (empty bins skipped: the count axis is logarithmic); 0 if none */
static int write_hist(plotter *p, const char *name, const char *dataset, double lo, double hi, char *path, size_t cap) {
    int64_t n;
    uint64_t *h = qs_db_run_array(p->c->db, p->c->run_id, dataset, "u64", 8, &n);
    if (!h) return 0;
    FILE *d = data_file(p, name, path, cap);
    int any = 0;
    const double w = (hi - lo) / (double)n;
    for (int64_t b = 0; b < n; b++)
        if (h[b]) fprintf(d, "%.6g %llu\n", lo + (b + 0.5) * w, (unsigned long long)h[b]), any = 1;
    data_close(p, d);
    free(h);
    return any;
}

static void fig_histograms(plotter *p) {
    const rp_ctx *c = p->c;
    const qs_format *f = qs_format_find(c->format, NULL);
    int bits = f && f->bits >= 2 && f->bits <= 8 ? f->bits : 4;
    if (bits > 6) bits = 6; /* finer grids are a grey smear at this size */
    const int levels = (1 << (bits - 1)) - 1;
    for (int i = 0; i < c->n_tensors; i++) {
        const rp_tensor *t = &c->t[i];
        if (t->rows <= 1) continue;
        char title[200], png[96], name[128], wpath[1300], apath[1300] = "", ds[200];
        snprintf(title, sizeof title, "%s (%lld x %lld)", t->name, (long long)t->rows, (long long)t->cols);
        qs_db_weight_stats ws;
        qs_db_weight_stats_of(c->db, c->run_id, t->id, &ws);
        if (!ws.found) continue;
        double wlo = or0(ws.hist_min), whi = or0(ws.hist_max), wabs = or0(ws.absmax), kurt = or0(ws.kurtosis);
        snprintf(name, sizeof name, "hist_w_%d.dat", i);
        snprintf(ds, sizeof ds, "/weights/%s/hist", t->name);
        if (!write_hist(p, name, ds, wlo, whi, wpath, sizeof wpath)) continue;
        int have_act = 0;
        double alo = 0, ahi = 0, adr = 0;
        qs_db_act_stats as;
        qs_db_act_stats_of(c->db, c->run_id, t->id, &as);
        if (as.found) {
            alo = or0(as.hist_min);
            ahi = or0(as.hist_max);
            adr = or0(as.dynamic_range_db);
            snprintf(name, sizeof name, "hist_a_%d.dat", i);
            snprintf(ds, sizeof ds, "/activations/%s/hist", t->name);
            have_act = write_hist(p, name, ds, alo, ahi, apath, sizeof apath);
        }
        snprintf(png, sizeof png, "hist_%d.png", i);
        char caption[600];
        snprintf(caption, sizeof caption,
                 "Left: the %lld weights (kurtosis %.1f; 3 is Gaussian) with the %d levels of %d-bit symmetric integers at one "
                 "scale for the whole tensor (absmax/%d, dotted red): mass far from every level is what rounding loses. "
                 "Right: %s. Counts are logarithmic.",
                 (long long)(t->rows * t->cols), kurt, 2 * levels + 1, bits, levels,
                 have_act ? "the inputs this matrix received on the calibration text (range fixed from the first chunk; end bins "
                            "collect values beyond it)"
                          : "no activation histogram in this run");
        rp_figure *fig = new_figure(p, "histograms", png, title, caption);
        fig->tensor = i;
        gp_begin(p, png, "", "", "", 900, 300);
        fprintf(p->gp, "set multiplot layout 1,2 title ");
        gp_str(p->gp, title);
        fprintf(p->gp, "\nset logscale y\nset yrange [0.8:*]\nunset key\nset style fill solid 0.6 noborder\n"
                       "set title 'weights'\nset xlabel 'weight value'\nset ylabel 'count'\n");
        for (int k = -levels; k <= levels; k++)
            fprintf(p->gp, "set arrow from %.6g, graph 0 to %.6g, graph 1 nohead lc rgb '#cc0000' dt 3 lw 0.7\n", wabs * k / levels,
                    wabs * k / levels);
        fprintf(p->gp, "set boxwidth %.6g absolute\nplot ", (whi - wlo) / 256);
        gp_str(p->gp, wpath);
        fprintf(p->gp, " using 1:2 with boxes lc rgb '#3b6ea5'\nunset arrow\n");
        if (have_act) {
            fprintf(p->gp, "set title 'inputs (activations), dynamic range %.1f dB'\nset xlabel 'input value'\n"
                           "set boxwidth %.6g absolute\nplot ", adr, (ahi - alo) / 256);
            gp_str(p->gp, apath);
            fprintf(p->gp, " using 1:2 with boxes lc rgb '#5a9e4b'\n");
        } else {
            fprintf(p->gp, "set title 'inputs: not measured'\nunset logscale y\nset yrange [0:1]\nset xrange [0:1]\n"
                           "set label 'no activation statistics for this tensor' at 0.5,0.5 center\nplot NaN\n");
        }
        fprintf(p->gp, "unset multiplot\n");
    }
}

/* ---- dynamic range and outlier channels per layer ------------------------------------ */
static const char *const INPUT_KINDS[] = {"attn_q", "attn_output", "ffn_up", "ffn_down"}; /* attn_qkv where fused */
static const char *const INPUT_NAMES[] = {"attention input (q, k, v)", "attn_output input", "FFN input (gate, up)",
                                          "ffn_down input"};

static void fig_dynamic_range(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = "Activation dynamic range and outlier channels per layer";
    if (!c->has_activations || c->n_layers <= 0) {
        missing(p, "overview", title, "no activation statistics in this run");
        return;
    }
    char path[1300];
    FILE *d = data_file(p, "dynamic_range.dat", path, sizeof path);
    fprintf(d, "layer");
    for (int k = 0; k < 4; k++) fprintf(d, " dr_%s outliers_%s", INPUT_KINDS[k], INPUT_KINDS[k]);
    fprintf(d, "\n");
    for (int l = 0; l < c->n_layers; l++) {
        fprintf(d, "%d", l);
        for (int k = 0; k < 4; k++) {
            qs_db_act_stats a;
            qs_db_act_stats_at(c->db, c->run_id, l, INPUT_KINDS[k], &a);
            if (!a.found && k == 0) qs_db_act_stats_at(c->db, c->run_id, l, "attn_qkv", &a);
            if (a.found) fprintf(d, " %.4g %d", or0(a.dynamic_range_db), (int)or0(a.n_outlier_channels));
            else fprintf(d, " NaN NaN");
        }
        fprintf(d, "\n");
    }
    data_close(p, d);
    new_figure(p, "overview", "dynamic_range.png", title,
               "Left: 20 log10(absmax / std) of each layer's inputs: the higher, the more a single activation scale is "
               "stretched by rare large values. Right: channels whose absmax exceeds 6x the median channel's (outliers "
               "that per-tensor activation quantization would clip or smear).");
    gp_begin(p, "dynamic_range.png", "", "", "", 1000, 420);
    fprintf(p->gp, "set datafile missing 'NaN'\nset multiplot layout 1,2 title ");
    gp_str(p->gp, title);
    fprintf(p->gp, "\nset key inside bottom right opaque font ',8'\nset title 'dynamic range'\nset xlabel 'layer'\nset ylabel 'dB'\n"
                   "set xtics %d\nplot ", c->n_layers > 24 ? 4 : 1);
    for (int k = 0; k < 4; k++) {
        fprintf(p->gp, "%s", k ? ", " : "");
        gp_str(p->gp, path);
        fprintf(p->gp, " using 1:%d with linespoints lw 2 pt 7 title '%s'", 2 + 2 * k, INPUT_NAMES[k]);
    }
    fprintf(p->gp, "\nset title 'outlier channels'\nset ylabel 'channels (absmax > 6x median)'\nset yrange [0:*]\nplot ");
    for (int k = 0; k < 4; k++) {
        fprintf(p->gp, "%s", k ? ", " : "");
        gp_str(p->gp, path);
        fprintf(p->gp, " using 1:%d with linespoints lw 2 pt 7 title '%s'", 3 + 2 * k, INPUT_NAMES[k]);
    }
    fprintf(p->gp, "\nunset multiplot\n");
}

static void fig_outlier_channels(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = "Per-channel input absmax, by layer";
    if (!c->has_activations || c->n_layers <= 0) {
        missing(p, "overview", title, "no activation statistics in this run");
        return;
    }
    const int step = c->n_layers > 8 ? (c->n_layers + 7) / 8 : 1; /* at most 8 lines a panel */
    char files[2][64][1300];
    int nl[2] = {0, 0};
    const char *kinds[2] = {"attn_q", "ffn_down"};
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < c->n_layers && nl[k] < 64; l += step) {
            char ds[200], name[64];
            snprintf(ds, sizeof ds, "/activations/blk.%d.%s.weight/channel_absmax", l, kinds[k]);
            int64_t n;
            float *v = qs_db_run_array(c->db, c->run_id, ds, "f32", 4, &n);
            if (!v && k == 0) { /* a fused layout's attention input */
                snprintf(ds, sizeof ds, "/activations/blk.%d.attn_qkv.weight/channel_absmax", l);
                v = qs_db_run_array(c->db, c->run_id, ds, "f32", 4, &n);
            }
            if (!v) continue;
            snprintf(name, sizeof name, "channels_%s_%d.dat", kinds[k], l);
            FILE *d = data_file(p, name, files[k][nl[k]], sizeof files[k][0]);
            fprintf(d, "# layer %d\n", l);
            for (int64_t j = 0; j < n; j++) fprintf(d, "%lld %.6g\n", (long long)j, v[j]);
            data_close(p, d);
            free(v);
            nl[k]++;
        }
    if (!nl[0] && !nl[1]) {
        missing(p, "overview", title, "no per-channel activation arrays in this run");
        return;
    }
    new_figure(p, "overview", "outlier_channels.png", title,
               "The largest absolute input each channel received on the calibration text, one line per layer (log scale). "
               "Spikes are outlier channels: they set the scale of any per-tensor activation format and deserve "
               "per-channel handling or higher precision.");
    gp_begin(p, "outlier_channels.png", "", "", "", 1000, 420);
    fprintf(p->gp, "set multiplot layout 1,2 title ");
    gp_str(p->gp, title);
    fprintf(p->gp, "\nset logscale y\nset key inside top right opaque font ',8'\n");
    for (int k = 0; k < 2; k++) {
        fprintf(p->gp, "set title '%s'\nset xlabel 'input channel'\nset ylabel 'absmax'\n", k ? "ffn_down input" : "attention input");
        if (!nl[k]) { /* an empty panel: gnuplot refuses to autoscale a log axis over no points */
            fprintf(p->gp, "unset logscale y\nset xrange [0:1]\nset yrange [0:1]\nset label 1 'not measured' at 0.5,0.5 center\n"
                           "plot NaN notitle\nunset label 1\nset autoscale xy\nset logscale y\n");
            continue;
        }
        fprintf(p->gp, "plot ");
        for (int j = 0; j < nl[k]; j++) {
            fprintf(p->gp, "%s", j ? ", " : "");
            gp_str(p->gp, files[k][j]);
            fprintf(p->gp, " using 1:2 with lines lw 1.2 title 'layer %d'", j * step);
        }
        fprintf(p->gp, "\n");
    }
    fprintf(p->gp, "unset multiplot\n");
}

/* ---- per-domain comparison ------------------------------------------------------------ */
static void fig_domains(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = "Whole model quantized to each format: KL divergence per evaluation domain";
    if (!c->has_whole || c->n_domains == 0) {
        missing(p, "domains", title,
                "no whole-model measurements: run qsense profile MODEL --sensitivity (it measures every format on every domain)");
        return;
    }
    qs_db_whole_row *w;
    int nw;
    qs_error db_err = {0};
    if (qs_db_whole_model(c->db, c->run_id, &w, &nw, &db_err)) {
        missing(p, "domains", title, "the whole-model rows could not be read from the database");
        return;
    }
    char fmts[64][32];
    double vals[64][RP_MAX_DOMAINS];
    int nf = 0;
    for (int r = 0; r < nw; r++) { /* most bits first */
        const char *f = w[r].format, *dom = w[r].domain;
        int i = 0;
        while (i < nf && strcmp(fmts[i], f)) i++;
        if (i == nf) {
            if (nf == 64) continue;
            snprintf(fmts[nf], sizeof fmts[0], "%s", f);
            for (int d = 0; d < RP_MAX_DOMAINS; d++) vals[nf][d] = NAN;
            nf++;
        }
        for (int d = 0; d < c->n_domains; d++)
            if (!strcmp(c->domains[d], dom)) vals[i][d] = w[r].kl_mean;
    }
    free(w);
    char path[1300];
    FILE *d = data_file(p, "domains.dat", path, sizeof path);
    fprintf(d, "format");
    for (int k = 0; k < c->n_domains; k++) fprintf(d, " %s", c->domains[k]);
    fprintf(d, "\n");
    for (int i = 0; i < nf; i++) {
        fprintf(d, "%s", fmts[i]);
        for (int k = 0; k < c->n_domains; k++) fprintf(d, vals[i][k] > 0 ? " %.6g" : " NaN", vals[i][k]);
        fprintf(d, "\n");
    }
    data_close(p, d);
    new_figure(p, "domains", "domains.png", title,
               "Each group: every tensor that fits the format quantized at once (the rest as stored); one bar per evaluation "
               "domain. Formats run from most to fewest bits. A domain whose bar stands out loses more than the others at "
               "that precision; the y axis is logarithmic.");
    gp_begin(p, "domains.png", title, "format (most bits left)", "KL divergence vs unquantized (nats/token)", 960, 480);
    fprintf(p->gp, "set logscale y\nset format y '%%.0e'\nset datafile missing 'NaN'\nset style data histograms\n"
                   "set style histogram clustered gap 1\nset style fill solid 0.85 noborder\nset xtics rotate by 25 right\n"
                   "set yrange [*:*]\nplot for [k=2:%d] ", c->n_domains + 1);
    gp_str(p->gp, path);
    fprintf(p->gp, " using k:xtic(1) title columnheader(k)\n");
}

/* ---- estimated sensitivity against the jobs that checked it ------------------------------ */
static void fig_validation(plotter *p) {
    const rp_ctx *c = p->c;
    if (!c->est.n_estimated) return; /* every cost was measured: nothing to check */
    const char *title = "Estimated vs measured KL on the validation jobs";
    double est[4096], meas[4096];
    int n = qs_db_estimate_pairs(c->db, c->run_id, c->est.method, est, meas, 4096), n_pos = 0;
    char path[1300];
    FILE *d = data_file(p, "validation.dat", path, sizeof path);
    fprintf(d, "# estimated measured (KL, nats/token)\n");
    for (int i = 0; i < n; i++)
        if (est[i] > 0 && meas[i] > 0) fprintf(d, "%.6g %.6g\n", est[i], meas[i]), n_pos++;
    data_close(p, d);
    if (n_pos < 2) {
        missing(p, "overview", title,
                "the estimates were not validated: qsense profile ... --sens-mode calibrated|gradient --validate N measures N of them");
        return;
    }
    char caption[600];
    snprintf(caption, sizeof caption,
             "Each point: a (tensor, format, domain) whose KL the %s method estimated and --validate also measured, drawn at "
             "random. On the diagonal the estimate is exact; the dotted lines are a factor of 2 either way. Spearman %.3f, "
             "relative error median %.1f %%, 90th percentile %.1f %% (%d jobs). Both axes are logarithmic.",
             c->est.method, c->est.spearman, 100 * c->est.median_rel_error, 100 * c->est.p90_rel_error, c->est.n_validated);
    new_figure(p, "overview", "validation.png", title, caption);
    gp_begin(p, "validation.png", title, "estimated KL (nats/token)", "measured KL (nats/token)", 640, 560);
    fprintf(p->gp, "set logscale xy\nset format x '%%.0e'\nset format y '%%.0e'\nset key top left\nplot ");
    gp_str(p->gp, path);
    fprintf(p->gp, " using 1:2 with points pt 7 ps 0.8 lc rgb '#3b6ea5' title 'job', x with lines lc rgb '#888888' title 'exact',"
                   " 2*x with lines dt 3 lc rgb '#aaaaaa' notitle, 0.5*x with lines dt 3 lc rgb '#aaaaaa' notitle\n");
}

/* ---- the Pareto front with the plan and the uniform formats ---------------------------- */
static void fig_pareto(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = "Size vs predicted cost: the Pareto front, the plan, uniform formats";
    char target[32] = "", weights[256] = "";
    qs_db_plan plan;
    int have_plan = c->plan_id && qs_db_get_plan(c->db, c->plan_id, &plan);
    if (have_plan) {
        snprintf(target, sizeof target, "%s", plan.target);
        snprintf(weights, sizeof weights, "%s", plan.domain_weights);
    }
    qs_db_plan_point front[4096];
    char front_target[64];
    int n = qs_db_pareto(c->db, c->run_id, target, weights, front, 4096, front_target, sizeof front_target);
    char path[1300], upath[1300], ppath[1300];
    FILE *d = data_file(p, "pareto.dat", path, sizeof path);
    for (int i = 0; i < n; i++) fprintf(d, "%.5f %.6g\n", front[i].bpw, front[i].predicted_kl);
    data_close(p, d);
    if (n < 2) {
        if (have_plan) qs_db_plan_free(&plan);
        missing(p, "plan", title, "no Pareto front recorded: run qsense plan --db DB --budget-bpw X (it stores the front for every budget)");
        return;
    }
    /* uniform formats, measured on the whole model (mean over domains) */
    FILE *u = data_file(p, "pareto_uniform.dat", upath, sizeof upath);
    qs_db_format_point uni[256];
    int nu = 0, n_uni = qs_db_whole_by_format(c->db, c->run_id, uni, 256);
    for (int i = 0; i < n_uni; i++)
        if (uni[i].kl > 0) fprintf(u, "%.5f %.6g %s\n", uni[i].bpw, uni[i].kl, uni[i].format), nu++;
    if (!nu) fprintf(u, "NaN NaN none\n");
    data_close(p, u);
    /* the plan: predicted, and measured (mean over the domains measured) */
    FILE *pl = data_file(p, "pareto_plan.dat", ppath, sizeof ppath);
    int have_measured = 0;
    if (have_plan) {
        have_measured = !isnan(plan.mean_measured_kl);
        fprintf(pl, "%.5f %.6g %.6g\n", plan.bpw, plan.predicted_kl, plan.mean_measured_kl);
        qs_db_plan_free(&plan);
    } else {
        fprintf(pl, "NaN NaN NaN\n");
    }
    data_close(p, pl);
    /* model files measured against this model with qsense check (llama.cpp's recipes, say) */
    char cpath[1300];
    FILE *cf = data_file(p, "pareto_checked.dat", cpath, sizeof cpath);
    rp_checked checked[32];
    int n_checked = rp_checked_files(c, checked, 32), n_placed = 0;
    for (int i = 0; i < n_checked; i++) {
        if (isnan(checked[i].bpw) || !(checked[i].kl > 0)) continue;
        const char *base = strrchr(checked[i].path, '/');
        fprintf(cf, "%.5f %.6g \"%s\"\n", checked[i].bpw, checked[i].kl, base ? base + 1 : checked[i].path);
        n_placed++;
    }
    if (!n_placed) fprintf(cf, "NaN NaN none\n");
    data_close(p, cf);
    char caption[600];
    snprintf(caption, sizeof caption,
             "Line: the best predicted KL (sum of per-tensor costs) at each size for the %s target%s.%s Triangles: each "
             "format applied to every tensor it fits (the rest as stored), measured on the whole model. %s The y axis is "
             "logarithmic.",
             front_target, strcmp(front_target, "llama.cpp") ? "" : " (ggml block types and f16 only: other formats can lie below it)",
             n_placed ? " Squares: model files measured with qsense check (for example llama.cpp's own recipes)." : "",
             c->plan_id ? (have_measured ? "Star: the plan as predicted; diamond: the plan as measured by qsense check."
                                         : "Star: the plan as predicted (not measured yet: qsense check --plan ... --db).")
                        : "No plan recorded yet.");
    new_figure(p, "plan", "pareto.png", title, caption);
    gp_begin(p, "pareto.png", title, "bits per weight (all parameters)", "KL divergence vs unquantized (nats/token)", 960, 520);
    fprintf(p->gp, "set logscale y\nset format y '%%.0e'\nset datafile missing 'NaN'\nplot ");
    gp_str(p->gp, path);
    fprintf(p->gp, " using 1:2 with lines lw 2 lc rgb '#3b6ea5' title 'Pareto front (predicted)', ");
    gp_str(p->gp, upath);
    fprintf(p->gp, " using 1:2 with points pt 9 ps 1.3 lc rgb '#777777' title 'uniform format (measured)', '' using 1:2:3 with"
                   " labels offset 0.6,0.6 left font ',8' notitle, ");
    gp_str(p->gp, ppath);
    fprintf(p->gp, " using 1:2 with points pt 3 ps 2.5 lw 2 lc rgb '#cc0000' title 'plan (predicted)'");
    if (have_measured) {
        fprintf(p->gp, ", ");
        gp_str(p->gp, ppath);
        fprintf(p->gp, " using 1:3 with points pt 13 ps 2 lc rgb '#cc0000' title 'plan (measured)'");
    }
    if (n_placed) {
        fprintf(p->gp, ", ");
        gp_str(p->gp, cpath);
        fprintf(p->gp, " using 1:2 with points pt 5 ps 1.5 lc rgb '#2ca02c' title 'checked file (measured)', '' using 1:2:3 with"
                       " labels offset 0.6,-0.8 left font ',8' tc rgb '#2ca02c' notitle");
    }
    fprintf(p->gp, "\n");
}

/* ---- mixture of experts: calibration tokens routed to each expert, layer x expert -------- */
static void fig_routing(plotter *p) {
    const rp_ctx *c = p->c;
    const char *title = "Calibration tokens routed to each expert";
    char path[1300], zpath[1300], ds[160], idle[400] = "";
    FILE *d = NULL, *z = NULL;
    int n_exp = 0, n_idle = 0, layers = 0;
    for (int l = 0; l < c->n_layers; l++) {
        snprintf(ds, sizeof ds, "/routing/blk.%d/tokens_per_expert", l);
        int64_t n;
        uint64_t *v = qs_db_run_array(c->db, c->run_id, ds, "u64", 8, &n);
        if (!v) continue;
        if (!d) {
            d = data_file(p, "routing.dat", path, sizeof path);
            z = data_file(p, "routing_idle.dat", zpath, sizeof zpath);
        }
        for (int64_t x = 0; x < n; x++) {
            if (v[x]) fprintf(d, "%lld %d %llu\n", (long long)x, l, (unsigned long long)v[x]);
            else {
                fprintf(z, "%lld %d\n", (long long)x, l);
                if (n_idle++ < 12) {
                    size_t k = strlen(idle);
                    snprintf(idle + k, sizeof idle - k, "%sblk.%d expert %lld", k ? ", " : "", l, (long long)x);
                }
            }
        }
        n_exp = (int)n;
        layers++;
        free(v);
    }
    if (!d) return; /* a dense model: no figure */
    fprintf(z, "-10 -10\n"); /* never empty */
    data_close(p, d);
    data_close(p, z);
    char caption[900];
    snprintf(caption, sizeof caption,
             "Each cell: how many calibration tokens the router sent to that expert (each token goes to several). "
             "Sensitivity and plans treat each layer's stacked experts as one tensor; an expert that receives few tokens "
             "is measured on little data. %s%s%s",
             n_idle ? "Grey cells: experts no calibration token reached, so their weights have no activation statistics "
                      "and their quantization error is not seen by the KL measured here: "
                    : "Every expert received calibration tokens.",
             idle, n_idle > 12 ? ", ..." : "");
    new_figure(p, "overview", "routing.png", title, caption);
    gp_begin(p, "routing.png", title, "expert", "layer", 900, 120 + 34 * (layers < 8 ? 8 : layers > 40 ? 40 : layers));
    fprintf(p->gp, "set xtics 1\nset ytics 1\nset xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\nset palette defined (0 '#f7fbff', 1 '#6baed6', 2 '#08306b')\n"
                   "set style fill solid 1.0 noborder\nunset key\nset cblabel 'tokens'\nplot ",
            n_exp - 1, c->n_layers - 1);
    gp_str(p->gp, zpath);
    fprintf(p->gp, " using 1:2:(0.5):(0.5) with boxxy fc rgb '#bdbdbd', ");
    gp_str(p->gp, path);
    fprintf(p->gp, " using 1:2:(0.5):(0.5):3 with boxxy fc palette\n");
}

int rp_plots_write(const rp_ctx *c, const char *dir, rp_figures *figs, qs_error *err) {
    memset(figs, 0, sizeof *figs);
    plotter p = {.c = c, .dir = dir, .figs = figs};
    snprintf(p.data_dir, sizeof p.data_dir, "%s/plot-data", dir);
    struct stat sb;
    if (mkdir(p.data_dir, 0755) != 0 && !(stat(p.data_dir, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return qs_errorf(err, QS_ERR_INPUT, "%s: cannot create the directory", p.data_dir);
    char script[1200], log[1200];
    snprintf(script, sizeof script, "%s/figures.gp", p.data_dir);
    snprintf(log, sizeof log, "%s/gnuplot.log", p.data_dir);
    qs_output *gp_out;
    int rc = qs_output_check(log, "report file", err);
    if (rc || (rc = qs_output_open(&gp_out, script, "report file", 0, err))) return rc;
    p.gp = qs_output_stream(gp_out);
    fprintf(p.gp, "# qsense report figures: rerun with gnuplot %s\n", script);
    fig_heatmap(&p);
    fig_weight_heatmap(&p);
    fig_sites(&p);
    fig_cost_vs_bpw(&p);
    fig_granularity(&p);
    fig_dynamic_range(&p);
    fig_outlier_channels(&p);
    fig_routing(&p);
    fig_domains(&p);
    fig_validation(&p);
    fig_pareto(&p);
    fig_histograms(&p);
    fprintf(p.gp, "unset output\n");
    if (p.io_failed) {
        qs_output_discard(gp_out);
        return qs_errorf(err, p.io_err.code ? p.io_err.code : QS_ERR_INTERNAL, "%s", p.io_err.msg);
    }
    if ((rc = qs_output_commit(gp_out, err))) return rc;
    return qs_gnuplot_run(script, log, err);
}
