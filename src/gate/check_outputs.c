/* The gate's files for CI (see check_outputs.h). */
#include "gate/check_outputs.h"

#include <math.h>
#include <stdio.h>

#include "core/qs_output.h"

static void xml_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

int qs_check_write_junit(const qs_check_summary *s, const char *path, qs_error *err) {
    int rc;
    qs_output *out;
    if ((rc = qs_output_open(&out, path, "--junit", 0, err))) return rc;
    FILE *f = qs_output_stream(out);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"qsense check\" tests=\"%d\" failures=\"%d\">\n",
            s->n_checks, s->n_failed);
    for (int d = 0; d < s->n_domains; d++)
        for (int k = 0; k < QS_CHECK_N_METRICS; k++) {
            if (isnan(s->d[d].limit[k]) && isnan(s->d[d].baseline[k])) continue;
            fprintf(f, "  <testcase classname=\"qsense.check.");
            xml_escape(f, s->d[d].domain);
            fprintf(f, "\" name=\"%s\">", qs_check_metric_name(k));
            if (s->d[d].failed[k]) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s on domain %s: %.6g, threshold %s %.6g%s", qs_check_metric_name(k), s->d[d].domain,
                         s->d[d].value[k], qs_check_higher_is_worse(k) ? "<=" : ">=", s->d[d].limit[k],
                         isnan(s->d[d].baseline[k]) ? "" : " (or baseline within tolerance)");
                fprintf(f, "<failure message=\"");
                xml_escape(f, msg);
                fprintf(f, "\"/>");
            }
            fprintf(f, "</testcase>\n");
        }
    fprintf(f, "</testsuite>\n");
    return qs_output_commit(out, err);
}

int qs_check_write_markdown(const qs_check_summary *s, const qs_check_options *o, const char *path, qs_error *err) {
    int rc;
    qs_output *out;
    if ((rc = qs_output_open(&out, path, "--markdown", 0, err))) return rc;
    FILE *f = qs_output_stream(out);
    fprintf(f, "### qsense check: %s\n\n%s vs %s on `%s`%s%s\n\n| domain | KL | KL p99 | PPL ratio | top-1 | verdict |\n| --- | --- | --- | --- | --- | --- |\n",
            s->n_failed ? "FAILED" : "passed", o->plan ? o->plan : o->candidate, o->reference, s->set_name,
            s->commit[0] ? ", commit " : "", s->commit);
    for (int d = 0; d < s->n_domains; d++) {
        int bad = 0;
        for (int k = 0; k < QS_CHECK_N_METRICS; k++) bad |= s->d[d].failed[k];
        fprintf(f, "| %s | %.5f%s | %.4f%s | %.4f%s | %.2f %%%s | %s |\n", s->d[d].domain, s->d[d].value[QS_CHECK_KL],
                s->d[d].failed[QS_CHECK_KL] ? " **(fail)**" : "", s->d[d].value[QS_CHECK_KL_P99], s->d[d].failed[QS_CHECK_KL_P99] ? " **(fail)**" : "",
                s->d[d].value[QS_CHECK_PPL_RATIO], s->d[d].failed[QS_CHECK_PPL_RATIO] ? " **(fail)**" : "", 100 * s->d[d].value[QS_CHECK_TOP1],
                s->d[d].failed[QS_CHECK_TOP1] ? " **(fail)**" : "", bad ? "fail" : "pass");
    }
    return qs_output_commit(out, err);
}
