/* libFuzzer target: any bytes as a results database, read by what reads databases: the report's
 * text summary and the planner. A damaged or foreign file must give an error, never a crash, a
 * hang, or a write (the file is opened read-only). Seeds: a real profile database (scripts/fuzz.sh
 * makes one with the freshly built qsense). */
#include "reports/planner/plan.h"
#include "reports/report/report.h"
#include "tests/fuzz/fuzz_util.h"

#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* SQLite needs a real path (it makes -wal and -shm files beside it) */
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/qsense-fuzz-db-%d.db", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    qs_error err;
    FILE *sink = fopen("/dev/null", "w");
    qs_report_options ro = {path, NULL, 0, NULL};
    qs_report_write_text(&ro, sink, &err);
    fclose(sink);
    qs_plan_options po = {.db_path = path, .budget_bpw = 6.0};
    qs_plan *p;
    if (qs_plan_make(&p, &po, &err) == 0) qs_plan_free(p);
    char aux[80];
    snprintf(aux, sizeof aux, "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof aux, "%s-shm", path);
    unlink(aux);
    return 0;
}
