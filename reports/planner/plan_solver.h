/* The planner's solver: a multiple-choice knapsack. Each tensor has a few options (a format, its
 * predicted cost, its bytes); pick one per tensor to minimise the summed cost within a byte
 * budget. Solved by a Lagrangian sweep (every tensor takes the option minimising
 * cost + lambda * bytes, lambda bisected to the budget) and then a greedy pass that spends what is
 * left on the upgrades with the most cost saved per byte. Pure: no database, no files; the
 * planner (plan_make.c) fills the options from the measurements. */
#ifndef QS_PLAN_SOLVER_H
#define QS_PLAN_SOLVER_H

#define QS_PLAN_MAX_OPTIONS 64
#define QS_PLAN_MAX_DOMAINS 16

typedef struct {
    int n;
    char fmt[QS_PLAN_MAX_OPTIONS][32];
    double cost[QS_PLAN_MAX_OPTIONS], bytes[QS_PLAN_MAX_OPTIONS];
    double dcost[QS_PLAN_MAX_OPTIONS][QS_PLAN_MAX_DOMAINS]; /* the cost per evaluation domain */
    int pick;                                               /* the chosen option */
} qs_plan_choices;

/* One point of the size/cost trade-off. */
typedef struct qs_plan_point {
    double bytes, kl;
} qs_plan_point;

/* Adds an option (ignored when a format of that name is already there or the list is full);
 * dcost may be NULL (zero in every domain). */
void qs_plan_choices_add(qs_plan_choices *c, const char *fmt, double cost, double bytes, const double *dcost, int n_domains);

/* Picks, for every tensor, the option minimising cost + lambda * bytes (ties: fewer bytes);
 * returns the total bytes. */
double qs_plan_pick_lagrangian(qs_plan_choices *c, int n, double lambda);

/* Picks the options for a byte budget; returns 0 and the bytes used in *total, or -1 (with the
 * smallest possible total in *total) when no choice fits. */
int qs_plan_pick_for_budget(qs_plan_choices *c, int n, double budget, double *total);

/* The Pareto front over all budgets: the distinct Lagrangian solutions of a geometric sweep of
 * lambda (the vertices of the front's convex hull), smallest first; *curve malloc'd. The picks
 * are left at the last solution. Returns the number of points, -1 when out of memory. */
int qs_plan_trace_front(qs_plan_choices *c, int n, qs_plan_point **curve);

#endif
