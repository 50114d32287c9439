/* qsense: the command-line entry point. Dispatches to subcommands; exit codes per DESIGN.md:
 * 0 ok, 1 check failed, 2 usage error, 3 bad input, 4 internal error. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/qs_blas.h"
#include "../core/qs_output.h"
#include "cli.h"

#ifndef QS_VERSION
#define QS_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "qsense " QS_VERSION " - how much accuracy each part of an LLM loses when quantized\n"
            "\n"
            "usage: qsense COMMAND [options]   (qsense COMMAND --help for details)\n"
            "\n"
            "commands:\n"
            "  profile   measure every tensor: weight and activation statistics, quantization error\n"
            "            for many formats; results to an SQLite database + HDF5 arrays\n"
            "  plan      choose a format per tensor for a size budget, from profile --sensitivity\n"
            "  quantize  apply a plan to a GGUF model, writing a GGUF llama.cpp loads\n"
            "  report    HTML report with figures (gnuplot) of a profile run, or --text for a terminal\n"
            "  check     regression gate for CI: candidate vs reference per domain, JUnit + Markdown\n"
            "  ppl       perplexity of a model on a text (llama-perplexity's convention); with\n"
            "            --base, KL divergence against the base model\n"
            "  inspect   architecture, metadata and tensor table of a model file\n"
            "  tokenize  token ids of a text, as llama.cpp produces them\n"
            "\n"
            "models: GGUF (.gguf), llama2.c checkpoints (.bin + tokenizer.bin), Hugging Face\n"
            "        safetensors directories (config.json + *.safetensors + tokenizer.json)\n"
            "exit codes: 0 ok, 1 check failed (check, plan verify), 2 usage error, 3 bad input, 4 internal error\n");
}

int cli_fail(const qs_error *err) {
    fprintf(stderr, "qsense: %s\n", err->msg);
    return qs_error_exit_code(err->code);
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "qsense %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see qsense %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

int cli_int(const char *cmd, const char *opt, const char *val, int lo, int hi) {
    char *end;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || *end || v < lo || v > hi) {
        cli_usage(cmd, "%s expects an integer from %d to %d, got '%s'", opt, lo, hi, val ? val : "");
        return -1;
    }
    return (int)v;
}

long long cli_size(const char *cmd, const char *opt, const char *val) {
    char *end;
    double v = val ? strtod(val, &end) : -1;
    double mul = 1;
    if (val && *end) {
        const char *u = "KMGT";
        const char *hit = strchr(u, end[0] & ~0x20);
        if (hit && (!end[1] || ((end[1] & ~0x20) == 'B' && !end[2]) || ((end[1] & ~0x20) == 'I' && (end[2] & ~0x20) == 'B' && !end[3])))
            for (const char *c = u; c <= hit; c++) mul *= 1024;
        else
            v = -1;
    }
    if (!val || !(v > 0) || v * mul > 9e18) {
        cli_usage(cmd, "%s expects a size such as 800M or 16G, got '%s'", opt, val ? val : "");
        return -1;
    }
    return (long long)(v * mul);
}

/* length of the valid UTF-8 sequence at p (1-4), or 0 if it is not one (overlong forms,
 * surrogates and code points past U+10FFFF are not) */
static int utf8_len(const unsigned char *p) {
    if (p[0] < 0x80) return 1;
    int n = p[0] >= 0xc2 && p[0] <= 0xdf ? 2 : p[0] >= 0xe0 && p[0] <= 0xef ? 3 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))) return 0;
    return n;
}

void cli_json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        int n = utf8_len(p);
        if (n == 0) { /* JSON is UTF-8: a byte that is not becomes U+FFFD, as decoders do */
            fputs("\\ufffd", stdout);
            p++;
        } else if (*p == '"' || *p == '\\') {
            printf("\\%c", *p++);
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\u%04x", *p++);
        } else {
            fwrite(p, 1, (size_t)n, stdout);
            p += n;
        }
    }
    putchar('"');
}

static int dispatch(int argc, char **argv);

/* Runs the command, then makes sure what it printed reached standard output: a full disk under
 * `qsense ppl --json > out.json` is an error, not a silent truncated file. */
int main(int argc, char **argv) {
    qs_blas_pick_kernels(argv); /* may execute qsense again, with OpenBLAS's best kernels */
    qs_output_install_signal_handlers();
    int rc = dispatch(argc, argv);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "qsense: cannot write to standard output (disk full or a file size limit?); its contents are "
                        "incomplete\n");
        if (rc == 0) rc = 3;
    }
    return rc;
}

static int dispatch(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("qsense %s\nBLAS: OpenBLAS, %s kernels (%s; this CPU's best: %s)\n", QS_VERSION, qs_blas_core(),
               !strcmp(qs_blas_how(), "auto")   ? "chosen by qsense: OpenBLAS did not recognise the CPU"
               : !strcmp(qs_blas_how(), "user") ? "OPENBLAS_CORETYPE"
                                                : "chosen by OpenBLAS",
               qs_blas_best_core());
        return 0;
    }
    if (!strcmp(cmd, "ppl")) return cmd_ppl(argc - 1, argv + 1);
    if (!strcmp(cmd, "inspect")) return cmd_inspect(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "profile")) return cmd_profile(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "check")) return cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "qsense: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
