/* Test harness helpers (see test_util.h). */
#include "tests/test_util.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>

#include "core/qs_file.h"
#include "core/qs_path.h"
#include "core/qs_sha256.h"

int qs_test_failures = 0, qs_test_checks = 0;

int test_done(const char *name) {
    printf("%s: %d checks, %d failed\n", name, qs_test_checks, qs_test_failures);
    return qs_test_failures ? 1 : 0;
}

static char *env_path(const char *var, const char *def, const char *name) {
    const char *dir = getenv(var);
    return qs_path_join(dir && *dir ? dir : def, name);
}

char *model_path(const char *name) { return env_path("QSENSE_MODELS", "../shared/models", name); }
char *data_path(const char *name) { return env_path("QSENSE_DATA", "../shared/datasets", name); }
char *reference_path(const char *name) { return env_path("QSENSE_REFERENCE", "../shared/reference", name); }

const char *qsense_bin(void) {
    const char *b = getenv("QSENSE_BIN");
    return b ? b : "./qsense";
}

char *temp_dir(void) {
    char tmpl[] = "/tmp/qsense-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : strdup("/tmp");
}

int run_cmd(const char *cmd, char **out) {
    size_t n = strlen(cmd);
    char *full = malloc(n + 16);
    snprintf(full, n + 16, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    free(full);
    if (!p) {
        *out = strdup("");
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += r;
        if (cap - len < 2) buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(p);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

cJSON *read_json(const char *path) {
    char *text;
    if (qs_read_file(path, &text, NULL, NULL)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

double json_num(cJSON *root, const char *dotted) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", dotted);
    cJSON *cur = root;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = cJSON_GetObjectItemCaseSensitive(cur, tok);
    return cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

char *db_dump(const char *path, const char *const *queries, int n_queries) {
    sqlite3 *h;
    sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL);
    size_t cap = 1 << 20, n = 0;
    char *out = malloc(cap);
    out[0] = 0;
    for (int k = 0; k < n_queries; k++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, queries[k], -1, &st, NULL) != SQLITE_OK) continue;
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *col = sqlite3_column_name(st, c);
                if (!strcmp(col, "run_id") || !strcmp(col, "tensor_id") || !strcmp(col, "format_id")) continue;
                const char *v = (const char *)sqlite3_column_text(st, c);
                size_t l = strlen(v ? v : "NULL") + 2;
                while (n + l + 1 > cap) out = realloc(out, cap *= 2);
                n += (size_t)sprintf(out + n, "%s%c", v ? v : "NULL", c + 1 == sqlite3_column_count(st) ? '\n' : '|');
            }
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return out;
}

int close_rel(double x, double y, double rel) { return fabs(x - y) <= rel * fmax(fabs(x), fabs(y)) + 1e-12; }

int dumps_differ(const char *a, const char *b, double rel, double *worst) {
    *worst = 0;
    int bad = 0;
    while (*a && *b) {
        const size_t la = strcspn(a, "|\n"), lb = strcspn(b, "|\n");
        if (a[la] != b[lb]) return -1; /* a field ends a row in one and not the other */
        char fa[256], fb[256], *ea, *eb;
        snprintf(fa, sizeof fa, "%.*s", (int)la, a);
        snprintf(fb, sizeof fb, "%.*s", (int)lb, b);
        const double x = strtod(fa, &ea), y = strtod(fb, &eb);
        if (la && lb && !*ea && !*eb) {
            const double d = fabs(x - y) / fmax(fmax(fabs(x), fabs(y)), 1e-300);
            if (x != y && d > *worst) *worst = d;
            if (!close_rel(x, y, rel) && bad++ < 8) fprintf(stderr, "  differs: %s vs %s\n", fa, fb);
        } else {
            if (strcmp(fa, fb) && bad++ < 8) fprintf(stderr, "  differs: '%s' vs '%s'\n", fa, fb);
        }
        a += la + (a[la] != 0);
        b += lb + (b[lb] != 0);
    }
    return *a || *b ? -1 : bad;
}

double qsense_kl(const char *model, const char *base, const char *text, int ctx, int llamacpp_numerics) {
    char cmd[4096], *out;
    snprintf(cmd, sizeof cmd, "'%s' ppl '%s' --base '%s' --text '%s' --ctx %d%s --quiet --json 2>&1", qsense_bin(), model, base,
             text, ctx, llamacpp_numerics ? " --llamacpp-numerics" : "");
    int rc = run_cmd(cmd, &out);
    cJSON *j = rc == 0 ? cJSON_Parse(out) : NULL;
    CHECK(j != NULL, "%s: %s", cmd, out);
    double v = j ? json_num(j, "kl_mean") : NAN;
    cJSON_Delete(j);
    free(out);
    return v;
}

int run_in(const char *dir, char **out, const char *fmt, ...) {
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && export Q='%s' && %s", dir, qsense_bin(), args);
    return run_cmd(cmd, out);
}

void file_sha256(const char *path, char out[65]) {
    char *data;
    size_t n;
    out[0] = 0;
    if (qs_read_file(path, &data, &n, NULL) == 0) {
        qs_sha256_hex(data, n, out);
        free(data);
    }
}

int count_files_matching(const char *dir, const char *pattern) {
    char cmd[2048], *out;
    snprintf(cmd, sizeof cmd, "find '%s' -name '%s' | wc -l", dir, pattern);
    run_cmd(cmd, &out);
    int n = atoi(out);
    free(out);
    return n;
}
