/* Evaluation set manifests (see evalset.h). */
#include "io/evalset.h"

#include <cjson/cJSON.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_json.h"
#include "core/qs_path.h"
#include "core/qs_sha256.h"

void qs_evalset_free(qs_evalset *s) {
    if (!s) return;
    for (int i = 0; i < s->n_domains; i++) {
        free(s->domains[i].text);
        free(s->domains[i].files);
    }
    free(s->domains);
    free(s);
}

/* ${VAR} from the environment; ${QSENSE_DATA} defaults to ../shared/datasets */
static int expand(const char *in, char *out, size_t cap) {
    size_t k = 0;
    for (const char *p = in; *p && k + 1 < cap;) {
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p, '}');
            if (!end) return -1;
            char var[128];
            snprintf(var, sizeof var, "%.*s", (int)(end - p - 2), p + 2);
            const char *val = getenv(var);
            if (!val && !strcmp(var, "QSENSE_DATA")) val = "../shared/datasets";
            if (!val) return -1;
            k += (size_t)snprintf(out + k, cap - k, "%s", val);
            p = end + 1;
        } else {
            out[k++] = *p++;
        }
    }
    out[k < cap ? k : cap - 1] = 0;
    return 0;
}

static int append(qs_eval_domain *d, const char *path, size_t want, qs_error *err) {
    char *t;
    size_t n;
    int rc = qs_read_file(path, &t, &n, err);
    if (rc) return rc;
    size_t take = d->n_text + n > want ? (want > d->n_text ? want - d->n_text : 0) : n;
    char *nt = realloc(d->text, d->n_text + take + 2);
    if (!nt) { free(t); return qs_errorf(err, QS_ERR_INTERNAL, "out of memory"); }
    d->text = nt;
    if (d->n_text) d->text[d->n_text++] = '\n';
    memcpy(d->text + d->n_text, t, take);
    d->n_text += take;
    d->text[d->n_text] = 0;
    free(t);
    size_t fl = d->files ? strlen(d->files) : 0;
    char *nf = realloc(d->files, fl + strlen(path) + 2);
    if (nf) {
        d->files = nf;
        sprintf(d->files + fl, "%s%s", fl ? "," : "", path);
    }
    return 0;
}

static int load_domain(qs_eval_domain *d, cJSON *j, const char *manifest, qs_error *err) {
    cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name"), *files = cJSON_GetObjectItemCaseSensitive(j, "files");
    cJSON *tokens = cJSON_GetObjectItemCaseSensitive(j, "tokens");
    if (!cJSON_IsString(name) || !cJSON_IsArray(files) || cJSON_GetArraySize(files) == 0 || !cJSON_IsNumber(tokens) ||
        tokens->valuedouble < 1 || tokens->valuedouble > 1e9)
        return qs_errorf(err, QS_ERR_INPUT, "%s: each domain needs a \"name\", a non-empty \"files\" list and \"tokens\" (1 to 1e9)",
                         manifest);
    snprintf(d->name, sizeof d->name, "%s", name->valuestring);
    d->tokens = (int64_t)tokens->valuedouble;
    /* ~4 bytes per token for English; 16 leaves room for any tokenizer */
    const size_t want = (size_t)d->tokens * 16 + 1024;
    cJSON *f;
    cJSON_ArrayForEach(f, files) {
        if (!cJSON_IsString(f)) return qs_errorf(err, QS_ERR_INPUT, "%s: domain '%s': files must be strings", manifest, d->name);
        char pat[4096];
        if (expand(f->valuestring, pat, sizeof pat))
            return qs_errorf(err, QS_ERR_INPUT, "%s: domain '%s': cannot expand '%s' (unset variable?)", manifest, d->name,
                             f->valuestring);
        glob_t g;
        int gr = glob(pat, 0, NULL, &g);
        if (gr != 0 || g.gl_pathc == 0) {
            if (gr == 0) globfree(&g);
            return qs_errorf(err, QS_ERR_INPUT, "%s: domain '%s': no file matches '%s'", manifest, d->name, pat);
        }
        int rc = 0;
        for (size_t i = 0; i < g.gl_pathc && !rc && d->n_text < want; i++) rc = append(d, g.gl_pathv[i], want, err);
        globfree(&g);
        if (rc) return qs_error_prefix(err, "%s: domain '%s'", manifest, d->name);
        if (d->n_text >= want) break;
    }
    if (d->n_text == 0) return qs_errorf(err, QS_ERR_INPUT, "%s: domain '%s': its files are empty", manifest, d->name);
    qs_sha256_hex(d->text, d->n_text, d->sha256);
    return 0;
}

int qs_evalset_load(qs_evalset **out, const char *spec, const char *datasets_dir, int64_t default_tokens, qs_error *err) {
    *out = NULL;
    qs_evalset *s = calloc(1, sizeof *s);
    if (!s) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    char path[4096];
    size_t n = strlen(spec);
    int manifest = n > 5 && !strcmp(spec + n - 5, ".json");
    snprintf(path, sizeof path, "%s", spec);
    if (!manifest && !strchr(spec, '/') && !qs_path_exists(spec) && datasets_dir) {
        snprintf(path, sizeof path, "%s/%s.json", datasets_dir, spec);
        manifest = 1;
    }
    int rc = 0;
    if (!manifest) {
        /* a plain text file: one domain named after it */
        s->domains = calloc(1, sizeof(qs_eval_domain));
        s->n_domains = 1;
        const char *base = strrchr(spec, '/');
        snprintf(s->name, sizeof s->name, "%s", base ? base + 1 : spec);
        snprintf(s->domains[0].name, sizeof s->domains[0].name, "%s", s->name);
        s->domains[0].tokens = default_tokens;
        if (!(rc = append(&s->domains[0], spec, (size_t)default_tokens * 16 + 1024, err))) {
            if (s->domains[0].n_text == 0) rc = qs_errorf(err, QS_ERR_INPUT, "%s: the text file is empty", spec);
            else qs_sha256_hex(s->domains[0].text, s->domains[0].n_text, s->domains[0].sha256);
        }
    } else {
        char *text;
        size_t n_text;
        if ((rc = qs_read_file(path, &text, &n_text, err))) {
            qs_evalset_free(s);
            return qs_error_prefix(err, "evaluation set '%s'", spec);
        }
        cJSON *j = qs_json_parse(text, n_text, path, 0, err);
        free(text);
        if (!j) {
            qs_evalset_free(s);
            return QS_ERR_INPUT;
        }
        cJSON *name = j ? cJSON_GetObjectItemCaseSensitive(j, "name") : NULL, *doms = j ? cJSON_GetObjectItemCaseSensitive(j, "domains") : NULL;
        if (!cJSON_IsString(name) || !cJSON_IsArray(doms) || cJSON_GetArraySize(doms) == 0) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: expected a JSON object with \"name\" and a non-empty \"domains\" list", path);
        } else {
            snprintf(s->name, sizeof s->name, "%s", name->valuestring);
            s->n_domains = cJSON_GetArraySize(doms);
            s->domains = calloc((size_t)s->n_domains, sizeof(qs_eval_domain));
            for (int i = 0; i < s->n_domains && !rc; i++) {
                rc = load_domain(&s->domains[i], cJSON_GetArrayItem(doms, i), path, err);
                for (int k = 0; k < i && !rc; k++)
                    if (!strcmp(s->domains[k].name, s->domains[i].name))
                        rc = qs_errorf(err, QS_ERR_INPUT, "%s: domain name '%s' appears twice", path, s->domains[i].name);
            }
        }
        cJSON_Delete(j);
    }
    if (rc) {
        qs_evalset_free(s);
        return rc;
    }
    *out = s;
    return 0;
}
