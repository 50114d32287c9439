/* Hugging Face config.json -> qs_arch: which family (io/arch.h) the model_type names, its
 * hyper-parameters with transformers' defaults where a config leaves one out, RoPE (rope_theta /
 * rope_scaling of transformers 4, rope_parameters of transformers 5; linear and Llama 3
 * scaling), the sliding-window layers, and the family's extras (Gemma's attention scale and
 * logit soft-cap). Multimodal Gemma 3 configs are read through their text_config. */
#ifndef QS_HF_CONFIG_H
#define QS_HF_CONFIG_H

#include "io/model.h"

/* Reads path into m->arch (and m's metadata). QS_ERR_INPUT naming the key and what was expected,
 * or the model_type or setting qsense does not run. */
int qs_hf_config_read(qs_model *m, const char *path, qs_error *err);

/* Once the tensors are loaded: RMSNorm weights of a family that stores w for a scale of (1 + w)
 * (Gemma) become f32 copies owned by m holding 1 + w, as GGUF stores them and the engine reads. */
int qs_hf_shift_norms(qs_model *m, qs_error *err);

#endif
