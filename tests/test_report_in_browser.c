/* qsense report on a real stories260K run (profile --sensitivity on the debian set, a plan, the
 * plan measured by qsense check): the HTML is well-formed XML with no network references; every
 * <img> names a complete PNG of sensible size; headless Chromium renders the page with every
 * image loaded (screenshot kept as build/report-screenshot.png); the rankings and the plan's
 * figures agree with the database; a run without sensitivity says what is missing; bad inputs
 * exit 2/3 with clear messages and create nothing. */
#include <sqlite3.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "core/qs_file.h"

#include "tests/test_util.h"

static char dir[512];

static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    return run_cmd(cmd, out);
}

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* every <img src> of the page: a complete PNG (signature, IHDR, IEND) of sensible size; returns the count */
static int check_images(const char *out_dir, const char *html) {
    int n = 0;
    for (const char *p = strstr(html, "<img src=\""); p; p = strstr(p + 1, "<img src=\"")) {
        char name[200], path[800];
        const char *s = p + 10, *e = strchr(s, '"');
        snprintf(name, sizeof name, "%.*s", (int)(e - s), s);
        CHECK(!strchr(name, '/') && !strstr(name, ".."), "image %s stays inside the report directory", name);
        snprintf(path, sizeof path, "%s/%s", out_dir, name);
        char *data;
        size_t size = 0;
        if (qs_read_file(path, &data, &size, NULL)) {
            CHECK(0, "%s is referenced but missing", path);
            continue;
        }
        const unsigned char *u = (const unsigned char *)data;
        int png = size > 57 && !memcmp(u, "\x89PNG\r\n\x1a\n", 8) && !memcmp(u + 12, "IHDR", 4) && !memcmp(u + size - 8, "IEND", 4);
        uint32_t w = png ? be32(u + 16) : 0, h = png ? be32(u + 20) : 0;
        CHECK(png && w >= 600 && w <= 2000 && h >= 250 && h <= 2000 && size > 3000, "%s: PNG %d, %ux%u, %zu bytes", name, png, w, h,
              size);
        free(data);
        n++;
    }
    return n;
}

static void well_formed(const char *index) {
    char *out;
    int rc = sh(&out, "python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' '%s'", index);
    CHECK(rc == 0, "%s is not well-formed: %s", index, out);
    free(out);
}

/* headless Chromium, no network features: the DOM after load says how many images loaded */
static void browser(const char *out_dir, int n_images) {
    const char *build = getenv("QSENSE_BUILD");
    char flags[1200], *out;
    snprintf(flags, sizeof flags,
             "--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update --disable-sync "
             "--disable-extensions --disable-default-apps --no-first-run --user-data-dir='%s/chromium' --virtual-time-budget=8000",
             dir);
    int rc = sh(&out, "timeout 120 chromium %s --dump-dom 'file://%s/index.html' 2>/dev/null", flags, out_dir);
    char want[64];
    snprintf(want, sizeof want, "data-images-loaded=\"%d/%d\"", n_images, n_images);
    CHECK(rc == 0 && strstr(out, want) && strstr(out, "Most and least sensitive tensors") && strstr(out, "qsense report: stories260K.gguf"),
          "chromium: exit %d, want %s in the DOM (is the chromium package installed?): %.300s", rc, want, out);
    free(out);
    rc = sh(&out, "timeout 120 chromium %s --window-size=1200,2400 --screenshot='%s/report-screenshot.png' 'file://%s/index.html' 2>&1",
            flags, build ? build : dir, out_dir);
    char shot[800];
    snprintf(shot, sizeof shot, "%s/report-screenshot.png", build ? build : dir);
    struct stat st;
    CHECK(rc == 0 && stat(shot, &st) == 0 && st.st_size > 50000, "screenshot %s: exit %d: %.300s", shot, rc, out);
    free(out);
}

/* the most sensitive matrix to q4_0 by the database's own numbers, and its mean KL */
static void top_tensor(const char *db_path, char *name, size_t cap, double *kl) {
    sqlite3 *h;
    sqlite3_stmt *st;
    sqlite3_open_v2(db_path, &h, SQLITE_OPEN_READONLY, NULL);
    sqlite3_prepare_v2(h, "SELECT t.name, avg(s.kl_mean) FROM sensitivity s JOIN tensors t ON t.id = s.tensor_id JOIN formats f ON"
                          " f.id = s.format_id WHERE f.name = 'q4_0' AND s.applicable GROUP BY t.id ORDER BY 2 DESC LIMIT 1", -1, &st, NULL);
    CHECK(sqlite3_step(st) == SQLITE_ROW, "q4_0 sensitivity rows");
    snprintf(name, cap, "%s", sqlite3_column_text(st, 0));
    *kl = sqlite3_column_double(st, 1);
    sqlite3_finalize(st);
    sqlite3_close(h);
}

int main(void) {
    char *d = temp_dir(), *model = model_path("stories260K.gguf"), *q4km = model_path("stories260K-llamacpp-Q4_K_M.gguf"), *out, *html;
    snprintf(dir, sizeof dir, "%s", d);
    const char *q = qsense_bin();

    /* a real run: profile + sensitivity, a plan, the plan measured */
    int rc = sh(&out, "'%s' profile '%s' --db s.db --sensitivity --eval debian --sens-formats q8_0,q4_0,int4-g128-asym,q2_k --quiet"
                      " > /dev/null && '%s' plan --db s.db --budget-bytes 304096 --out plan.json && '%s' check --plan plan.json --base '%s'"
                      " --data debian --db s.db; rc=$?; '%s' check --model '%s' --base '%s' --data debian --db s.db > /dev/null; exit $rc",
                q, model, q, q, model, q, q4km, model);
    CHECK(rc == 0 || rc == 1, "profile, plan, check: exit %d: %s", rc, out);
    char legal_kl[32] = "";
    const char *row = strstr(out, "\nlegal");
    if (row) sscanf(row + 6, "%31s", legal_kl);
    CHECK(legal_kl[0], "check printed the legal domain: %s", out);
    free(out);

    rc = sh(&out, "'%s' report --db s.db --out rep", q);
    CHECK(rc == 0 && strstr(out, "wrote rep/index.html"), "report: exit %d: %s", rc, out);
    free(out);
    char out_dir[700], index[800];
    snprintf(out_dir, sizeof out_dir, "%s/rep", dir);
    snprintf(index, sizeof index, "%s/index.html", out_dir);
    if (qs_read_file(index, &html, NULL, NULL)) {
        CHECK(0, "index.html written");
        return test_done("test_report_in_browser");
    }
    well_formed(index);
    CHECK(!strstr(html, "http://") && !strstr(html, "https://"), "no network references in the page");
    const int n_img = check_images(out_dir, html);
    CHECK(n_img >= 7 + 35, "%d images: 7 overview figures + one histogram per matrix (35)", n_img);
    CHECK(!strstr(html, "not drawn"), "every figure drawn for a full run");
    char name[96];
    double kl;
    char db_path[700];
    snprintf(db_path, sizeof db_path, "%s/s.db", dir);
    top_tensor(db_path, name, sizeof name, &kl);
    char want[256];
    snprintf(want, sizeof want, "<td>1</td><td><a href=\"#t");
    const char *first = strstr(html, want);
    CHECK(first && strstr(first, name) && strstr(first, name) < strstr(first, "</tr>"), "most sensitive tensor is %s", name);
    snprintf(want, sizeof want, "%.5f", kl);
    CHECK(first && strstr(first, want) && strstr(first, want) < strstr(first, "</tr>"), "its KL %s in the ranking row", want);
    CHECK(strstr(html, legal_kl) != NULL, "the plan's measured KL on legal (%s, from qsense check) is on the page", legal_kl);
    CHECK(strstr(html, "<tr><td>stories260K-llamacpp-Q4_K_M.gguf</td>") && strstr(html, "Squares: model files measured"),
          "llama.cpp's Q4_K_M, measured with qsense check, is listed and placed on the Pareto figure");
    browser(out_dir, n_img);
    free(html);

    /* --text: the same summary for a terminal */
    rc = sh(&out, "'%s' report --db s.db --text", q);
    CHECK(rc == 0 && strstr(out, "most sensitive to q4_0 (KL)") && strstr(out, name) && strstr(out, want) && strstr(out, legal_kl),
          "--text: exit %d: %s", rc, out);
    free(out);

    /* a run without sensitivity: drawn what it can, says what is missing and how to get it */
    rc = sh(&out, "'%s' profile '%s' --db p.db --formats q4_0,int4-channel-sym,int4-g128-sym,int4-g32-asym --quiet > /dev/null && "
                  "'%s' report --db p.db --out rep2 && '%s' report --db p.db --text",
            q, model, q, q);
    CHECK(rc == 0 && strstr(out, "not in the database: end-to-end sensitivity") && strstr(out, "output error"), "plain run: %s", out);
    free(out);
    snprintf(index, sizeof index, "%s/rep2/index.html", dir);
    if (qs_read_file(index, &html, NULL, NULL)) {
        CHECK(0, "rep2/index.html written");
        return test_done("test_report_in_browser");
    }
    well_formed(index);
    snprintf(out_dir, sizeof out_dir, "%s/rep2", dir);
    CHECK(check_images(out_dir, html) >= 5 + 35, "figures of a plain run");
    CHECK(strstr(html, "not drawn") && strstr(html, "qsense profile MODEL --db DB --sensitivity") && strstr(html, "qsense plan --db DB"),
          "the page says what is missing and which command fills it");
    free(html);

    /* bad inputs: clear errors, nothing created */
    rc = sh(&out, "'%s' report --db missing.db --out r3", q);
    struct stat st;
    snprintf(db_path, sizeof db_path, "%s/missing.db", dir);
    CHECK(rc == 3 && strstr(out, "missing.db") && stat(db_path, &st) != 0, "missing database: %d %s", rc, out);
    free(out);
    rc = sh(&out, "'%s' report --db '%s' --text", q, model);
    CHECK(rc == 3 && strstr(out, "not a qsense database"), "a model file as the database: %d %s", rc, out);
    free(out);
    rc = sh(&out, "'%s' report --db s.db --run 99 --text", q);
    CHECK(rc == 3 && strstr(out, "no run with id 99"), "unknown run: %d %s", rc, out);
    free(out);
    rc = sh(&out, "'%s' report --db s.db --format q5_k --text", q);
    CHECK(rc == 2 && strstr(out, "q5_k") && strstr(out, "measured: "), "unmeasured format: %d %s", rc, out);
    free(out);
    rc = sh(&out, "QSENSE_GNUPLOT=/nonexistent/gnuplot '%s' report --db s.db --out r4", q);
    CHECK(rc == 3 && strstr(out, "apt-get install gnuplot-nox"), "no gnuplot: %d %s", rc, out);
    free(out);
    rc = sh(&out, "'%s' report --db s.db", q);
    CHECK(rc == 2, "neither --out nor --text: %d %s", rc, out);
    free(out);

    sh(&out, "rm -rf '%s'", dir);
    free(out);
    free(d);
    free(model);
    free(q4km);
    return test_done("test_report_in_browser");
}
