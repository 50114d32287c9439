/* qs_parallel_for (see qs_parallel.h): workers are created on first use, up to 63, and live for
 * the process. One job at a time: a generation counter wakes the workers, a countdown tells the
 * caller they are done. */
#include "core/qs_parallel.h"

#include <pthread.h>
#include <unistd.h>

#define MAX_THREADS 64

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER, done = PTHREAD_COND_INITIALIZER;
static int n_workers;
static unsigned long generation;
static int pending;
static struct {
    long n;
    int parts;
    qs_range_fn fn;
    void *ctx;
} job;
static _Thread_local int thread_index;

static void run_part(int part) {
    long b = job.n * part / job.parts, e = job.n * (part + 1) / job.parts;
    if (e > b) job.fn(job.ctx, b, e);
}

static void *worker(void *arg) {
    int me = (int)(long)arg; /* 1 .. n_workers */
    thread_index = me;
    unsigned long seen = 0;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (generation == seen) pthread_cond_wait(&wake, &mu);
        seen = generation;
        int mine = me < job.parts;
        pthread_mutex_unlock(&mu);
        if (mine) run_part(me);
        pthread_mutex_lock(&mu);
        if (mine && --pending == 0) pthread_cond_signal(&done);
    }
    return NULL;
}

int qs_parallel_thread_index(void) { return thread_index; }

int qs_parallel_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void qs_parallel_for(long n, int threads, qs_range_fn fn, void *ctx) {
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > n) threads = (int)n;
    if (threads <= 1) {
        if (n > 0) fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&mu);
    while (n_workers < threads - 1) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, (void *)(long)(n_workers + 1)) != 0) break;
        pthread_detach(t);
        n_workers++;
    }
    if (threads - 1 > n_workers) threads = n_workers + 1;
    job.n = n;
    job.parts = threads;
    job.fn = fn;
    job.ctx = ctx;
    pending = threads - 1;
    generation++;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&mu);
    run_part(0);
    pthread_mutex_lock(&mu);
    while (pending > 0) pthread_cond_wait(&done, &mu);
    pthread_mutex_unlock(&mu);
}
