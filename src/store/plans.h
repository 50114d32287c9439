/* Plans in the results database (tables plans, plan_domains, pareto in docs/schema.md): each plan
 * `qsense plan` writes, identified by the sha256 of the plan file, its predicted cost per domain,
 * the size/cost Pareto front, and the figures `qsense check` measured for it. */
#ifndef QS_STORE_PLANS_H
#define QS_STORE_PLANS_H

#include <stddef.h>
#include <stdint.h>

#include "store/db.h"

typedef struct {
    double tensor_bytes, bpw, predicted_kl;
} qs_db_plan_point;

typedef struct {
    int64_t run_id;
    const char *sha256, *path, *target, *domain_weights;
    double budget_bytes, tensor_bytes, bpw, predicted_kl;
    const char *plan_json; /* the plan file's bytes */
    size_t plan_json_len;
    int n_domains;
    const char (*domains)[64];
    const double *predicted_kl_domain;
    int n_points; /* the front, replacing the one recorded for the same run, target and weights */
    const qs_db_plan_point *points;
} qs_db_plan_record;

/* Records a plan in one transaction; the same plan written again (same sha256) keeps its id and
 * any measured figures. Returns its id in *plan_id. */
int qs_db_put_plan(qs_db *db, const qs_db_plan_record *r, int64_t *plan_id, qs_error *err);

/* Puts measured figures for one domain beside the prediction of the plan with this sha256 (inside
 * the caller's transaction): 1 if recorded, 0 if the database does not know the plan. */
int qs_db_put_plan_measured(qs_db *db, const char *plan_sha256, int64_t check_id, const char *domain, double kl_mean,
                            double kl_p99, double ppl_ratio, double top1, qs_error *err);

typedef struct {
    int64_t id;
    char path[1024], created[32], target[32], domain_weights[256];
    double budget_bytes, tensor_bytes, bpw, predicted_kl;
    double mean_measured_kl; /* over the domains measured, NAN if none */
    char *plan_json;         /* malloc'd (qs_db_plan_free) */
} qs_db_plan;

/* The plan with this id: 1 and *out filled, 0 if none. */
int qs_db_get_plan(qs_db *db, int64_t plan_id, qs_db_plan *out);
void qs_db_plan_free(qs_db_plan *p);

typedef struct {
    char domain[64];
    double predicted, measured, measured_p99, ppl_ratio, top1; /* NAN: not there */
} qs_db_plan_domain;
/* The plan's domains, predicted ones first, by name; returns the count (at most cap). */
int qs_db_plan_domains(qs_db *db, int64_t plan_id, qs_db_plan_domain *out, int cap);

/* The Pareto front recorded for the run: for this target and weights, or (target "") the first
 * target's; points in order (at most cap); the target's name in target_out. Returns the count
 * of points with a positive predicted KL. */
int qs_db_pareto(qs_db *db, int64_t run_id, const char *target, const char *weights, qs_db_plan_point *out, int cap,
                 char *target_out, size_t target_cap);

#endif
