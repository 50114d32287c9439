/* The planner's solver without a database, against exhaustive search on small random problems:
 * every point of the traced front is the cheapest choice for its own size (a Lagrangian solution
 * is optimal for the bytes it uses), the front runs from large and cheap to small and costly,
 * a budget is never exceeded, the budgeted plan is at least as cheap as every front point that
 * fits, and an impossible budget is refused with the smallest size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reports/planner/plan_solver.h"
#include "tests/test_util.h"

#define N_TENSORS 5
#define N_OPTS 4

static unsigned rng = 12345;
static double uniform(void) {
    rng = rng * 1664525u + 1013904223u;
    return (double)(rng >> 8) / 16777216.0;
}

/* the cheapest total cost over all choices using at most budget bytes (INFINITY if none fits) */
static double exhaustive(const qs_plan_choices *c, double budget) {
    double best = INFINITY;
    int total = 1;
    for (int i = 0; i < N_TENSORS; i++) total *= c[i].n;
    for (int code = 0; code < total; code++) {
        double bytes = 0, cost = 0;
        for (int i = 0, k = code; i < N_TENSORS; i++, k /= c[i - 1].n) {
            bytes += c[i].bytes[k % c[i].n];
            cost += c[i].cost[k % c[i].n];
        }
        if (bytes <= budget && cost < best) best = cost;
    }
    return best;
}

static void random_problem(qs_plan_choices *c) {
    memset(c, 0, sizeof(qs_plan_choices) * N_TENSORS);
    for (int i = 0; i < N_TENSORS; i++) {
        /* formats get cheaper in bytes and dearer in cost, with noise, as measured ones do */
        double bytes = 1000 + 1000 * uniform(), cost = 0;
        for (int k = 0; k < N_OPTS; k++) {
            char name[32];
            snprintf(name, sizeof name, "fmt%d", k);
            qs_plan_choices_add(&c[i], name, cost, bytes, NULL, 0);
            bytes *= 0.5 + 0.3 * uniform();
            cost += 0.01 + uniform() * uniform();
        }
    }
}

int main(void) {
    int front_checked = 0, budgets_checked = 0;
    for (int trial = 0; trial < 200; trial++) {
        qs_plan_choices c[N_TENSORS];
        random_problem(c);
        qs_plan_point *front;
        int n = qs_plan_trace_front(c, N_TENSORS, &front);
        CHECK(n >= 2, "trial %d: a front of %d points", trial, n);
        for (int p = 0; p < n; p++) {
            double best = exhaustive(c, front[p].bytes);
            CHECK(fabs(front[p].kl - best) <= 1e-9 * (1 + best), "trial %d point %d: front cost %.9f, exhaustive %.9f at %.1f bytes",
                  trial, p, front[p].kl, best, front[p].bytes);
            if (p) CHECK(front[p].bytes > front[p - 1].bytes && front[p].kl <= front[p - 1].kl + 1e-12,
                         "trial %d: the front is not from small and costly to large and cheap at point %d", trial, p);
            front_checked++;
        }
        /* budgets between the smallest and the largest choice */
        for (int b = 0; b < 5; b++) {
            double budget = front[0].bytes + (front[n - 1].bytes - front[0].bytes) * uniform(), total;
            CHECK(qs_plan_pick_for_budget(c, N_TENSORS, budget, &total) == 0, "trial %d: budget %.1f refused", trial, budget);
            double bytes = 0, cost = 0;
            for (int i = 0; i < N_TENSORS; i++) bytes += c[i].bytes[c[i].pick], cost += c[i].cost[c[i].pick];
            CHECK(fabs(bytes - total) < 1e-6 && bytes <= budget, "trial %d: %.1f bytes for a budget of %.1f", trial, bytes, budget);
            for (int p = 0; p < n; p++)
                if (front[p].bytes <= budget)
                    CHECK(cost <= front[p].kl + 1e-12, "trial %d: plan cost %.6f above the front's %.6f within budget", trial, cost,
                          front[p].kl);
            CHECK(cost >= exhaustive(c, budget) - 1e-12, "trial %d: cheaper than the optimum?", trial);
            budgets_checked++;
        }
        double smallest;
        CHECK(qs_plan_pick_for_budget(c, N_TENSORS, front[0].bytes - 1, &smallest) == -1 && fabs(smallest - front[0].bytes) < 1e-6,
              "trial %d: a budget below the smallest plan must be refused with its size", trial);
        free(front);
    }
    printf("%d front points and %d budgets checked against exhaustive search\n", front_checked, budgets_checked);
    return test_done("test_plan_solver");
}
