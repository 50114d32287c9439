/* What a check measures: a model file, or the reference with a plan's formats applied in memory
 * (each planned tensor quantized, weighted and GPTQ rounding with the statistics from the
 * profile database, and substituted through the engine's overrides; no file written). A format
 * with a GGUF type is held in its blocks, as a written file would hold it, and expanded by the
 * engine a block of rows at a time; other formats (int, fp8, nf4, MX ...) as f32 copies, unless
 * those would exceed the memory budget: then a format that rounds by rows is applied to each
 * block of the reference's rows as the engine expands them (no copy, but rounded again
 * on every pass; a per-tensor scale, threshold or AWQ's search first scans the rows). A W+A
 * plan's activation formats quantize the planned tensors' inputs (dynamic formats: a static
 * one's scale is calibrated by the runtime's own tool, which a check cannot reproduce). */
#ifndef QS_CANDIDATE_H
#define QS_CANDIDATE_H

#include "engine/engine.h"
#include "gate/check.h"
#include "io/model.h"

/* The substituted weights of a plan, one slot per reference tensor (NULL where none): f32
 * values, or blocks described by stored[i], or (rows[i] set) the reference's own rows rounded
 * to that format as the engine reads them */
typedef struct {
    int n;
    void **bufs;
    qs_tensor *stored;
    struct qs_row_rounding **rows; /* a format that rounds by rows (quant/row_rounding.h), applied on the fly */
    struct qs_check_stats {        /* what rows[i] rounds with: the inputs' mean square (weighted rounding) */
        float *importance, *mean_abs; /* and mean |x| (AWQ's); its X^T X only while its scales were searched */
        int lookup;                   /* an untied embedding: no inputs, rounded plainly */
    } * stats;
    const qs_model *ref;
    float *scratch; /* one block of rows, for rounding them */
    size_t scratch_cap;
    int failed; /* rounding rows on the fly failed, and why */
    char why[256];
    struct qs_site_quant *sites; /* a W+A plan's activation formats on the inputs, or NULL */
} qs_check_overrides;

/* The candidate's engine in *e; *cand the model file opened (NULL for a plan); *ov the
 * substituted weights, which the engine borrows: free them after it. */
int qs_check_candidate_engine(const qs_check_options *o, qs_model *ref, qs_model **cand, qs_engine **e, qs_check_overrides *ov,
                              qs_error *err);
void qs_check_overrides_free(qs_check_overrides *ov);

#endif
