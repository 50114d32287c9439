/* GGUF reading beyond the common case: every metadata value type, nested arrays included, read
 * back as written; a GGUF v2 file (the same layout with version 2) gives the same model; a
 * 10 GB tensor (a sparse file) opens without reading its data (memory-mapped). */
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/qs_file.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "io/model.h"
#include "tests/test_util.h"

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(void) {
    char *dir = temp_dir(), path[600];
    qs_error err = {0};

    /* every value type */
    qs_gguf_writer *w = qs_gguf_writer_new();
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
    uint64_t u64 = 1ull << 60; int64_t i64 = -(1ll << 60); double f64 = 3.141592653589793;
    qs_gguf_add_raw(w, "t.u8", QS_GGUF_UINT8, &u8, 1);
    qs_gguf_add_raw(w, "t.i8", QS_GGUF_INT8, &i8, 1);
    qs_gguf_add_raw(w, "t.u16", QS_GGUF_UINT16, &u16, 2);
    qs_gguf_add_raw(w, "t.i16", QS_GGUF_INT16, &i16, 2);
    qs_gguf_add_u32(w, "t.u32", 4000000000u);
    qs_gguf_add_i32(w, "t.i32", -2000000000);
    qs_gguf_add_f32(w, "t.f32", 0.25f);
    qs_gguf_add_bool(w, "t.bool", 1);
    qs_gguf_add_str(w, "t.str", "h\xc3\xa9llo");
    qs_gguf_add_raw(w, "t.u64", QS_GGUF_UINT64, &u64, 8);
    qs_gguf_add_raw(w, "t.i64", QS_GGUF_INT64, &i64, 8);
    qs_gguf_add_raw(w, "t.f64", QS_GGUF_FLOAT64, &f64, 8);
    const char *strs[3] = {"a", "", "ccc"};
    qs_gguf_add_arr_str(w, "t.arr_str", strs, NULL, 3);
    float fl[4] = {1, 2, 3, 4.5f};
    qs_gguf_add_arr_f32(w, "t.arr_f32", fl, 4);
    /* array of 2 arrays of int32: [[7, 8], [9]] */
    uint8_t nested[12 + 12 + 8 + 12 + 4], *q = nested;
    uint32_t arr = QS_GGUF_ARRAY, i32t = QS_GGUF_INT32;
    uint64_t two = 2, one = 1;
    int32_t v7 = 7, v8 = 8, v9 = 9;
    memcpy(q, &arr, 4); memcpy(q + 4, &two, 8); q += 12;
    memcpy(q, &i32t, 4); memcpy(q + 4, &two, 8); memcpy(q + 12, &v7, 4); memcpy(q + 16, &v8, 4); q += 20;
    memcpy(q, &i32t, 4); memcpy(q + 4, &one, 8); memcpy(q + 12, &v9, 4); q += 16;
    qs_gguf_add_raw(w, "t.nested", QS_GGUF_ARRAY, nested, (size_t)(q - nested));
    snprintf(path, sizeof path, "%s/types.gguf", dir);
    CHECK(qs_gguf_write(w, path, &err) == 0, "%s", err.msg);
    qs_gguf_writer_free(w);
    qs_gguf *g = NULL;
    CHECK(qs_gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (g) {
        CHECK(g->n_kv == 15, "%llu keys", (unsigned long long)g->n_kv);
        CHECK(qs_gguf_find(g, "t.u8")->v.u == 200 && qs_gguf_find(g, "t.i8")->v.i == -100, "8-bit");
        CHECK(qs_gguf_find(g, "t.u16")->v.u == 60000 && qs_gguf_find(g, "t.i16")->v.i == -30000, "16-bit");
        CHECK(qs_gguf_find(g, "t.u32")->v.u == 4000000000u && qs_gguf_find(g, "t.i32")->v.i == -2000000000, "32-bit");
        CHECK(qs_gguf_find(g, "t.u64")->v.u == 1ull << 60 && qs_gguf_find(g, "t.i64")->v.i == -(1ll << 60), "64-bit");
        CHECK(qs_gguf_find(g, "t.f32")->v.f == 0.25 && qs_gguf_find(g, "t.f64")->v.f == f64, "floats");
        CHECK(qs_gguf_find(g, "t.bool")->v.u == 1, "bool");
        char s[32];
        CHECK(qs_gguf_get_str(g, "t.str", s, sizeof s, &err) == 0 && !strcmp(s, "h\xc3\xa9llo"), "string");
        const qs_gguf_kv *a = qs_gguf_find(g, "t.arr_str");
        CHECK(a->arr_n == 3 && a->arr_strs[1].len == 0 && a->arr_strs[2].len == 3 && !memcmp(a->arr_strs[2].ptr, "ccc", 3),
              "string array");
        a = qs_gguf_find(g, "t.arr_f32");
        CHECK(a->arr_n == 4 && qs_gguf_arr_num(a, 3) == 4.5, "float array");
        a = qs_gguf_find(g, "t.nested");
        CHECK(a->arr_type == QS_GGUF_ARRAY && a->arr_n == 2 && a->nbytes == (uint64_t)(q - nested), "nested array");
        uint32_t u;
        CHECK(qs_gguf_get_u32(g, "t.str", &u, &err) == QS_ERR_INPUT && strstr(err.msg, "is string, expected"),
              "typed getter on the wrong type: %s", err.msg);
        qs_gguf_close(g);
    }

    /* GGUF v2 */
    char *src = model_path("stories260K.gguf"), *data;
    size_t n;
    CHECK(qs_read_file(src, &data, &n, &err) == 0, "%s", err.msg);
    data[4] = 2;
    snprintf(path, sizeof path, "%s/v2.gguf", dir);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
    free(data);
    qs_model *m2 = NULL, *m3 = NULL;
    CHECK(qs_model_open(&m2, path, NULL, &err) == 0 && qs_model_open(&m3, src, NULL, &err) == 0, "%s", err.msg);
    if (m2 && m3) {
        CHECK(!strcmp(m2->format, "gguf v2") && m2->n_tensors == m3->n_tensors, "v2 model");
        int same = 1;
        for (int i = 0; i < m2->n_tensors; i++) same &= !memcmp(m2->tensors[i].data, m3->tensors[i].data, m2->tensors[i].nbytes);
        CHECK(same, "v2 tensors differ");
    }
    qs_model_close(m2);
    qs_model_close(m3);

    /* a sparse 10 GB tensor: opening must not read it */
    snprintf(path, sizeof path, "%s/huge.gguf", dir);
    f = fopen(path, "wb");
    uint32_t ver = 3, nd = 2, ty = 0;
    uint64_t nt = 1, nk = 0, name_len = 4, ne[2] = {65536, 40960}, off = 0;
    fwrite("GGUF", 1, 4, f); fwrite(&ver, 4, 1, f); fwrite(&nt, 8, 1, f); fwrite(&nk, 8, 1, f);
    fwrite(&name_len, 8, 1, f); fwrite("huge", 1, 4, f); fwrite(&nd, 4, 1, f); fwrite(ne, 8, 2, f);
    fwrite(&ty, 4, 1, f); fwrite(&off, 8, 1, f);
    long hdr = ftell(f), data_at = (hdr + 31) / 32 * 32;
    fclose(f);
    CHECK(truncate(path, data_at + (off_t)(65536ll * 40960 * 4)) == 0, "sparse file");
    long before = max_rss_kb();
    g = NULL;
    CHECK(qs_gguf_open(&g, path, &err) == 0, "%s", err.msg);
    if (g) {
        CHECK(g->tensors[0].nbytes == 65536ull * 40960 * 4, "10 GB tensor");
        CHECK(max_rss_kb() - before < 64 * 1024, "opening a 10 GB file grew the resident set by %ld KB", max_rss_kb() - before);
        qs_gguf_close(g);
    }
    unlink(path);
    char cmd[700], *o;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &o);
    free(o);
    free(src);
    free(dir);
    return test_done("test_gguf_metadata_mmap_v2");
}
