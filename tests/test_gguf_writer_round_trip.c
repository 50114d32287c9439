/* qsense's GGUF writer: stories260K.gguf copied through it (metadata verbatim, tensors as f32,
 * f16 and bf16) reads back identical and gives the same perplexity (f32) or nearly (f16, bf16);
 * a write that hits the file size limit (a full disk) fails cleanly and leaves no file; a key
 * added twice is written once; a streamed write (the header first, then the tensors' bytes in
 * pieces) gives the same file, and one with too few or too many bytes, or abandoned, none. */
#include <dirent.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/qs_dtype.h"
#include "core/qs_file.h"
#include "core/qs_half.h"
#include "core/qs_path.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "tests/test_util.h"

/* copies src into a writer with every f32 matrix converted to `type` (f32, f16 or bf16) */
static qs_gguf_writer *copy_as(const qs_gguf *g, int type, void **bufs) {
    qs_gguf_writer *w = qs_gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)g->kv[i].key.len, g->kv[i].key.ptr);
        CHECK(qs_gguf_add_raw(w, key, (uint32_t)g->kv[i].type, g->map.data + g->kv[i].offset, g->kv[i].nbytes) == 0, "kv");
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const qs_gguf_tensor *t = &g->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        const void *data = t->data;
        int ty = t->type;
        if (t->n_dims == 2 && type != QS_DT_F32) { /* llama.cpp keeps norms in f32 */
            uint16_t *h = malloc(2 * (size_t)n);
            const float *f = (const float *)t->data;
            for (int64_t j = 0; j < n; j++) h[j] = type == QS_DT_F16 ? qs_f32_to_f16(f[j]) : qs_f32_to_bf16(f[j]);
            data = bufs[i] = h;
            ty = type;
        }
        CHECK(qs_gguf_add_tensor(w, name, ty, (int)t->n_dims, t->ne, data) == 0, "add %s", name);
    }
    return w;
}

/* the same model declared for a streamed write; `short_by` bytes left out of the last tensor,
 * or that many extra (negative); abandon: freed before the end. Returns the write's status. */
static int stream_copy(const qs_gguf *g, const char *path, int short_by, int abandon, qs_error *err) {
    qs_gguf_writer *w = qs_gguf_writer_new();
    for (uint64_t i = 0; i < g->n_kv; i++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)g->kv[i].key.len, g->kv[i].key.ptr);
        qs_gguf_add_raw(w, key, (uint32_t)g->kv[i].type, g->map.data + g->kv[i].offset, g->kv[i].nbytes);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)g->tensors[i].name.len, g->tensors[i].name.ptr);
        qs_gguf_add_tensor(w, name, g->tensors[i].type, (int)g->tensors[i].n_dims, g->tensors[i].ne, NULL);
    }
    int rc = qs_gguf_write_begin(w, path, err);
    for (uint64_t i = 0; !rc && i < g->n_tensors; i++) {
        const uint8_t *p = g->tensors[i].data;
        size_t n = g->tensors[i].nbytes;
        if (i + 1 == g->n_tensors) n -= short_by > 0 ? (size_t)short_by : 0;
        for (size_t at = 0; !rc && at < n; at += 4093) /* pieces that cross tensors' ends and padding */
            rc = qs_gguf_write_data(w, p + at, n - at < 4093 ? n - at : 4093, err);
    }
    static const uint8_t extra[64];
    if (!rc && short_by < 0) rc = qs_gguf_write_data(w, extra, (size_t)-short_by, err);
    if (!rc && !abandon) rc = qs_gguf_write_end(w, err);
    qs_gguf_writer_free(w);
    return rc;
}

static int files_in(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static double ppl(const char *path) {
    char cmd[2048], *out;
    snprintf(cmd, sizeof cmd, "'%s' ppl '%s' --text /usr/share/common-licenses/GPL-3 --ctx 128 --quiet --json", qsense_bin(), path);
    int rc = run_cmd(cmd, &out);
    cJSON *j = rc == 0 ? cJSON_Parse(out) : NULL;
    CHECK(j, "ppl %s: %s", path, out);
    double v = j ? json_num(j, "ppl") : NAN;
    cJSON_Delete(j);
    free(out);
    return v;
}

int main(void) {
    char *src = model_path("stories260K.gguf"), *dir = temp_dir(), out[600];
    qs_gguf *g = NULL;
    qs_error err = {0};
    CHECK(qs_gguf_open(&g, src, &err) == 0, "%s", err.msg);
    if (!g) return test_done("test_gguf_writer_round_trip");
    double base = ppl(src);
    const int types[3] = {QS_DT_F32, QS_DT_F16, QS_DT_BF16};
    const double tol[3] = {1e-9, 2e-3, 2e-2};
    for (int k = 0; k < 3; k++) {
        void **bufs = calloc(g->n_tensors, sizeof(void *));
        qs_gguf_writer *w = copy_as(g, types[k], bufs);
        snprintf(out, sizeof out, "%s/copy-%s.gguf", dir, qs_dtype_name(types[k]));
        CHECK(qs_gguf_write(w, out, &err) == 0, "%s", err.msg);
        qs_gguf *h = NULL;
        CHECK(qs_gguf_open(&h, out, &err) == 0, "reopen: %s", err.msg);
        if (h) {
            CHECK(h->n_kv == g->n_kv && h->n_tensors == g->n_tensors, "counts");
            int same_meta = 1;
            for (uint64_t i = 0; i < g->n_kv && i < h->n_kv; i++)
                same_meta &= g->kv[i].nbytes == h->kv[i].nbytes &&
                             !memcmp(g->map.data + g->kv[i].offset, h->map.data + h->kv[i].offset, g->kv[i].nbytes);
            CHECK(same_meta, "metadata differs after the round trip");
            if (types[k] == QS_DT_F32) {
                int same = 1;
                for (uint64_t i = 0; i < g->n_tensors; i++)
                    same &= g->tensors[i].nbytes == h->tensors[i].nbytes &&
                            !memcmp(g->tensors[i].data, h->tensors[i].data, g->tensors[i].nbytes);
                CHECK(same, "f32 tensor bytes differ after the round trip");
            }
            qs_gguf_close(h);
        }
        char what[64];
        snprintf(what, sizeof what, "ppl of the %s copy", qs_dtype_name(types[k]));
        CHECK_REL(ppl(out), base, tol[k], what);
        if (k == 0) {
            /* full disk: limit the file size in a child; the write must fail and leave nothing */
            char full[700];
            snprintf(full, sizeof full, "%s/full.gguf", dir);
            pid_t pid = fork();
            if (pid == 0) {
                signal(SIGXFSZ, SIG_IGN);
                struct rlimit rl = {100000, 100000};
                setrlimit(RLIMIT_FSIZE, &rl);
                qs_error e2 = {0};
                int rc = qs_gguf_write(w, full, &e2);
                _exit(rc == QS_ERR_INPUT && strstr(e2.msg, "write failed") ? 0 : 1);
            }
            int st;
            waitpid(pid, &st, 0);
            CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a write past the size limit must fail with a clear error");
            char tmpf[720];
            snprintf(tmpf, sizeof tmpf, "%s.tmp", full);
            CHECK(!qs_path_exists(full) && !qs_path_exists(tmpf), "a failed write left a file behind");

            /* streamed: the same bytes as the one-shot write */
            char streamed[700];
            snprintf(streamed, sizeof streamed, "%s/streamed.gguf", dir);
            CHECK(stream_copy(g, streamed, 0, 0, &err) == 0, "streamed write: %s", err.msg);
            size_t na = 0, nb = 0;
            char *a = NULL, *b = NULL;
            qs_read_file(out, &a, &na, &err);
            qs_read_file(streamed, &b, &nb, &err);
            CHECK(a && b && na == nb && !memcmp(a, b, na),
                  "the streamed file differs from the one-shot one (%zu vs %zu bytes)", nb, na);
            free(a);
            free(b);
            const int before = files_in(dir);
            char bad[700];
            snprintf(bad, sizeof bad, "%s/bad.gguf", dir);
            CHECK(stream_copy(g, bad, 3, 0, &err) != 0 && strstr(err.msg, "ended early"), "3 bytes short must fail: %s",
                  err.msg);
            CHECK(stream_copy(g, bad, -5, 0, &err) != 0 && strstr(err.msg, "more tensor data"),
                  "5 bytes too many must fail");
            CHECK(stream_copy(g, bad, 0, 1, &err) == 0, "an abandoned write reports nothing");
            CHECK(files_in(dir) == before && !qs_path_exists(bad),
                  "a failed or abandoned streamed write left a file behind");
        }
        qs_gguf_writer_free(w);
        for (uint64_t i = 0; i < g->n_tensors; i++) free(bufs[i]);
        free(bufs);
    }
    qs_gguf_close(g);

    /* a key added twice (quantize copies a source's keys, then writes some afresh) is written
     * once, with the last value: a GGUF holding a key twice is refused by every reader */
    qs_gguf_writer *w = qs_gguf_writer_new();
    CHECK(qs_gguf_add_u32(w, "general.quantization_version", 1) == 0 && qs_gguf_add_str(w, "general.name", "x") == 0 &&
              qs_gguf_add_u32(w, "general.quantization_version", 2) == 0,
          "add keys");
    snprintf(out, sizeof out, "%s/twice.gguf", dir);
    CHECK(qs_gguf_write(w, out, &err) == 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_gguf *t = NULL;
    uint32_t qv = 0;
    CHECK(qs_gguf_open(&t, out, &err) == 0, "a key added twice gives a readable file: %s", err.msg);
    CHECK(t && t->n_kv == 2 && qs_gguf_get_u32(t, "general.quantization_version", &qv, &err) == 0 && qv == 2,
          "one key, the last value (%u)", qv);
    qs_gguf_close(t);
    char cmd[700], *o;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &o);
    free(o);
    free(src);
    free(dir);
    return test_done("test_gguf_writer_round_trip");
}
