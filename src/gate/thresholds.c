/* Reading the gate's thresholds (see thresholds.h). */
#include "gate/thresholds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_json.h"

static const char *const METRIC[QS_CHECK_N_METRICS] = {"kl_mean", "kl_p99", "ppl_ratio", "top1"};
static const char *const LIMIT_KEY[QS_CHECK_N_METRICS] = {"max_kl", "max_kl_p99", "max_ppl_ratio", "min_top1"};
static const int HIGHER_IS_WORSE[QS_CHECK_N_METRICS] = {1, 1, 1, 0};

const char *qs_check_metric_name(int metric) { return METRIC[metric]; }
int qs_check_higher_is_worse(int metric) { return HIGHER_IS_WORSE[metric]; }

static int parse_limits(cJSON *o, qs_check_limits *l, const char *path, const char *where, qs_error *err) {
    if (!cJSON_IsObject(o)) return qs_errorf(err, QS_ERR_INPUT, "%s: '%s' must be an object", path, where);
    for (cJSON *it = o->child; it; it = it->next) {
        int k = 0;
        while (k < QS_CHECK_N_METRICS && strcmp(it->string, LIMIT_KEY[k])) k++;
        if (k == QS_CHECK_N_METRICS)
            return qs_errorf(err, QS_ERR_INPUT, "%s: unknown key '%s' in '%s' (expected max_kl, max_kl_p99, max_ppl_ratio, min_top1)",
                             path, it->string, where);
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= 0))
            return qs_errorf(err, QS_ERR_INPUT, "%s: '%s.%s' must be a non-negative number", path, where, it->string);
        l->limit[k] = it->valuedouble;
    }
    return 0;
}

int qs_thresholds_load(const char *path, qs_thresholds *t, qs_error *err) {
    for (int k = 0; k < QS_CHECK_N_METRICS; k++) t->def.limit[k] = NAN;
    t->tolerance = NAN;
    t->root = NULL;
    if (!path) { /* defaults: the figures a q4-class quantization of a healthy model meets */
        t->def.limit[QS_CHECK_KL] = 0.1;
        t->def.limit[QS_CHECK_PPL_RATIO] = 1.05;
        t->def.limit[QS_CHECK_TOP1] = 0.8;
        return 0;
    }
    char *text;
    size_t n_text;
    int rc = qs_read_file(path, &text, &n_text, err);
    if (rc) return qs_error_prefix(err, "thresholds");
    t->root = qs_json_parse(text, n_text, path, 0, err);
    free(text);
    if (!t->root) return QS_ERR_INPUT;
    if (!cJSON_IsObject(t->root)) return qs_errorf(err, QS_ERR_INPUT, "%s: not a JSON object", path);
    for (cJSON *it = t->root->child; it; it = it->next) {
        if (!strcmp(it->string, "default")) {
            if ((rc = parse_limits(it, &t->def, path, "default", err))) return rc;
        } else if (!strcmp(it->string, "domains")) {
            if (!cJSON_IsObject(it)) return qs_errorf(err, QS_ERR_INPUT, "%s: 'domains' must be an object", path);
            for (cJSON *d = it->child; d; d = d->next) {
                qs_check_limits tmp;
                char where[128];
                snprintf(where, sizeof where, "domains.%s", d->string);
                if ((rc = parse_limits(d, &tmp, path, where, err))) return rc;
            }
        } else if (!strcmp(it->string, "baseline")) {
            cJSON *tol = cJSON_GetObjectItemCaseSensitive(it, "tolerance");
            if (!cJSON_IsObject(it) || !cJSON_IsNumber(tol) || !(tol->valuedouble >= 0))
                return qs_errorf(err, QS_ERR_INPUT, "%s: 'baseline' must be {\"tolerance\": number >= 0}", path);
            t->tolerance = tol->valuedouble;
        } else {
            return qs_errorf(err, QS_ERR_INPUT, "%s: unknown key '%s' (expected default, domains, baseline)", path, it->string);
        }
    }
    return 0;
}

int qs_thresholds_check_domains(const qs_thresholds *t, const qs_evalset *set, const char *path, qs_error *err) {
    cJSON *doms = t->root ? cJSON_GetObjectItemCaseSensitive(t->root, "domains") : NULL;
    for (cJSON *d = doms ? doms->child : NULL; d; d = d->next) {
        int found = 0;
        for (int i = 0; i < set->n_domains && !found; i++) found = !strcmp(set->domains[i].name, d->string);
        if (found) continue;
        char names[512] = "";
        size_t k = 0;
        for (int i = 0; i < set->n_domains && k < sizeof names - 70; i++)
            k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "", set->domains[i].name);
        return qs_errorf(err, QS_ERR_INPUT, "%s: domains.%s: the evaluation set '%s' has no domain '%s' (it has: %s)", path,
                         d->string, set->name, d->string, names);
    }
    return 0;
}

qs_check_limits qs_thresholds_for(const qs_thresholds *t, const char *domain, const char *path) {
    qs_check_limits l = t->def;
    cJSON *doms = t->root ? cJSON_GetObjectItemCaseSensitive(t->root, "domains") : NULL;
    cJSON *d = doms ? cJSON_GetObjectItemCaseSensitive(doms, domain) : NULL;
    if (d) parse_limits(d, &l, path, domain, NULL);
    return l;
}

void qs_thresholds_free(qs_thresholds *t) {
    cJSON_Delete(t->root);
    t->root = NULL;
}
