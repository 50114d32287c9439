/* libFuzzer target: any bytes as a llama2.c checkpoint (legacy, v1, v2) and as a tokenizer.bin. */
#include "io/model.h"
#include "tests/fuzz/fuzz_util.h"
#include "tok/vocab.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    qs_error err;
    qs_model *m;
    if (qs_model_open(&m, path, NULL, &err) == 0) {
        float row[4096];
        const qs_tensor *t = qs_model_find(m, "token_embd.weight");
        if (t && t->ne[0] <= 4096) qs_tensor_dequantize_rows(t, 0, 1, row);
        qs_model_close(m);
    }
    qs_vocab *v;
    if (qs_vocab_from_llama2c(&v, path, 512, &err) == 0) {
        int *ids;
        size_t n;
        if (qs_tokenize(v, "Once upon a time", 16, 1, &ids, &n, &err) == 0) free(ids);
        qs_vocab_free(v);
    }
    close(fd);
    return 0;
}
