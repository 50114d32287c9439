/* W+A plans (qs_plan_options.act): the linears that read one input (q, k and v; attn_output;
 * gate and up; down) are planned together, because a runtime quantizes their shared input once
 * (vLLM fuses q/k/v and gate/up): either the group stays 16-bit, or every member takes one
 * weight format and the input takes the activation format. The group's options cost its
 * members' measured KL plus the site's (site_sensitivity), and the solver picks per group.
 * Inside the planner only (plan_make.c). */
#ifndef QS_PLAN_ACT_H
#define QS_PLAN_ACT_H

#include "reports/planner/plan.h"
#include "store/db.h"

/* The activation site whose input a tensor reads ("blk.3.attn_in"); 0 when a W+A plan leaves
 * the tensor's input alone (the head, embeddings, norms, experts). */
int qs_plan_act_site(const char *tensor, char *site, size_t cap);

typedef struct {
    int *leader;                /* [n_tensors]: the group's first member, or -1 outside groups */
    qs_plan_choices *own;       /* [n_tensors]: each tensor's options before grouping */
    double *act_cost;           /* [n_tensors]: the leader's site cost at the act format (weighted) */
} qs_plan_groups;

/* Replaces the leaders' options by the groups' and the other members' by one empty option.
 * QS_ERR_INPUT naming the site when the sweep has no row of the act format for it. */
int qs_plan_group_by_input(qs_db *db, const qs_plan_options *opt, qs_plan *p, qs_plan_choices *c, qs_plan_groups *g,
                           qs_error *err);
/* After the solver: every member takes its leader's format (and the act format unless float),
 * with its own bytes and cost; the leader carries the site's cost. */
void qs_plan_spread_groups(qs_plan *p, const qs_plan_groups *g);
void qs_plan_groups_free(qs_plan_groups *g);

#endif
