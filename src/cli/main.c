/* qsense: the command-line entry point. Dispatches to subcommands; exit codes per docs/design.md:
 * 0 ok, 1 check failed, 2 usage error, 3 bad input, 4 internal error. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyzers/sweep_mpi.h"
#include "cli/cli.h"
#include "core/qs_blas.h"
#include "core/qs_output.h"

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
        printf("MPI: %s\n", qs_mpi_available() ? "built in (mpirun -n N qsense profile ... --sensitivity spreads the sweep)"
                                                : "not built in (the sweep runs in one process)");
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
