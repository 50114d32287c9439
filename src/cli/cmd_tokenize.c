/* qsense tokenize: token ids of a text, as llama.cpp's tokenizer produces them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/qs_file.h"
#include "io/model.h"
#include "tok/vocab.h"

static void help(void) {
    printf("usage: qsense tokenize MODEL (--text FILE | --string TEXT) [--no-special] [--tokenizer FILE]\n"
           "                       [--pieces] [--json]\n"
           "\n"
           "Prints the token ids of the text, one line, space-separated (as llama-tokenize --ids).\n"
           "MODEL may also be a vocabulary-only GGUF.\n"
           "\n"
           "  --text FILE       read the text from FILE\n"
           "  --string TEXT     tokenize TEXT\n"
           "  --no-special      do not add BOS/EOS (llama.cpp's add_special = false)\n"
           "  --tokenizer FILE  tokenizer.bin, tokenizer.json or GGUF vocabulary to use\n"
           "  --pieces          print id and piece, one per line\n"
           "  --json            print {\"n_tokens\": N, \"ids\": [...]}\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *model_path = NULL, *text_path = NULL, *str = NULL, *tok_path = NULL;
    int special = 1, json = 0, pieces = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--pieces")) pieces = 1;
        else if (!strcmp(a, "--no-special")) special = 0;
        else if (!strcmp(a, "--text")) { if (!val) return cli_usage("tokenize", "--text needs a file"); text_path = val; i++; }
        else if (!strcmp(a, "--string")) { if (!val) return cli_usage("tokenize", "--string needs text"); str = val; i++; }
        else if (!strcmp(a, "--tokenizer")) { if (!val) return cli_usage("tokenize", "--tokenizer needs a file"); tok_path = val; i++; }
        else if (a[0] == '-') return cli_usage("tokenize", "unknown option '%s'", a);
        else if (!model_path) model_path = a;
        else return cli_usage("tokenize", "unexpected argument '%s'", a);
    }
    if (!model_path) return cli_usage("tokenize", "missing MODEL");
    if (!text_path == !str) return cli_usage("tokenize", "give exactly one of --text FILE or --string TEXT");
    qs_error err = {0};
    qs_vocab *v = NULL;
    qs_model *m = NULL;
    char *text = NULL;
    size_t n = 0, n_ids = 0;
    int *ids = NULL, rc;
    qs_model_options opt = {tok_path};
    rc = qs_model_open(&m, model_path, &opt, &err);
    if (rc) {
        /* a vocabulary-only GGUF has no tensors: load its vocabulary directly */
        qs_error e2 = {0};
        if (qs_vocab_from_gguf_path(&v, model_path, &e2) != 0) goto out; /* report the model error */
        rc = 0;
    } else if ((rc = qs_vocab_for_model(&v, m, &err))) {
        goto out;
    }
    if (text_path) {
        if ((rc = qs_read_file(text_path, &text, &n, &err))) goto out;
    } else {
        text = strdup(str);
        n = strlen(str);
    }
    if ((rc = qs_tokenize(v, text, n, special, &ids, &n_ids, &err))) goto out;
    if (json) {
        printf("{\"n_tokens\": %zu, \"ids\": [", n_ids);
        for (size_t i = 0; i < n_ids; i++) printf(i ? ", %d" : "%d", ids[i]);
        printf("]}\n");
    } else if (pieces) {
        for (size_t i = 0; i < n_ids; i++) {
            printf("%6d ", ids[i]);
            cli_json_str(v->text[ids[i]]);
            putchar('\n');
        }
    } else {
        for (size_t i = 0; i < n_ids; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
out:
    free(ids);
    free(text);
    qs_vocab_free(v);
    qs_model_close(m);
    return rc ? cli_fail(&err) : 0;
}
