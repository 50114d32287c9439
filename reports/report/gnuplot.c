/* gnuplot driver (see gnuplot.h). gnuplot is run as a child process on a script file rather
 * than through a pipe, so a failing figure leaves its script beside its log for the user to
 * rerun. fork + exec, not system(): paths are never parsed by a shell. */
#include "reports/report/gnuplot.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *program(void) {
    const char *p = getenv("QSENSE_GNUPLOT");
    return p && *p ? p : "gnuplot";
}

/* runs program with one argument, stdout and stderr to log (or /dev/null); exit status or -1 */
static int run(const char *arg, const char *log) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execlp(program(), program(), arg, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int qs_gnuplot_check(qs_error *err) {
    if (run("--version", NULL) == 0) return 0;
    return qs_errorf(err, QS_ERR_INPUT,
                     "gnuplot ('%s') is not installed or does not run; qsense report draws its figures with it: "
                     "install it with 'apt-get install gnuplot-nox' (Debian/Ubuntu) or 'brew install gnuplot' (macOS), "
                     "or set QSENSE_GNUPLOT to its path; 'qsense report --text' needs no gnuplot",
                     program());
}

int qs_gnuplot_run(const char *script_path, const char *log_path, qs_error *err) {
    if (run(script_path, log_path) == 0) return 0;
    char first[300] = "";
    FILE *f = fopen(log_path, "r");
    if (f) {
        size_t n = fread(first, 1, sizeof first - 1, f);
        first[n] = 0;
        for (char *c = first; *c; c++)
            if (*c == '\n') *c = ' ';
        fclose(f);
    }
    return qs_errorf(err, QS_ERR_INTERNAL, "gnuplot failed on %s (log %s): %s", script_path, log_path, first);
}
