/* qsense report: the HTML report (or --text summary) of a profile run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "reports/report/gnuplot.h"
#include "reports/report/report.h"

static void help(void) {
    printf("usage: qsense report --db PATH (--out DIR | --text) [--run N] [--format F]\n"
           "\n"
           "Turns a profile run into something to look at. --out writes a self-contained directory\n"
           "(index.html, report.css, report.js, PNG figures, plot-data/ with each figure's data and the\n"
           "gnuplot script) that opens offline and reads without JavaScript: summary, most and least\n"
           "sensitive tensors, the plan with predicted and measured cost, a layer x kind sensitivity\n"
           "heatmap, cost vs bits per weight per tensor kind, int4 granularity, activation dynamic range\n"
           "and outlier channels, per-domain cost, the size/cost Pareto front, every tensor in a sortable\n"
           "table, and weight/activation histograms with a quantization grid. Figures need gnuplot.\n"
           "\n"
           "  --db PATH    the database qsense profile wrote\n"
           "  --out DIR    write the HTML report there (created if missing; files in it are replaced)\n"
           "  --text       print the summary to the terminal instead (no gnuplot needed)\n"
           "  --run N      which run (default: the newest finished one)\n"
           "  --format F   the format the heatmap, rankings and grids focus on (default: q4_k, q4_0,\n"
           "               int4-g128-asym ... whichever the run measured)\n");
}

int cmd_report(int argc, char **argv) {
    qs_report_options o = {0};
    int text = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { help(); return 0; }
        else if (!strcmp(a, "--db")) { if (!val) return cli_usage("report", "--db needs a path"); o.db_path = val; i++; }
        else if (!strcmp(a, "--out")) { if (!val) return cli_usage("report", "--out needs a directory"); o.out_dir = val; i++; }
        else if (!strcmp(a, "--format")) { if (!val) return cli_usage("report", "--format needs a format name"); o.format = val; i++; }
        else if (!strcmp(a, "--text")) text = 1;
        else if (!strcmp(a, "--run")) {
            int r = cli_int("report", "--run", val, 1, 2000000000);
            if (r < 0) return 2;
            o.run_id = r;
            i++;
        } else return cli_usage("report", "unknown argument '%s'", a);
    }
    if (!o.db_path) return cli_usage("report", "missing --db PATH");
    if (!text && !o.out_dir) return cli_usage("report", "give --out DIR (HTML) or --text");
    qs_error err = {0};
    if (text) return qs_report_write_text(&o, stdout, &err) ? cli_fail(&err) : 0;
    if (qs_gnuplot_check(&err)) return cli_fail(&err);
    qs_report_result res;
    if (qs_report_write_html(&o, &res, &err)) return cli_fail(&err);
    printf("wrote %s: %d figures, %d tensors (open it in a browser; the directory is self-contained)\n", res.index_path,
           res.n_figures, res.n_tensors);
    return 0;
}
