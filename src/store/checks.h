/* `qsense check` runs in the results database (tables check_runs, check_results in
 * docs/schema.md): each gate's verdict and measured figures, the baseline a later gate compares
 * with, and the model files checked against a reference. */
#ifndef QS_STORE_CHECKS_H
#define QS_STORE_CHECKS_H

#include <stdint.h>

#include "store/db.h"

typedef struct {
    const char *git_commit, *candidate, *candidate_sha256, *reference_sha256, *eval_set;
    int passed;
} qs_db_check_run;

/* Inserts the check run (inside the caller's transaction); its id in *id. */
int qs_db_put_check_run(qs_db *db, const qs_db_check_run *r, int64_t *id, qs_error *err);

/* One measured figure of a check (NAN threshold or baseline: none). */
int qs_db_put_check_result(qs_db *db, int64_t check_id, const char *domain, const char *metric, double value,
                           double threshold, double baseline, int passed, qs_error *err);

/* The value of metric on domain in the newest passing check of the same reference file on the
 * same evaluation set, NAN if there is none. */
double qs_db_check_baseline(qs_db *db, const char *reference_sha256, const char *eval_set, const char *domain,
                            const char *metric);

/* The files checked against this reference (newest check per file, a candidate file rather than
 * an in-memory plan), in the order they were first checked: their mean KL over the domains
 * checked. Returns the count (at most cap). */
typedef struct {
    char path[1024], eval_set[64], created[32];
    double kl;
    int n_domains;
} qs_db_checked_file;
int qs_db_checked_files(qs_db *db, const char *reference_sha256, qs_db_checked_file *out, int cap);

#endif
