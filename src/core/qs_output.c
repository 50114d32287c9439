/* Outputs that never destroy inputs, and never appear half-written (see qs_output.h). */
#include "core/qs_output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs_file.h"
#include "core/qs_path.h"

typedef struct {
    dev_t dev;
    ino_t ino;
} file_id;

/* the inputs of this process; guarded by lock (readers may run in threads) */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static file_id *inputs;
static size_t n_inputs, cap_inputs;

static void note(file_id **list, size_t *n, size_t *cap, dev_t dev, ino_t ino) {
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < *n; i++)
        if ((*list)[i].dev == dev && (*list)[i].ino == ino) goto done;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        file_id *nl = realloc(*list, nc * sizeof *nl);
        if (!nl) goto done; /* out of memory: the check below is weaker, never wrong */
        *list = nl;
        *cap = nc;
    }
    (*list)[(*n)++] = (file_id){dev, ino};
done:
    pthread_mutex_unlock(&lock);
}

static int listed(const file_id *list, size_t n, const struct stat *st) {
    pthread_mutex_lock(&lock);
    int hit = 0;
    for (size_t i = 0; i < n && !hit; i++) hit = list[i].dev == st->st_dev && list[i].ino == st->st_ino;
    pthread_mutex_unlock(&lock);
    return hit;
}

void qs_input_note(const char *path) {
    struct stat st;
    if (path && stat(path, &st) == 0) note(&inputs, &n_inputs, &cap_inputs, st.st_dev, st.st_ino);
}

void qs_input_note_fd(int fd) {
    struct stat st;
    if (fstat(fd, &st) == 0) note(&inputs, &n_inputs, &cap_inputs, st.st_dev, st.st_ino);
}

int qs_output_check(const char *path, const char *what, qs_error *err) {
    if (!path || !*path) return qs_errorf(err, QS_ERR_USAGE, "%s: an empty path is not a file name", what);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return 0; /* a new file, or a dangling link the rename will replace */
        return qs_errorf(err, QS_ERR_INPUT, "%s %s: cannot use as output: %s", what, path, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) return qs_errorf(err, QS_ERR_INPUT, "%s %s: is a directory, expected a file name", what, path);
    if (!S_ISREG(st.st_mode))
        return qs_errorf(err, QS_ERR_INPUT,
                         "%s %s: is a device, FIFO or socket; qsense writes only regular files (it would replace it)", what,
                         path);
    if (listed(inputs, n_inputs, &st))
        return qs_errorf(err, QS_ERR_INPUT, "%s %s: is an input of this command (same file); refusing to overwrite it: "
                         "choose another output path", what, path);
    return 0;
}

/* ---- temporary files removed by a fatal signal ---- */

#define N_SLOTS 16
static char slot_path[N_SLOTS][PATH_MAX];
static volatile sig_atomic_t slot_used[N_SLOTS];

static int slot_take(const char *tmp) {
    pthread_mutex_lock(&lock);
    int s = -1;
    for (int i = 0; i < N_SLOTS && s < 0; i++)
        if (!slot_used[i] && strlen(tmp) < PATH_MAX) {
            memcpy(slot_path[i], tmp, strlen(tmp) + 1);
            slot_used[i] = 1;
            s = i;
        }
    pthread_mutex_unlock(&lock);
    return s;
}

static void slot_release(int s) {
    if (s >= 0) slot_used[s] = 0;
}

static void on_fatal_signal(int sig) {
    for (int i = 0; i < N_SLOTS; i++)
        if (slot_used[i]) unlink(slot_path[i]);
    signal(sig, SIG_DFL);
    raise(sig);
}

void qs_output_install_signal_handlers(void) {
    signal(SIGXFSZ, SIG_IGN);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue; /* nohup keeps working */
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---- writing ---- */

struct qs_output {
    char *target, *tmp, *what;
    FILE *f;
    int slot;
};

static void output_free(qs_output *o) {
    if (!o) return;
    slot_release(o->slot);
    free(o->target);
    free(o->tmp);
    free(o->what);
    free(o);
}

int qs_output_open(qs_output **out, const char *path, const char *what, int by_name, qs_error *err) {
    *out = NULL;
    int rc = qs_output_check(path, what, err);
    if (rc) return rc;
    qs_output *o = calloc(1, sizeof *o);
    if (!o) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    o->slot = -1;
    o->what = strdup(what);
    /* a symbolic link is replaced itself, never written through: the file it names may be
     * anyone's (the check above has already refused a link to an input) */
    struct stat st;
    int exists = stat(path, &st) == 0;
    o->target = strdup(path);
    size_t n = o->target ? strlen(o->target) : 0;
    o->tmp = malloc(n + 16);
    if (!o->what || !o->target || !o->tmp) {
        output_free(o);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    memcpy(o->tmp, o->target, n);
    memcpy(o->tmp + n, ".XXXXXX.tmp", 12);
    int fd = mkstemps(o->tmp, 4);
    if (fd < 0) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s %s: cannot create a file beside it: %s", what, path, strerror(errno));
        output_free(o);
        return rc;
    }
    o->slot = slot_take(o->tmp);
    /* mkstemp makes 0600; give the file what the old one had, or what the umask allows */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, exists ? (st.st_mode & 07777) : (0666 & ~mask));
    if (by_name) {
        close(fd);
    } else if (!(o->f = fdopen(fd, "wb"))) {
        close(fd);
        qs_output_discard(o);
        return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    }
    *out = o;
    return 0;
}

FILE *qs_output_stream(qs_output *o) { return o->f; }
const char *qs_output_tmp_path(const qs_output *o) { return o->tmp; }

void qs_output_discard(qs_output *o) {
    if (!o) return;
    if (o->f) fclose(o->f);
    unlink(o->tmp);
    output_free(o);
}

/* fsync of the directory, so that the rename itself survives a crash */
static void sync_dir_of(const char *path) {
    char *dir = qs_path_dirname(path);
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}

int qs_output_fail(qs_output *o, int e, qs_error *err) {
    if (o->f) fclose(o->f);
    o->f = NULL;
    unlink(o->tmp);
    int rc = qs_errorf(err, QS_ERR_INPUT, "%s %s: write failed (%s%s); the file is as it was before", o->what, o->target,
                       strerror(e), e == ENOSPC || e == EFBIG || e == EDQUOT ? ": the disk is full or a file size limit was reached" : "");
    output_free(o);
    return rc;
}

int qs_output_commit(qs_output *o, qs_error *err) {
    int e = 0;
    if (o->f) {
        if (fflush(o->f) != 0 || ferror(o->f)) e = errno ? errno : EIO;
        if (!e && fsync(fileno(o->f)) != 0) e = errno;
        if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
        o->f = NULL;
    } else {
        int fd = open(o->tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) e = errno ? errno : EIO;
        if (fd >= 0) close(fd);
    }
    /* the target may have become an input's link or a device since it was checked */
    qs_error chk;
    if (!e && qs_output_check(o->target, o->what, &chk)) {
        unlink(o->tmp);
        int rc = qs_errorf(err, chk.code, "%s", chk.msg);
        output_free(o);
        return rc;
    }
    if (!e && rename(o->tmp, o->target) != 0) e = errno;
    if (e) return qs_output_fail(o, e, err);
    sync_dir_of(o->target);
    output_free(o);
    return 0;
}

int qs_output_write_text(const char *path, const char *what, const char *text, qs_error *err) {
    qs_output *o;
    int rc = qs_output_open(&o, path, what, 0, err);
    if (rc) return rc;
    fputs(text, qs_output_stream(o));
    return qs_output_commit(o, err);
}
