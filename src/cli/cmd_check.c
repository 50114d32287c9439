/* qsense check: the quantization regression gate for CI. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "gate/check.h"

static void help(void) {
    printf("usage: qsense check (--model CANDIDATE | --plan plan.json) --base REFERENCE --data SET\n"
           "                    [--thresholds FILE] [--db PATH] [--junit FILE] [--markdown FILE] [--ctx N]\n"
           "                    [--threads T] [--llamacpp-numerics] [--mem-budget SIZE]\n"
           "\n"
           "For every domain of the evaluation set, compares the candidate with the reference the way\n"
           "llama-perplexity --kl-divergence does (mean and p99 KL, perplexity ratio, top-1\n"
           "agreement) and judges each metric against the thresholds (docs/check.md), or against the\n"
           "last passing run recorded in --db. With --plan the candidate is the reference with the\n"
           "plan's formats applied in memory: no file is written.\n"
           "\n"
           "  --data SET         'debian', 'shared', a manifest .json, or a text file\n"
           "  --thresholds FILE  JSON thresholds (default: max_kl 0.1, max_ppl_ratio 1.05, min_top1 0.8)\n"
           "  --db PATH          record this run (with the git commit) and enable baseline mode\n"
           "  --junit FILE       JUnit XML, one test case per domain x metric\n"
           "  --markdown FILE    a Markdown summary table for a pull-request comment\n"
           "  --ctx N            chunk length (default 512)\n"
           "  --threads T        threads (default: all cores)\n"
           "  --llamacpp-numerics  round activations as llama.cpp's CPU backend does\n"
           "  --mem-budget SIZE  --plan: memory for f32 copies of tensors planned in formats without\n"
           "                     GGUF blocks (int, fp8, nf4, MX ...; 800M, 16G; default 80 %% of\n"
           "                     physical memory). Beyond it, a format whose rows round independently\n"
           "                     is applied to the rows as they are read (no copy; slower: every\n"
           "                     chunk rounds them again); llama.cpp types stay in their blocks\n"
           "\n"
           "exit codes: 0 every domain passes, 1 a check failed, 2 usage error, 3 bad input\n");
}

int cmd_check(int argc, char **argv) {
    qs_check_options o = {0};
    o.ctx = 512;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        const char **dst = !strcmp(a, "--model") ? &o.candidate : !strcmp(a, "--plan") ? &o.plan : !strcmp(a, "--base") ? &o.reference
                         : !strcmp(a, "--data") ? &o.data : !strcmp(a, "--thresholds") ? &o.thresholds : !strcmp(a, "--db") ? &o.db
                         : !strcmp(a, "--junit") ? &o.junit : !strcmp(a, "--markdown") ? &o.markdown : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (dst) {
            if (!val) return cli_usage("check", "%s needs a value", a);
            *dst = val;
            i++;
        } else if (!strcmp(a, "--ctx")) { if ((o.ctx = cli_int("check", a, val, 4, 1 << 20)) < 0) return 2; i++;
        } else if (!strcmp(a, "--mem-budget")) {
            if ((o.mem_budget = cli_size("check", a, val)) < 0) return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if ((o.threads = cli_int("check", a, val, 1, 1024)) < 0) return 2;
            i++;
        } else if (!strcmp(a, "--llamacpp-numerics"))
            o.llamacpp_numerics = 1;
        else return cli_usage("check", "unknown argument '%s'", a);
    }
    if (!o.candidate == !o.plan) return cli_usage("check", "give exactly one of --model CANDIDATE or --plan plan.json");
    if (!o.reference) return cli_usage("check", "missing --base REFERENCE");
    if (!o.data) return cli_usage("check", "missing --data SET");
    qs_error err = {0};
    qs_check_summary s;
    if (qs_check_run(&o, &s, &err)) return cli_fail(&err);
    printf("%-16s %10s %10s %10s %8s  %s\n", "domain", "KL", "KL p99", "PPL ratio", "top-1", "verdict");
    for (int d = 0; d < s.n_domains; d++) {
        const qs_check_domain *x = &s.d[d];
        int bad = 0;
        for (int k = 0; k < QS_CHECK_N_METRICS; k++) bad |= x->failed[k];
        printf("%-16s %10.5f %10.4f %10.4f %7.2f%%  %s\n", x->domain, x->value[QS_CHECK_KL], x->value[QS_CHECK_KL_P99],
               x->value[QS_CHECK_PPL_RATIO], 100 * x->value[QS_CHECK_TOP1], bad ? "FAIL" : "pass");
    }
    printf("%d checks, %d failed\n", s.n_checks, s.n_failed);
    int failed = s.n_failed;
    qs_check_summary_free(&s);
    return failed ? 1 : 0;
}
