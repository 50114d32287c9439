/* Per-tensor sensitivity: quantize one tensor (keeping the rest exact), run the evaluation
 * tokens of each domain, and compare with the unquantized model: perplexity delta, mean KL
 * divergence (base || quantized), its 99th percentile, top-1 agreement, each with a standard
 * error. Chunks follow llama-perplexity (BOS first, second half scored).
 *
 * The base model runs once per domain, caching the residual stream entering every layer, so
 * perturbing a tensor of layer L reruns only layers L..end. Per scored position it keeps
 * log p(true token), the top-1, the top-k log-probabilities and the tail mass beyond them
 * (O(k) per position, not O(vocab)). KL is computed over the top-k plus the tail as one bucket:
 * by the chain rule this is a lower bound of the exact KL, short by tail_mass x KL(tail-conditional
 * distributions); eval_domains.mean_tail_mass records how much mass that bucket holds. */
#ifndef QS_SENSITIVITY_H
#define QS_SENSITIVITY_H

#include <stdint.h>

#include "analyzers/analyzer.h"
#include "io/evalset.h"

typedef struct qs_sens qs_sens;

/* Tokenizes and runs the base model on every domain (ctx-token chunks, up to each domain's
 * budget), caching what the sweep needs. */
int qs_sens_new(qs_sens **out, qs_profile *p, const qs_evalset *set, int ctx, int topk, qs_error *err);
void qs_sens_free(qs_sens *s);
int qs_sens_n_domains(const qs_sens *s);
const char *qs_sens_domain_name(const qs_sens *s, int d);

/* What the gradient estimate (sens_gradient.h) reads of the base run: the chunk length, the
 * first scored row (positions [first, ctx - 1) are scored), each domain's chunks and scored
 * positions, a chunk's tokens (ctx) and the residual stream entering `layer` (ctx, dim;
 * layer n_layers: the final one), and the engine. */
int qs_sens_ctx(const qs_sens *s);
int qs_sens_first(const qs_sens *s);
int qs_sens_n_chunks(const qs_sens *s, int d);
int qs_sens_n_scored(const qs_sens *s, int d);
const int *qs_sens_tokens(const qs_sens *s, int d, int chunk);
const float *qs_sens_residual(const qs_sens *s, int d, int chunk, int layer);
struct qs_engine *qs_sens_engine(qs_sens *s);
qs_profile *qs_sens_profile(qs_sens *s);

/* Writes the eval_domains rows (inside the caller's transaction). */
int qs_sens_put_domains(qs_sens *s, qs_error *err);

/* Measuring (any process; no database): tensor i replaced by wq, or the whole model at format f,
 * on every domain whose bit is set in mask, their chunks run several at a time (one expansion
 * of each stored weight per batch, whatever domain the chunks come from); figs[d] for each. */
int qs_sens_measure_tensor(qs_sens *s, int i, uint64_t mask, const float *wq, qs_db_eval_figures *figs, qs_error *err);
/* The same with tensor i replaced by a stored tensor (its blocks: qs_profile_candidate_blocks) */
int qs_sens_measure_tensor_stored(qs_sens *s, int i, uint64_t mask, const qs_tensor *st, qs_db_eval_figures *figs, qs_error *err);
/* The same with tensor i's rows rounded to format f as the engine reads them, no copy of the
 * tensor: for a format without GGUF blocks that rounds by rows (after scans for a per-tensor
 * figure or AWQ's scales: quant/row_rounding.h; with the tensor's calibration) (qs_sens_rounds_rows). */
int qs_sens_rounds_rows(const qs_format *f, int64_t cols);
/* The sweep's engine rounds profile tensor i's rows to f, with its calibration, as it reads them
 * (f NULL: pauses, keeping the format's figures for the next call with the same f); a rounding
 * that failed since is reported by qs_sens_rounding_failed. */
int qs_sens_round_rows_as_read(qs_sens *s, int i, const qs_format *f, qs_error *err);
/* Stops rounding tensor i as read and forgets its figures */
void qs_sens_round_rows_close(qs_sens *s, int i);
int qs_sens_rounding_failed(qs_sens *s, qs_error *err);
int qs_sens_measure_tensor_rows(qs_sens *s, int i, uint64_t mask, const qs_format *f, qs_db_eval_figures *figs,
                                qs_error *err);
int qs_sens_measure_whole(qs_sens *s, int f, uint64_t mask, qs_db_eval_figures *figs, int *n_quantized, double *bpw,
                          qs_error *err);
/* The same with the engine as the caller set it up (its site quantization, say), rerun from layer
 * `start` (the first layer it changes; n_layers: the head only). */
int qs_sens_measure_as_set(qs_sens *s, int start, uint64_t mask, qs_db_eval_figures *figs, qs_error *err);
/* Writing (the database's owner, inside its transaction) one domain's row; fig NULL in put_tensor:
 * the format does not apply. */
int qs_sens_put_tensor(qs_sens *s, int i, int f, int d, const qs_db_eval_figures *fig, qs_error *err);
int qs_sens_put_whole(qs_sens *s, int f, int d, int n_quantized, double bpw, const qs_db_eval_figures *fig, qs_error *err);

/* Relative cost of a job on tensor i (layers rerun x tokens), for progress; of a full evaluation
 * of one domain (every layer and the head), in the same units. */
long qs_sens_cost(const qs_sens *s, int i);
long qs_sens_cost_full(const qs_sens *s);

#endif
