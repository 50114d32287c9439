/* Writing a plan with AWQ formats (quant/awq.h): for each group of matrices that read one input
 * and has an "-awq" member, one scale vector s searched jointly over the members (each rounded
 * as its plan says: an "-awq" format with its base, others with their own plain type), then
 *   members:  W <- W diag(s) before rounding (every member: the input they share changes);
 *   the producer of the input takes 1/s: the RMSNorm before q/k/v (attn_norm) and gate/up
 *   (ffn_norm), v's rows (and bias) before attn_output, up's rows before down.
 * The written model computes exactly (x / s) Q(W diag(s))^T, so llama.cpp runs it unchanged.
 * A member with weighted or GPTQ rounding sees its inputs divided by s: its statistics are
 * rescaled to match (importance / s^2, G_ij / (s_i s_j)). */
#ifndef QS_AWQ_FOLD_H
#define QS_AWQ_FOLD_H

#include "io/model.h"
#include "reports/planner/plan.h"

typedef struct qs_awq_fold qs_awq_fold;

/* Searches the scales of every group with an AWQ member (*out NULL when the plan has none);
 * the statistics come from the profile database. */
int qs_awq_fold_new(qs_awq_fold **out, const qs_model *m, const qs_plan *plan, const char *db_path, qs_error *err);
void qs_awq_fold_free(qs_awq_fold *a);

/* Rewrites rows [row0, row0 + rows) of tensor t, given in f ((rows, cols) as the model stores
 * them, before any row reordering), as the folded model holds them: columns times the scales of
 * its input group, and for a producer, its rows (a norm: its values) divided by the scales of
 * the input it feeds. A 1-D tensor (norm, bias) comes whole, row0 0. */
void qs_awq_fold_tensor(const qs_awq_fold *a, const qs_tensor *t, float *f, int64_t row0, int64_t rows, int64_t cols);
/* The scales of the group t reads its input from, or NULL (then its statistics stand). */
const float *qs_awq_fold_scales(const qs_awq_fold *a, const char *tensor);

#endif
