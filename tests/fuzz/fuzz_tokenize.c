/* libFuzzer target: any bytes as text for both tokenizer algorithms (stories260K's SPM
 * vocabulary and GPT-2's byte-level BPE), which must never crash and must cover the text. */
#include "tests/fuzz/fuzz_util.h"
#include "tok/vocab.h"

#include <stdlib.h>

static qs_vocab *spm, *bpe;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    qs_error err;
    if (!spm) {
        const char *m = getenv("QSENSE_MODELS");
        char p[1024];
        snprintf(p, sizeof p, "%s/stories260K.gguf", m ? m : "../shared/models");
        if (qs_vocab_from_gguf_path(&spm, p, &err)) abort();
        snprintf(p, sizeof p, "%s/llamacpp-vocab/ggml-vocab-gpt-2.gguf", m ? m : "../shared/models");
        if (qs_vocab_from_gguf_path(&bpe, p, &err)) abort();
    }
    int *ids;
    size_t n;
    if (qs_tokenize(spm, (const char *)data, size, 1, &ids, &n, &err) == 0) {
        if (size > 0 && n < 2) abort(); /* BOS plus at least one token for non-empty text */
        free(ids);
    }
    if (qs_tokenize(bpe, (const char *)data, size, 0, &ids, &n, &err) == 0) {
        if (size > 0 && n < 1) abort();
        free(ids);
    }
    return 0;
}
