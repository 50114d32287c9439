/* libFuzzer target: any bytes as each JSON input qsense reads: plan.json, an evaluation-set
 * manifest, a Hugging Face tokenizer.json, a safetensors header (with a fixed config.json). */
#include "io/evalset.h"
#include "io/model.h"
#include "reports/planner/plan.h"
#include "tests/fuzz/fuzz_util.h"
#include "tok/vocab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[64];

static void setup(void) {
    if (dir[0]) return;
    snprintf(dir, sizeof dir, "/tmp/qsense-fuzz-%d", (int)getpid());
    mkdir(dir, 0700);
    char p[128];
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"model_type\": \"llama\", \"hidden_size\": 8, \"intermediate_size\": 16, \"num_hidden_layers\": 1, "
          "\"num_attention_heads\": 2, \"vocab_size\": 4}", f);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64], json[96];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    qs_error err;
    qs_plan *p;
    if (qs_plan_read_json(&p, path, &err) == 0) qs_plan_free(p);
    /* the manifest loader decides by the .json suffix: link the memfd under such a name */
    setup();
    snprintf(json, sizeof json, "%s/m.json", dir);
    unlink(json);
    if (symlink(path, json) == 0) {
        qs_evalset *s;
        if (qs_evalset_load(&s, json, NULL, 64, &err) == 0) qs_evalset_free(s);
        qs_vocab *v;
        if (qs_vocab_from_hf_json(&v, json, &err) == 0) {
            int *ids;
            size_t n;
            if (qs_tokenize(v, "Hello world 123", 15, 1, &ids, &n, &err) == 0) free(ids);
            qs_vocab_free(v);
        }
    }
    /* as a safetensors shard */
    char st[96];
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    FILE *f = fopen(st, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
        qs_model *m;
        if (qs_model_open(&m, dir, NULL, &err) == 0) qs_model_close(m);
    }
    close(fd);
    return 0;
}
