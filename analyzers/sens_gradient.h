/* The gradient-based sensitivity estimate ("--sens-mode gradient"): one backward pass per
 * evaluation chunk scores every tensor and format at once.
 *
 * What it estimates: the mean KL(base || quantized) per scored position that the exact sweep
 * measures. At the unquantized model that KL is zero with a zero gradient, so its second-order
 * Taylor expansion in the perturbation dY = X dW^T of a linear's outputs is
 *     KL ~ 1/2 dY^T H dY,   H = the Hessian of KL at the base = the Fisher information,
 * summed over the scored positions. The Fisher is E_y[g g^T] with g = d(-log p(y)) / dY and the
 * label y drawn from the base model's own distribution (E_y[(p - e_y)(p - e_y)^T] = diag(p) -
 * p p^T, the logits' Hessian of KL, exactly), so one backward pass with sampled labels gives an
 * unbiased estimate of H's diagonal: KL ~ 1/2 sum_{t,o} g_{t,o}^2 dY_{t,o}^2, the diagonal Fisher
 * approximation of ModelOpt's AutoQuantize. (The NLL of the true next tokens, the "empirical
 * Fisher", estimates another matrix: it weights positions by how wrong the model is, not by how
 * much its distribution can move; we sample.)
 * dY is computed exactly for every format (X of every evaluation token times that format's
 * weight error), so the estimate carries no assumption about how X and dW align; its
 * uncertainty is the spread of the per-chunk estimates (standard error over chunks), which
 * holds the labels' sampling noise too.
 * The embedding table is scored the same way from the gradient entering the first layer; a
 * tied table adds the exact KL of its head perturbation (its logits are computed anyway). An
 * untied output head is not estimated: the sweep measures it exactly, at the cost of the head
 * alone. Mixture-of-experts layers are refused by the backward pass.
 * Cost: per chunk one forward and two backward passes of each layer, then for every format one
 * matmul per linear over the evaluation tokens, and every candidate quantized once. Memory:
 * the gradient of the residual stream for every evaluation token (as the base run's cache of
 * one layer), and one layer's linear inputs and output gradients for every evaluation token. */
#ifndef QS_SENS_GRADIENT_H
#define QS_SENS_GRADIENT_H

#include "analyzers/profile.h"
#include "analyzers/sensitivity.h"

#define QS_SENS_GRADIENT "gradient"

/* Estimates every (tensor i, format f) with estimate[i * n_formats_sens + f] set, on every
 * domain, and writes the rows (method "gradient") and the job "estimates/gradient" in one
 * transaction. *n_written: the (tensor, format, domain) estimates written. */
int qs_sens_gradient(qs_sens *s, const unsigned char *estimate, qs_profile_progress_fn progress, void *user, int64_t *n_written,
                     qs_error *err);

/* The bytes qs_sens_gradient holds besides the base run's caches, for tokens evaluation tokens. */
double qs_sens_gradient_memory(const qs_model *m, double tokens);

#endif
