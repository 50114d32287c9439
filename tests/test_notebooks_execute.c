/* The notebooks in notebooks/ run top to bottom with `jupyter nbconvert --execute` on real
 * stories260K databases (Debian's jupyter, pandas, matplotlib): the sensitivity notebook over a
 * profile --sensitivity run, and the comparison notebook over two runs (stories260K and
 * llama.cpp's Q4_K_M of it). No cell errors, the figures are there, the notebook's ranking agrees
 * with the database, and the notebooks are committed without outputs. Executed copies are kept
 * in build/notebooks/. */
#include <sqlite3.h>
#include <string.h>

#include "core/qs_file.h"

#include "tests/test_util.h"

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void committed_clean(const char *src, const char *name) {
    char path[800], *text;
    snprintf(path, sizeof path, "%s/notebooks/%s", src, name);
    CHECK(qs_read_file(path, &text, NULL, NULL) == 0, "%s exists", path);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK(j != NULL, "%s is JSON", path);
    cJSON *c;
    int cells = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(j, "cells")) {
        cJSON *o = cJSON_GetObjectItem(c, "outputs");
        CHECK(!o || cJSON_GetArraySize(o) == 0, "%s: cell %d has committed outputs", name, cells);
        cells++;
    }
    CHECK(cells >= 8, "%s: %d cells", name, cells);
    cJSON_Delete(j);
    free(text);
}

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf"), *q4km = model_path("stories260K-llamacpp-Q4_K_M.gguf");
    const char *src = getenv("QSENSE_SRC"), *build = getenv("QSENSE_BUILD");
    char cmd[8192], *out;
    committed_clean(src, "sensitivity.ipynb");
    committed_clean(src, "compare_runs.ipynb");
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' profile '%s' --db s.db --formats q8_0,q4_0,int4-g128-asym,int4-channel-sym --sensitivity --eval debian"
             " --sens-formats q8_0,q4_0,int4-g128-asym --quiet > /dev/null && '%s' profile '%s' --db s.db --formats"
             " q8_0,q4_0,int4-g128-asym,int4-channel-sym --quiet > /dev/null",
             d, qsense_bin(), model, qsense_bin(), q4km);
    int rc = run_cmd(cmd, &out);
    CHECK(rc == 0, "profiles: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s/notebooks' && QSENSE_DB='%s/s.db' QSENSE_RUN_A=1 QSENSE_RUN_B=2 PYDEVD_DISABLE_FILE_VALIDATION=1"
             " timeout 300 jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=120 --output-dir '%s/notebooks'"
             " '%s/notebooks/sensitivity.ipynb' '%s/notebooks/compare_runs.ipynb' 2>&1",
             build, d, build, src, src);
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0, "nbconvert --execute (needs Debian's jupyter-nbconvert, python3-ipykernel, python3-pandas, "
                   "python3-matplotlib): exit %d: %s", rc, out);
    free(out);

    /* the database's own most sensitive tensor at q4_0 */
    char db_path[700], top[96] = "";
    snprintf(db_path, sizeof db_path, "%s/s.db", d);
    sqlite3 *h;
    sqlite3_stmt *st;
    sqlite3_open_v2(db_path, &h, SQLITE_OPEN_READONLY, NULL);
    sqlite3_prepare_v2(h, "SELECT t.name FROM sensitivity s JOIN tensors t ON t.id = s.tensor_id JOIN formats f ON f.id = s.format_id"
                          " WHERE f.name = 'q4_0' AND s.applicable GROUP BY t.id ORDER BY avg(s.kl_mean) DESC LIMIT 1", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(top, sizeof top, "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(h);

    const char *names[2] = {"sensitivity.ipynb", "compare_runs.ipynb"};
    const int min_figures[2] = {4, 2};
    for (int i = 0; i < 2; i++) {
        char path[800], *text = NULL;
        snprintf(path, sizeof path, "%s/notebooks/%s", build, names[i]);
        if (qs_read_file(path, &text, NULL, NULL)) {
            CHECK(0, "executed %s written", path);
            continue;
        }
        CHECK(!strstr(text, "\"output_type\": \"error\""), "%s: a cell raised an error", names[i]);
        CHECK(count(text, "\"image/png\"") >= min_figures[i], "%s: %d figures", names[i], count(text, "\"image/png\""));
        if (i == 0) {
            char want[160];
            snprintf(want, sizeof want, "most sensitive: %s", top);
            CHECK(top[0] && strstr(text, want), "sensitivity notebook ranks %s first, as the database does", top);
        } else {
            CHECK(strstr(text, "tensor x format pairs in common") && strstr(text, "stories260K-llamacpp-Q4_K_M.gguf"),
                  "compare notebook joined the two runs");
        }
        free(text);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    run_cmd(cmd, &out);
    free(out);
    free(d);
    free(model);
    free(q4km);
    return test_done("test_notebooks_execute");
}
