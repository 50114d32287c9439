/* qsense ppl: perplexity of a model on a text file, llama-perplexity's convention. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/qs_blas.h"
#include "core/qs_file.h"
#include "core/qs_progress.h"
#include "engine/compare.h"
#include "engine/ppl.h"
#include "engine/site_quant.h"
#include "io/model.h"
#include "tok/vocab.h"

static void help(void) {
    printf("usage: qsense ppl MODEL --text FILE [--ctx N] [--chunks N] [--batch N] [--threads T]\n"
           "                  [--tokenizer FILE]"
           "                  [--base BASE_MODEL] [--act FORMAT] [--kv-cache FORMAT] [--llamacpp-numerics]\n"
           "                  [--json] [--quiet]\n"
           "\n"
           "Perplexity of MODEL on the text in FILE, computed as llama-perplexity does: the tokens (BOS\n"
           "first) are cut into chunks of N, each chunk starts with BOS and runs from an empty cache,\n"
           "and only the second half of each chunk is scored. Prints PPL +/- its standard error.\n"
           "\n"
           "  --text FILE       text to evaluate (required)\n"
           "  --ctx N           chunk length in tokens (default 512, or the model's training\n"
           "                    context if smaller)\n"
           "  --chunks N        evaluate only the first N chunks\n"
           "  --batch N         chunks that pass each layer together: each weight is expanded\n"
           "                    from its stored blocks once per batch (default: as many as fit\n"
           "                    512 MiB of activations and half the model's size, at most 4096\n"
           "                    tokens; 1: chunk by chunk).\n"
           "                    The figures do not depend on it\n"
           "  --threads T       threads (default: all cores)\n"
           "  --tokenizer FILE  tokenizer.bin (llama2.c), tokenizer.json or a GGUF vocabulary\n"
           "                    (default: the model's own, or tokenizer.bin beside a llama2.c model)\n"
           "  --base MODEL      also compare MODEL with BASE_MODEL on the same chunks, as\n"
           "                    llama-perplexity --kl-divergence does: mean KL(base || model) over the\n"
           "                    full vocabulary (+/- its standard error, p99, max), how often the top\n"
           "                    token is the same, the RMS change of the true token's probability,\n"
           "                    and the perplexity ratio\n"
           "  --act FORMAT      quantize the input of every linear layer in the blocks with a dynamic\n"
           "                    activation format (a-int8-token, a-fp8-e4m3-token, a-int4-g128,\n"
           "                    a-mxfp4, a-nvfp4), as W8A8 / W4A4 deployments do; the output head's\n"
           "                    input stays exact (llm-compressor's recipes leave lm_head alone).\n"
           "                    Static formats need calibration: sweep them with qsense profile\n"
           "  --kv-cache FORMAT  keys and values stored in a KV-cache format: kv-q8_0, kv-q4_0,\n"
           "                    kv-q4_1, kv-q5_0, kv-q5_1, kv-iq4_nl (llama.cpp's -ctk/-ctv), kv-f16,\n"
           "                    kv-fp8-e4m3, kv-fp8-e5m2 (vLLM's uncalibrated fp8 cache)\n"
           "                    With --base, only MODEL runs with --act and --kv-cache: the KL is\n"
           "                    what they (and MODEL's weights) cost against BASE\n"
           "  --llamacpp-numerics  round activations as llama.cpp's CPU backend does (q8 next to\n"
           "                    quantized weights, f16 next to f16 weights and in the KV cache), to\n"
           "                    reproduce llama-perplexity's figures; default: exact f32 arithmetic\n"
           "  --json            print one JSON object: ppl, stderr, n_tokens, n_chunks, n_scored, batch,\n"
           "                    ctx, seconds, tokens_per_second\n"
           "  --quiet           no progress on stderr\n");
}

typedef struct {
    qs_progress pr;
    char extra[64];
} progress_ctx;

/* progress in hundredths of a chunk: a batch of a large model's chunks takes minutes to pass
 * the layers before its first chunk is scored */
static void on_chunk(void *user, int chunk, int n_chunks, double running, double elapsed) {
    (void)elapsed;
    progress_ctx *p = user;
    snprintf(p->extra, sizeof p->extra, "%d/%d chunks, running ppl %.4f", chunk, n_chunks, running);
    qs_progress_update(&p->pr, 100L * chunk, p->extra);
}

static void on_layer(void *user, double done, int n_chunks, double elapsed) {
    (void)n_chunks;
    (void)elapsed;
    progress_ctx *p = user;
    qs_progress_update(&p->pr, (long)(100.0 * done), p->extra[0] ? p->extra : NULL);
}

static void on_compare_chunk(void *user, int chunk, int n) {
    (void)n;
    qs_progress_update(user, chunk, NULL);
}

/* qsense ppl MODEL --base BASE: KL divergence and friends, llama-perplexity's convention */
static int compare(const char *base_path, const char *tok_path, const qs_model *m, qs_engine *e, const int *ids,
                   size_t n_ids, int ctx, int bos, int chunks, int batch, int threads, int llamacpp, int json,
                   int quiet, const char *model_path, const char *text_path, qs_error *err) {
    qs_model *bm = NULL;
    qs_engine *be = NULL;
    qs_model_options opt = {tok_path};
    int rc = qs_model_open(&bm, base_path, &opt, err);
    if (!rc && bm->arch.n_vocab != m->arch.n_vocab)
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: vocabulary of %d tokens, but %s has %d: not the same model family", base_path,
                       bm->arch.n_vocab, model_path, m->arch.n_vocab);
    if (!rc) rc = qs_engine_new(&be, bm, threads, err);
    if (!rc) {
        qs_engine_set_llamacpp_numerics(be, llamacpp);
        qs_progress pr;
        int n_chunks = (int)(n_ids / (size_t)ctx);
        if (chunks && chunks < n_chunks) n_chunks = chunks;
        qs_progress_start(&pr, "ppl --base: chunk", n_chunks, quiet);
        qs_compare_result r;
        rc = qs_compare_run(be, e, ids, n_ids, ctx, bos, chunks, batch, on_compare_chunk, &pr, &r, err);
        if (rc == QS_ERR_INPUT) qs_error_prefix(err, "%s", text_path);
        qs_progress_end(&pr);
        if (!rc && json) {
            printf("{\"model\": ");
            cli_json_str(model_path);
            printf(", \"base\": ");
            cli_json_str(base_path);
            printf(", \"text\": ");
            cli_json_str(text_path);
            printf(", \"ctx\": %d, \"n_chunks\": %d, \"n_scored\": %zu, \"ppl\": %.6f, \"ppl_base\": %.6f, "
                   "\"ppl_ratio\": %.6f, \"ppl_ratio_se\": %.6f, \"kl_mean\": %.6f, \"kl_se\": %.6f, \"kl_p99\": %.6f, "
                   "\"kl_max\": %.6f, \"same_top1\": %.6f, \"same_top1_se\": %.6f, \"rms_dp\": %.6f, \"seconds\": %.3f}\n",
                   ctx, r.n_chunks, r.n_scored, r.ppl, r.ppl_base, r.ppl_ratio, r.ppl_ratio_se, r.kl_mean, r.kl_se, r.kl_p99,
                   r.kl_max, r.same_top1, r.same_top1_se, r.rms_dp, r.seconds);
        } else if (!rc) {
            printf("model:   %s\nbase:    %s\ntext:    %s (%d chunks of %d, %zu scored)\n", model_path, base_path, text_path,
                   r.n_chunks, ctx, r.n_scored);
            printf("PPL = %.4f (base %.4f), ratio %.5f +/- %.5f\n", r.ppl, r.ppl_base, r.ppl_ratio, r.ppl_ratio_se);
            printf("KL divergence: mean %.6f +/- %.6f, p99 %.6f, max %.6f\n", r.kl_mean, r.kl_se, r.kl_p99, r.kl_max);
            printf("same top token: %.3f %% +/- %.3f %%; RMS change of p(true token): %.3f %%\n", 100 * r.same_top1,
                   100 * r.same_top1_se, 100 * r.rms_dp);
        }
    }
    qs_engine_free(be);
    qs_model_close(bm);
    return rc;
}

/* --act and --kv-cache on the engine: *out NULL when neither was given */
static int site_formats(qs_engine *e, const char *act, const char *kv, int llamacpp, qs_site_quant **out, qs_error *err) {
    *out = NULL;
    if (!act && !kv) return 0;
    const qs_act_format *af = act ? qs_act_format_find(act, err) : NULL, *kf = kv ? qs_act_format_find(kv, err) : NULL;
    if ((act && !af) || (kv && !kf)) return QS_ERR_USAGE;
    if (af && (af->kv || af->is_static))
        return qs_errorf(err, QS_ERR_USAGE, "--act %s: %s", act,
                         af->kv ? "a KV-cache format; give it to --kv-cache"
                                : "a static format takes its scales from calibration: sweep it with qsense profile --act-formats");
    if (kf && !kf->kv) return qs_errorf(err, QS_ERR_USAGE, "--kv-cache %s: an activation format; give it to --act", kv);
    qs_site_quant *q;
    int rc = qs_site_quant_new(&q, e, err);
    for (int s = QS_SITE_ATTN_IN; s <= QS_SITE_FFN_DOWN_IN && af && !rc; s++) rc = qs_site_quant_set_input(q, -1, s, af, NAN, err);
    if (!rc && kf) rc = qs_site_quant_set_kv(q, -1, kf, err);
    if (rc) {
        qs_site_quant_free(q);
        return rc;
    }
    qs_site_quant_set_llamacpp_numerics(q, llamacpp);
    qs_site_quant_attach(e, q);
    *out = q;
    return 0;
}

int cmd_ppl(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL, *tok_path = NULL, *base_path = NULL, *act = NULL, *kv = NULL;
    int ctx = 0, threads = 0, chunks = 0, batch = 0, json = 0, quiet = 0, llamacpp = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--llamacpp-numerics")) llamacpp = 1;
        else if (!strcmp(a, "--text")) { if (!val) return cli_usage("ppl", "--text needs a file"); text_path = val; i++; }
        else if (!strcmp(a, "--tokenizer")) { if (!val) return cli_usage("ppl", "--tokenizer needs a file"); tok_path = val; i++; }
        else if (!strcmp(a, "--act")) { if (!val) return cli_usage("ppl", "--act needs a format"); act = val; i++; }
        else if (!strcmp(a, "--kv-cache")) { if (!val) return cli_usage("ppl", "--kv-cache needs a format"); kv = val; i++; }
        else if (!strcmp(a, "--base")) { if (!val) return cli_usage("ppl", "--base needs a model"); base_path = val; i++; }
        else if (!strcmp(a, "--ctx")) { if ((ctx = cli_int("ppl", a, val, 4, 1 << 20)) < 0) return 2; i++; }
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) { if ((threads = cli_int("ppl", a, val, 1, 1024)) < 0) return 2; i++;
        } else if (!strcmp(a, "--batch")) {
            if ((batch = cli_int("ppl", a, val, 1, 1 << 20)) < 0) return 2;
            i++;
        } else if (!strcmp(a, "--chunks")) {
            if ((chunks = cli_int("ppl", a, val, 1, 1 << 30)) < 0) return 2;
            i++;
        } else if (a[0] == '-')
            return cli_usage("ppl", "unknown option '%s'", a);
        else if (!model_path) model_path = a;
        else return cli_usage("ppl", "unexpected argument '%s'", a);
    }
    if (!model_path) return cli_usage("ppl", "missing MODEL");
    if (!text_path) return cli_usage("ppl", "missing --text FILE");

    qs_error err = {0};
    qs_model *m = NULL;
    qs_vocab *v = NULL;
    qs_engine *e = NULL;
    qs_site_quant *sq = NULL;
    char *text = NULL;
    int *ids = NULL;
    size_t n_text = 0, n_ids = 0;
    int rc;
    qs_model_options opt = {tok_path};
    if ((rc = qs_model_open(&m, model_path, &opt, &err)) || (rc = qs_vocab_for_model(&v, m, &err)) ||
        (rc = qs_read_file(text_path, &text, &n_text, &err)))
        goto out;
    if (n_text == 0) {
        rc = qs_errorf(&err, QS_ERR_INPUT, "%s: the text file is empty", text_path);
        goto out;
    }
    if (!ctx) ctx = (m->arch.ctx_train > 0 && m->arch.ctx_train < 512) ? m->arch.ctx_train : 512;
    if ((rc = qs_tokenize(v, text, n_text, 1, &ids, &n_ids, &err))) goto out;
    if (n_ids < 2 * (size_t)ctx) {
        rc = qs_errorf(&err, QS_ERR_INPUT, "%s: %zu tokens is too short for --ctx %d: perplexity needs at least %d tokens",
                       text_path, n_ids, ctx, 2 * ctx);
        goto out;
    }
    if ((rc = qs_engine_new(&e, m, threads, &err))) goto out;
    qs_engine_set_llamacpp_numerics(e, llamacpp);
    if ((rc = site_formats(e, act, kv, llamacpp, &sq, &err))) goto out;
    if (base_path) {
        rc = compare(base_path, tok_path, m, e, ids, n_ids, ctx, v->add_bos ? v->bos : -1, chunks, batch, threads,
                     llamacpp, json, quiet, model_path, text_path, &err);
        goto out;
    }
    progress_ctx pc = {0};
    int n_chunks = (int)(n_ids / (size_t)ctx);
    if (chunks && chunks < n_chunks) n_chunks = chunks;
    qs_progress_start(&pc.pr, "ppl", 100L * n_chunks, quiet);
    pc.pr.percent_only = 1;
    qs_ppl_result r;
    const qs_ppl_progress prog = {on_chunk, on_layer, &pc};
    rc = qs_ppl_run(e, ids, n_ids, ctx, v->add_bos ? v->bos : -1, chunks, batch, &prog, &r, &err);
    qs_progress_end(&pc.pr);
    if (!rc && sq && qs_site_quant_failed(sq)) rc = qs_errorf(&err, QS_ERR_INTERNAL, "out of memory quantizing activations");
    if (rc) goto out;
    if (json) {
        printf("{\"model\": ");
        cli_json_str(model_path);
        printf(", \"text\": ");
        cli_json_str(text_path);
        printf(
            ", \"ppl\": %.6f, \"stderr\": %.6f, \"n_tokens\": %zu, \"n_chunks\": %d, \"n_scored\": %zu, \"ctx\": %d, "
            "\"batch\": %d, \"threads\": %d, \"llamacpp_numerics\": %s, \"seconds\": %.4f, \"tokens_per_second\": "
            "%.2f, "
            "\"blas_core\": \"%s\", \"blas_core_chosen_by\": \"%s\", \"act\": \"%s\", \"kv_cache\": \"%s\"}\n",
            r.ppl, r.ppl_stderr, r.n_tokens, r.n_chunks, r.n_scored, ctx, r.batch_chunks, qs_engine_threads(e),
            llamacpp ? "true" : "false", r.seconds, r.tokens_per_second, qs_blas_core(), qs_blas_how(), act ? act : "",
            kv ? kv : "");
    } else {
        printf("model:   %s (%s)\n", model_path, m->format);
        printf("text:    %s (%zu tokens, %d chunks of %d, %zu scored)\n", text_path, r.n_tokens, r.n_chunks, ctx,
               r.n_scored);
        if (act || kv) printf("quantized activations: %s, KV cache: %s\n", act ? act : "none", kv ? kv : "exact");
        printf("PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_stderr);
        printf("speed:   %.1f tokens/s on %d threads (%.2f s, %d chunks a pass), OpenBLAS %s kernels\n",
               r.tokens_per_second, qs_engine_threads(e), r.seconds, r.batch_chunks, qs_blas_core());
    }
out:
    free(ids);
    free(text);
    qs_engine_free(e);
    qs_site_quant_free(sq);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc ? cli_fail(&err) : 0;
}
