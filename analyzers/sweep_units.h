/* The sweep's unit of work: one candidate (tensor i at format f, or the whole model at f) on
 * the domains still pending for it. The candidate is quantized once for all of them; each
 * domain's result is one job ("sensitivity/<tensor>/<format>/<domain>", "whole/<format>/<domain>")
 * written with its row in one transaction. Measuring needs no database, so a unit runs in any
 * process (sweep_mpi.h); writing is the database owner's. */
#ifndef QS_SWEEP_UNITS_H
#define QS_SWEEP_UNITS_H

#include <stdint.h>

#include "analyzers/sensitivity.h"

#define QS_SWEEP_MAX_DOMAINS 64

typedef struct {
    int i, f;         /* i == n_tensors: the whole model at f */
    uint64_t domains; /* bit d: domain d pending */
} qs_sweep_unit;

typedef struct {
    int i, f, d;
    int applicable;          /* 0: the format does not apply to the tensor (the row says so) */
    qs_db_eval_figures fig;
    int n_quantized;         /* whole model only */
    double bpw;
} qs_sweep_result;

/* called with each domain's result as soon as it is measured */
typedef int (*qs_sweep_result_fn)(void *user, const qs_sweep_result *r, qs_error *err);

/* Quantizes the unit's candidate once and measures its pending domains (their chunks batched
 * together), then gives each domain's result to fn, in order. */
int qs_sweep_unit_measure(qs_sens *s, const qs_sweep_unit *u, qs_sweep_result_fn fn, void *user, qs_error *err);

/* Writes one result's row and marks its job done, in one transaction. */
int qs_sweep_result_write(qs_sens *s, const qs_sweep_result *r, qs_error *err);

/* "sensitivity/<tensor>/<format>/<domain>" or "whole/<format>/<domain>" */
void qs_sweep_job_name(char *out, size_t cap, const qs_profile *p, const char *domain, int i, int f);

#endif
