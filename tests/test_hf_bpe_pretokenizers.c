/* Llama 3's and Qwen2's byte-level BPE read from a Hugging Face tokenizer.json give the ids of
 * Hugging Face's own `tokenizers` library. The tokenizer.json files are written from llama.cpp's
 * vocabulary GGUFs (ggml-vocab-llama-bpe / -qwen2, fetched into $QSENSE_CACHE/llamacpp-vocab)
 * with each model's Split pattern by tests/oracle/gguf_vocab_to_tokenizer_json.py; the ids of
 * GPL-3 and of 60 KB of WikiText-2 and of State of the Union must equal tests/oracle/hf_tokenize.py's,
 * and equal what qsense gives from the GGUF vocabulary itself (checked against llama.cpp's test
 * vectors in test_tokenizer_matches_llamacpp). A Split pattern qsense does not know is refused. */
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_path.h"
#include "tests/test_util.h"
#include "tok/vocab.h"

static const char *py, *src;
static char *dir;

/* ids of the first max_bytes of text_path, by Hugging Face tokenizers and by qsense (hf, gguf) */
static void compare(const qs_vocab *hf, const qs_vocab *gg, const char *json, const char *text_path, size_t max_bytes,
                    const char *label) {
    char cut[1200], cmd[4096], *out = NULL, *text = NULL;
    snprintf(cut, sizeof cut, "%s/cut.txt", dir);
    snprintf(cmd, sizeof cmd, "head -c %zu '%s' > '%s' && '%s' '%s/tests/oracle/hf_tokenize.py' '%s' '%s'", max_bytes, text_path,
             cut, py, src, json, cut);
    int rc = run_cmd(cmd, &out);
    cJSON *want = rc == 0 ? cJSON_Parse(out) : NULL;
    CHECK(want && cJSON_IsArray(want), "%s: hf_tokenize.py: %.300s", label, out);
    free(out);
    size_t n;
    CHECK(qs_read_file(cut, &text, &n, NULL) == 0, "read %s", cut);
    int *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    qs_error err = {0};
    CHECK(qs_tokenize(hf, text, n, 0, &a, &na, &err) == 0 && qs_tokenize(gg, text, n, 0, &b, &nb, &err) == 0, "%s", err.msg);
    int bad = 0, first = -1;
    const int nw = want ? cJSON_GetArraySize(want) : 0;
    for (int i = 0; i < nw && (size_t)i < na; i++)
        if (a[i] != cJSON_GetArrayItem(want, i)->valueint) {
            bad++;
            if (first < 0) first = i;
        }
    CHECK(want && (size_t)nw == na && bad == 0, "%s: qsense %zu ids, tokenizers %d; %d differ, the first at %d", label, na, nw,
          bad, first);
    CHECK(na == nb && (na == 0 || !memcmp(a, b, na * sizeof(int))), "%s: tokenizer.json and GGUF vocabularies disagree", label);
    cJSON_Delete(want);
    free(a);
    free(b);
    free(text);
}

int main(void) {
    const char *cache = getenv("QSENSE_CACHE");
    src = getenv("QSENSE_SRC");
    static char pybuf[1024];
    snprintf(pybuf, sizeof pybuf, "%s/venv/bin/python", cache ? cache : ".");
    py = pybuf;
    dir = temp_dir();
    const struct { const char *kind, *vocab; int pre; } cases[] = {
        {"llama3", "ggml-vocab-llama-bpe.gguf", QS_PRE_LLAMA3}, {"qwen2", "ggml-vocab-qwen2.gguf", QS_PRE_QWEN2}};
    char *wiki = data_path("wiki.test.tokens"), *sotu = data_path("sotu.txt");
    for (int c = 0; c < 2; c++) {
        char gguf[1024], json[1200], cmd[4096], *out = NULL;
        snprintf(gguf, sizeof gguf, "%s/llamacpp-vocab/%s", cache ? cache : ".", cases[c].vocab);
        snprintf(json, sizeof json, "%s/%s.json", dir, cases[c].kind);
        snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/gguf_vocab_to_tokenizer_json.py' '%s' %s '%s'", py, src ? src : ".",
                 gguf, cases[c].kind, json);
        int rc = run_cmd(cmd, &out);
        CHECK(rc == 0, "%s: %s", cmd, out);
        free(out);
        qs_vocab *hf = NULL, *gg = NULL;
        qs_error err = {0};
        CHECK(qs_vocab_from_hf_json(&hf, json, &err) == 0 && qs_vocab_from_gguf_path(&gg, gguf, &err) == 0, "%s", err.msg);
        if (!hf || !gg) continue;
        CHECK(hf->pre == cases[c].pre && gg->pre == cases[c].pre, "%s: pre-tokenizer %d / %d", cases[c].kind, hf->pre, gg->pre);
        char label[96];
        snprintf(label, sizeof label, "%s GPL-3", cases[c].kind);
        compare(hf, gg, json, "/usr/share/common-licenses/GPL-3", 1 << 20, label);
        snprintf(label, sizeof label, "%s WikiText-2", cases[c].kind);
        compare(hf, gg, json, wiki, 60000, label);
        snprintf(label, sizeof label, "%s State of the Union", cases[c].kind);
        compare(hf, gg, json, sotu, 60000, label);
        qs_vocab_free(hf);
        qs_vocab_free(gg);
    }
    /* an unknown Split pattern: refused, naming the file */
    char bad[1200], cmd[4096], *out = NULL;
    snprintf(bad, sizeof bad, "%s/odd.json", dir);
    snprintf(cmd, sizeof cmd, "sed 's/{1,3}/{1,4}/' '%s/llama3.json' > '%s'", dir, bad);
    CHECK(run_cmd(cmd, &out) == 0, "sed: %s", out);
    free(out);
    qs_vocab *v = NULL;
    qs_error err = {0};
    CHECK(qs_vocab_from_hf_json(&v, bad, &err) == QS_ERR_INPUT && strstr(err.msg, bad) && strstr(err.msg, "Split"),
          "an unknown pattern refused: %s", err.msg);
    qs_vocab_free(v);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &out);
    free(out);
    free(wiki);
    free(sotu);
    free(dir);
    return test_done("test_hf_bpe_pretokenizers");
}
