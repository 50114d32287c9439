/* valgrind (memcheck) over the normal path of every CLI command on real stories260K files:
 * no invalid reads or writes, no use of uninitialised values, and no memory definitely or
 * indirectly lost at exit. ("Possibly lost" is the thread pool's stacks: its workers live until
 * the process ends, by design.) The sweep that feeds plan/quantize/check runs natively first;
 * everything after it runs under valgrind. */
#include <string.h>

#include "tests/test_util.h"

static char dir[512];

static void under_valgrind(const char *what, const char *args, int want_rc) {
    char cmd[8192], *out;
    snprintf(cmd, sizeof cmd,
             "cd '%s' && valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "
             "--track-origins=no '%s' %s 2>&1 >/dev/null",
             dir, qsense_bin(), args);
    int rc = run_cmd(cmd, &out);
    CHECK(rc == want_rc, "%s: exit %d under valgrind, want %d (99 = memcheck errors): %.3000s", what, rc, want_rc, out);
    CHECK(!strstr(out, "Invalid read") && !strstr(out, "Invalid write") && !strstr(out, "uninitialised") &&
              !strstr(out, "definitely lost"),
          "%s: memcheck: %.3000s", what, out);
    free(out);
}

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf"), *bin = model_path("stories260K.bin");
    char *tok = model_path("tok512.bin"), args[4096], *out;
    snprintf(dir, sizeof dir, "%s", d);
    const char *gpl = "/usr/share/common-licenses/GPL-3";
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "valgrind --version && cd '%s' && head -c 12000 %s > text.txt && head -c 800 %s > tiny.txt && '%s' profile '%s' --db sens.db "
             "--formats q8_0 --sensitivity --eval text.txt --sens-formats q8_0,q5_0,q4_0 --quiet > /dev/null",
             dir, gpl, gpl, qsense_bin(), model);
    CHECK(run_cmd(cmd, &out) == 0, "valgrind and the native sweep: %s", out);
    free(out);

    snprintf(args, sizeof args, "inspect '%s'", model);
    under_valgrind("inspect gguf", args, 0);
    snprintf(args, sizeof args, "inspect '%s' --json", bin);
    under_valgrind("inspect llama2.c", args, 0);
    snprintf(args, sizeof args, "tokenize '%s' --string 'Once upon a time, there was a little cat.' --pieces", model);
    under_valgrind("tokenize", args, 0);
    snprintf(args, sizeof args, "ppl '%s' --tokenizer '%s' --text text.txt --ctx 64 --chunks 2 --quiet", bin, tok);
    under_valgrind("ppl llama2.c", args, 0);
    char *q4 = model_path("stories260K-llamacpp-Q4_K_M.gguf");
    snprintf(args, sizeof args, "ppl '%s' --base '%s' --text text.txt --ctx 64 --chunks 2 --llamacpp-numerics --quiet", q4, model);
    under_valgrind("ppl --base", args, 0);
    snprintf(args, sizeof args, "profile '%s' --db p.db --formats q4_0,int4-g128-asym,nf4-g64 --calib-tokens 256 --quiet", model);
    under_valgrind("profile", args, 0);
    under_valgrind("plan", "plan --db sens.db --budget-bpw 9 --out plan.json --emit llama-quantize", 0);
    snprintf(args, sizeof args, "quantize '%s' --plan plan.json -o out.gguf", model);
    under_valgrind("quantize", args, 0);
    under_valgrind("plan verify", "plan verify out.gguf plan.json", 0);
    snprintf(args, sizeof args, "check --model out.gguf --base '%s' --data tiny.txt --ctx 32 --db sens.db --junit j.xml", model);
    under_valgrind("check", args, 0);
    under_valgrind("report --text", "report --db sens.db --text", 0);
    under_valgrind("report --out", "report --db sens.db --out rep", 0);
    snprintf(args, sizeof args, "ppl '%s' --text /nonexistent.txt", model);
    under_valgrind("an error path", args, 3);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    run_cmd(cmd, &out);
    free(out);
    free(d); free(model); free(bin); free(tok); free(q4);
    return test_done("test_valgrind_cli");
}
