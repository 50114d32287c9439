/* The multiple-choice knapsack (see plan_solver.h). */
#include "reports/planner/plan_solver.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qs_plan_choices_add(qs_plan_choices *c, const char *fmt, double cost, double bytes, const double *dcost, int n_domains) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->fmt[i], fmt)) return;
    if (c->n == QS_PLAN_MAX_OPTIONS) return;
    snprintf(c->fmt[c->n], sizeof c->fmt[0], "%s", fmt);
    c->cost[c->n] = cost;
    c->bytes[c->n] = bytes;
    for (int d = 0; d < n_domains && d < QS_PLAN_MAX_DOMAINS; d++) c->dcost[c->n][d] = dcost ? dcost[d] : 0;
    c->n++;
}

double qs_plan_pick_lagrangian(qs_plan_choices *c, int n, double lambda) {
    double total = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int k = 1; k < c[i].n; k++) {
            double a = c[i].cost[k] + lambda * c[i].bytes[k], b = c[i].cost[best] + lambda * c[i].bytes[best];
            if (a < b || (a == b && c[i].bytes[k] < c[i].bytes[best])) best = k;
        }
        c[i].pick = best;
        total += c[i].bytes[best];
    }
    return total;
}

int qs_plan_pick_for_budget(qs_plan_choices *c, int n, double budget, double *total) {
    /* lambda large enough that only bytes matter gives the smallest plan */
    double smallest = qs_plan_pick_lagrangian(c, n, 1e12);
    if (smallest > budget) {
        *total = smallest;
        return -1;
    }
    double lo = 0, hi = 1;
    while (qs_plan_pick_lagrangian(c, n, hi) > budget) hi *= 2;
    for (int it = 0; it < 200; it++) {
        double mid = 0.5 * (lo + hi);
        if (qs_plan_pick_lagrangian(c, n, mid) > budget) lo = mid;
        else hi = mid;
    }
    double used = qs_plan_pick_lagrangian(c, n, hi);
    /* the Lagrangian solutions are the hull's vertices; the slack to the budget goes to the
     * upgrades with the best cost saved per byte */
    for (;;) {
        int bi = -1, bk = -1;
        double best = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < c[i].n; k++) {
                double db = c[i].bytes[k] - c[i].bytes[c[i].pick], dc = c[i].cost[c[i].pick] - c[i].cost[k];
                if (db <= 0 || dc <= 0 || used + db > budget) continue;
                if (dc / db > best) best = dc / db, bi = i, bk = k;
            }
        if (bi < 0) break;
        used += c[bi].bytes[bk] - c[bi].bytes[c[bi].pick];
        c[bi].pick = bk;
    }
    *total = used;
    return 0;
}

int qs_plan_trace_front(qs_plan_choices *c, int n, qs_plan_point **curve) {
    /* lambda from "bytes are free" (0) to "only bytes matter" (1e4) */
    int cap = 0, np = 0;
    qs_plan_point *p = NULL;
    for (int s = 0; s <= 400; s++) {
        double lambda = s == 0 ? 0 : pow(10.0, -20.0 + 0.06 * s), bytes = qs_plan_pick_lagrangian(c, n, lambda), kl = 0;
        for (int i = 0; i < n; i++) kl += c[i].cost[c[i].pick];
        if (np && fabs(p[np - 1].bytes - bytes) < 0.5) {
            p[np - 1].kl = kl;
            continue;
        }
        if (np == cap) {
            cap = cap ? 2 * cap : 64;
            qs_plan_point *q = realloc(p, sizeof *p * (size_t)cap);
            if (!q) {
                free(p);
                *curve = NULL;
                return -1;
            }
            p = q;
        }
        p[np].bytes = bytes;
        p[np++].kl = kl;
    }
    /* largest first as swept; the contract is smallest first */
    for (int i = 0, j = np - 1; i < j; i++, j--) {
        qs_plan_point t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    *curve = p;
    return np;
}
