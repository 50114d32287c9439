/* The quantizer driver (see quantize.h). */
#include "quantize/quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/qs_dtype.h"
#include "core/qs_output.h"
#include "core/qs_parallel.h"
#include "core/qs_progress.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "io/model.h"
#include "quant/format.h"
#include "quant/ggml_quant.h"
#include "quantize/awq_fold.h"
#include "quantize/gguf_model_meta.h"
#include "tok/vocab.h"

#define LLAMA_FTYPE_GUESSED 1024

static int dtype_of(const char *fmt) {
    for (int t = 0; t < QS_DT_GGML_COUNT; t++) {
        const qs_dtype_traits *tr = qs_dtype_get(t);
        if (tr && !strcmp(tr->name, fmt)) return t;
    }
    return -1;
}

/* Rows of f32 expanded at a time (qs_quantize_options.block_bytes 0): an 8B model's 525M-value
 * embedding is never whole in f32. */
#define BLOCK_BYTES ((int64_t)32 << 20)

/* Rows per block: as many as block_bytes of f32 holds, whole heads where RoPE's order is redone
 * head by head, the whole of a 1-D tensor (a bias, reordered as one column). */
static int64_t rows_per_block(const qs_tensor *t, int64_t rows, int reorder, int head_dim, int64_t block_bytes) {
    if (t->n_dims < 2) return rows;
    int64_t step = (block_bytes > 0 ? block_bytes : BLOCK_BYTES) / (int64_t)(sizeof(float) * (size_t)t->ne[0]);
    const int64_t unit = reorder && head_dim > 0 ? head_dim : 1;
    step -= step % unit;
    if (step < unit) step = unit;
    return step < rows ? step : rows;
}

/* The activation statistics a weighted or GPTQ format rounds with, in the inputs' scale after
 * an AWQ fold; *imp uniform for a tensor without inputs (an untied embedding: *lookup set). */
static int load_statistics(const qs_tensor *t, const qs_format *fmt, const qs_awq_fold *awq, const char *db_path,
                           const char *fingerprint, float **imp, float **gram, int *lookup, qs_error *err) {
    const int64_t cols = t->ne[0];
    int rc = qs_plan_load_calib(db_path, fingerprint, t->name, cols, fmt->gptq, imp, gram, err);
    if (rc) return rc;
    const float *s = qs_awq_fold_scales(awq, t->name);
    if (s && *imp) /* its inputs arrive divided by s now */
        for (int64_t c = 0; c < cols; c++) {
            (*imp)[c] /= s[c] * s[c];
            for (int64_t k = 0; *gram && k < cols; k++) (*gram)[c * cols + k] /= s[c] * s[k];
        }
    *lookup = !*imp;
    if (!*imp && (*imp = malloc(sizeof(float) * (size_t)cols)))
        for (int64_t c = 0; c < cols; c++) (*imp)[c] = 1.0f; /* uniform, as the profile measured it */
    return *imp ? 0 : qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
}

/* rows [begin, end) of a block rounded into their blocks, on one of the threads */
typedef struct {
    int type;
    const float *f, *imp;
    uint8_t *q;
    int64_t cols;
    uint64_t rb;
} round_job;

static void round_rows(void *ctx, long begin, long end) {
    const round_job *j = ctx;
    const float *f = j->f + (size_t)begin * (size_t)j->cols;
    uint8_t *q = j->q + (size_t)begin * j->rb;
    if (j->imp)
        qs_ggml_quantize_weighted(j->type, f, q, end - begin, j->cols, j->imp);
    else
        qs_ggml_quantize(j->type, f, q, (end - begin) * j->cols);
}

/* Quantizes tensor t into format and appends its blocks to the file being written: a block of
 * rows at a time (GPTQ's rows after the factor of their shared Hessian; whole heads where RoPE's
 * row order is redone), a 1-D tensor whole. */
static int write_tensor(const qs_model *m, const qs_tensor *t, const char *format, const qs_awq_fold *awq,
                        const qs_quantize_options *opt, int threads, const char *fingerprint, qs_progress *pr,
                        int64_t *done, qs_gguf_writer *w, qs_error *err) {
    const char *db_path = opt->db_path;
    const int type = dtype_of(qs_format_stored_type(format));
    const qs_format *fmt = qs_format_find(format, NULL);
    const int64_t cols = t->ne[0], rows = qs_tensor_numel(t) / cols;
    const uint64_t rb = qs_dtype_row_bytes(type, cols);
    const int reorder = qs_llama_needs_row_order(m, t->name);
    const int calib = fmt && qs_format_needs_calib(fmt) && !fmt->awq;
    float *imp = NULL, *gram = NULL;
    int lookup = 0, rc = 0;
    if (calib) rc = load_statistics(t, fmt, awq, db_path, fingerprint, &imp, &gram, &lookup, err);
    const int gptq = calib && fmt->gptq && !lookup;
    /* GPTQ compensates each row along itself given the factor of the inputs' Gram matrix: the
     * factor once, then the rows a block at a time */
    qs_gptq_factor factor = {0};
    const int made = gptq && !rc ? qs_gptq_factor_make(gram, cols, &factor) : 0;
    if (made == -3)
        rc = qs_errorf(err, QS_ERR_INPUT,
                       "tensor '%s': the Gram matrix of its inputs in %s has a non-finite value or is not positive "
                       "definite; re-run the profile",
                       t->name, db_path);
    else if (made)
        rc = qs_errorf(err, QS_ERR_INTERNAL, "tensor '%s': out of memory for GPTQ", t->name);
    const int64_t step = rows_per_block(t, rows, reorder, m->arch.head_dim, opt->block_bytes);
    float *f = rc ? NULL : malloc(sizeof(float) * (size_t)(step * cols));
    uint8_t *q = rc ? NULL : malloc(rb * (size_t)step);
    if (!rc && (!f || !q)) rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory for %s", t->name);
    for (int64_t r0 = 0; r0 < rows && !rc; r0 += step) {
        const int64_t n = rows - r0 < step ? rows - r0 : step;
        qs_tensor_dequantize_rows(t, r0, n, f);
        qs_awq_fold_tensor(awq, t, f, r0, n, cols); /* W diag(s), and 1/s where an input is made */
        /* statistics (importance, Gram) are per input column: reordering rows leaves them valid */
        const int64_t perm_rows = t->n_dims == 1 ? cols : n, perm_cols = t->n_dims == 1 ? 1 : cols; /* a bias */
        if (reorder && qs_llama_rows_for_gguf(f, perm_rows, perm_cols, m->arch.head_dim)) {
            rc = qs_errorf(err, QS_ERR_INPUT, "tensor '%s': %lld rows are not whole heads of %d", t->name,
                           (long long)rows, m->arch.head_dim);
            break;
        }
        if (gptq) {
            const int gr = qs_gptq_quantize_factored(type, f, n, &factor, q);
            if (gr == -1)
                rc = qs_errorf(err, QS_ERR_INTERNAL, "tensor '%s': out of memory for GPTQ", t->name);
            else if (gr)
                rc = qs_errorf(err, QS_ERR_USAGE, "tensor '%s': GPTQ does not round rows of %lld in %s", t->name,
                               (long long)cols, format);
        } else {
            round_job j = {type, f, calib && !fmt->gptq ? imp : NULL, q, cols, rb};
            qs_parallel_for((long)n, threads, round_rows, &j);
        }
        if (!rc) rc = qs_gguf_write_data(w, q, rb * (size_t)n, err);
        *done += n * cols;
        qs_progress_update(pr, (long)(*done >> 10), t->name);
    }
    free(f);
    free(q);
    free(imp);
    free(gram);
    qs_gptq_factor_free(&factor);
    return rc;
}

int qs_quantize_gguf(const char *model_path, const qs_plan *plan, const char *out_path, const qs_quantize_options *opt,
                     qs_quantize_result *res, qs_error *err) {
    memset(res, 0, sizeof *res);
    const char *tokenizer_path = opt->tokenizer_path, *db_path = opt->db_path;
    qs_model *m;
    const qs_model_options mo = {tokenizer_path};
    int rc = qs_model_open(&m, model_path, &mo, err);
    if (rc) return rc;
    qs_vocab *v = NULL;
    qs_gguf_writer *w = NULL;
    qs_awq_fold *awq = NULL;
    char fp[65];
    if ((rc = qs_model_fingerprint(m, fp, err))) goto done;
    if (strcmp(fp, plan->model_fingerprint)) {
        rc = qs_errorf(err, QS_ERR_INPUT, "the plan was made for the model with sha256 %.16s..., but %s has sha256 %.16s...",
                       plan->model_fingerprint, model_path, fp);
        goto done;
    }
    const char *pp = plan->source_path[0] ? plan->source_path : "the plan";
    if ((rc = qs_plan_check_model(plan, m, err))) goto done;
    /* refuse an output over any input now, before the work rather than after it */
    qs_input_note(db_path);
    qs_input_note(tokenizer_path);
    if ((rc = qs_output_check(out_path, "-o", err))) goto done;
    if (qs_plan_needs_importance(plan) && !db_path) {
        rc = qs_errorf(err, QS_ERR_USAGE, "the plan rounds with activation statistics (a '-w', '-gptq' or '-awq' format): give --db, the "
                                          "profile database it was made from");
        goto done;
    }
    /* AWQ: the scales of every group with an "-awq" member, before anything is written */
    if ((rc = qs_awq_fold_new(&awq, m, plan, db_path, err))) goto done;
    const qs_gguf *g = m->gguf;
    w = qs_gguf_writer_new();
    if (!w) {
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        goto done;
    }
    if (g) {
        for (uint64_t i = 0; i < g->n_kv; i++) {
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)g->kv[i].key.len, g->kv[i].key.ptr);
            /* keys written below, fresh */
            if (!strcmp(key, "general.file_type") || !strcmp(key, "general.quantization_version") ||
                !strcmp(key, "general.alignment") || !strncmp(key, "qsense.", 7))
                continue;
            qs_gguf_add_raw(w, key, (uint32_t)g->kv[i].type, g->map.data + g->kv[i].offset, g->kv[i].nbytes);
        }
    } else if ((rc = qs_vocab_for_model(&v, m, err)) || (rc = qs_gguf_put_model_meta(w, m, v, err))) {
        goto done;
    }
    qs_gguf_add_u32(w, "general.file_type", LLAMA_FTYPE_GUESSED);
    qs_gguf_add_u32(w, "general.quantization_version", 2);
    qs_gguf_add_str(w, "qsense.plan.model_sha256", plan->model_fingerprint);
    if (plan->plan_sha256[0]) qs_gguf_add_str(w, "qsense.plan.sha256", plan->plan_sha256);
    qs_gguf_add_f32(w, "qsense.plan.predicted_kl", (float)plan->predicted_kl);
    qs_gguf_add_str(w, "qsense.version", QS_VERSION);
    /* every tensor declared (and every plan entry checked) before a byte is written */
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const qs_tensor *t = &m->tensors[i];
        const qs_plan_tensor *pt = qs_plan_find(plan, t->name);
        if (!pt) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: no entry for tensor '%s' of %s", pp, t->name, model_path);
            break;
        }
        int type = dtype_of(qs_format_stored_type(pt->format));
        const qs_format *fmt = qs_format_find(pt->format, NULL);
        if (type < 0 || !(qs_ggml_can_quantize(type) || (fmt && fmt->weighted && qs_ggml_can_quantize_weighted(type)))) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s': format '%s' is not a ggml type llama.cpp can load (plan with "
                           "--target llama.cpp)", pp, t->name, pt->format);
            break;
        }
        const int64_t rows = qs_tensor_numel(t) / t->ne[0];
        uint64_t rb = qs_dtype_row_bytes(type, t->ne[0]);
        if (!rb) {
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: tensor '%s': rows of %lld do not fit %s blocks", pp, t->name, (long long)t->ne[0],
                           pt->format);
            break;
        }
        if (qs_gguf_add_tensor(w, t->name, type, t->n_dims, t->ne, NULL))
            rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
        res->tensor_bytes += (int64_t)(rb * (size_t)rows);
        res->n_quantized += qs_dtype_get(type)->block_size > 1;
    }
    /* Llama 3 RoPE scaling read from a config.json: llama.cpp takes it as this tensor */
    const int64_t n_freqs[1] = {m->arch.head_dim / 2};
    const int rope_freqs = !g && m->arch.rope_freqs;
    if (!rc && rope_freqs && qs_gguf_add_tensor(w, "rope_freqs.weight", QS_DT_F32, 1, n_freqs, NULL))
        rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    if (!rc) rc = qs_gguf_write_begin(w, out_path, err);
    int64_t total = 0, done_values = 0;
    for (int i = 0; i < m->n_tensors; i++) total += qs_tensor_numel(&m->tensors[i]);
    qs_progress pr;
    qs_progress_start(&pr, "quantize", (long)(total >> 10), opt->quiet);
    pr.percent_only = 1;
    const int threads = opt->threads > 0 ? opt->threads : qs_parallel_default_threads();
    for (int i = 0; i < m->n_tensors && !rc; i++) {
        const qs_plan_tensor *pt = qs_plan_find(plan, m->tensors[i].name);
        rc = write_tensor(m, &m->tensors[i], pt->format, awq, opt, threads, plan->model_fingerprint, &pr, &done_values,
                          w, err);
    }
    qs_progress_end(&pr);
    if (!rc && rope_freqs) rc = qs_gguf_write_data(w, m->arch.rope_freqs, sizeof(float) * (size_t)n_freqs[0], err);
    if (!rc) rc = qs_gguf_write_end(w, err);
    if (!rc) {
        struct stat st;
        if (stat(out_path, &st) == 0) res->file_bytes = st.st_size;
    }
done:
    qs_gguf_writer_free(w);
    qs_awq_fold_free(awq);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc;
}
