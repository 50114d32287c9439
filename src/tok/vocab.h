/* qs_vocab: a tokenizer vocabulary and the two algorithms llama.cpp uses on it:
 *  - SPM: SentencePiece-BPE (llama, llama2.c): merges by token score, byte fallback, "▁" for
 *    spaces, a leading space added.
 *  - BPE: GPT-2 byte-level BPE: regex pre-tokenizer, merges by rank, bytes mapped to printable
 *    code points.
 * Token ids equal llama.cpp's for the same vocabulary and text (tests check llama.cpp's own
 * vectors). Sources: GGUF metadata, llama2.c tokenizer.bin, HF tokenizer.json. */
#ifndef QS_VOCAB_H
#define QS_VOCAB_H

#include <stddef.h>
#include <stdint.h>

#include "core/qs_error.h"
#include "core/qs_strmap.h"

struct qs_gguf;
struct qs_model;

typedef enum { QS_VOCAB_SPM = 1, QS_VOCAB_BPE = 2 } qs_vocab_type;

/* Token types as GGUF stores them (tokenizer.ggml.token_type). */
typedef enum {
    QS_TOK_UNDEFINED = 0, QS_TOK_NORMAL = 1, QS_TOK_UNKNOWN = 2, QS_TOK_CONTROL = 3,
    QS_TOK_USER_DEFINED = 4, QS_TOK_UNUSED = 5, QS_TOK_BYTE = 6,
} qs_token_type;

/* Pre-tokenizers for BPE vocabularies (llama.cpp's tokenizer.ggml.pre). */
typedef enum { QS_PRE_GPT2 = 0, QS_PRE_DIGITS_GPT2 = 1, QS_PRE_LLAMA3 = 2, QS_PRE_QWEN2 = 3 } qs_pre_type;

typedef struct qs_vocab {
    int type;            /* qs_vocab_type */
    int pre;             /* qs_pre_type (BPE only) */
    char pre_name[64];
    int n_tokens;
    char **text;         /* token pieces, NUL-terminated copies */
    uint32_t *len;
    float *scores;
    int *ttype;          /* qs_token_type */
    qs_strmap *to_id;    /* piece -> id */
    qs_strmap *merges;   /* "left right" -> rank (BPE) */
    int n_merges;
    char **merge_list;   /* (n_merges) the merges in rank order, NUL-terminated copies */
    int merge_cap;
    int bos, eos, unk;   /* -1 when absent */
    int add_bos, add_eos, add_space_prefix;
    int *user_defined;   /* ids of USER_DEFINED tokens, longest first (split out of raw text) */
    int n_user_defined;
} qs_vocab;

void qs_vocab_free(qs_vocab *v);

/* From GGUF metadata (tokenizer.ggml.*). */
int qs_vocab_from_gguf(qs_vocab **out, const struct qs_gguf *g, qs_error *err);
/* From a GGUF file's metadata (e.g. a vocabulary-only GGUF). */
int qs_vocab_from_gguf_path(qs_vocab **out, const char *path, qs_error *err);
/* From a llama2.c tokenizer.bin; n_vocab is the model's vocabulary size. */
int qs_vocab_from_llama2c(qs_vocab **out, const char *path, int n_vocab, qs_error *err);
/* From a Hugging Face tokenizer.json. */
int qs_vocab_from_hf_json(qs_vocab **out, const char *path, qs_error *err);
/* The tokenizer that belongs to a model: embedded (GGUF), tokenizer.bin or tokenizer.json
 * (model->tokenizer_path), and checks its size against the model's vocabulary. */
int qs_vocab_for_model(qs_vocab **out, const struct qs_model *m, qs_error *err);

/* Tokenizes text[0..n) as llama.cpp's llama_tokenize(add_special, parse_special = false).
 * *ids is malloc'd (caller frees). */
int qs_tokenize(const qs_vocab *v, const char *text, size_t n, int add_special, int **ids, size_t *n_ids,
                qs_error *err);

/* --- internals shared by the loaders and algorithms --- */
typedef struct {
    int *ids;
    size_t n, cap;
} qs_ids;
int qs_ids_push(qs_ids *a, int id);

int qs_vocab_alloc(qs_vocab *v, int n_tokens);
int qs_vocab_set(qs_vocab *v, int id, const char *piece, size_t len, float score, int ttype);
int qs_vocab_finish(qs_vocab *v, qs_error *err); /* builds maps, user-defined list */
int qs_vocab_add_merge(qs_vocab *v, const char *merge, size_t len, int rank);

int qs_spm_tokenize(const qs_vocab *v, const char *text, size_t n, qs_ids *out);
int qs_bpe_tokenize(const qs_vocab *v, const char *text, size_t n, qs_ids *out);

#endif
