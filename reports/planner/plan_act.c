/* W+A plans: one choice per group of linears sharing an input (see plan_act.h). */
#include "reports/planner/plan_act.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/format.h"
#include "store/measures.h"

int qs_plan_act_site(const char *tensor, char *site, size_t cap) {
    int layer, n = 0;
    char kind[32];
    if (sscanf(tensor, "blk.%d.%31[a-z_].weight%n", &layer, kind, &n) != 2 || tensor[n]) return 0;
    const char *s = !strcmp(kind, "attn_q") || !strcmp(kind, "attn_k") || !strcmp(kind, "attn_v") || !strcmp(kind, "attn_qkv")
                        ? "attn_in"
                    : !strcmp(kind, "attn_output")                        ? "attn_out"
                    : !strcmp(kind, "ffn_gate") || !strcmp(kind, "ffn_up") ? "ffn_in"
                    : !strcmp(kind, "ffn_down")                           ? "ffn_down_in"
                                                                          : NULL;
    if (!s) return 0;
    snprintf(site, cap, "blk.%d.%s", layer, s);
    return 1;
}

/* the site's domain-weighted cost at the act format and its per-domain costs */
static int site_cost(qs_db *db, const qs_plan *p, const char *site, const char *act, double *cost, double *dcost, qs_error *err) {
    qs_db_kl_row *rows;
    int n, rc = qs_db_site_kls(db, p->run_id, site, act, &rows, &n, err);
    if (rc) return rc;
    double wsum = 0, c = 0;
    int seen = 0;
    for (int d = 0; d < p->n_domains; d++) {
        wsum += p->domain_weights[d];
        dcost[d] = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].domain, p->domains[d])) dcost[d] = rows[i].kl, c += p->domain_weights[d] * rows[i].kl, seen++;
    }
    free(rows);
    if (seen < p->n_domains)
        return qs_errorf(err, QS_ERR_INPUT, "the sweep has no %s rows for %s on every domain: run qsense profile --sensitivity "
                                            "--act-formats %s (the same command as the sweep) first", act, site, act);
    *cost = c / wsum;
    return 0;
}

static int index_of(const qs_plan_choices *c, const char *fmt) {
    for (int k = 0; k < c->n; k++)
        if (!strcmp(c->fmt[k], fmt)) return k;
    return -1;
}

int qs_plan_group_by_input(qs_db *db, const qs_plan_options *opt, qs_plan *p, qs_plan_choices *c, qs_plan_groups *g,
                           qs_error *err) {
    const int n = p->n_tensors;
    g->leader = malloc(sizeof(int) * (size_t)(n + 1));
    g->own = malloc(sizeof(qs_plan_choices) * (size_t)(n + 1));
    g->act_cost = calloc((size_t)n + 1, sizeof(double));
    if (!g->leader || !g->own || !g->act_cost) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    memcpy(g->own, c, sizeof(qs_plan_choices) * (size_t)n);
    char site[64], other[64];
    for (int i = 0; i < n; i++) g->leader[i] = -1;
    for (int i = 0; i < n; i++) {
        if (g->leader[i] >= 0 || !qs_plan_act_site(p->tensors[i].name, site, sizeof site)) continue;
        int members[8], nm = 0;
        for (int j = i; j < n && nm < 8; j++)
            if (qs_plan_act_site(p->tensors[j].name, other, sizeof other) && !strcmp(site, other)) members[nm++] = j, g->leader[j] = i;
        double acost = 0, adcost[QS_PLAN_MAX_DOMAINS];
        int rc = site_cost(db, p, site, opt->act, &acost, adcost, err);
        if (rc) return rc;
        g->act_cost[i] = acost;
        qs_plan_choices grp = {0};
        const qs_plan_choices *lead = &g->own[i];
        for (int k = 0; k < lead->n; k++) { /* a weight format every member measured */
            if (qs_format_is_float(lead->fmt[k])) continue;
            double cost = acost, bytes = 0, dcost[QS_PLAN_MAX_DOMAINS];
            memcpy(dcost, adcost, sizeof dcost);
            int all = 1;
            for (int m = 0; m < nm && all; m++) {
                const qs_plan_choices *o = &g->own[members[m]];
                const int km = index_of(o, lead->fmt[k]);
                if (km < 0) {
                    all = 0;
                    break;
                }
                cost += o->cost[km];
                bytes += o->bytes[km];
                for (int d = 0; d < p->n_domains; d++) dcost[d] += o->dcost[km][d];
            }
            if (all) qs_plan_choices_add(&grp, lead->fmt[k], cost, bytes, dcost, p->n_domains);
        }
        double half = 0;
        for (int m = 0; m < nm; m++) half += 2.0 * (double)(p->tensors[members[m]].rows * p->tensors[members[m]].cols);
        qs_plan_choices_add(&grp, "f16", 0, half, NULL, 0);
        c[i] = grp;
        for (int m = 1; m < nm; m++) { /* the leader decides for them */
            qs_plan_choices none = {0};
            qs_plan_choices_add(&none, "(group)", 0, 0, NULL, 0);
            c[members[m]] = none;
        }
    }
    return 0;
}

void qs_plan_spread_groups(qs_plan *p, const qs_plan_groups *g) {
    for (int i = 0; i < p->n_tensors; i++) {
        const int l = g->leader[i];
        if (l < 0) continue;
        qs_plan_tensor *t = &p->tensors[i];
        char lead[sizeof t->format];
        memcpy(lead, p->tensors[l].format, sizeof lead);
        snprintf(t->format, sizeof t->format, "%s", lead);
        const qs_plan_choices *o = &g->own[i];
        const int k = index_of(o, t->format);
        const int quantized = !qs_format_is_float(t->format);
        t->bytes = k >= 0 ? o->bytes[k] : 2.0 * (double)(t->rows * t->cols);
        t->cost = (k >= 0 ? o->cost[k] : 0) + (i == l && quantized ? g->act_cost[i] : 0);
        snprintf(t->act, sizeof t->act, "%s", quantized ? p->act : "");
    }
}

void qs_plan_groups_free(qs_plan_groups *g) {
    free(g->leader);
    free(g->own);
    free(g->act_cost);
}
