/* plan -> quantize -> measure, end to end from the CLI, on stories260K (issue 5's bar): with
 * calibration statistics and sensitivity both from the shipped `debian` set (GPL-3 not in
 * it), a --target llama.cpp
 * plan for a file of at most 304,096 bytes (llama.cpp's Q4_K_M file) is written by qsense
 * quantize, matches its plan (plan verify), reads back with gguf-py, and measures on GPL-3
 * (ctx 128, llama.cpp numerics) a lower mean KL than llama.cpp's Q4_K_M - and than its
 * imatrix version - and also on TinyStories and WikiText text. A plan for another model and a
 * malformed plan are refused with exit code 3; a tampered GGUF fails plan verify (exit 1). The
 * sweep measures every block type with round-to-nearest, activation-weighted rounding ("-w",
 * llama-quantize --imatrix's search from our own statistics) and GPTQ error compensation
 * ("-gptq"); at the same size the plan (every rounding competing) beats a weighted-only plan,
 * which beats a round-to-nearest-only plan. A GPTQ plan with a database that holds no Gram
 * matrices is refused, naming what is missing. */
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>

#include "core/qs_file.h"

#include "tests/test_util.h"

static char dir[512];

static double kl_of(const char *model, const char *text) {
    char *base = model_path("stories260K.gguf");
    double v = qsense_kl(model, base, text, 128, 1);
    free(base);
    return v;
}

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf"), *q4km = model_path("stories260K-llamacpp-Q4_K_M.gguf");
    snprintf(dir, sizeof dir, "%s", d);
    char *rp = reference_path("stories260K-gpl3-llamacpp.json");
    cJSON *ref = read_json(rp);
    const double bar = json_num(ref, "llama_quantize.Q4_K_M.mean_kld"), bar_bytes = json_num(ref, "llama_quantize.Q4_K_M.file_bytes");
    const double imatrix = json_num(ref, "llama_quantize.Q4_K_M_with_imatrix.mean_kld");
    char cmd[8192], *out;
    snprintf(cmd, sizeof cmd,
             "cd '%s' && '%s' profile '%s' --db s.db --data debian --formats q8_0 --sensitivity --eval debian "
             "--sens-formats q8_0,q5_1,q5_0,q4_1,q4_0,f16,bf16,q5_1-w,q5_0-w,q4_1-w,q4_0-w,"
             "q8_0-gptq,q5_1-gptq,q5_0-gptq,q4_1-gptq,q4_0-gptq --quiet && "
             "'%s' plan --db s.db --budget-bytes %.0f --target llama.cpp --out plan.json --emit llama-quantize && "
             "'%s' quantize '%s' --plan plan.json --db s.db -o out.gguf && '%s' plan verify out.gguf plan.json && "
             "'%s' plan --db s.db --budget-bytes %.0f --rounding rtn --out rtn.json && "
             "'%s' quantize '%s' --plan rtn.json -o rtn.gguf && "
             "'%s' plan --db s.db --budget-bytes %.0f --rounding weighted --out w.json && "
             "'%s' quantize '%s' --plan w.json --db s.db -o w.gguf && "
             "'%s' plan --db s.db --budget-bytes %.0f --rounding gptq --out gptq.json",
             dir, qsense_bin(), model, qsense_bin(), bar_bytes, qsense_bin(), model, qsense_bin(), qsense_bin(), bar_bytes,
             qsense_bin(), model, qsense_bin(), bar_bytes, qsense_bin(), model, qsense_bin(), bar_bytes);
    int rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && strstr(out, "every tensor has its planned type") && strstr(out, "llama-quantize --tensor-type-file"),
          "plan -> quantize -> verify: exit %d: %s", rc, out);
    free(out);
    char gguf[700], plan[700], tt[700];
    snprintf(gguf, sizeof gguf, "%s/out.gguf", dir);
    snprintf(plan, sizeof plan, "%s/plan.json", dir);
    snprintf(tt, sizeof tt, "%s/plan.json.tensor-types", dir);
    struct stat st;
    CHECK(stat(gguf, &st) == 0 && st.st_size <= bar_bytes && st.st_size > 0.9 * bar_bytes, "file of %lld bytes, budget %.0f",
          (long long)st.st_size, bar_bytes);
    cJSON *pj = read_json(plan);
    CHECK(pj && cJSON_GetArraySize(cJSON_GetObjectItem(pj, "tensors")) == 48 && json_num(pj, "predicted.kl_total") > 0,
          "plan.json has every tensor and a prediction");
    /* the additivity measured by the whole-model runs: near 1 on this model, and applied */
    const double add = json_num(pj, "predicted.additivity.legal"), corr = json_num(pj, "predicted.kl_total_corrected");
    CHECK(add > 0.8 && add < 1.25 && corr > 0.8 * json_num(pj, "predicted.kl_total") && corr < 1.25 * json_num(pj, "predicted.kl_total"),
          "additivity %.3f, corrected total %.5f", add, corr);
    cJSON_Delete(pj);
    char *tts;
    CHECK(qs_read_file(tt, &tts, NULL, NULL) == 0 && strstr(tts, "^blk\\.0\\.ffn_down\\.weight$=f16"),
          "anchored, escaped llama-quantize patterns");
    free(tts);

    /* the bar, and other texts */
    const double kl = kl_of(gguf, "/usr/share/common-licenses/GPL-3");
    printf("qsense plan: %lld bytes, mean KL %.6f on GPL-3 (llama.cpp Q4_K_M: %.0f bytes, %.6f; with imatrix %.6f)\n",
           (long long)st.st_size, kl, bar_bytes, bar, imatrix);
    CHECK(kl < bar, "KL %.6f must beat llama.cpp's Q4_K_M %.6f", kl, bar);
    CHECK(kl < imatrix, "KL %.6f should beat llama.cpp's Q4_K_M with imatrix %.6f", kl, imatrix);
    CHECK(kl < 0.8 * bar, "KL %.6f: the issue's aim is 0.8 x Q4_K_M = %.6f", kl, 0.8 * bar);
    /* rounding is what buys most of it: the same sweep planned with activation-weighted rounding
     * only (no GPTQ), and with round-to-nearest only */
    char rtn_gguf[700], w_gguf[700];
    snprintf(rtn_gguf, sizeof rtn_gguf, "%s/rtn.gguf", dir);
    snprintf(w_gguf, sizeof w_gguf, "%s/w.gguf", dir);
    const double kl_rtn = kl_of(rtn_gguf, "/usr/share/common-licenses/GPL-3"), kl_w = kl_of(w_gguf, "/usr/share/common-licenses/GPL-3");
    printf("  weighted rounding only (--rounding weighted): %.6f\n  round-to-nearest only (--rounding rtn): %.6f\n", kl_w, kl_rtn);
    CHECK(kl < kl_w && kl_w < kl_rtn && kl_rtn < bar, "gptq+weighted %.6f < weighted %.6f < rtn %.6f < Q4_K_M %.6f", kl, kl_w,
          kl_rtn, bar);
    char *plan_text = NULL;
    CHECK(qs_read_file(plan, &plan_text, NULL, NULL) == 0 && strstr(plan_text, "-gptq\""), "the plan uses GPTQ formats");
    free(plan_text);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' quantize '%s' --plan plan.json -o x.gguf", dir, qsense_bin(), model);
    CHECK(run_cmd(cmd, &out) == 2 && strstr(out, "--db"), "a GPTQ plan without --db: %s", out);
    free(out);
    /* a profile database without Gram matrices (no -gptq format swept) cannot feed a GPTQ plan */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' profile '%s' --db nogram.db --formats q8_0 --quiet >/dev/null && "
             "'%s' quantize '%s' --plan plan.json --db nogram.db -o x.gguf", dir, qsense_bin(), model, qsense_bin(), model);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "Gram matrix") && strstr(out, "nogram.db") && strstr(out, "-gptq"),
          "a GPTQ plan with a database without Gram matrices: %s", out);
    free(out);
    /* a corrupt Gram matrix (NaN) in a copy of the database: refused, nothing written */
    snprintf(cmd, sizeof cmd, "cp '%s/s.db' '%s/nan.db'", dir, dir);
    CHECK(run_cmd(cmd, &out) == 0, "cp: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/nan.db", dir);
    sqlite3 *db = NULL;
    sqlite3_stmt *upd = NULL;
    float nan_blob[64 * 64];
    for (int i = 0; i < 64 * 64; i++) nan_blob[i] = NAN;
    CHECK(sqlite3_open(cmd, &db) == SQLITE_OK &&
              sqlite3_prepare_v2(db, "UPDATE arrays SET data = ? WHERE dataset = '/activations/blk.0.attn_q.weight/gram'", -1, &upd,
                                 NULL) == SQLITE_OK &&
              sqlite3_bind_blob(upd, 1, nan_blob, sizeof nan_blob, SQLITE_STATIC) == SQLITE_OK && sqlite3_step(upd) == SQLITE_DONE &&
              sqlite3_changes(db) >= 1,
          "corrupting the Gram matrix: %s", sqlite3_errmsg(db));
    sqlite3_finalize(upd);
    sqlite3_close(db);
    snprintf(cmd, sizeof cmd, "(cd '%s' && '%s' quantize '%s' --plan gptq.json --db nan.db -o nan.gguf 2>&1; echo rc=$?; ls nan.gguf)",
             dir, qsense_bin(), model);
    run_cmd(cmd, &out);
    CHECK(strstr(out, "rc=3") && strstr(out, "non-finite") && strstr(out, "blk.0.attn_q.weight") && strstr(out, "No such file"),
          "a NaN Gram matrix: %s", out);
    free(out);
    char *stories = data_path("tinystories-sample.txt"), *wiki = data_path("wiki.test.tokens"), wiki_cut[700];
    snprintf(wiki_cut, sizeof wiki_cut, "%s/wiki.txt", dir);
    snprintf(cmd, sizeof cmd, "head -c 60000 '%s' > '%s'", wiki, wiki_cut);
    run_cmd(cmd, &out);
    free(out);
    const char *texts[2] = {stories, wiki_cut};
    for (int i = 0; i < 2; i++) {
        double ours = kl_of(gguf, texts[i]), theirs = kl_of(q4km, texts[i]);
        printf("  %s: qsense %.5f, llama.cpp Q4_K_M %.5f\n", texts[i], ours, theirs);
        CHECK(ours < theirs, "%s: KL %.5f vs llama.cpp's %.5f", texts[i], ours, theirs);
    }

    /* gguf-py reads it and dequantizes every tensor */
    const char *cache = getenv("QSENSE_CACHE");
    char *src = getenv("QSENSE_SRC");
    snprintf(cmd, sizeof cmd, "'%s/venv/bin/python' '%s/tests/oracle/dequant_hashes.py' '%s' > /dev/null", cache ? cache : "",
             src ? src : ".", gguf);
    CHECK(run_cmd(cmd, &out) == 0, "gguf-py cannot read the written GGUF: %s", out);
    free(out);

    /* refusals */
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --plan '%s' -o '%s/x.gguf'", qsense_bin(), q4km, plan, dir);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "plan was made for the model with sha256"), "plan for another model: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "printf '{\"qsense_plan_version\": \"1\", \"model\": {\"sha256\": \"x\"}}' > '%s/bad.json' && "
             "'%s' quantize '%s' --plan '%s/bad.json' -o '%s/x.gguf'", dir, qsense_bin(), model, dir, dir);
    CHECK(run_cmd(cmd, &out) == 3 && strstr(out, "model.sha256"), "malformed plan: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "'%s' plan verify '%s' '%s'", qsense_bin(), q4km, plan);
    CHECK(run_cmd(cmd, &out) == 1 && strstr(out, "differ from the plan"), "verify against another file: %s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &out);
    free(out);
    cJSON_Delete(ref);
    free(rp); free(d); free(model); free(q4km); free(stories); free(wiki);
    return test_done("test_plan_beats_llamacpp");
}
