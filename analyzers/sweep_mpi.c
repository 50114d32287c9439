/* The sensitivity sweep over MPI ranks (see sweep_mpi.h). Waiting is done by probing and
 * sleeping a millisecond, not in a blocking receive: Open MPI's blocking calls poll a core at
 * full speed, and on a small machine that core is the one the measuring threads need. */
#include "analyzers/sweep_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the world size the launcher announced (Open MPI, PMI, PMIx), 0 if none */
static int launcher_size(void) {
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}; /* not SLURM_NTASKS: an allocation, not a launch */
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const char *v = getenv(names[k]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

/* every measured unit's results, written by the caller's write function */
static int serial(qs_sens *s, const qs_sweep_unit *units, int n, qs_sweep_result_fn write, void *user, qs_error *err) {
    int rc = 0;
    for (int k = 0; k < n && !rc; k++) rc = qs_sweep_unit_measure(s, &units[k], write, user, err);
    return rc;
}

#ifdef QSENSE_MPI
#include <mpi.h>
#include <pthread.h>

enum { TAG_READY = 1, TAG_RESULT, TAG_JOB, TAG_STOP, TAG_FAIL };
#define RESULT_DOUBLES 15

static int g_init, g_size = 1, g_rank, g_local = 1, g_released;

int qs_mpi_available(void) { return 1; }

int qs_mpi_init(int *argc, char ***argv, qs_error *err) {
    if (launcher_size() <= 0) return 0;
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return qs_errorf(err, QS_ERR_INTERNAL, "MPI_Init_thread failed");
    if (provided < MPI_THREAD_SERIALIZED) {
        MPI_Finalize();
        return qs_errorf(err, QS_ERR_INTERNAL, "this MPI library gives no thread support (level %d): rank 0 needs a "
                                               "dispatcher thread", provided);
    }
    g_init = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &g_local);
        MPI_Comm_free(&local);
    }
    return 0;
}

int qs_mpi_size(void) { return g_size; }
int qs_mpi_rank(void) { return g_rank; }
int qs_mpi_local_size(void) { return g_local; }

void qs_mpi_finalize(void) {
    if (g_init) MPI_Finalize();
    g_init = 0;
}

void qs_mpi_abort(int code) {
    if (g_init && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

static void nap(void) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

/* waits for a message from source (MPI_ANY_SOURCE: any) without spinning */
static MPI_Status await(int source) {
    MPI_Status st;
    for (int flag = 0;;) {
        MPI_Iprobe(source, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
        if (flag) return st;
        nap();
    }
}

static void pack(const qs_sweep_result *r, double *v) {
    const double x[RESULT_DOUBLES] = {r->i, r->f, r->d, r->applicable, (double)r->fig.n_scored, r->fig.ppl, r->fig.ppl_delta,
                                      r->fig.ppl_delta_se, r->fig.kl_mean, r->fig.kl_se, r->fig.kl_p99, r->fig.top1_agree,
                                      r->fig.top1_se, r->n_quantized, r->bpw};
    memcpy(v, x, sizeof x);
}

static void unpack(const double *v, qs_sweep_result *r) {
    *r = (qs_sweep_result){.i = (int)v[0], .f = (int)v[1], .d = (int)v[2], .applicable = (int)v[3], .n_quantized = (int)v[13],
                           .bpw = v[14]};
    r->fig = (qs_db_eval_figures){(int64_t)v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12]};
}

/* rank 0's state shared by its measuring thread and its dispatcher thread */
typedef struct {
    pthread_mutex_t mu;
    const qs_sweep_unit *units;
    int n, next;
    qs_sweep_result *q; /* results received, to write */
    int q_n, q_cap;
    int active;         /* workers not yet told to stop */
    int running;        /* the dispatcher has not returned */
    int failed;
    char why[512];
} shared;

static int take(shared *sh) {
    pthread_mutex_lock(&sh->mu);
    const int k = sh->next < sh->n ? sh->next++ : -1;
    pthread_mutex_unlock(&sh->mu);
    return k;
}

static void *dispatch(void *arg) {
    shared *sh = arg;
    while (sh->active > 0) {
        MPI_Status st = await(MPI_ANY_SOURCE);
        const int src = st.MPI_SOURCE;
        if (st.MPI_TAG == TAG_RESULT) {
            double v[RESULT_DOUBLES];
            MPI_Recv(v, RESULT_DOUBLES, MPI_DOUBLE, src, TAG_RESULT, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            pthread_mutex_lock(&sh->mu);
            if (sh->q_n == sh->q_cap) {
                int cap = sh->q_cap ? 2 * sh->q_cap : 64;
                qs_sweep_result *nq = realloc(sh->q, sizeof *nq * (size_t)cap);
                if (nq) sh->q = nq, sh->q_cap = cap;
            }
            if (sh->q_n < sh->q_cap) unpack(v, &sh->q[sh->q_n++]);
            else sh->failed = 1, snprintf(sh->why, sizeof sh->why, "out of memory queueing a result of rank %d", src);
            pthread_mutex_unlock(&sh->mu);
        } else if (st.MPI_TAG == TAG_READY) {
            MPI_Recv(NULL, 0, MPI_INT, src, TAG_READY, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            const int k = take(sh);
            if (k >= 0) {
                unsigned long long job[3] = {(unsigned long long)sh->units[k].i, (unsigned long long)sh->units[k].f,
                                             (unsigned long long)sh->units[k].domains};
                MPI_Send(job, 3, MPI_UNSIGNED_LONG_LONG, src, TAG_JOB, MPI_COMM_WORLD);
            } else {
                MPI_Send(NULL, 0, MPI_INT, src, TAG_STOP, MPI_COMM_WORLD);
                sh->active--;
            }
        } else { /* TAG_FAIL: the worker stops; no more units for anyone */
            char why[400] = {0};
            MPI_Recv(why, (int)sizeof why - 1, MPI_CHAR, src, TAG_FAIL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            pthread_mutex_lock(&sh->mu);
            sh->failed = 1;
            snprintf(sh->why, sizeof sh->why, "rank %d: %s", src, why);
            sh->next = sh->n;
            pthread_mutex_unlock(&sh->mu);
            sh->active--;
        }
    }
    pthread_mutex_lock(&sh->mu);
    sh->running = 0;
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

/* writes the workers' results received so far */
static int drain(shared *sh, qs_sweep_result_fn write, void *user, qs_error *err) {
    int rc = 0;
    for (;;) {
        qs_sweep_result r;
        pthread_mutex_lock(&sh->mu);
        const int have = sh->q_n > 0;
        if (have) r = sh->q[--sh->q_n];
        pthread_mutex_unlock(&sh->mu);
        if (!have || (rc = write(user, &r, err))) return rc;
    }
}

typedef struct {
    shared *sh;
    qs_sweep_result_fn write;
    void *user;
} local_ctx;

/* rank 0's own results: the workers' queued ones first, then this one */
static int write_local(void *user, const qs_sweep_result *r, qs_error *err) {
    local_ctx *c = user;
    int rc = drain(c->sh, c->write, c->user, err);
    return rc ? rc : c->write(c->user, r, err);
}

int qs_sweep_mpi_run(qs_sens *s, const qs_sweep_unit *units, int n, qs_sweep_result_fn write, void *user, qs_error *err) {
    if (g_size <= 1 || g_released) return serial(s, units, n, write, user, err);
    shared sh = {.units = units, .n = n, .active = g_size - 1, .running = 1};
    pthread_mutex_init(&sh.mu, NULL);
    pthread_t th;
    if (pthread_create(&th, NULL, dispatch, &sh)) {
        pthread_mutex_destroy(&sh.mu);
        return qs_errorf(err, QS_ERR_INTERNAL, "cannot start the MPI dispatcher thread");
    }
    local_ctx lc = {&sh, write, user};
    int rc = 0;
    for (int k; !rc && (k = take(&sh)) >= 0;) rc = qs_sweep_unit_measure(s, &units[k], write_local, &lc, err);
    if (rc) { /* hand out nothing more; the workers finish their units and stop */
        pthread_mutex_lock(&sh.mu);
        sh.next = sh.n;
        pthread_mutex_unlock(&sh.mu);
    }
    for (int running = 1; running;) {
        int r2 = rc ? 0 : drain(&sh, write, user, err);
        if (r2) rc = r2;
        pthread_mutex_lock(&sh.mu);
        running = sh.running;
        pthread_mutex_unlock(&sh.mu);
        if (running) nap();
    }
    pthread_join(th, NULL);
    if (!rc) rc = drain(&sh, write, user, err);
    if (!rc && sh.failed) rc = qs_errorf(err, QS_ERR_INTERNAL, "%s", sh.why);
    free(sh.q);
    pthread_mutex_destroy(&sh.mu);
    g_released = 1;
    return rc;
}

static int send_result(void *user, const qs_sweep_result *r, qs_error *err) {
    (void)user, (void)err;
    double v[RESULT_DOUBLES];
    pack(r, v);
    MPI_Send(v, RESULT_DOUBLES, MPI_DOUBLE, 0, TAG_RESULT, MPI_COMM_WORLD);
    return 0;
}

int qs_sweep_mpi_serve(qs_sens *s, qs_error *err) {
    int rc = 0;
    for (;;) {
        MPI_Send(NULL, 0, MPI_INT, 0, TAG_READY, MPI_COMM_WORLD);
        MPI_Status st = await(0);
        if (st.MPI_TAG == TAG_STOP) {
            MPI_Recv(NULL, 0, MPI_INT, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            return 0;
        }
        unsigned long long job[3];
        MPI_Recv(job, 3, MPI_UNSIGNED_LONG_LONG, 0, TAG_JOB, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        qs_sweep_unit u = {(int)job[0], (int)job[1], (uint64_t)job[2]};
        if ((rc = qs_sweep_unit_measure(s, &u, send_result, NULL, err))) {
            qs_sweep_mpi_fail(err->msg);
            return rc;
        }
    }
}

void qs_sweep_mpi_fail(const char *why) {
    if (g_init && g_rank > 0) MPI_Send(why, (int)strlen(why), MPI_CHAR, 0, TAG_FAIL, MPI_COMM_WORLD);
}

#else /* built without MPI */

int qs_mpi_available(void) { return 0; }

int qs_mpi_init(int *argc, char ***argv, qs_error *err) {
    (void)argc, (void)argv;
    const int n = launcher_size();
    if (n > 1)
        return qs_errorf(err, QS_ERR_USAGE,
                         "started by an MPI launcher with %d ranks, but this qsense was built without MPI: install Open MPI "
                         "(Debian: libopenmpi-dev) and rebuild (CMake finds it), or run one process",
                         n);
    return 0;
}

int qs_mpi_size(void) { return 1; }
int qs_mpi_rank(void) { return 0; }
int qs_mpi_local_size(void) { return 1; }
void qs_mpi_finalize(void) {}
void qs_mpi_abort(int code) { (void)code; }

int qs_sweep_mpi_run(qs_sens *s, const qs_sweep_unit *units, int n, qs_sweep_result_fn write, void *user, qs_error *err) {
    return serial(s, units, n, write, user, err);
}

int qs_sweep_mpi_serve(qs_sens *s, qs_error *err) {
    (void)s;
    return qs_errorf(err, QS_ERR_USAGE, "this qsense was built without MPI");
}

void qs_sweep_mpi_fail(const char *why) { (void)why; }

#endif
