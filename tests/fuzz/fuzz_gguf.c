/* libFuzzer target: any bytes as a GGUF file: the reader, the model description, the embedded
 * tokenizer loader, and a short tokenization with whatever vocabulary comes out. */
#include "io/gguf.h"
#include "io/model.h"
#include "tests/fuzz/fuzz_util.h"
#include "tok/vocab.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    qs_error err;
    qs_gguf *g;
    if (qs_gguf_open(&g, path, &err) == 0) {
        qs_vocab *v;
        if (qs_vocab_from_gguf(&v, g, &err) == 0) {
            int *ids;
            size_t n;
            if (qs_tokenize(v, "Hello world, once upon a time 123 \xc3\xa9\xf0\x9f\xa6\x99", 30, 1, &ids, &n, &err) == 0) free(ids);
            qs_vocab_free(v);
        }
        qs_gguf_close(g);
    }
    qs_model *m;
    if (qs_model_open(&m, path, NULL, &err) == 0) qs_model_close(m);
    close(fd);
    return 0;
}
