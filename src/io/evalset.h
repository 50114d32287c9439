/* qs_evalset: an evaluation set read from a JSON manifest (datasets/README.md): named domains,
 * each the concatenated text of its files (globs, ${VAR} expansion) and a token budget. A plain
 * text file is a set of one domain. Each domain carries the sha256 of its text. */
#ifndef QS_EVALSET_H
#define QS_EVALSET_H

#include <stddef.h>
#include <stdint.h>

#include "core/qs_error.h"

typedef struct {
    char name[64];
    int64_t tokens;  /* budget */
    int64_t n_text_tokens; /* the tokens its text gives, once a user has tokenized it (0: not known) */
    char *text;
    size_t n_text;
    char sha256[65];
    char *files;     /* the files read, comma-separated, for the record */
} qs_eval_domain;

typedef struct {
    char name[64];
    qs_eval_domain *domains;
    int n_domains;
} qs_evalset;

/* spec: a manifest path (.json), a shipped set's name (looked up in datasets_dir), or a text
 * file. default_tokens: the budget of a plain text file's domain. */
int qs_evalset_load(qs_evalset **out, const char *spec, const char *datasets_dir, int64_t default_tokens, qs_error *err);
void qs_evalset_free(qs_evalset *s);

#endif
