/* Progress reporting (see qs_progress.h). */
#include "core/qs_progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double qs_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void qs_progress_start(qs_progress *p, const char *what, long total, int quiet) {
    p->what = what;
    p->total = total;
    p->t0 = p->last_print = qs_now_seconds();
    p->last_decile = 0;
    p->tty = isatty(2);
    p->quiet = quiet;
    p->percent_only = 0;
}

void qs_progress_format_duration(double s, char *buf, size_t cap) {
    if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

void qs_progress_update(qs_progress *p, long done, const char *extra) {
    if (p->quiet || p->total <= 0) return;
    double now = qs_now_seconds(), el = now - p->t0;
    int decile = (int)(10 * done / p->total);
    int due = p->tty ? (now - p->last_print > 0.2 || done == p->total)
                     : (decile > p->last_decile || now - p->last_print > 30 || done == p->total);
    if (!due) return;
    p->last_print = now;
    p->last_decile = decile;
    char eta[32], ela[32];
    qs_progress_format_duration(done > 0 ? el / (double)done * (double)(p->total - done) : 0, eta, sizeof eta);
    qs_progress_format_duration(el, ela, sizeof ela);
    char count[64] = "";
    if (!p->percent_only) snprintf(count, sizeof count, " %ld/%ld", done, p->total);
    fprintf(stderr, "%s%s%s (%.0f%%) elapsed %s, ETA %s%s%s%s", p->tty ? "\r" : "", p->what, count,
            100.0 * (double)done / (double)p->total, ela, eta, extra ? ", " : "", extra ? extra : "",
            p->tty ? "\033[K" : "\n");
    fflush(stderr);
}

void qs_progress_end(qs_progress *p) {
    if (!p->quiet && p->tty && p->total > 0) fputc('\n', stderr);
}
