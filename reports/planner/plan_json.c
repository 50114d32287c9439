/* Plans as files (docs/plan.md): writing and strictly reading plan.json, and checking a plan
 * against a model or a written GGUF. */
#include "reports/planner/plan.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_json.h"
#include "core/qs_output.h"
#include "core/qs_sha256.h"
#include "core/qs_strmap.h"
#include "io/gguf.h"
#include "io/model.h"
#include "quant/act_format.h"
#include "quant/format.h"

void qs_plan_free(qs_plan *p) {
    if (!p) return;
    free(p->tensors);
    free(p->curve);
    free(p);
}

int qs_plan_write_json(const qs_plan *p, const char *path, qs_error *err) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "qsense_plan_version", "1");
    cJSON_AddStringToObject(j, "qsense_version", QS_VERSION);
    cJSON *m = cJSON_AddObjectToObject(j, "model");
    cJSON_AddStringToObject(m, "sha256", p->model_fingerprint);
    cJSON_AddStringToObject(m, "path", p->model_path);
    cJSON_AddStringToObject(j, "target", p->target);
    if (p->act[0]) cJSON_AddStringToObject(j, "act", p->act);
    cJSON_AddNumberToObject(j, "budget_tensor_bytes", p->budget_bytes);
    cJSON_AddNumberToObject(j, "tensor_bytes", p->total_bytes);
    cJSON *pred = cJSON_AddObjectToObject(j, "predicted");
    cJSON_AddStringToObject(pred, "metric", "mean KL divergence, sum of per-tensor costs");
    cJSON_AddNumberToObject(pred, "kl_total", p->predicted_kl);
    cJSON *pd = cJSON_AddObjectToObject(pred, "per_domain");
    for (int d = 0; d < p->n_domains; d++) cJSON_AddNumberToObject(pd, p->domains[d], p->predicted_kl_domain[d]);
    /* the same, corrected by the measured additivity of each domain (when the sweep measured it) */
    cJSON *add = cJSON_CreateObject(), *pdc = cJSON_CreateObject();
    double total_c = 0, wsum = 0;
    int have = 0;
    for (int d = 0; d < p->n_domains; d++) {
        if (isnan(p->additivity[d])) continue;
        cJSON_AddNumberToObject(add, p->domains[d], p->additivity[d]);
        cJSON_AddNumberToObject(pdc, p->domains[d], p->predicted_kl_domain[d] * p->additivity[d]);
        total_c += p->domain_weights[d] * p->predicted_kl_domain[d] * p->additivity[d];
        wsum += p->domain_weights[d];
        have++;
    }
    if (have == p->n_domains && have > 0) {
        cJSON_AddItemToObject(pred, "additivity", add);
        cJSON_AddItemToObject(pred, "per_domain_corrected", pdc);
        cJSON_AddNumberToObject(pred, "kl_total_corrected", total_c / wsum);
    } else {
        cJSON_Delete(add);
        cJSON_Delete(pdc);
    }
    cJSON *w = cJSON_AddObjectToObject(j, "domain_weights");
    for (int d = 0; d < p->n_domains; d++) cJSON_AddNumberToObject(w, p->domains[d], p->domain_weights[d]);
    cJSON *ts = cJSON_AddArrayToObject(j, "tensors");
    for (int i = 0; i < p->n_tensors; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "name", p->tensors[i].name);
        cJSON_AddStringToObject(t, "format", p->tensors[i].format);
        cJSON_AddNumberToObject(t, "bytes", p->tensors[i].bytes);
        cJSON_AddNumberToObject(t, "predicted_kl", p->tensors[i].cost);
        if (p->tensors[i].act[0]) cJSON_AddStringToObject(t, "act", p->tensors[i].act);
        cJSON_AddItemToArray(ts, t);
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    qs_output *o;
    int rc = qs_output_open(&o, path, "the plan", 0, err);
    if (!rc) {
        fprintf(qs_output_stream(o), "%s\n", text);
        rc = qs_output_commit(o, err);
    }
    free(text);
    return rc;
}

int qs_plan_read_json(qs_plan **out, const char *path, qs_error *err) {
    *out = NULL;
    char *text;
    size_t n_text;
    int rc = qs_read_file(path, &text, &n_text, err);
    if (rc) return qs_error_prefix(err, "plan");
    cJSON *j = qs_json_parse(text, n_text, path, 0, err);
    char file_sha[65];
    qs_sha256_hex(text, n_text, file_sha);
    free(text);
    if (!j) return QS_ERR_INPUT;
    qs_plan *p = calloc(1, sizeof *p);
    memcpy(p->plan_sha256, file_sha, sizeof file_sha);
    cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model"), *sha = m ? cJSON_GetObjectItemCaseSensitive(m, "sha256") : NULL;
    cJSON *ts = cJSON_GetObjectItemCaseSensitive(j, "tensors"), *target = cJSON_GetObjectItemCaseSensitive(j, "target");
    cJSON *ver = cJSON_GetObjectItemCaseSensitive(j, "qsense_plan_version");
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "1")) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key 'qsense_plan_version' must be \"1\"", path);
    } else if (!cJSON_IsString(sha) || strlen(sha->valuestring) != 64) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key 'model.sha256' must be a 64-character sha256", path);
    } else if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) == 0) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: key 'tensors' must be a non-empty array", path);
    } else {
        snprintf(p->source_path, sizeof p->source_path, "%s", path);
        snprintf(p->model_fingerprint, sizeof p->model_fingerprint, "%s", sha->valuestring);
        snprintf(p->target, sizeof p->target, "%s", cJSON_IsString(target) ? target->valuestring : "any");
        cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "act");
        if (cJSON_IsString(act)) snprintf(p->act, sizeof p->act, "%s", act->valuestring);
        p->n_tensors = cJSON_GetArraySize(ts);
        p->tensors = calloc((size_t)p->n_tensors, sizeof(qs_plan_tensor));
        int i = 0;
        cJSON *t;
        qs_strmap *seen = qs_strmap_new((size_t)p->n_tensors);
        if (!seen || !p->tensors) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        cJSON_ArrayForEach(t, ts) {
            if (rc) break;
            cJSON *n = cJSON_GetObjectItemCaseSensitive(t, "name"), *f = cJSON_GetObjectItemCaseSensitive(t, "format");
            if (!cJSON_IsString(n) || !cJSON_IsString(f) || strlen(n->valuestring) >= sizeof p->tensors[0].name) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] needs a string 'name' and 'format'", path, i);
                break;
            }
            if (strcmp(f->valuestring, "f32") && !qs_format_find(f->valuestring, NULL)) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] ('%s'): unknown format '%s'", path, i, n->valuestring, f->valuestring);
                break;
            }
            cJSON *a = cJSON_GetObjectItemCaseSensitive(t, "act");
            const qs_act_format *af = cJSON_IsString(a) ? qs_act_format_find(a->valuestring, NULL) : NULL;
            if (a && (!af || af->kv)) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] ('%s'): 'act' must name an activation format (a-int8-token, ...)",
                               path, i, n->valuestring);
                break;
            }
            if (af) snprintf(p->tensors[i].act, sizeof p->tensors[i].act, "%s", af->name);
            int first = qs_strmap_get(seen, n->valuestring, strlen(n->valuestring));
            if (first >= 0) {
                rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] names '%s' again (first at tensors[%d]); each tensor once", path,
                               i, n->valuestring, first);
                break;
            }
            qs_strmap_put(seen, n->valuestring, strlen(n->valuestring), i);
            snprintf(p->tensors[i].name, sizeof p->tensors[i].name, "%s", n->valuestring);
            snprintf(p->tensors[i].format, sizeof p->tensors[i].format, "%s", f->valuestring);
            i++;
        }
        qs_strmap_free(seen);
    }
    cJSON_Delete(j);
    if (rc) {
        qs_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

const qs_plan_tensor *qs_plan_find(const qs_plan *p, const char *tensor) {
    for (int k = 0; k < p->n_tensors; k++)
        if (!strcmp(p->tensors[k].name, tensor)) return &p->tensors[k];
    return NULL;
}

int qs_plan_check_model(const qs_plan *p, const qs_model *m, qs_error *err) {
    for (int k = 0; k < p->n_tensors; k++)
        if (!qs_model_find(m, p->tensors[k].name))
            return qs_errorf(err, QS_ERR_INPUT, "%s: tensors[%d] names '%s', which %s does not have; is the plan for this model?",
                             p->source_path[0] ? p->source_path : "the plan", k, p->tensors[k].name, m->path);
    return 0;
}

int qs_plan_verify_gguf(const qs_plan *p, const char *gguf_path, int *n_diff, qs_error *err) {
    qs_gguf *g;
    *n_diff = 0;
    int rc = qs_gguf_open(&g, gguf_path, err);
    if (rc) return rc;
    char msg[900] = "";
    size_t k = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        const qs_gguf_tensor *t = qs_gguf_find_tensor(g, p->tensors[i].name);
        const char *have = t ? qs_dtype_name(t->type) : "missing";
        if (strcmp(have, qs_format_stored_type(p->tensors[i].format))) {
            if (k < sizeof msg - 100)
                k += (size_t)snprintf(msg + k, sizeof msg - k, "%s%s is %s, plan says %s", *n_diff ? "; " : "", p->tensors[i].name,
                                      have, p->tensors[i].format);
            (*n_diff)++;
        }
    }
    qs_gguf_close(g);
    if (*n_diff) return qs_errorf(err, QS_ERR_INPUT, "%s: %d tensors differ from the plan: %s", gguf_path, *n_diff, msg);
    return 0;
}
