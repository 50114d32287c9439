/* Strict JSON parsing on top of cJSON (see qs_json.h). */
#include "core/qs_json.h"

#include <string.h>

#include "core/qs_strmap.h"

/* the first key that an object of the tree repeats, or NULL; *dup_in names the object */
static const cJSON *repeated_key(const cJSON *node, const cJSON **dup_in) {
    for (; node; node = node->next) {
        if (cJSON_IsObject(node)) {
            int n = 0;
            for (const cJSON *c = node->child; c; c = c->next) n++;
            if (n > 1) {
                qs_strmap *seen = qs_strmap_new((size_t)n);
                for (const cJSON *c = node->child; c && seen; c = c->next) {
                    size_t kl = c->string ? strlen(c->string) : 0;
                    if (qs_strmap_get(seen, c->string ? c->string : "", kl) >= 0) {
                        qs_strmap_free(seen);
                        *dup_in = node;
                        return c;
                    }
                    qs_strmap_put(seen, c->string ? c->string : "", kl, 1);
                }
                qs_strmap_free(seen);
            }
        }
        if (node->child) {
            const cJSON *d = repeated_key(node->child, dup_in);
            if (d) return d;
        }
    }
    return NULL;
}

cJSON *qs_json_parse(const char *text, size_t len, const char *path, size_t base, qs_error *err) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        qs_errorf(err, QS_ERR_INPUT, "%s: not valid JSON (byte %zu)", path, base + off);
        return NULL;
    }
    size_t off = (size_t)(end - text);
    while (off < len && (text[off] == ' ' || text[off] == '\t' || text[off] == '\n' || text[off] == '\r')) off++;
    if (off < len && !(text[off] == 0 && off + 1 == len)) {
        cJSON_Delete(j);
        qs_errorf(err, QS_ERR_INPUT, "%s: byte %zu: unexpected text after the JSON value ended", path, base + off);
        return NULL;
    }
    const cJSON *in = NULL, *dup = repeated_key(j, &in);
    if (dup) {
        qs_errorf(err, QS_ERR_INPUT, "%s: key '%.200s' appears twice in the same object%s%.200s%s; a file that says two things "
                  "is refused", path, dup->string ? dup->string : "", in->string ? " ('" : "", in->string ? in->string : "",
                  in->string ? "')" : "");
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}
