/* qsense never writes to a database that is not its own, never creates one by accident, never
 * reads results from a damaged one, and keeps its rows consistent when two processes share one:
 * another program's SQLite file, a missing path, a file that is not SQLite, a corrupted b-tree, a
 * newer schema, a read-only file or directory, a lock held by someone else, and two profiles
 * started together on a new file (issue 15's database defects, one case each). */
#include <sqlite3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs_file.h"
#include "core/qs_path.h"
#include "tests/test_util.h"

static char dir[512];

static char *at(const char *name) {
    static char p[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void sql(const char *db, const char *stmt) {
    sqlite3 *h;
    CHECK(sqlite3_open(db, &h) == SQLITE_OK, "open %s", db);
    char *msg = NULL;
    CHECK(sqlite3_exec(h, stmt, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", stmt, msg ? msg : "");
    sqlite3_free(msg);
    sqlite3_close(h);
}

/* runs the command line (with %s replaced by db) and checks exit code, message and that db's
 * bytes are what they were */
static void refused(const char *what, const char *db, const char *want, const char *fmt) {
    char before[65], after[65], line[2048], *out;
    file_sha256(at(db), before);
    snprintf(line, sizeof line, fmt, db);
    int rc = run_in(dir, &out, "%s", line);
    CHECK(rc == 3, "%s: exit %d, want 3: %.500s", what, rc, out);
    CHECK(strstr(out, db) && strstr(out, want), "%s: message lacks '%s' or the file name: %.500s", what, want, out);
    file_sha256(at(db), after);
    CHECK(!strcmp(before, after), "%s: %s was modified", what, db);
    free(out);
}

static const char *CMDS[] = {
    "$Q report --db %s --text",
    "$Q report --db %s --out rep",
    "$Q plan --db %s --budget-bpw 7 --out p.json",
    "$Q profile M.gguf --db %s --formats q8_0 --calib-tokens 256 --quiet",
    "$Q check --model q.gguf --base M.gguf --data tiny.json --ctx 128 --db %s",
};
#define N_CMDS 5

static const char *const ROWS[] = {
    "SELECT t.name, f.name, q.applicable, q.bpw, q.mse, q.output_error FROM qerror q JOIN tensors t ON t.id = q.tensor_id "
    "JOIN formats f ON f.id = q.format_id ORDER BY t.name, f.name",
    "SELECT count(*) FROM runs", "SELECT count(*) FROM jobs", "SELECT count(*) FROM tensors"};

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf"), *out;
    snprintf(dir, sizeof dir, "%s", d);
    chmod(dir, 0755); /* the read-only case runs as another user */
    int rc = run_in(dir, &out,
                    "cp '%s' M.gguf && printf '{\"name\": \"tiny\", \"domains\": [{\"name\": \"gpl\", \"files\": "
                    "[\"/usr/share/common-licenses/GPL-3\"], \"tokens\": 512}]}' > tiny.json && $Q profile M.gguf --db s.db "
                    "--formats q8_0 --calib-tokens 256 --sensitivity --eval tiny.json --sens-formats q8_0,q4_0,q5_0 --quiet && "
                    "$Q plan --db s.db --budget-bpw 7 --out a.json && $Q quantize M.gguf --plan a.json -o q.gguf",
                    model);
    CHECK(rc == 0, "setup: %.2000s", out);
    free(out);

    /* another program's SQLite file: refused by every command, not a byte written, no -wal */
    sql(at("app.db"), "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'ada');");
    for (int i = 0; i < N_CMDS; i++) refused("another program's database", "app.db", "not a qsense database", CMDS[i]);
    CHECK(!qs_path_exists(at("app.db-wal")) && !qs_path_exists(at("app.db-shm")), "WAL files appeared beside app.db");
    /* a file that is not SQLite at all (the model itself) */
    for (int i = 0; i < N_CMDS; i++) refused("a model as database", "M.gguf", "not an SQLite file", CMDS[i]);

    /* a path that does not exist: only profile and check create a database */
    for (int i = 0; i < 3; i++) {
        char line[512];
        snprintf(line, sizeof line, CMDS[i], "typo.db");
        rc = run_in(dir, &out, "%s", line);
        CHECK(rc == 3 && strstr(out, "no such database"), "%s on a missing database: exit %d: %.300s", CMDS[i], rc, out);
        CHECK(!qs_path_exists(at("typo.db")), "%s created typo.db", CMDS[i]);
        free(out);
    }

    /* a damaged database: a table's b-tree page overwritten */
    rc = run_in(dir, &out, "cp s.db bad.db");
    free(out);
    sqlite3 *h;
    sqlite3_open(at("bad.db"), &h);
    sqlite3_stmt *st;
    int64_t root = 0, page = 4096;
    sqlite3_prepare_v2(h, "SELECT rootpage FROM sqlite_master WHERE name = 'sensitivity'", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) root = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_prepare_v2(h, "PRAGMA page_size", -1, &st, NULL);
    if (sqlite3_step(st) == SQLITE_ROW) page = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    CHECK(root > 1, "the sensitivity table has a root page");
    FILE *f = fopen(at("bad.db"), "r+b");
    fseek(f, (long)((root - 1) * page), SEEK_SET);
    for (int i = 0; i < 64; i++) fputc(0xA5, f);
    fclose(f);
    refused("a damaged database (report)", "bad.db", "damaged", CMDS[0]);
    refused("a damaged database (plan)", "bad.db", "damaged", CMDS[2]);
    refused("a damaged database (profile)", "bad.db", "damaged", CMDS[3]);

    /* a newer schema */
    rc = run_in(dir, &out, "cp s.db new.db");
    free(out);
    sql(at("new.db"), "PRAGMA user_version = 99;");
    refused("a newer schema", "new.db", "newer than this qsense", CMDS[0]);
    refused("a newer schema", "new.db", "newer than this qsense", CMDS[2]);

    /* a lock held by another writer: waits QSENSE_DB_TIMEOUT, then says a re-run resumes */
    sqlite3_open(at("s.db"), &h);
    sqlite3_exec(h, "BEGIN EXCLUSIVE;", NULL, NULL, NULL);
    rc = run_in(dir, &out, "QSENSE_DB_TIMEOUT=1 $Q profile M.gguf --db s.db --formats q8_0,q4_1 --calib-tokens 256 --quiet");
    CHECK(rc == 3 && strstr(out, "locked") && strstr(out, "resumes"), "profile on a locked database: exit %d: %.400s", rc, out);
    free(out);
    sqlite3_exec(h, "ROLLBACK;", NULL, NULL, NULL);
    sqlite3_close(h);

    /* read-only file and directory: read-only commands work, writers say why they cannot */
    rc = run_in(dir, &out, "mkdir ro && cp s.db ro/s.db && chmod 444 ro/s.db && chmod 555 ro && mkdir -m 777 w");
    free(out);
    const char *as = getuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
    rc = run_in(dir, &out, "%s$Q --version", as);
    if (rc != 0) {
        printf("read-only case skipped: %s cannot run qsense here (%s)\n", *as ? "user nobody" : "this user", out);
    } else {
        char before[65], after[65];
        file_sha256(at("ro/s.db"), before);
        free(out);
        rc = run_in(dir, &out, "%s$Q report --db ro/s.db --text", as);
        CHECK(rc == 0 && strstr(out, "qsense report"), "report --text on a read-only database: exit %d: %.400s", rc, out);
        free(out);
        rc = run_in(dir, &out, "%s$Q plan --db ro/s.db --budget-bpw 7 --out w/p.json", as);
        /* the plan is made and written; that it could not be recorded is said, with why */
        CHECK(rc == 0 && strstr(out, "not recorded") && strstr(out, "ro/s.db") && strstr(out, "read-only") &&
                  !strstr(out, "error 0"),
              "plan on a read-only database: exit %d: %.400s", rc, out);
        file_sha256(at("ro/s.db"), after);
        CHECK(!strcmp(before, after), "the read-only database changed");
    }
    free(out);

    /* two profiles started together on a new database: both succeed, the rows are one run's */
    for (int round = 0; round < 3; round++) {
        rc = run_in(dir, &out, "rm -f two.db* && ($Q profile M.gguf --db two.db --formats q8_0,q4_0 --calib-tokens 256 --quiet "
                               "> a.log 2>&1 & $Q profile M.gguf --db two.db --formats q8_0,q4_0 --calib-tokens 256 --quiet > "
                               "b.log 2>&1 & wait) && cat a.log b.log && ! grep -q 'qsense:' a.log b.log");
        CHECK(rc == 0, "round %d: two profiles together: %.600s", round, out);
        free(out);
    }
    rc = run_in(dir, &out, "rm -f one.db* && $Q profile M.gguf --db one.db --formats q8_0,q4_0 --calib-tokens 256 --quiet");
    free(out);
    char *a = db_dump(at("two.db"), (const char *const *)ROWS, 4), *b = db_dump(at("one.db"), (const char *const *)ROWS, 4);
    CHECK(a && b && !strcmp(a, b), "two concurrent profiles' rows differ from one profile's");
    free(a);
    free(b);

    run_in(dir, &out, "chmod -R u+w '%s'; rm -rf '%s'", dir, dir);
    free(out);
    free(d);
    free(model);
    return test_done("test_databases_refused_untouched");
}
