/* qsense quantize from files that are not GGUF, checked against the GGUFs llama.cpp's own
 * tools made from the same weights:
 *  - llama2.c: stories260K.bin + tok512.bin with an all-f32 plan gives every tensor of
 *    stories260K.gguf (llama.cpp's llama-convert-llama2c-to-ggml) byte for byte, and the same
 *    vocabulary (pieces, scores, types); the tied classifier is left to token_embd, which
 *    llama.cpp reuses; perplexity and logits identical (KL 0). A block-type plan passes plan
 *    verify. Without a tokenizer, a clear error naming the file it looked for.
 *  - Hugging Face: SmolLM2-135M, exported from its llama.cpp GGUF to safetensors (f32, Q/K rows
 *    in Hugging Face's RoPE order) by tests/oracle/gguf_to_hf.py, quantized with a plan of the
 *    GGUF's own types, gives all 272 tensors byte-identical to that GGUF (the attn_q / attn_k
 *    rows put back in llama.cpp's order) and its tokenizer: tokens, types and 48,900 merges;
 *    the same when rows are expanded a few at a time (a head of attn_q at a time, 65 rows of
 *    the others), as an 8B model's are.
 *    stories260K exported the same way has a SentencePiece tokenizer.json, which a llama.cpp
 *    vocabulary cannot express: refused, naming the way out. */
#include <string.h>

#include "core/qs_dtype.h"
#include "io/model.h"
#include "quantize/quantize.h"
#include "reports/planner/plan.h"
#include "tests/test_util.h"
#include "tok/vocab.h"

static char dir[512];

/* a plan giving every tensor of the model at path its type in ref (a GGUF), or fmt when ref is NULL */
static void write_plan(const char *path, const char *tokenizer, const char *ref, const char *fmt, const char *out) {
    qs_model *m = NULL, *r = NULL;
    qs_error err = {0};
    const qs_model_options o = {tokenizer};
    char fp[65];
    CHECK(qs_model_open(&m, path, &o, &err) == 0 && qs_model_fingerprint(m, fp, &err) == 0, "%s", err.msg);
    if (ref) CHECK(qs_model_open(&r, ref, NULL, &err) == 0, "%s", err.msg);
    FILE *f = fopen(out, "w");
    if (!m || !f || (ref && !r)) return;
    fprintf(f, "{\"qsense_plan_version\": \"1\", \"model\": {\"sha256\": \"%s\"}, \"target\": \"llama.cpp\", \"tensors\": [", fp);
    for (int i = 0; i < m->n_tensors; i++) {
        const char *type = fmt;
        if (r) {
            const qs_tensor *t = qs_model_find(r, m->tensors[i].name);
            type = t ? qs_dtype_name(t->type) : "missing";
        } else if (!strcmp(fmt, "mixed")) { /* block types where rows fit them, f16 elsewhere, norms f32 */
            const qs_tensor *t = &m->tensors[i];
            type = t->n_dims < 2 ? "f32" : t->ne[0] % 32 ? "f16" : strstr(t->name, "attn") ? "q5_0" : "q8_0";
        }
        fprintf(f, "%s{\"name\": \"%s\", \"format\": \"%s\"}", i ? ", " : "", m->tensors[i].name, type);
    }
    fprintf(f, "]}\n");
    fclose(f);
    qs_model_close(m);
    qs_model_close(r);
}

/* every tensor of a is in b with the same type, shape and bytes; returns how many matched */
static int same_tensors(const char *pa, const char *pb, int *n_a) {
    qs_model *a = NULL, *b = NULL;
    qs_error err = {0};
    CHECK(qs_model_open(&a, pa, NULL, &err) == 0 && qs_model_open(&b, pb, NULL, &err) == 0, "%s", err.msg);
    int same = 0;
    *n_a = a ? a->n_tensors : -1;
    for (int i = 0; a && b && i < a->n_tensors; i++) {
        const qs_tensor *x = &a->tensors[i], *y = qs_model_find(b, x->name);
        int ok = y && x->type == y->type && x->nbytes == y->nbytes && !memcmp(x->ne, y->ne, sizeof x->ne) &&
                 !memcmp(x->data, y->data, x->nbytes);
        if (!ok) fprintf(stderr, "  %s differs\n", x->name);
        same += ok;
    }
    qs_model_close(a);
    qs_model_close(b);
    return same;
}

/* the two models' vocabularies agree piece for piece (and in scores, types and merges) */
static void same_vocab(const char *pa, const char *pb) {
    qs_model *a = NULL, *b = NULL;
    qs_vocab *va = NULL, *vb = NULL;
    qs_error err = {0};
    CHECK(qs_model_open(&a, pa, NULL, &err) == 0 && qs_model_open(&b, pb, NULL, &err) == 0 &&
              qs_vocab_for_model(&va, a, &err) == 0 && qs_vocab_for_model(&vb, b, &err) == 0,
          "%s", err.msg);
    if (va && vb) {
        int diff = va->n_tokens != vb->n_tokens || va->type != vb->type || va->pre != vb->pre || va->n_merges != vb->n_merges ||
                   va->bos != vb->bos || va->add_bos != vb->add_bos;
        for (int i = 0; !diff && i < va->n_tokens; i++)
            diff = va->len[i] != vb->len[i] || memcmp(va->text[i], vb->text[i], va->len[i]) || va->ttype[i] != vb->ttype[i] ||
                   (va->scores && vb->scores && va->scores[i] != vb->scores[i]);
        for (int i = 0; !diff && i < va->n_merges; i++) diff = strcmp(va->merge_list[i], vb->merge_list[i]) != 0;
        CHECK(!diff, "vocabularies of %s and %s differ (%d vs %d tokens, %d vs %d merges)", pa, pb, va->n_tokens, vb->n_tokens,
              va->n_merges, vb->n_merges);
    }
    qs_vocab_free(va);
    qs_vocab_free(vb);
    qs_model_close(a);
    qs_model_close(b);
}


int main(void) {
    char *d = temp_dir(), *bin = model_path("stories260K.bin"), *tok = model_path("tok512.bin"), *gguf = model_path("stories260K.gguf");
    snprintf(dir, sizeof dir, "%s", d);
    char plan[700], out[700], cmd[8192], *o;
    const char *gpl = "/usr/share/common-licenses/GPL-3";

    /* llama2.c -> GGUF, all f32: llama.cpp's converter's tensors and vocabulary */
    snprintf(plan, sizeof plan, "%s/f32.json", dir);
    snprintf(out, sizeof out, "%s/l2c.gguf", dir);
    write_plan(bin, tok, NULL, "f32", plan);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --tokenizer '%s' --plan '%s' -o '%s'", qsense_bin(), bin, tok, plan, out);
    CHECK(run_cmd(cmd, &o) == 0, "%s: %s", cmd, o);
    free(o);
    int n;
    CHECK(same_tensors(out, gguf, &n) == n && n == 47, "llama2.c -> GGUF: %d tensors, not all as llama.cpp's converter wrote them", n);
    same_vocab(out, gguf);
    CHECK(qsense_kl(out, gguf, gpl, 128, 0) == 0, "identical weights and vocabulary give identical logits");
    /* a block-type plan, verified */
    snprintf(plan, sizeof plan, "%s/mixed.json", dir);
    snprintf(out, sizeof out, "%s/l2c-mixed.gguf", dir);
    write_plan(bin, tok, NULL, "mixed", plan);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --tokenizer '%s' --plan '%s' -o '%s' && '%s' plan verify '%s' '%s'", qsense_bin(), bin,
             tok, plan, out, qsense_bin(), out, plan);
    CHECK(run_cmd(cmd, &o) == 0 && strstr(o, "every tensor has its planned type"), "%s: %s", cmd, o);
    free(o);
    const double kl_mixed = qsense_kl(out, gguf, gpl, 128, 0);
    CHECK(kl_mixed > 0 && kl_mixed < 0.05, "q5_0/q8_0/f16 from llama2.c: KL %.5f", kl_mixed);
    /* no tokenizer beside the checkpoint */
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/lonely.bin' && '%s' quantize '%s/lonely.bin' --plan '%s/f32.json' -o '%s/x.gguf'", bin, dir,
             qsense_bin(), dir, dir, dir);
    CHECK(run_cmd(cmd, &o) == 3 && strstr(o, "tokenizer.bin"), "llama2.c without a tokenizer: %s", o);
    free(o);

    /* Hugging Face -> GGUF */
    const char *cache = getenv("QSENSE_CACHE"), *src = getenv("QSENSE_SRC");
    char py[600], smol[700], hf[700];
    snprintf(py, sizeof py, "%s/venv/bin/python", cache ? cache : "/nonexistent");
    snprintf(hf, sizeof hf, "%s/stories-hf", dir);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/gguf_to_hf.py' '%s' '%s' --dtype f32 --shards 1", py, src ? src : ".", gguf, hf);
    CHECK(run_cmd(cmd, &o) == 0, "gguf_to_hf: %s", o);
    free(o);
    write_plan(hf, NULL, NULL, "f32", plan);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --plan '%s' -o '%s/x.gguf'", qsense_bin(), hf, plan, dir);
    CHECK(run_cmd(cmd, &o) == 3 && strstr(o, "convert_hf_to_gguf"), "SentencePiece tokenizer.json: %s", o);
    free(o);

    snprintf(smol, sizeof smol, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", cache ? cache : "");
    snprintf(hf, sizeof hf, "%s/smollm2-hf", dir);
    snprintf(cmd, sizeof cmd, "'%s' '%s/tests/oracle/gguf_to_hf.py' '%s' '%s' --dtype f32 --shards 2", py, src ? src : ".", smol, hf);
    CHECK(run_cmd(cmd, &o) == 0, "gguf_to_hf: %s", o);
    free(o);
    snprintf(plan, sizeof plan, "%s/smol.json", dir);
    snprintf(out, sizeof out, "%s/smol.gguf", dir);
    write_plan(hf, NULL, smol, NULL, plan);
    snprintf(cmd, sizeof cmd, "'%s' quantize '%s' --plan '%s' -o '%s' && '%s' plan verify '%s' '%s'", qsense_bin(), hf, plan, out,
             qsense_bin(), out, plan);
    CHECK(run_cmd(cmd, &o) == 0, "%s: %s", cmd, o);
    free(o);
    CHECK(same_tensors(out, smol, &n) == n && n == 272, "SmolLM2 from safetensors: %d tensors, not all as in its llama.cpp GGUF", n);
    same_vocab(out, smol);
    /* rows a block at a time: 150,000 bytes hold 65 rows of 576, rounded down to one 64-row head where
     * RoPE's order is redone head by head */
    qs_plan *p = NULL;
    qs_error err = {0};
    qs_quantize_result res;
    const qs_quantize_options small = {.quiet = 1, .block_bytes = 150000};
    snprintf(out, sizeof out, "%s/smol-blocks.gguf", dir);
    CHECK(qs_plan_read_json(&p, plan, &err) == 0 && qs_quantize_gguf(hf, p, out, &small, &res, &err) == 0, "%s",
          err.msg);
    qs_plan_free(p);
    CHECK(same_tensors(out, smol, &n) == n && n == 272,
          "SmolLM2 from safetensors, rows in blocks: %d tensors, not all as in its GGUF", n);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &o);
    free(o);
    free(d); free(bin); free(tok); free(gguf);
    return test_done("test_quantize_from_llama2c_and_hf");
}
