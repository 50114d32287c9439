/* Progress lines with rate and ETA on stderr for long work. On a terminal the line is
 * rewritten in place; otherwise a line is printed about every 10 % (or every 30 s). */
#ifndef QS_PROGRESS_H
#define QS_PROGRESS_H

#include <stddef.h>

typedef struct {
    const char *what;
    long total;
    double t0, last_print;
    int last_decile;
    int tty, quiet;
    int percent_only; /* done/total are work units, not countable things: print only the % */
} qs_progress;

void qs_progress_start(qs_progress *p, const char *what, long total, int quiet);
/* done: units finished so far; extra: a short string appended (e.g. "ppl 105.3") or NULL */
void qs_progress_update(qs_progress *p, long done, const char *extra);
void qs_progress_end(qs_progress *p);

double qs_now_seconds(void);
/* "42s", "7m05s", "12h05m": how the progress lines write durations */
void qs_progress_format_duration(double seconds, char *buf, size_t cap);

#endif
