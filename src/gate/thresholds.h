/* The gate's thresholds file (docs/check.md):
 *   {"default": {"max_kl": 0.05, "max_kl_p99": 0.5, "max_ppl_ratio": 1.03, "min_top1": 0.90},
 *    "domains": {"legal": {"max_kl": 0.08}},
 *    "baseline": {"tolerance": 0.10}}
 * Every key is optional; unknown keys are errors (a typo must not silently disable a gate). With
 * "baseline", each metric must also be no worse than in the last passing run on the same
 * reference and evaluation set, by more than the relative tolerance. */
#ifndef QS_THRESHOLDS_H
#define QS_THRESHOLDS_H

#include <cjson/cJSON.h>

#include "gate/check.h"
#include "io/evalset.h"

typedef struct {
    double limit[QS_CHECK_N_METRICS]; /* NAN: no gate */
} qs_check_limits;

typedef struct {
    qs_check_limits def;
    cJSON *root;
    double tolerance; /* NAN: no baseline */
} qs_thresholds;

/* Reads the file (path NULL: the defaults, the figures a q4-class quantization of a healthy model
 * meets: max_kl 0.1, max_ppl_ratio 1.05, min_top1 0.8). Free with qs_thresholds_free. */
int qs_thresholds_load(const char *path, qs_thresholds *t, qs_error *err);
void qs_thresholds_free(qs_thresholds *t);
/* A domain the set does not have would gate nothing: a typo must not switch the gate off. */
int qs_thresholds_check_domains(const qs_thresholds *t, const qs_evalset *set, const char *path, qs_error *err);
/* The limits for one domain: the default, overridden by the domain's entry. */
qs_check_limits qs_thresholds_for(const qs_thresholds *t, const char *domain, const char *path);

#endif
