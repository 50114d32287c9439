/* `qsense report --text`: the report's summary for a terminal (people over SSH): the run, the
 * most and least sensitive tensors, the plan's predicted and measured cost, and what the
 * database does not hold yet. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/report/report.h"
#include "reports/report/report_ctx.h"

static void ranked(FILE *out, const rp_ctx *c) {
    int *idx = malloc(sizeof(int) * (size_t)(c->n_tensors + 1));
    int n = rp_ranked(c, idx), k = n < 5 ? n : 5;
    if (!n) {
        fprintf(out, "\nno tensor has a measurement in %s\n", c->format);
        free(idx);
        return;
    }
    for (int part = 0; part < 2; part++) {
        fprintf(out, "\n%s sensitive to %s (%s):\n", part ? "least" : "most", c->format, rp_cost_name(c));
        for (int r = 0; r < k; r++) {
            const rp_tensor *t = &c->t[idx[part ? n - 1 - r : r]];
            fprintf(out, "  %d. %-28s", r + 1, t->name);
            if (c->has_sensitivity) fprintf(out, " KL %.5f +/- %.5f", t->kl, t->kl_se);
            if (isnan(t->out_err)) fprintf(out, "  output error -\n");
            else fprintf(out, "  output error %.3g\n", t->out_err);
        }
    }
    free(idx);
}

int qs_report_write_text(const qs_report_options *o, FILE *out, qs_error *err) {
    rp_ctx c;
    int rc = rp_ctx_open(&c, o, err);
    if (rc) return rc;
    fprintf(out, "qsense report: %s\n", c.model_path);
    fprintf(out, "model   sha256 %.16s..., %s %s, %lld parameters, %d layers, dim %d\n", c.fingerprint, c.model_format, c.arch,
            (long long)c.n_params, c.n_layers, c.dim);
    fprintf(out, "run     %lld (%s), started %s UTC; calibration %s, %d tokens\n", (long long)c.run_id, c.status, c.started,
            c.calib_data, c.calib_tokens);
    fprintf(out, "formats %d measured for weight error, %d in the sensitivity sweep; focus: %s (%.2f bpw)\n", c.n_qformats, c.n_sformats,
            c.format, c.format_bpw);
    if (c.est.n_estimated) {
        char sentence[600];
        rp_estimates_sentence(&c, sentence, sizeof sentence);
        fprintf(out, "costs   %s\n", sentence);
    }
    if (c.n_domains) {
        fprintf(out, "domains (%s, ctx %d):", c.eval_set, c.eval_ctx);
        for (int d = 0; d < c.n_domains; d++) fprintf(out, "%s %s (ppl %.2f)", d ? "," : "", c.domains[d], c.base_ppl[d]);
        fprintf(out, "\n");
    }
    ranked(out, &c);
    rp_plan p;
    if (rp_plan_load(&c, &p)) {
        fprintf(out, "\nplan %lld (%s): %s target, %.0f tensor bytes, %.3f bpw, predicted KL %.5f\n  formats: %s\n", (long long)p.id,
                p.path, p.target, p.tensor_bytes, p.bpw, p.predicted, p.formats);
        fprintf(out, "  %-16s %12s %12s %10s %8s\n", "domain", "predicted KL", "measured KL", "ppl ratio", "top-1");
        int measured = 0;
        for (int d = 0; d < p.n_domains; d++) {
            const rp_plan_domain *pd = &p.d[d];
            measured |= !isnan(pd->measured);
            fprintf(out, "  %-16s %12.5f %12.5f %10.4f %7.2f%%\n", pd->domain, pd->predicted, pd->measured, pd->ppl_ratio, 100 * pd->top1);
        }
        if (!measured) fprintf(out, "  not measured yet: qsense check --plan %s --base MODEL --data SET --db %s\n", p.path, o->db_path);
    }
    fprintf(out, "\n");
    if (!c.has_sensitivity)
        fprintf(out, "not in the database: end-to-end sensitivity (qsense profile MODEL --db %s --sensitivity)\n", o->db_path);
    if (!c.plan_id) fprintf(out, "not in the database: a plan (qsense plan --db %s --budget-bpw X)\n", o->db_path);
    fprintf(out, "full report with figures: qsense report --db %s --out DIR\n", o->db_path);
    rp_ctx_close(&c);
    return 0;
}
