/* Reading a profile run back: which run, its model, its tensors and evaluation domains, and what
 * kinds of measurements it holds. */
#ifndef QS_STORE_RUNS_H
#define QS_STORE_RUNS_H

#include <stdint.h>

#include "store/db.h"

typedef struct {
    int64_t id, model_id;
    char status[16], started[32], finished[32];
    char *settings; /* the run's settings as JSON (malloc'd; qs_db_run_free) */
    /* its model */
    char model_path[1024], fingerprint[65], model_format[32], arch[32];
    int64_t n_params;
    int n_layers, dim, hidden_dim, n_heads, n_kv_heads, n_vocab;
} qs_db_run;

typedef enum {
    QS_DB_RUN_NEWEST_FINISHED,       /* the newest finished run, else the newest (the report) */
    QS_DB_RUN_NEWEST_WITH_SENSITIVITY /* the newest run with sensitivity rows (the planner) */
} qs_db_run_choice;

/* The run with id `id`, or (id 0) the one `choice` names: 1 and *out filled, 0 if there is none,
 * negative on a database error. */
int qs_db_find_run(qs_db *db, int64_t id, qs_db_run_choice choice, qs_db_run *out, qs_error *err);
void qs_db_run_free(qs_db_run *r);

typedef struct {
    int64_t id;
    char name[128], kind[16], stored[16];
    int layer; /* -1 outside the blocks */
    int64_t rows, cols;
} qs_db_tensor;

typedef enum { QS_DB_BY_ID, QS_DB_BY_LAYER } qs_db_tensor_order;

/* The model's tensors (malloc'd array in *out, count in *n): in the order they were recorded,
 * or by layer (tensors outside the blocks first) and then that order. */
int qs_db_tensors(qs_db *db, int64_t model_id, qs_db_tensor_order order, qs_db_tensor **out, int *n, qs_error *err);

typedef struct {
    char name[64];
    double base_ppl;
    int n_scored;
} qs_db_domain;

/* The run's evaluation domains by name (at most cap); returns the count. */
int qs_db_domains(qs_db *db, int64_t run_id, qs_db_domain *out, int cap);

typedef struct {
    int has_sensitivity; /* applicable sensitivity rows, or estimates */
    int has_whole_model, has_activations;
    int n_qerror_formats, n_sensitivity_formats;
    int64_t newest_plan; /* the newest plan made from the run, 0 if none */
} qs_db_run_contents;

void qs_db_run_contents_of(qs_db *db, int64_t run_id, qs_db_run_contents *out);

#endif
