/* qsense plan: a mixed-precision plan from the sensitivity measurements; qsense plan verify. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/gguf.h"
#include "reports/planner/plan.h"

static void help(void) {
    printf("usage: qsense plan --db PATH (--budget-bytes N | --budget-bpw X) [--target llama.cpp|llm-compressor|any]\n"
           "                   [--domain-weights d=w,...] [--rounding auto|rtn|weighted|gptq] [--out plan.json]\n"
           "                   [--emit llama-quantize|llm-compressor] [--act FORMAT]\n"
           "       qsense plan verify OUT.gguf plan.json\n"
           "\n"
           "Chooses a format for every tensor so that the predicted KL divergence (the sum of the\n"
           "per-tensor costs measured by qsense profile --sensitivity, domain-weighted) is smallest\n"
           "within the budget: a Lagrangian sweep over the multiple-choice knapsack, then the best\n"
           "cost-per-byte upgrades with what is left.\n"
           "\n"
           "  --db PATH             a database with sensitivity rows (the newest such run is used)\n"
           "  --budget-bytes N      the size of the GGUF file to write (header included)\n"
           "  --budget-bpw X        bits per weight over all parameters (tensor data only)\n"
           "  --target T            llama.cpp (default): only ggml block types that fit each shape,\n"
           "                        f16/f32 where none fits; llm-compressor: integer formats and\n"
           "                        fp8-e4m3 on the Linear layers, f16 elsewhere; any: every measured format\n"
           "  --domain-weights L    favour domains, e.g. legal=3,python=1 (default: equal)\n"
           "  --rounding R          auto (default): every measured format competes; rtn: only round-to-\n"
           "                        nearest (llama-quantize without an imatrix); weighted: a block type's\n"
           "                        activation-weighted variant (q4_0-w ...) wherever the sweep measured\n"
           "                        it; gptq: a block type's GPTQ variant (q4_k-gptq ...: error compensation\n"
           "                        with the inputs' Gram matrix) wherever measured. Weighted and GPTQ\n"
           "                        plans need qsense quantize --db (the inputs' statistics)\n"
           "  --act FORMAT          a weight + activation plan (W8A8 with a-int8-token, FP8 with\n"
           "                        a-fp8-e4m3-token ...): the linears that read one input (q/k/v,\n"
           "                        attn_output, gate/up, down) either stay 16-bit or take one weight\n"
           "                        format with FORMAT on their input, costed with the site's measured KL\n"
           "                        (qsense profile --act-formats FORMAT); needs --target llm-compressor\n"
           "                        or any. --emit llm-compressor writes input_activations for them\n"
           "  --out FILE            write the plan (default plan.json); format in docs/plan.md\n"
           "  --emit llama-quantize also write FILE.tensor-types (anchored pattern=type lines) and print\n"
           "                        the llama-quantize command that applies the plan\n"
           "  --emit llm-compressor also write FILE.recipe.yaml, an llm-compressor recipe (config groups\n"
           "                        by target regex on Hugging Face module names)\n"
           "\n"
           "verify: compares the tensor types inside a GGUF with a plan; exit 1 on any difference.\n");
}

static int verify(int argc, char **argv) {
    if (argc != 4) return cli_usage("plan verify", "expected OUT.gguf plan.json");
    qs_error err = {0};
    qs_plan *p;
    if (qs_plan_read_json(&p, argv[3], &err)) return cli_fail(&err);
    int n_diff;
    int rc = qs_plan_verify_gguf(p, argv[2], &n_diff, &err);
    qs_plan_free(p);
    if (rc && n_diff) {
        fprintf(stderr, "qsense: %s\n", err.msg);
        return 1;
    }
    if (rc) return cli_fail(&err);
    printf("%s matches %s: every tensor has its planned type\n", argv[2], argv[3]);
    return 0;
}

int cmd_plan(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "verify")) return verify(argc, argv);
    qs_plan_options o = {0};
    const char *out = "plan.json", *emit = NULL;
    double file_bytes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--db")) { if (!val) return cli_usage("plan", "--db needs a path"); o.db_path = val; i++; }
        else if (!strcmp(a, "--out")) { if (!val) return cli_usage("plan", "--out needs a file"); out = val; i++; }
        else if (!strcmp(a, "--target")) { if (!val) return cli_usage("plan", "--target needs llama.cpp or any"); o.target = val; i++; }
        else if (!strcmp(a, "--rounding")) { if (!val) return cli_usage("plan", "--rounding needs auto, rtn, weighted or gptq"); o.rounding = val; i++; }
        else if (!strcmp(a, "--act")) { if (!val) return cli_usage("plan", "--act needs an activation format"); o.act = val; i++; }
        else if (!strcmp(a, "--domain-weights")) { if (!val) return cli_usage("plan", "--domain-weights needs a list"); o.domain_weights = val; i++; }
        else if (!strcmp(a, "--emit")) {
            if (!val || (strcmp(val, "llama-quantize") && strcmp(val, "llm-compressor")))
                return cli_usage("plan", "--emit supports llama-quantize and llm-compressor");
            emit = val;
            i++;
        } else if (!strcmp(a, "--budget-bytes")) {
            file_bytes = val ? strtod(val, &end) : 0;
            if (!val || *end || !(file_bytes > 0)) return cli_usage("plan", "--budget-bytes expects a positive number");
            i++;
        } else if (!strcmp(a, "--budget-bpw")) {
            o.budget_bpw = val ? strtod(val, &end) : 0;
            if (!val || *end || !(o.budget_bpw > 0 && o.budget_bpw <= 32)) return cli_usage("plan", "--budget-bpw expects a number in (0, 32]");
            i++;
        } else return cli_usage("plan", "unknown argument '%s'", a);
    }
    if (!o.db_path) return cli_usage("plan", "missing --db PATH");
    if ((file_bytes > 0) == (o.budget_bpw > 0)) return cli_usage("plan", "give exactly one of --budget-bytes or --budget-bpw");
    qs_error err = {0};
    qs_plan *p = NULL;
    if (file_bytes > 0) {
        /* a file budget: take out what is not tensor data (the source's header and metadata, the
         * keys qsense adds, and up to 31 bytes of alignment per tensor) */
        o.budget_bytes = 1; /* first pass only to learn the model */
        o.budget_bpw = 0;
        qs_plan *probe = NULL;
        qs_plan_options po = o;
        po.budget_bytes = 1e18;
        if (qs_plan_make(&probe, &po, &err)) return cli_fail(&err);
        qs_gguf *g;
        double overhead = 0;
        if (qs_gguf_open(&g, probe->model_path, &err) == 0) {
            overhead = (double)g->data_offset + 512 + 31.0 * (double)g->n_tensors;
            qs_gguf_close(g);
        } else {
            fprintf(stderr, "qsense plan: cannot read %s to size its header; budgeting tensor data only\n", probe->model_path);
        }
        qs_plan_free(probe);
        o.budget_bytes = file_bytes - overhead;
    }
    if (qs_plan_make(&p, &o, &err)) return cli_fail(&err);
    if (qs_plan_write_json(p, out, &err)) {
        qs_plan_free(p);
        return cli_fail(&err);
    }
    printf("plan for %s (%s target): %.0f bytes of tensors (budget %.0f), predicted KL %.5f\n", p->model_path, p->target,
           p->total_bytes, p->budget_bytes, p->predicted_kl);
    for (int d = 0; d < p->n_domains; d++) {
        printf("  %-16s predicted KL %.5f", p->domains[d], p->predicted_kl_domain[d]);
        if (isnan(p->additivity[d])) printf("\n");
        else printf(", x %.3f for additivity (whole-model runs) = %.5f\n", p->additivity[d], p->predicted_kl_domain[d] * p->additivity[d]);
    }
    if (p->n_costs_estimated)
        printf("costs: %lld measured, %lld estimated (the run's --sens-mode %s; measured rows win where both exist)\n",
               (long long)p->n_costs_measured, (long long)p->n_costs_estimated, p->est_method[0] ? p->est_method : "?");
    int counts[64] = {0};
    char names[64][32];
    int nn = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        int k = 0;
        while (k < nn && strcmp(names[k], p->tensors[i].format)) k++;
        if (k == nn && nn < 64) snprintf(names[nn++], sizeof names[0], "%s", p->tensors[i].format);
        if (k < 64) counts[k]++;
    }
    printf("formats:");
    for (int k = 0; k < nn; k++) printf(" %s x%d", names[k], counts[k]);
    /* a mixture of experts: what the experts take of the plan (they decide a MoE file's size) */
    double expert_bytes = 0, expert_cost = 0;
    for (int i = 0; i < p->n_tensors; i++)
        if (strstr(p->tensors[i].name, "_exps.")) expert_bytes += p->tensors[i].bytes, expert_cost += p->tensors[i].cost;
    if (expert_bytes > 0)
        printf("\nexperts: %.1f %% of the tensor bytes, %.1f %% of the predicted KL", 100.0 * expert_bytes / p->total_bytes,
               p->predicted_kl > 0 ? 100.0 * expert_cost / p->predicted_kl : 0.0);
    printf("\nwritten: %s\n", out);
    int64_t plan_id;
    if (qs_plan_record(p, o.db_path, out, &plan_id, &err))
        fprintf(stderr, "qsense plan: warning: the plan was written but not recorded in the database: %s\n", err.msg);
    else
        printf("recorded in %s as plan %lld, with the size/cost Pareto front (%d points)\n", o.db_path, (long long)plan_id,
               p->n_curve);
    if (emit && !strcmp(emit, "llm-compressor")) {
        char rp[4200];
        snprintf(rp, sizeof rp, "%s.recipe.yaml", out);
        if (qs_plan_write_llm_compressor(p, rp, &err)) {
            qs_plan_free(p);
            return cli_fail(&err);
        }
        printf("llm-compressor recipe: %s (oneshot(model=..., recipe=\"%s\"))\n", rp, rp);
    } else if (emit) {
        char tt[4200];
        snprintf(tt, sizeof tt, "%s.tensor-types", out);
        if (qs_plan_write_tensor_type_file(p, tt, &err)) {
            qs_plan_free(p);
            return cli_fail(&err);
        }
        printf("llama.cpp: llama-quantize --tensor-type-file %s %s OUT.gguf q8_0\n", tt, p->model_path);
        if (qs_plan_needs_importance(p))
            printf("note: the plan's '-w' / '-gptq' formats round with activation statistics; llama-quantize does weighted "
                   "rounding only with an --imatrix (its own statistics) and no GPTQ: qsense quantize MODEL --plan %s --db %s "
                   "-o OUT.gguf writes the exact plan\n", out, o.db_path);
    }
    qs_plan_free(p);
    return 0;
}
