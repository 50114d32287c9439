/* No qsense command can replace its own input, write half a file, or leave temporary files:
 * outputs that are (or resolve to) an input are refused before any work, FIFOs and directories
 * are refused, two writers to one output leave exactly one writer's file, and a full disk (a file
 * size limit, /dev/full) gives a non-zero exit with the old file intact. docs/security.md lists
 * the guarantees; each case here is one of issue 15's defects. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs_file.h"
#include "core/qs_path.h"
#include "tests/test_util.h"

static char dir[512];

/* runs a qsense command line in dir; checks exit code and message */
static void expect(const char *what, int code, const char *want_msg, const char *fmt, const char *arg) {
    char *out;
    char line[4096];
    snprintf(line, sizeof line, fmt, arg);
    int rc = run_in(dir, &out, "%s", line);
    CHECK(rc == code, "%s: exit %d, want %d: %.500s", what, rc, code, out);
    CHECK(!want_msg || strstr(out, want_msg), "%s: message lacks '%s': %.500s", what, want_msg, out);
    CHECK(!strstr(out, "Sanitizer"), "%s: sanitizer report: %.800s", what, out);
    free(out);
}

static void expect_same(const char *what, const char *file, const char *sha_before) {
    char path[1024], now[65];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    file_sha256(path, now);
    CHECK(!strcmp(now, sha_before), "%s: %s changed (sha256 %.12s -> %.12s)", what, file, sha_before, now);
}

static void sha_of(const char *file, char out[65]) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    file_sha256(path, out);
}

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf"), *out;
    snprintf(dir, sizeof dir, "%s", d);
    /* a writable copy: if a check below ever fails, only the copy is lost */
    int rc = run_in(dir, &out,
                    "cp '%s' M.gguf && chmod 644 M.gguf && mkdir sub && ln -s M.gguf link.gguf && mkfifo fifo && "
                    "printf '{\"name\": \"tiny\", \"domains\": [{\"name\": \"gpl\", \"files\": [\"%s\"], \"tokens\": 512}]}' "
                    "> tiny.json && $Q profile M.gguf --db s.db --formats q8_0 --calib-tokens 256 --sensitivity --eval tiny.json "
                    "--sens-formats q8_0,q4_0,q5_0 --quiet && $Q plan --db s.db --budget-bpw 7 --out a.json && "
                    "$Q plan --db s.db --budget-bytes 300000 --out b.json && $Q quantize M.gguf --plan a.json -o a.gguf && "
                    "$Q quantize M.gguf --plan b.json -o b.gguf",
                    model, "/usr/share/common-licenses/GPL-3");
    CHECK(rc == 0, "setup: %.2000s", out);
    free(out);
    char m_sha[65], db_sha[65], a_sha[65], b_sha[65], plan_sha[65];
    sha_of("M.gguf", m_sha);
    sha_of("s.db", db_sha);
    sha_of("a.gguf", a_sha);
    sha_of("b.gguf", b_sha);
    sha_of("a.json", plan_sha);
    CHECK(strcmp(a_sha, b_sha), "the two plans must give different files");

    /* outputs that are inputs, by every spelling */
    const char *same[] = {"M.gguf", "./M.gguf", "sub/../M.gguf", "link.gguf", "a.json"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        expect("quantize -o onto its input", 3, "is an input of this command", "$Q quantize M.gguf --plan a.json -o %s",
               same[i]);
        expect_same("quantize -o onto its input", "M.gguf", m_sha);
    }
    expect_same("quantize -o onto its plan", "a.json", plan_sha);
    struct stat st;
    char p[1024];
    snprintf(p, sizeof p, "%s/link.gguf", dir);
    CHECK(lstat(p, &st) == 0 && S_ISLNK(st.st_mode), "the symbolic link is still a link");
    expect("quantize -o a FIFO", 3, "FIFO", "$Q quantize M.gguf --plan a.json -o %s", "fifo");
    snprintf(p, sizeof p, "%s/fifo", dir);
    CHECK(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode), "the FIFO is still a FIFO");
    expect("quantize -o a directory", 3, "is a directory", "$Q quantize M.gguf --plan a.json -o %s", "sub");
    expect("quantize --db as -o", 3, "is an input", "$Q quantize M.gguf --plan a.json --db s.db -o %s", "s.db");
    expect_same("quantize --db as -o", "s.db", db_sha);
    expect("plan --out onto its database", 3, "is an input", "$Q plan --db s.db --budget-bpw 7 --out %s", "s.db");
    expect_same("plan --out onto its database", "s.db", db_sha);
    expect("check --junit onto the reference", 3, "is an input",
           "$Q check --model a.gguf --base M.gguf --data tiny.json --ctx 128 --junit %s --markdown a.gguf", "M.gguf");
    expect("check --markdown onto the candidate", 3, "is an input",
           "$Q check --model a.gguf --base M.gguf --data tiny.json --ctx 128 --junit j.xml --markdown %s", "a.gguf");
    expect_same("check outputs onto models", "M.gguf", m_sha);
    expect_same("check outputs onto models", "a.gguf", a_sha);
    expect("check --junit = --markdown", 2, "same file",
           "$Q check --model a.gguf --base M.gguf --data tiny.json --ctx 128 --junit %s --markdown j.xml", "j.xml");
    /* a symbolic link in the way of an output is replaced, never written through */
    rc = run_in(dir, &out, "mkdir rep && ln -s ../M.gguf rep/index.html && $Q report --db s.db --out rep");
    CHECK(rc == 0, "report over a link to a file: exit %d: %.400s", rc, out);
    free(out);
    expect_same("report over a link to a file", "M.gguf", m_sha);
    snprintf(p, sizeof p, "%s/rep/index.html", dir);
    CHECK(lstat(p, &st) == 0 && S_ISREG(st.st_mode), "the link was replaced by the report's page");

    /* two writers, one output: the file is one writer's, whole; no temporary file stays */
    for (int round = 0; round < 3; round++) {
        rc = run_in(dir, &out, "($Q quantize M.gguf --plan a.json -o two.gguf & $Q quantize M.gguf --plan b.json -o two.gguf & "
                               "wait) > /dev/null");
        free(out);
        char two[65];
        sha_of("two.gguf", two);
        CHECK(!strcmp(two, a_sha) || !strcmp(two, b_sha), "round %d: two writers left a file that is neither plan's", round);
    }
    CHECK(count_files_matching(dir, "*.tmp") == 0, "temporary files left behind");

    /* a full disk or a file size limit: non-zero exit, the old file intact, nothing left over */
    rc = run_in(dir, &out, "echo old > full.json && (ulimit -f 2 && $Q plan --db s.db --budget-bpw 7 --out full.json)");
    CHECK(rc == 3 && strstr(out, "full.json") && strstr(out, "size limit"), "plan --out past a size limit: exit %d: %.400s", rc,
          out);
    free(out);
    rc = run_in(dir, &out, "grep -qx old full.json");
    CHECK(rc == 0, "plan --out past a size limit kept the old file");
    free(out);
    rc = run_in(dir, &out, "echo old > j2.xml && echo old > m2.md && (ulimit -f 0 && $Q check --model a.gguf --base M.gguf "
                           "--data tiny.json --ctx 128 --junit j2.xml --markdown m2.md)");
    CHECK(rc == 3 && strstr(out, "j2.xml"), "check --junit past a size limit: exit %d: %.400s", rc, out);
    free(out);
    rc = run_in(dir, &out, "grep -qx old j2.xml && grep -qx old m2.md");
    CHECK(rc == 0, "check past a size limit kept the old JUnit and Markdown files");
    free(out);
    rc = run_in(dir, &out, "(ulimit -f 100 && $Q quantize M.gguf --plan a.json -o big.gguf)");
    CHECK(rc == 3 && strstr(out, "big.gguf") && strstr(out, "size limit"), "quantize past a size limit: exit %d: %.400s", rc, out);
    free(out);
    snprintf(p, sizeof p, "%s/big.gguf", dir);
    CHECK(!qs_path_exists(p), "quantize past a size limit left a file");
    /* a profile past a size limit: its database or its HDF5 file fails, never the process */
    for (int kb = 64; kb <= 1024; kb *= 4) {
        char cmdl[512];
        snprintf(cmdl, sizeof cmdl, "rm -f lim.db* && (ulimit -f %d && $Q profile M.gguf --db lim.db --formats q8_0,q4_0 "
                 "--calib-tokens 256 --quiet)", kb);
        rc = run_in(dir, &out, "%s", cmdl);
        CHECK(rc == 0 || (rc == 3 && strstr(out, "lim.db")), "profile under a %d KB file size limit: exit %d: %.400s", kb, rc,
              out);
        free(out);
    }
    rc = run_in(dir, &out, "($Q ppl M.gguf --text /usr/share/common-licenses/GPL-3 --ctx 128 --chunks 2 --json --quiet > /dev/full)");
    CHECK(rc != 0 && strstr(out, "standard output"), "ppl --json to a full disk: exit %d: %.400s", rc, out);
    free(out);
    CHECK(count_files_matching(dir, "*.tmp") == 0, "temporary files left behind after the full-disk cases");

    run_in(dir, &out, "rm -rf '%s'", dir);
    free(out);
    free(d);
    free(model);
    return test_done("test_outputs_never_replace_inputs");
}
