/* The tokenizers produce llama.cpp's ids: GPL-3 with stories260K's vocabulary (from the GGUF
 * and from llama2.c's tok512.bin) against llama-tokenize's output in the reference file, and
 * every case of llama.cpp's own tokenizer test vectors (llama SPM 32k, GPT-2 BPE, Llama 3 and
 * Qwen2 BPE). */
#include <string.h>

#include "core/qs_file.h"
#include "io/gguf.h"
#include "tests/test_util.h"
#include "tok/vocab.h"

static void check_gpl3(const qs_vocab *v, const char *label) {
    char *ref_path = reference_path("stories260K-gpl3-llamacpp.json");
    cJSON *ref = read_json(ref_path);
    CHECK(ref != NULL, "cannot read %s", ref_path);
    if (!ref) return;
    cJSON *tk = cJSON_GetObjectItem(ref, "tokenization");
    cJSON *first = cJSON_GetObjectItem(tk, "first_128_ids"), *last = cJSON_GetObjectItem(tk, "last_16_ids");
    const char *text_path = cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "text"), "path")->valuestring;
    char *text;
    size_t n;
    CHECK(qs_read_file(text_path, &text, &n, NULL) == 0, "read %s", text_path);
    int *ids;
    size_t n_ids;
    qs_error err = {0};
    CHECK(qs_tokenize(v, text, n, 1, &ids, &n_ids, &err) == 0, "%s", err.msg);
    CHECK((double)n_ids == json_num(tk, "n_tokens_including_bos"), "%s: %zu tokens, llama.cpp has %.0f", label, n_ids,
          json_num(tk, "n_tokens_including_bos"));
    int bad = 0;
    for (int i = 0; i < cJSON_GetArraySize(first) && (size_t)i < n_ids; i++)
        bad += ids[i] != cJSON_GetArrayItem(first, i)->valueint;
    int nl = cJSON_GetArraySize(last);
    for (int i = 0; i < nl && (size_t)nl <= n_ids; i++) bad += ids[n_ids - (size_t)nl + (size_t)i] != cJSON_GetArrayItem(last, i)->valueint;
    CHECK(bad == 0, "%s: %d of the first 128 / last 16 ids differ from llama.cpp's", label, bad);
    free(ids);
    free(text);
    cJSON_Delete(ref);
    free(ref_path);
}

/* llama.cpp's test-tokenizer-0 vectors: cases in .inp separated by "\n__ggml_vocab_test__\n",
 * expected ids in .out (one line per case), tokenized without special tokens */
static void check_vectors_at(const char *gguf_path, const char *vocab_file) {
    char inp[1100], outp[1100];
    snprintf(inp, sizeof inp, "%s.inp", gguf_path);
    snprintf(outp, sizeof outp, "%s.out", gguf_path);
    qs_vocab *v = NULL;
    qs_error err = {0};
    CHECK(qs_vocab_from_gguf_path(&v, gguf_path, &err) == 0, "%s", err.msg);
    char *in_text, *out_text;
    CHECK(qs_read_file(inp, &in_text, NULL, NULL) == 0 && qs_read_file(outp, &out_text, NULL, NULL) == 0, "read %s", inp);
    if (!v) return;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *cur = in_text, *line = out_text;
    int cases = 0, failed = 0;
    for (char *end; (end = strstr(cur, sep)); cur = end + strlen(sep)) {
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = 0;
        int *ids;
        size_t n_ids;
        qs_tokenize(v, cur, (size_t)(end - cur), 0, &ids, &n_ids, &err);
        char got[8192] = "";
        size_t k = 0;
        for (size_t i = 0; i < n_ids && k < sizeof got - 16; i++) k += (size_t)snprintf(got + k, sizeof got - k, " %d", ids[i]);
        /* .out lines start with a space before each id */
        const char *want = line;
        int ok = strcmp(got, want) == 0 || (n_ids == 0 && want[0] == 0);
        if (!ok) {
            failed++;
            fprintf(stderr, "  %s case %d: %.*s\n    got: %s\n   want: %s\n", vocab_file, cases, (int)(end - cur), cur, got,
                    want);
        }
        free(ids);
        cases++;
        line = nl + 1;
    }
    CHECK(cases == 46, "%s: parsed %d cases, expected 46", vocab_file, cases);
    CHECK(failed == 0, "%s: %d of %d cases differ from llama.cpp", vocab_file, failed, cases);
    free(in_text);
    free(out_text);
    qs_vocab_free(v);
}

static void check_vectors(const char *vocab_file) {
    char *gguf_path = model_path(vocab_file);
    check_vectors_at(gguf_path, vocab_file);
    free(gguf_path);
}

int main(void) {
    qs_error err = {0};
    char *p = model_path("stories260K.gguf");
    qs_vocab *v = NULL;
    CHECK(qs_vocab_from_gguf_path(&v, p, &err) == 0, "%s", err.msg);
    if (v) {
        CHECK(v->type == QS_VOCAB_SPM && v->n_tokens == 512, "stories260K vocab type %d, %d tokens", v->type, v->n_tokens);
        check_gpl3(v, "stories260K.gguf vocab");
    }
    char *tb = model_path("tok512.bin");
    qs_vocab *v2 = NULL;
    CHECK(qs_vocab_from_llama2c(&v2, tb, 512, &err) == 0, "%s", err.msg);
    if (v2) {
        check_gpl3(v2, "tok512.bin");
        /* the same 512 pieces and scores as the GGUF */
        int same = 1;
        for (int i = 0; v && i < 512; i++)
            same &= v->len[i] == v2->len[i] && !memcmp(v->text[i], v2->text[i], v->len[i]) && v->scores[i] == v2->scores[i];
        CHECK(same, "tok512.bin pieces/scores differ from the GGUF vocabulary");
    }
    check_vectors("llamacpp-vocab/ggml-vocab-llama-spm.gguf");
    check_vectors("llamacpp-vocab/ggml-vocab-gpt-2.gguf");
    /* Llama 3's and Qwen2's byte-level BPE (pre-tokenizers "llama-bpe" and "qwen2"), from the same
     * llama.cpp source; scripts/fetch_models.sh puts them in $QSENSE_CACHE/llamacpp-vocab */
    const char *cache = getenv("QSENSE_CACHE");
    const char *more[] = {"ggml-vocab-llama-bpe.gguf", "ggml-vocab-qwen2.gguf"};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/llamacpp-vocab/%s", cache ? cache : ".", more[i]);
        check_vectors_at(path, more[i]);
    }
    qs_vocab_free(v);
    qs_vocab_free(v2);
    free(p);
    free(tb);
    return test_done("test_tokenizer_matches_llamacpp");
}
