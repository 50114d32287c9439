/* qsense quantize: apply a plan to a GGUF model. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "quantize/quantize.h"

static void help(void) {
    printf("usage: qsense quantize MODEL --plan plan.json -o OUT.gguf [--db DB] [--tokenizer FILE] [--threads T]\n"
           "                      [--quiet]\n"
           "\n"
           "Writes a GGUF v3 with every tensor in the format the plan gives it (llama.cpp block types,\n"
           "encoded byte for byte as llama-quantize does; f16/f32). MODEL is a GGUF (metadata and\n"
           "tokenizer carried over), a llama2.c checkpoint or a Hugging Face directory of any family\n"
           "qsense reads (its {arch}.* and tokenizer.ggml.* keys written as llama.cpp's converter\n"
           "writes them; a llama's attn_q / attn_k rows put in llama.cpp's RoPE order; Gemma's norms\n"
           "stored as 1 + w). The plan must have been made for this model (checked by content\n"
           "sha256). Measure the result with: qsense ppl OUT.gguf --base MODEL --text FILE\n"
           "\n"
           "  --db DB           the profile database the plan came from: formats with activation-\n"
           "                    weighted rounding (q4_0-w .. q6_k-w, iq1_s-w .. iq4_xs-w)\n"
           "                    take each tensor's inputs' mean square from it, as llama-quantize\n"
           "                    takes an imatrix; GPTQ formats (q4_k-gptq ...) also the inputs' Gram\n"
           "                    matrix, which the profile stores when its sweep has a -gptq format\n"
           "  --tokenizer FILE  a llama2.c model's tokenizer.bin (default: tokenizer.bin beside it)\n"
           "  --threads T       threads rounding rows (default: all cores)\n"
           "  --quiet           no progress on stderr\n"
           "\n"
           "Memory: the model file (mapped) and one tensor's rows in f32, at most 32 MiB at a time\n"
           "(a GPTQ tensor, or a llama's attn_q / attn_k reordered for RoPE, whole); the output is\n"
           "written as it is made.\n");
}

int cmd_quantize(int argc, char **argv) {
    const char *model = NULL, *plan_path = NULL, *out = NULL;
    qs_quantize_options opt = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--plan")) { if (!val) return cli_usage("quantize", "--plan needs a file"); plan_path = val; i++;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!val) return cli_usage("quantize", "--tokenizer needs a file");
            opt.tokenizer_path = val;
            i++;
        } else if (!strcmp(a, "--db")) {
            if (!val) return cli_usage("quantize", "--db needs a path");
            opt.db_path = val;
            i++;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if ((opt.threads = cli_int("quantize", a, val, 1, 1024)) < 0) return 2;
            i++;
        } else if (!strcmp(a, "--quiet"))
            opt.quiet = 1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { if (!val) return cli_usage("quantize", "-o needs a file"); out = val; i++; }
        else if (a[0] == '-') return cli_usage("quantize", "unknown option '%s'", a);
        else if (!model) model = a;
        else return cli_usage("quantize", "unexpected argument '%s'", a);
    }
    if (!model || !plan_path || !out) return cli_usage("quantize", "expected MODEL --plan plan.json -o OUT.gguf");
    qs_error err = {0};
    qs_plan *p;
    if (qs_plan_read_json(&p, plan_path, &err)) return cli_fail(&err);
    qs_quantize_result r;
    int rc = qs_quantize_gguf(model, p, out, &opt, &r, &err);
    qs_plan_free(p);
    if (rc) return cli_fail(&err);
    printf("wrote %s: %lld bytes (%lld of tensor data, %d tensors in block types)\n", out, (long long)r.file_bytes,
           (long long)r.tensor_bytes, r.n_quantized);
    return 0;
}
