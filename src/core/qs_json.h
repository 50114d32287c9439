/* Strict JSON for files a user or a download hands us (plan.json, thresholds, manifests,
 * config.json, tokenizer.json, safetensors headers): exactly one value with nothing but
 * whitespace after it, and no object that names a key twice (cJSON would keep the first and
 * ignore the second; another reader may take the last, so such a file means two things). */
#ifndef QS_JSON_H
#define QS_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "core/qs_error.h"

/* Parses len bytes of text. Returns the tree (caller frees with cJSON_Delete) or NULL with
 * QS_ERR_INPUT in err naming path, the byte offset (plus base, for JSON inside a larger file)
 * and what is wrong. */
cJSON *qs_json_parse(const char *text, size_t len, const char *path, size_t base, qs_error *err);

#endif
