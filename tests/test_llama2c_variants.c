/* llama2.c checkpoints in every layout qsense reads give the same model: the real legacy
 * stories260K.bin (tied classifier), the same weights rewritten with a separate classifier
 * (negative vocab_size, wcls appended), and as a "version 1" export (256-byte header, norms
 * first). Same tensors, same perplexity. */
#include <string.h>

#include "core/qs_file.h"
#include "engine/ppl.h"
#include "io/model.h"
#include "tests/test_util.h"
#include "tok/vocab.h"

static double ppl(const char *path, const char *tok) {
    qs_error err = {0};
    qs_model_options opt = {tok};
    qs_model *m = NULL;
    qs_vocab *v = NULL;
    qs_engine *e = NULL;
    char *text;
    size_t n, n_ids;
    int *ids = NULL;
    qs_ppl_result r = {0};
    int ok = qs_model_open(&m, path, &opt, &err) == 0 && qs_vocab_for_model(&v, m, &err) == 0 &&
             qs_read_file("/usr/share/common-licenses/GPL-3", &text, &n, &err) == 0 &&
             qs_tokenize(v, text, n, 1, &ids, &n_ids, &err) == 0 && qs_engine_new(&e, m, 0, &err) == 0 &&
             qs_ppl_run(e, ids, n_ids, 128, v->bos, 20, 0, NULL, &r, &err) == 0;
    CHECK(ok, "%s: %s", path, err.msg);
    if (ok) CHECK(strcmp(m->format, "") != 0 && m->arch.tied_output == (strstr(path, "untied") == NULL), "%s tied flag", path);
    if (ok) free(text);
    free(ids);
    qs_engine_free(e);
    qs_vocab_free(v);
    qs_model_close(m);
    return r.ppl;
}

int main(void) {
    char *bin = model_path("stories260K.bin"), *tok = model_path("tok512.bin"), *dir = temp_dir(), *data;
    size_t size;
    qs_error err = {0};
    CHECK(qs_read_file(bin, &data, &size, &err) == 0, "%s", err.msg);
    int32_t h[7];
    memcpy(h, data, 28);
    const size_t D = (size_t)h[0], H = (size_t)h[1], L = (size_t)h[2], KV = D / (size_t)h[3] * (size_t)h[4], V = (size_t)h[5];
    const float *w = (const float *)(data + 28);
    /* legacy offsets, in floats */
    const float *emb = w, *att = emb + V * D, *wq = att + L * D, *wk = wq + L * D * D, *wv = wk + L * D * KV,
                *wo = wv + L * D * KV, *ffn = wo + L * D * D, *w1 = ffn + L * D, *w2 = w1 + L * H * D, *w3 = w2 + L * D * H,
                *fin = w3 + L * H * D;
    char untied[600], v1[600];
    snprintf(untied, sizeof untied, "%s/untied.bin", dir);
    snprintf(v1, sizeof v1, "%s/v1.bin", dir);
    FILE *f = fopen(untied, "wb");
    int32_t hu[7];
    memcpy(hu, h, 28);
    hu[5] = -hu[5];
    fwrite(hu, 4, 7, f);
    fwrite(data + 28, 1, size - 28, f);
    fwrite(emb, 4, V * D, f); /* wcls: a separate copy of the embedding */
    fclose(f);
    f = fopen(v1, "wb");
    uint8_t head[256] = {0};
    uint32_t magic = 0x616b3432;
    int32_t version = 1;
    memcpy(head, &magic, 4);
    memcpy(head + 4, &version, 4);
    memcpy(head + 8, h, 28);
    head[36] = 1; /* shared classifier */
    fwrite(head, 1, 256, f);
    fwrite(att, 4, L * D, f);
    fwrite(ffn, 4, L * D, f);
    fwrite(fin, 4, D, f);
    fwrite(emb, 4, V * D, f);
    fwrite(wq, 4, L * D * D, f);
    fwrite(wk, 4, L * D * KV, f);
    fwrite(wv, 4, L * D * KV, f);
    fwrite(wo, 4, L * D * D, f);
    fwrite(w1, 4, L * H * D, f);
    fwrite(w2, 4, L * D * H, f);
    fwrite(w3, 4, L * H * D, f);
    fclose(f);
    double base = ppl(bin, tok);
    CHECK(base > 50 && base < 200, "stories260K.bin ppl %g", base);
    CHECK_REL(ppl(untied, tok), base, 1e-9, "separate classifier");
    CHECK_REL(ppl(v1, tok), base, 1e-9, "version 1 export");
    char cmd[700], *o;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &o);
    free(o);
    free(data); free(bin); free(tok); free(dir);
    return test_done("test_llama2c_variants");
}
