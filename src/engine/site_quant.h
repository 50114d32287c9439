/* Activation and KV-cache formats (quant/act_format.h) bound to the engine's sites: which
 * format quantizes what each site carries, per layer, and the static scales calibration gave.
 * Attached to an engine, every forward pass then runs with those activations quantized, so a
 * weight + activation or KV-cache configuration is evaluated like any candidate model. */
#ifndef QS_SITE_QUANT_H
#define QS_SITE_QUANT_H

#include "engine/engine.h"
#include "quant/act_format.h"

typedef struct qs_site_quant qs_site_quant;

/* For the model the engine runs (its shapes decide which formats apply where). */
int qs_site_quant_new(qs_site_quant **out, const qs_engine *e, qs_error *err);
void qs_site_quant_free(qs_site_quant *q);

/* The number of values in a row of a site (a token's input of that linear; for the cache sites
 * a head's keys or values: cache formats are checked against head_dim, as llama.cpp does). */
int qs_site_width(const qs_engine *e, int site);

/* Site `site` (an input site, QS_SITE_ATTN_IN .. QS_SITE_HEAD_IN) of `layer` (-1: every layer;
 * the head's input is layer n_layers) quantized with f (NULL: exact). absmax: the calibrated
 * range static formats need (NAN otherwise). A format that does not apply to the site's width,
 * or a static one without a range, is a QS_ERR_USAGE naming both. */
int qs_site_quant_set_input(qs_site_quant *q, int layer, int site, const qs_act_format *f, float absmax, qs_error *err);
/* The KV cache of `layer` (-1: every layer) in format f (a kv-... format; NULL: exact). */
int qs_site_quant_set_kv(qs_site_quant *q, int layer, const qs_act_format *f, qs_error *err);
/* Every site back to exact. */
void qs_site_quant_clear(qs_site_quant *q);

/* llama.cpp numerics: queries meet a quantized cache converted to its dot-product type (q8_0
 * for q8_0/q4_0/q5_0/iq4_nl caches, q8_1 for q4_1/q5_1), as ggml's CPU flash attention does. */
void qs_site_quant_set_llamacpp_numerics(qs_site_quant *q, int on);

/* Installs q as e's site function (NULL removes it). */
void qs_site_quant_attach(qs_engine *e, qs_site_quant *q);

/* 0, or -1 when a quantization ran out of memory since the last call (the pass was not
 * quantized as asked); clears the flag. */
int qs_site_quant_failed(qs_site_quant *q);

#endif
