/* `qsense report` HTML: index.html (well-formed, XHTML-compatible markup, no external
 * resources), report.css, report.js (sortable tables; the page reads fine without it) and the
 * figures from report_plots.c. The page says what the database does not hold yet and which
 * command would fill it. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/qs_output.h"
#include "reports/report/report.h"
#include "reports/report/report_ctx.h"
#include "reports/report/report_plots.h"
#include "store/measures.h"

static const char CSS[] =
    "body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:0 auto;max-width:1100px;padding:0 16px 40px;"
    "color:#222;line-height:1.45}\n"
    "h1{font-size:1.6em;margin-top:24px}h2{border-bottom:1px solid #ccc;padding-bottom:4px;margin-top:36px}\n"
    "table{border-collapse:collapse;margin:8px 0 16px;font-size:0.92em}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}\n"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}table.sortable th{cursor:pointer}\n"
    ".note{background:#fff8e1;border-left:4px solid #f0b400;padding:6px 10px;margin:8px 0}\n"
    "figure{margin:16px 0 28px}figure img{max-width:100%;height:auto;border:1px solid #eee}\n"
    "figcaption{font-size:0.9em;color:#444;max-width:900px}.grid{display:flex;flex-wrap:wrap;gap:8px}\n"
    ".grid figure{margin:4px 0 16px}.bad{color:#b00020;font-weight:bold}.good{color:#1b7a1b}\n"
    "nav a{margin-right:12px}code{background:#f5f5f5;padding:1px 4px}\n";

/* Sorts a table by the clicked column (numbers by data-v when present) and records, for the
 * browser test, how many images loaded. */
static const char JS[] =
    "document.querySelectorAll('table.sortable th').forEach(function (th, col) {\n"
    "  th.addEventListener('click', function () {\n"
    "    var table = th.closest('table'), body = table.tBodies[0], idx = th.cellIndex;\n"
    "    var rows = Array.prototype.slice.call(body.rows), asc = th.dataset.asc !== '1';\n"
    "    th.dataset.asc = asc ? '1' : '0';\n"
    "    rows.sort(function (a, b) {\n"
    "      var x = a.cells[idx], y = b.cells[idx];\n"
    "      var vx = x.dataset.v !== undefined ? parseFloat(x.dataset.v) : x.textContent;\n"
    "      var vy = y.dataset.v !== undefined ? parseFloat(y.dataset.v) : y.textContent;\n"
    "      if (typeof vx === 'number' && isNaN(vx)) vx = -Infinity;\n"
    "      if (typeof vy === 'number' && isNaN(vy)) vy = -Infinity;\n"
    "      var r = vx > vy ? 1 : (vx === vy ? 0 : -1);\n"
    "      return asc ? r : -r;\n"
    "    });\n"
    "    rows.forEach(function (r) { body.appendChild(r); });\n"
    "  });\n"
    "});\n"
    "window.addEventListener('load', function () {\n"
    "  var imgs = document.images, ok = 0;\n"
    "  for (var i = 0; i !== imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;\n"
    "  document.body.setAttribute('data-images-loaded', ok + '/' + imgs.length);\n"
    "});\n";

static void esc(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t') fputc(*s, f);
        }
    }
}

/* a numeric cell: sortable value in data-v, shown with fmt; "-" when NAN */
static void num_cell(FILE *f, double v, const char *fmt) {
    if (isnan(v)) {
        fprintf(f, "<td class=\"n\" data-v=\"NaN\">-</td>");
        return;
    }
    fprintf(f, "<td class=\"n\" data-v=\"%.9g\">", isinf(v) ? (v > 0 ? 1e300 : -1e300) : v);
    if (isinf(v)) fprintf(f, "exact");
    else fprintf(f, fmt, v);
    fprintf(f, "</td>");
}

static void note(FILE *f, const char *text, const char *cmd) {
    fprintf(f, "<p class=\"note\">");
    esc(f, text);
    if (cmd) {
        fprintf(f, " <code>");
        esc(f, cmd);
        fprintf(f, "</code>");
    }
    fprintf(f, "</p>\n");
}

static void figure(FILE *f, const rp_figure *fig) {
    if (!fig->file[0]) {
        fprintf(f, "<p class=\"note\"><b>");
        esc(f, fig->title);
        fprintf(f, "</b>: not drawn: ");
        esc(f, fig->missing);
        fprintf(f, "</p>\n");
        return;
    }
    fprintf(f, "<figure><img src=\"%s\" alt=\"", fig->file);
    esc(f, fig->title);
    fprintf(f, "\"/><figcaption><b>");
    esc(f, fig->title);
    fprintf(f, ".</b> ");
    esc(f, fig->caption);
    fprintf(f, "</figcaption></figure>\n");
}

static void figures_of(FILE *f, const rp_figures *figs, const char *section) {
    for (int i = 0; i < figs->n; i++)
        if (!strcmp(figs->f[i].section, section)) figure(f, &figs->f[i]);
}

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void summary(FILE *f, const rp_ctx *c) {
    fprintf(f, "<h2 id=\"summary\">Summary</h2>\n<table>\n<tr><th>model</th><td>");
    esc(f, c->model_path);
    fprintf(f, "<br/>sha256 <code>%.16s&#8230;</code>, %s, %s</td></tr>\n", c->fingerprint, c->model_format, c->arch);
    fprintf(f, "<tr><th>shape</th><td>%lld parameters; %d layers, dim %d, FFN %d, %d heads (%d KV), vocabulary %d</td></tr>\n",
            (long long)c->n_params, c->n_layers, c->dim, c->hidden_dim, c->n_heads, c->n_kv_heads, c->n_vocab);
    fprintf(f, "<tr><th>run</th><td>%lld, %s; started %s UTC%s%s; qsense %s</td></tr>\n", (long long)c->run_id, c->status,
            c->started, c->finished[0] ? ", finished " : "", c->finished, c->version);
    fprintf(f, "<tr><th>calibration</th><td>");
    esc(f, c->calib_data);
    fprintf(f, "; %d tokens in chunks of %d</td></tr>\n", c->calib_tokens, c->ctx);
    fprintf(f, "<tr><th>evaluation</th><td>");
    if (c->n_domains) {
        fprintf(f, "set <b>");
        esc(f, c->eval_set);
        fprintf(f, "</b>, chunks of %d tokens; domains:", c->eval_ctx);
        for (int d = 0; d < c->n_domains; d++) {
            fprintf(f, "%s ", d ? "," : "");
            esc(f, c->domains[d]);
            fprintf(f, " (base perplexity %.2f, %d positions)", c->base_ppl[d], c->n_scored[d]);
        }
    } else {
        fprintf(f, "none (this run did not measure end-to-end sensitivity)");
    }
    if (c->est.n_estimated) {
        char sentence[600];
        rp_estimates_sentence(c, sentence, sizeof sentence);
        fprintf(f, "</td></tr>\n<tr><th>sensitivity</th><td>");
        esc(f, sentence);
    }
    fprintf(f, "</td></tr>\n<tr><th>formats</th><td>%d measured for weight error", c->n_qformats);
    if (c->n_sformats) fprintf(f, "; %d in the sensitivity sweep", c->n_sformats);
    fprintf(f, "; figures focus on <b>");
    esc(f, c->format);
    fprintf(f, "</b> (%.2f bits per weight on average; <code>--format</code> picks another)</td></tr>\n</table>\n", c->format_bpw);
}

static void rankings(FILE *f, const rp_ctx *c) {
    int *idx = malloc(sizeof(int) * (size_t)(c->n_tensors + 1));
    int n = rp_ranked(c, idx);
    fprintf(f, "<h2 id=\"ranking\">Most and least sensitive tensors (%s)</h2>\n", c->format);
    if (!n) {
        note(f, "No tensor has a measurement in this format.", NULL);
        free(idx);
        return;
    }
    if (!c->has_sensitivity)
        note(f, "This run has no end-to-end sensitivity measurements, so tensors are ranked by activation-weighted output "
                "error. For KL divergence and perplexity per domain, run:",
             "qsense profile MODEL --db DB --sensitivity");
    const int k = n < 5 ? n : 5;
    for (int part = 0; part < 2; part++) {
        fprintf(f, "<table>\n<thead><tr><th>%s</th><th>tensor</th><th>%s</th>%s<th>output error</th><th>SQNR (dB)</th></tr></thead><tbody>\n",
                part ? "least" : "most", rp_cost_name(c), c->has_sensitivity ? "<th>&#177; s.e.</th>" : "");
        for (int r = 0; r < k; r++) {
            const rp_tensor *t = &c->t[idx[part ? n - 1 - r : r]];
            fprintf(f, "<tr><td>%d</td><td><a href=\"#t%lld\">", r + 1, (long long)t->id);
            esc(f, t->name);
            fprintf(f, "</a></td>");
            if (c->has_sensitivity) {
                num_cell(f, t->kl, "%.5f");
                num_cell(f, t->kl_se, "%.5f");
            }
            num_cell(f, t->out_err, "%.3g");
            num_cell(f, t->sqnr, "%.1f");
            fprintf(f, "</tr>\n");
        }
        fprintf(f, "</tbody></table>\n");
    }
    free(idx);
}

static void plan_section(FILE *f, const rp_ctx *c, const rp_figures *figs) {
    rp_plan p;
    fprintf(f, "<h2 id=\"plan\">Plan</h2>\n");
    if (!rp_plan_load(c, &p)) {
        note(f, "No plan has been made from this run yet. To choose a format per tensor for a size budget:",
             "qsense plan --db DB --budget-bpw 4.5 --out plan.json");
    } else {
        fprintf(f, "<table>\n<tr><th>plan</th><td>%lld, ", (long long)p.id);
        esc(f, p.path);
        fprintf(f, ", made %s UTC</td></tr>\n<tr><th>target</th><td>", p.created);
        esc(f, p.target);
        if (p.weights[0]) {
            fprintf(f, "; domain weights ");
            esc(f, p.weights);
        }
        fprintf(f, "</td></tr>\n<tr><th>size</th><td>%.0f bytes of tensor data (budget %.0f), %.3f bits per weight</td></tr>\n",
                p.tensor_bytes, p.budget_bytes, p.bpw);
        fprintf(f, "<tr><th>formats</th><td>");
        esc(f, p.formats);
        fprintf(f, "</td></tr>\n<tr><th>predicted KL</th><td>%.5f (sum of per-tensor costs, domain-weighted)</td></tr>\n</table>\n",
                p.predicted);
        int measured = 0;
        for (int d = 0; d < p.n_domains; d++) measured |= !isnan(p.d[d].measured);
        fprintf(f, "<table>\n<thead><tr><th>domain</th><th>predicted KL</th><th>corrected for additivity</th><th>measured KL</th>"
                   "<th>measured / predicted</th>"
                   "<th>KL p99</th><th>perplexity ratio</th><th>top-1 agreement</th></tr></thead><tbody>\n");
        for (int d = 0; d < p.n_domains; d++) {
            const rp_plan_domain *pd = &p.d[d];
            fprintf(f, "<tr><td>");
            esc(f, pd->domain);
            fprintf(f, "</td>");
            num_cell(f, pd->predicted, "%.5f");
            num_cell(f, pd->corrected, "%.5f");
            num_cell(f, pd->measured, "%.5f");
            num_cell(f, pd->measured / pd->predicted, "%.2f");
            num_cell(f, pd->measured_p99, "%.4f");
            num_cell(f, pd->ppl_ratio, "%.4f");
            num_cell(f, pd->top1 * 100, "%.2f %%");
            fprintf(f, "</tr>\n");
        }
        fprintf(f, "</tbody></table>\n");
        if (!measured)
            note(f, "The plan has not been measured yet. To measure it on the evaluation set (applied in memory) and record "
                    "the figures here:",
                 "qsense check --plan plan.json --base MODEL --data SET --db DB");
        else
            fprintf(f, "<p>Predicted figures sum the per-tensor KL lower bounds (top-k with a tail bucket); the corrected "
                       "ones scale that sum by how much more the whole-model runs cost than their per-tensor sums (median "
                       "over formats, per domain); measured ones are full-vocabulary KL from <code>qsense check</code>.</p>\n");
    }
    rp_checked checked[32];
    int n = rp_checked_files(c, checked, 32);
    if (n) {
        fprintf(f, "<p>Model files measured against this model with <code>qsense check --db</code> (the newest check of each):</p>\n"
                   "<table class=\"sortable\">\n<thead><tr><th>file</th><th>bits per weight (tensors)</th><th>mean KL</th>"
                   "<th>domains</th><th>evaluation set</th><th>checked (UTC)</th></tr></thead><tbody>\n");
        for (int i = 0; i < n; i++) {
            fprintf(f, "<tr><td>");
            esc(f, base_name(checked[i].path));
            fprintf(f, "</td>");
            num_cell(f, checked[i].bpw, "%.3f");
            num_cell(f, checked[i].kl, "%.5f");
            fprintf(f, "<td class=\"n\">%d</td><td>", checked[i].n_domains);
            esc(f, checked[i].eval_set);
            fprintf(f, "</td><td>%s</td></tr>\n", checked[i].created);
        }
        fprintf(f, "</tbody></table>\n");
    }
    figures_of(f, figs, "plan");
}

static void domain_table(FILE *f, const rp_ctx *c) {
    if (!c->has_whole) return;
    qs_db_whole_row *w;
    int n;
    if (qs_db_whole_model(c->db, c->run_id, &w, &n, NULL)) return;
    fprintf(f, "<table class=\"sortable\">\n<thead><tr><th>format</th><th>domain</th><th>bits per weight</th><th>tensors quantized</th>"
               "<th>KL</th><th>&#177; s.e.</th><th>perplexity delta</th><th>&#177; s.e.</th><th>top-1 agreement</th></tr></thead><tbody>\n");
    for (int i = 0; i < n; i++) {
        fprintf(f, "<tr><td>");
        esc(f, w[i].format);
        fprintf(f, "</td><td>");
        esc(f, w[i].domain);
        fprintf(f, "</td>");
        num_cell(f, w[i].bpw, "%.3f");
        num_cell(f, w[i].n_quantized, "%.0f");
        num_cell(f, w[i].kl_mean, "%.5f");
        num_cell(f, w[i].kl_se, "%.5f");
        num_cell(f, w[i].ppl_delta, "%+.3f");
        num_cell(f, w[i].ppl_delta_se, "%.3f");
        num_cell(f, 100 * w[i].top1_agree, "%.2f %%");
        fprintf(f, "</tr>\n");
    }
    free(w);
    fprintf(f, "</tbody></table>\n");
}

static void tensor_table(FILE *f, const rp_ctx *c, const rp_figures *figs) {
    fprintf(f, "<h2 id=\"tensors\">Every tensor</h2>\n<p>Click a column header to sort. %s and output error are for <b>", rp_cost_name(c));
    esc(f, c->format);
    fprintf(f, "</b>; weight statistics as stored; activation figures are the inputs the matrix receives.</p>\n");
    fprintf(f, "<table class=\"sortable\">\n<thead><tr><th>tensor</th><th>layer</th><th>kind</th><th>shape</th><th>stored</th>");
    if (c->has_sensitivity) fprintf(f, "<th>KL</th><th>&#177; s.e.</th>");
    fprintf(f, "<th>output error</th><th>SQNR (dB)</th><th>weight kurtosis</th><th>weight absmax</th><th>input dynamic range (dB)</th>"
               "<th>outlier channels</th></tr></thead><tbody>\n");
    for (int i = 0; i < c->n_tensors; i++) {
        const rp_tensor *t = &c->t[i];
        int hist = -1;
        for (int k = 0; k < figs->n; k++)
            if (figs->f[k].tensor == i && figs->f[k].file[0]) hist = k;
        fprintf(f, "<tr id=\"t%lld\"><td>", (long long)t->id);
        if (hist >= 0) fprintf(f, "<a href=\"#h%d\">", i);
        esc(f, t->name);
        fprintf(f, "%s</td>", hist >= 0 ? "</a>" : "");
        num_cell(f, t->layer < 0 ? NAN : t->layer, "%.0f");
        fprintf(f, "<td>%s</td><td>%lld x %lld</td><td>", t->kind, (long long)t->rows, (long long)t->cols);
        esc(f, t->stored);
        fprintf(f, "</td>");
        if (c->has_sensitivity) {
            num_cell(f, t->kl, "%.5f");
            num_cell(f, t->kl_se, "%.5f");
        }
        num_cell(f, t->out_err, "%.3g");
        num_cell(f, t->sqnr, "%.1f");
        qs_db_weight_stats ws;
        qs_db_act_stats as;
        qs_db_weight_stats_of(c->db, c->run_id, t->id, &ws);
        qs_db_act_stats_of(c->db, c->run_id, t->id, &as);
        num_cell(f, ws.kurtosis, "%.2f");
        num_cell(f, ws.absmax, "%.4g");
        num_cell(f, as.dynamic_range_db, "%.1f");
        num_cell(f, as.n_outlier_channels, "%.0f");
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</tbody></table>\n");
}

static void histograms(FILE *f, const rp_figures *figs) {
    fprintf(f, "<h2 id=\"histograms\">Weight and activation histograms</h2>\n");
    int any = 0;
    for (int i = 0; i < figs->n; i++) {
        const rp_figure *fig = &figs->f[i];
        if (strcmp(fig->section, "histograms")) continue;
        fprintf(f, "<div id=\"h%d\">", fig->tensor);
        figure(f, fig);
        fprintf(f, "</div>\n");
        any = 1;
    }
    if (!any) note(f, "No histograms in this run (the weights analyzer did not run).", NULL);
}

static int write_text_file(const char *dir, const char *name, const char *text, qs_error *err) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return qs_output_write_text(path, "report file", text, err);
}

int qs_report_write_html(const qs_report_options *o, qs_report_result *res, qs_error *err) {
    memset(res, 0, sizeof *res);
    struct stat sb;
    if (mkdir(o->out_dir, 0755) != 0 && !(errno == EEXIST && stat(o->out_dir, &sb) == 0 && S_ISDIR(sb.st_mode)))
        return qs_errorf(err, QS_ERR_INPUT, "%s: cannot create the report directory: %s", o->out_dir, strerror(errno));
    rp_ctx c;
    int rc = rp_ctx_open(&c, o, err);
    if (rc) return rc;
    rp_figures figs = {0};
    if ((rc = rp_plots_write(&c, o->out_dir, &figs, err)) || (rc = write_text_file(o->out_dir, "report.css", CSS, err)) ||
        (rc = write_text_file(o->out_dir, "report.js", JS, err)))
        goto out;
    snprintf(res->index_path, sizeof res->index_path, "%s/index.html", o->out_dir);
    qs_output *out;
    if ((rc = qs_output_open(&out, res->index_path, "report file", 0, err))) goto out;
    FILE *f = qs_output_stream(out);
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>qsense report: ");
    esc(f, base_name(c.model_path));
    fprintf(f, "</title>\n<link rel=\"stylesheet\" href=\"report.css\"/>\n</head>\n<body>\n<h1>qsense report: ");
    esc(f, base_name(c.model_path));
    fprintf(f, "</h1>\n<nav><a href=\"#summary\">summary</a><a href=\"#ranking\">ranking</a><a href=\"#plan\">plan</a>"
               "<a href=\"#overview\">figures</a><a href=\"#domains\">domains</a><a href=\"#tensors\">tensors</a>"
               "<a href=\"#histograms\">histograms</a></nav>\n");
    summary(f, &c);
    rankings(f, &c);
    plan_section(f, &c, &figs);
    fprintf(f, "<h2 id=\"overview\">Where the error is</h2>\n");
    figures_of(f, &figs, "overview");
    fprintf(f, "<h2 id=\"domains\">Per domain</h2>\n");
    figures_of(f, &figs, "domains");
    domain_table(f, &c);
    tensor_table(f, &c, &figs);
    histograms(f, &figs);
    fprintf(f, "<p><small>Made by qsense %s from ", QS_VERSION);
    esc(f, o->db_path);
    fprintf(f, " (run %lld). Figures: gnuplot; their data and script are in plot-data/. Database schema: docs/schema.md."
               "</small></p>\n<script src=\"report.js\"></script>\n</body>\n</html>\n", (long long)c.run_id);
    if ((rc = qs_output_commit(out, err))) goto out;
    for (int i = 0; i < figs.n; i++) res->n_figures += figs.f[i].file[0] != 0;
    res->n_tensors = c.n_tensors;
out:
    free(figs.f);
    rp_ctx_close(&c);
    return rc;
}
