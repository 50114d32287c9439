/* Bad input never crashes qsense: each broken or hostile file gives exit code 3 and one message
 * naming the file and what was wrong. GGUF cases are built byte by byte here (independently of
 * qsense's writer); the others cut or patch the real files. Usage errors give exit code 2. */
#include <stdint.h>
#include <math.h>
#include <string.h>

#include "core/qs_file.h"
#include "core/qs_path.h"
#include "io/gguf.h"

#include "tests/test_util.h"

static char tmp[512];
static const char *GPL = "/usr/share/common-licenses/GPL-3";

/* ---- a tiny GGUF builder ---- */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void str(buf *b, const char *s) { u64(b, strlen(s)); put(b, s, strlen(s)); }
static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    u32(b, version);
    u64(b, n_tensors);
    u64(b, n_kv);
}
static void kv_u32(buf *b, const char *k, uint32_t v) { str(b, k); u32(b, 4); u32(b, v); }
static void kv_str(buf *b, const char *k, const char *v) { str(b, k); u32(b, 8); str(b, v); }
static void tensor_info(buf *b, const char *name, int nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    str(b, name);
    u32(b, (uint32_t)nd);
    for (int i = 0; i < nd; i++) u64(b, ne[i]);
    u32(b, type);
    u64(b, off);
}
static void pad_data(buf *b, size_t data_bytes) {
    while (b->n % 32) { uint8_t z = 0; put(b, &z, 1); }
    for (size_t i = 0; i < data_bytes; i++) { uint8_t z = 0; put(b, &z, 1); }
}

static char *write_file(const char *name, const void *data, size_t n) {
    char *path = qs_path_join(tmp, name);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    return path;
}

/* copy of a real file, optionally cut to `keep` bytes, with `patch` written at `at` */
static char *variant(const char *src, const char *name, long keep, long at, const void *patch, size_t plen) {
    char *data;
    size_t n;
    qs_read_file(src, &data, &n, NULL);
    if (keep >= 0 && (size_t)keep < n) n = (size_t)keep;
    if (patch) memcpy(data + at, patch, plen);
    char *p = write_file(name, data, n);
    free(data);
    return p;
}

/* runs qsense; checks the exit code and that the message names `file` and contains `expect` */
static void expect_fail(const char *what, int code, const char *args, const char *file, const char *expect) {
    char cmd[8192], *out;
    snprintf(cmd, sizeof cmd, "'%s' %s", qsense_bin(), args);
    int rc = run_cmd(cmd, &out);
    CHECK(rc == code, "%s: exit %d, want %d; output: %.600s", what, rc, code, out);
    CHECK(!file || strstr(out, file), "%s: message does not name %s: %.600s", what, file, out);
    CHECK(strcasestr(out, expect) != NULL, "%s: message lacks '%s': %.600s", what, expect, out);
    CHECK(!strstr(out, "Sanitizer") && !strstr(out, "Segmentation"), "%s crashed: %.600s", what, out);
    free(out);
}

static void gguf_case(const char *what, buf *b, const char *expect) {
    char name[128], args[2048];
    snprintf(name, sizeof name, "case-%d.gguf", qs_test_checks);
    char *p = write_file(name, b->p, b->n);
    snprintf(args, sizeof args, "inspect '%s'", p);
    expect_fail(what, 3, args, p, expect);
    free(p);
    free(b->p);
    memset(b, 0, sizeof *b);
}

int main(void) {
    char *d = temp_dir();
    snprintf(tmp, sizeof tmp, "%s", d);
    char *stories = model_path("stories260K.gguf"), *bin = model_path("stories260K.bin"), *tok = model_path("tok512.bin");
    char args[4096];
    buf b = {0};
    uint64_t ne2[2] = {32, 4};

    header(&b, 3, 0, 0);
    b.n = 10;
    gguf_case("truncated header", &b, "truncated at offset 8");
    header(&b, 7, 0, 0);
    gguf_case("unsupported version", &b, "unsupported GGUF version 7");
    header(&b, 3, 1ull << 40, 0);
    gguf_case("2^40 tensors", &b, "tensor count");
    header(&b, 3, 0, 1ull << 40);
    gguf_case("2^40 metadata keys", &b, "metadata count");
    header(&b, 3, 0, 1);
    str(&b, "general.name");
    u32(&b, 8);
    u64(&b, 1ull << 50);
    gguf_case("string length past the end", &b, "past the end of the file");
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, 99);
    u32(&b, 0);
    gguf_case("unknown metadata type", &b, "unknown value type 99");
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, 9);
    u32(&b, 4);
    u64(&b, 1ull << 40);
    gguf_case("array past the end", &b, "runs past the end");
    header(&b, 3, 0, 1);
    str(&b, "k");
    u32(&b, 9);
    for (int i = 0; i < 12; i++) { u32(&b, 9); u64(&b, 1); }
    u32(&b, 4);
    u64(&b, 1);
    u32(&b, 0);
    gguf_case("arrays nested 12 deep", &b, "nested deeper");
    header(&b, 3, 0, 1);
    kv_u32(&b, "general.alignment", 3);
    gguf_case("alignment not a power of two", &b, "power of two");
    header(&b, 3, 1, 0);
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    tensor_info(&b, "t", 5, ne5, 0, 0);
    gguf_case("5 dimensions", &b, "5 dimensions");
    header(&b, 3, 1, 0);
    uint64_t big[2] = {1ull << 40, 1ull << 40};
    tensor_info(&b, "t", 2, big, 0, 0);
    gguf_case("element count overflows", &b, "element count");
    header(&b, 3, 1, 0);
    uint64_t zero[2] = {0, 4};
    tensor_info(&b, "t", 2, zero, 0, 0);
    gguf_case("zero dimension", &b, "dimension 0 is 0");
    header(&b, 3, 1, 0);
    tensor_info(&b, "t", 2, ne2, 15, 0);
    gguf_case("a ggml type no model stores", &b, "q8_k");
    header(&b, 3, 1, 0);
    tensor_info(&b, "t", 2, ne2, 999, 0);
    gguf_case("unknown tensor type", &b, "type 999");
    header(&b, 3, 1, 0);
    uint64_t ragged[2] = {33, 4};
    tensor_info(&b, "t", 2, ragged, 8, 0);
    gguf_case("row not a multiple of the block", &b, "not a multiple of the q8_0 block size");
    header(&b, 3, 1, 0);
    tensor_info(&b, "t", 2, ne2, 0, 3);
    pad_data(&b, 1024);
    gguf_case("misaligned tensor data", &b, "not a multiple of the alignment");
    header(&b, 3, 1, 0);
    tensor_info(&b, "t", 2, ne2, 0, 0);
    pad_data(&b, 100);
    gguf_case("tensor data past the end", &b, "runs past the end of the file");
    header(&b, 3, 2, 0);
    tensor_info(&b, "a", 2, ne2, 0, 0);
    tensor_info(&b, "b", 2, ne2, 0, 256);
    pad_data(&b, 1024);
    gguf_case("overlapping tensors", &b, "overlap");
    header(&b, 3, 2, 0);
    tensor_info(&b, "a", 2, ne2, 0, 0);
    tensor_info(&b, "a", 2, ne2, 0, 512);
    pad_data(&b, 1024);
    gguf_case("duplicate tensor name", &b, "appears twice");
    header(&b, 3, 1, 2);
    kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.embedding_length", 32);
    tensor_info(&b, "token_embd.weight", 2, ne2, 0, 0);
    pad_data(&b, 512);
    gguf_case("missing hyper-parameter", &b, "llama.feed_forward_length' is missing");
    header(&b, 3, 0, 2);
    kv_str(&b, "general.architecture", "llama");
    kv_str(&b, "general.architecture", "gemma3");
    gguf_case("metadata key given twice", &b, "metadata key 'general.architecture' at offset 69 appears twice");

    /* cut or patched real files */
    char *p = variant(stories, "wrong-magic.gguf", -1, 0, "GGUX", 4);
    snprintf(args, sizeof args, "inspect '%s'", p);
    expect_fail("wrong magic", 3, args, p, "not a GGUF file");
    free(p);
    p = variant(stories, "cut.gguf", 600000, 0, NULL, 0);
    snprintf(args, sizeof args, "ppl '%s' --text %s", p, GPL);
    expect_fail("truncated tensor data", 3, args, p, "runs past the end of the file");
    free(p);
    uint32_t t23 = 23;
    /* the file's first tensor type field: found by searching its tensor info for output_norm */
    char *data;
    size_t n;
    qs_read_file(stories, &data, &n, NULL);
    char *hit = memmem(data, n, "output_norm.weight", 18);
    long type_at = hit ? (long)(hit - data) + 18 + 4 + 8 : 0; /* name, n_dims (1), ne[0] */
    free(data);
    p = variant(stories, "iq-type.gguf", -1, type_at, &t23, 4);
    snprintf(args, sizeof args, "inspect '%s'", p);
    expect_fail("a block type its rows do not fit", 3, args, p, "row length 64 is not a multiple of the iq4_xs block size 256");
    free(p);
    uint32_t t15 = 15;
    p = variant(stories, "q8k-type.gguf", -1, type_at, &t15, 4);
    snprintf(args, sizeof args, "inspect '%s'", p);
    expect_fail("unsupported tensor type in a real file", 3, args, p, "output_norm.weight' has type q8_k");
    free(p);
    /* an architecture qsense has no description of: the real file with "llama" patched to "mamba" */
    qs_read_file(stories, &data, &n, NULL);
    hit = memmem(data, n, "general.architecture", 20);
    long arch_at = hit ? (long)(hit - data) + 20 + 4 + 8 : 0; /* key, value type, string length */
    CHECK(hit && !memcmp(data + arch_at, "llama", 5), "found the architecture value in %s", stories);
    free(data);
    p = variant(stories, "mamba.gguf", -1, arch_at, "mamba", 5);
    snprintf(args, sizeof args, "ppl '%s' --text %s", p, GPL);
    expect_fail("unsupported architecture", 3, args, p, "architecture 'mamba' is not supported (qsense reads: llama, qwen2, qwen3, gemma3");
    free(p);

    /* NaN / Inf weights: reported with the tensor, row and column; nothing measured, no database */
    qs_gguf *g;
    if (qs_gguf_open(&g, stories, NULL) == 0) {
        const qs_gguf_tensor *t = qs_gguf_find_tensor(g, "blk.0.attn_q.weight");
        float nan_value = NAN;
        p = variant(stories, "nan.gguf", -1, (long)(g->data_offset + t->offset + 5 * 4), &nan_value, 4);
        qs_gguf_close(g);
        snprintf(args, sizeof args, "ppl '%s' --text %s --ctx 64", p, GPL);
        expect_fail("NaN weight", 3, args, p, "blk.0.attn_q.weight holds 1 non-finite values (NaN or Inf), the first at row 0, column 5");
        char db[700];
        snprintf(db, sizeof db, "%s/nan.db", tmp);
        snprintf(args, sizeof args, "profile '%s' --db '%s' --quiet", p, db);
        expect_fail("NaN weight, profile", 3, args, p, "non-finite");
        CHECK(!qs_path_exists(db), "profile refused before creating %s", db);
        char icmd[2048], *iout;
        snprintf(icmd, sizeof icmd, "'%s' inspect '%s' > /dev/null", qsense_bin(), p);
        CHECK(run_cmd(icmd, &iout) == 0, "inspect still describes a file with NaN weights: %s", iout);
        free(iout);
        free(p);
    }
    /* vocabulary and model size mismatch: token_embd and output cut to 256 rows in the header
     * (the data still fits), while the tokenizer has 512 tokens */
    {
        char *data2;
        size_t n2;
        qs_read_file(stories, &data2, &n2, NULL);
        const uint64_t rows = 256;
        const char *names[2] = {"token_embd.weight", "output.weight"};
        for (int k = 0; k < 2; k++) {
            char *at = memmem(data2, n2, names[k], strlen(names[k]));
            if (at) memcpy(at + strlen(names[k]) + 4 + 8, &rows, 8); /* after the name: n_dims, ne[0]; this is ne[1] */
        }
        p = write_file("vocab-mismatch.gguf", data2, n2);
        free(data2);
        snprintf(args, sizeof args, "ppl '%s' --text %s --ctx 64", p, GPL);
        expect_fail("vocabulary and model size mismatch", 3, args, p, "the tokenizer has 512 tokens but the model's vocabulary is 256");
        free(p);
    }
    /* special token ids past the vocabulary: 2^31 + 1 must not wrap negative and pass; 600 once
     * read freed memory on its error path (ASan in CI sees a regression) */
    {
        const uint32_t ids[2] = {0x80000001u, 600};
        const char *key = "tokenizer.ggml.bos_token_id";
        char *data3;
        size_t n3;
        qs_read_file(stories, &data3, &n3, NULL);
        char *hit3 = memmem(data3, n3, key, strlen(key));
        long id_at = hit3 ? (long)(hit3 - data3) + (long)strlen(key) + 4 : 0; /* after the key: its type (u32) */
        free(data3);
        CHECK(hit3 != NULL, "stories260K.gguf has %s", key);
        for (int k = 0; k < 2 && hit3; k++) {
            char nm[64], want[128];
            snprintf(nm, sizeof nm, "bos-%u.gguf", ids[k]);
            p = variant(stories, nm, -1, id_at, &ids[k], 4);
            snprintf(args, sizeof args, "ppl '%s' --text %s --ctx 64", p, GPL);
            snprintf(want, sizeof want, "'%s' is token id %u, out of range for 512 tokens", key, ids[k]);
            expect_fail("special token id out of range", 3, args, p, want);
            free(p);
        }
    }
    char *q4km = model_path("stories260K-llamacpp-Q4_K_M.gguf");
    if (qs_gguf_open(&g, q4km, NULL) == 0) {
        const qs_gguf_tensor *t = qs_gguf_find_tensor(g, "blk.2.ffn_up.weight");
        const uint16_t inf_half = 0x7c00; /* the first block's f16 scale */
        p = variant(q4km, "inf-scale.gguf", -1, (long)(g->data_offset + t->offset), &inf_half, 2);
        qs_gguf_close(g);
        snprintf(args, sizeof args, "ppl '%s' --text %s --ctx 64", p, GPL);
        expect_fail("Inf block scale", 3, args, p, "blk.2.ffn_up.weight holds");
        free(p);
    }
    free(q4km);

    /* llama2.c */
    p = variant(bin, "cut.bin", 500000, 0, NULL, 0);
    snprintf(args, sizeof args, "ppl '%s' --tokenizer '%s' --text %s", p, tok, GPL);
    expect_fail("truncated llama2.c checkpoint", 3, args, p, "truncated");
    free(p);
    int32_t absurd = 1 << 30;
    p = variant(bin, "absurd.bin", -1, 0, &absurd, 4);
    snprintf(args, sizeof args, "inspect '%s'", p);
    expect_fail("absurd llama2.c dimension", 3, args, p, "not a plausible llama2.c checkpoint");
    free(p);
    p = variant(bin, "lonely.bin", -1, 0, NULL, 0);
    snprintf(args, sizeof args, "ppl '%s' --text %s", p, GPL);
    expect_fail("missing tokenizer.bin", 3, args, "tokenizer.bin", "cannot open");
    free(p);
    p = variant(tok, "cut-tok.bin", 3000, 0, NULL, 0);
    snprintf(args, sizeof args, "ppl '%s' --tokenizer '%s' --text %s", bin, p, GPL);
    expect_fail("truncated tokenizer.bin", 3, args, p, "truncated");
    free(p);

    /* safetensors */
    char hf[600], cmd[2048], *out;
    snprintf(hf, sizeof hf, "%s/hf", tmp);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && printf '{\"model_type\": \"llama\", \"hidden_size\": 64}' > '%s/config.json'", hf, hf);
    run_cmd(cmd, &out);
    free(out);
    snprintf(args, sizeof args, "inspect '%s'", hf);
    expect_fail("config.json without required keys", 3, args, "config.json", "'intermediate_size' is missing");
    snprintf(cmd, sizeof cmd,
             "printf '{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 172, \"num_hidden_layers\": 1, "
             "\"num_attention_heads\": 8, \"vocab_size\": 512}' > '%s/config.json' && printf '\\377\\377\\377\\377\\0\\0\\0\\0{}' > '%s/model.safetensors'",
             hf, hf);
    run_cmd(cmd, &out);
    free(out);
    expect_fail("safetensors header length past the end", 3, args, "model.safetensors", "header length");
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import json,struct,sys; h=json.dumps({'model.embed_tokens.weight': {'dtype': 'I64', 'shape': [512, 64], 'data_offsets': [0, 8]}}).encode(); "
             "open(sys.argv[1],'wb').write(struct.pack('<Q', len(h)) + h + bytes(8))\" '%s/model.safetensors'", hf);
    run_cmd(cmd, &out);
    free(out);
    expect_fail("safetensors dtype", 3, args, "model.safetensors", "dtype I64");
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import json,struct,sys; h=json.dumps({'model.embed_tokens.weight': {'dtype': 'F32', 'shape': [512, 64], 'data_offsets': [0, 131072]}}).encode(); "
             "open(sys.argv[1],'wb').write(struct.pack('<Q', len(h)) + h + bytes(64))\" '%s/model.safetensors'", hf);
    run_cmd(cmd, &out);
    free(out);
    expect_fail("safetensors data past the end", 3, args, "model.safetensors", "data_offsets");

    /* text */
    p = write_file("empty.txt", "", 0);
    snprintf(args, sizeof args, "ppl '%s' --text '%s'", stories, p);
    expect_fail("empty text", 3, args, p, "empty");
    free(p);
    p = write_file("short.txt", "Once upon a time", 16);
    snprintf(args, sizeof args, "ppl '%s' --text '%s' --ctx 128", stories, p);
    expect_fail("text shorter than 2 x ctx", 3, args, p, "too short");
    free(p);
    snprintf(args, sizeof args, "ppl '%s' --text /nonexistent/text.txt", stories);
    expect_fail("missing text", 3, args, "/nonexistent/text.txt", "cannot open");
    snprintf(args, sizeof args, "inspect /nonexistent/model.gguf");
    expect_fail("missing model", 3, args, "/nonexistent/model.gguf", "no such file");

    /* usage errors: exit 2 */
    snprintf(args, sizeof args, "ppl '%s'", stories);
    expect_fail("ppl without --text", 2, args, NULL, "missing --text");
    snprintf(args, sizeof args, "ppl '%s' --text %s --ctx banana", stories, GPL);
    expect_fail("bad --ctx", 2, args, NULL, "--ctx expects an integer");
    expect_fail("unknown command", 2, "frobnicate", NULL, "unknown command");

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    run_cmd(cmd, &out);
    free(out);
    free(d); free(stories); free(bin); free(tok);
    return test_done("test_bad_inputs_exit_3");
}
