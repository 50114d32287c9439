/* qs_db (see db.h): opening by mode, the schema and its migrations, transactions. */
#include "store/db.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/qs_output.h"
#include "store/sql.h"


/* Migration k brings the schema from version k to k + 1. Never edit a shipped migration: add
 * one. */
static const char *const MIGRATIONS[] = {
    /* 0 -> 1 */
    "CREATE TABLE models ("
    "  id INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, path TEXT, format TEXT, arch TEXT,"
    "  n_params INTEGER, n_layers INTEGER, dim INTEGER, hidden_dim INTEGER, n_heads INTEGER, n_kv_heads INTEGER,"
    "  n_vocab INTEGER, created TEXT NOT NULL DEFAULT (datetime('now')));"
    "CREATE TABLE runs ("
    "  id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, model_id INTEGER NOT NULL REFERENCES models(id),"
    "  settings TEXT NOT NULL, hdf5_path TEXT, status TEXT NOT NULL DEFAULT 'running',"
    "  started TEXT NOT NULL DEFAULT (datetime('now')), finished TEXT);"
    "CREATE TABLE tensors ("
    "  id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL REFERENCES models(id), name TEXT NOT NULL,"
    "  layer INTEGER, kind TEXT NOT NULL, rows INTEGER NOT NULL, cols INTEGER NOT NULL, stored_type TEXT NOT NULL,"
    "  UNIQUE (model_id, name));"
    "CREATE TABLE formats ("
    "  id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, family TEXT NOT NULL, bits INTEGER, granularity TEXT,"
    "  group_size INTEGER, symmetric INTEGER, clip_search INTEGER);"
    "CREATE TABLE jobs ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL,"
    "  finished TEXT NOT NULL DEFAULT (datetime('now')), PRIMARY KEY (run_id, name));"
    "CREATE TABLE weight_stats ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  n INTEGER, min REAL, max REAL, absmax REAL, mean REAL, std REAL, kurtosis REAL,"
    "  p0_1 REAL, p1 REAL, p50 REAL, p99 REAL, p99_9 REAL, frac_beyond_3sigma REAL, frac_beyond_6sigma REAL,"
    "  row_absmax_min REAL, row_absmax_median REAL, row_absmax_max REAL, hist_min REAL, hist_max REAL,"
    "  hist_dataset TEXT, row_absmax_dataset TEXT, PRIMARY KEY (run_id, tensor_id));"
    "CREATE TABLE activation_stats ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  n_tokens INTEGER, min REAL, max REAL, absmax REAL, mean REAL, std REAL, dynamic_range_db REAL,"
    "  channel_absmax_median REAL, channel_absmax_max REAL, n_outlier_channels INTEGER, outlier_channels TEXT,"
    "  hist_min REAL, hist_max REAL, hist_dataset TEXT, channel_absmax_dataset TEXT, channel_mean_sq_dataset TEXT,"
    "  PRIMARY KEY (run_id, tensor_id));"
    "CREATE TABLE qerror ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  format_id INTEGER NOT NULL REFERENCES formats(id), applicable INTEGER NOT NULL, reason TEXT, bpw REAL,"
    "  mse REAL, sqnr_db REAL, max_abs_error REAL, cosine REAL, output_error REAL,"
    "  PRIMARY KEY (run_id, tensor_id, format_id));"
    "CREATE TABLE arrays ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), dataset TEXT NOT NULL, dtype TEXT NOT NULL,"
    "  n INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (run_id, dataset));",
    /* 1 -> 2: per-tensor sensitivity on evaluation domains */
    "CREATE TABLE eval_domains ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL, sha256 TEXT NOT NULL, files TEXT,"
    "  n_chunks INTEGER, ctx INTEGER, n_scored INTEGER, base_ppl REAL, base_ppl_se REAL, topk INTEGER,"
    "  mean_tail_mass REAL, PRIMARY KEY (run_id, name));"
    "CREATE TABLE sensitivity ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  format_id INTEGER NOT NULL REFERENCES formats(id), domain TEXT NOT NULL, applicable INTEGER NOT NULL,"
    "  n_scored INTEGER, ppl REAL, ppl_delta REAL, ppl_delta_se REAL, kl_mean REAL, kl_se REAL, kl_p99 REAL,"
    "  top1_agree REAL, top1_se REAL, PRIMARY KEY (run_id, tensor_id, format_id, domain));"
    "CREATE TABLE whole_model ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), format_id INTEGER NOT NULL REFERENCES formats(id),"
    "  domain TEXT NOT NULL, n_quantized INTEGER, bpw REAL, n_scored INTEGER, ppl REAL, ppl_delta REAL,"
    "  ppl_delta_se REAL, kl_mean REAL, kl_se REAL, kl_p99 REAL, top1_agree REAL, top1_se REAL,"
    "  PRIMARY KEY (run_id, format_id, domain));",
    /* 2 -> 3: the regression gate's history */
    "CREATE TABLE check_runs ("
    "  id INTEGER PRIMARY KEY, created TEXT NOT NULL DEFAULT (datetime('now')), git_commit TEXT, candidate TEXT,"
    "  candidate_sha256 TEXT, reference_sha256 TEXT NOT NULL, eval_set TEXT NOT NULL, passed INTEGER NOT NULL);"
    "CREATE TABLE check_results ("
    "  check_id INTEGER NOT NULL REFERENCES check_runs(id), domain TEXT NOT NULL, metric TEXT NOT NULL,"
    "  value REAL, threshold REAL, baseline REAL, passed INTEGER NOT NULL, PRIMARY KEY (check_id, domain, metric));",
    /* 3 -> 4: plans, their predicted and measured cost, and the size/cost Pareto front */
    "CREATE TABLE plans ("
    "  id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), sha256 TEXT NOT NULL UNIQUE, path TEXT,"
    "  created TEXT NOT NULL DEFAULT (datetime('now')), target TEXT NOT NULL, domain_weights TEXT,"
    "  budget_bytes REAL, tensor_bytes REAL, bpw REAL, predicted_kl REAL, plan_json TEXT NOT NULL);"
    "CREATE TABLE plan_domains ("
    "  plan_id INTEGER NOT NULL REFERENCES plans(id), domain TEXT NOT NULL, predicted_kl REAL,"
    "  check_id INTEGER REFERENCES check_runs(id), measured_kl REAL, measured_kl_p99 REAL, measured_ppl_ratio REAL,"
    "  measured_top1 REAL, PRIMARY KEY (plan_id, domain));"
    "CREATE TABLE pareto ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), target TEXT NOT NULL, domain_weights TEXT NOT NULL,"
    "  point INTEGER NOT NULL, tensor_bytes REAL NOT NULL, bpw REAL NOT NULL, predicted_kl REAL NOT NULL,"
    "  PRIMARY KEY (run_id, target, domain_weights, point));",
    /* 4 -> 5: the marker that tells a qsense database from another program's SQLite file */
    "PRAGMA application_id = 1364414035;",
    /* 5 -> 6: estimated sensitivity beside (never over) the measured rows, and how well each
     * method's estimates agreed with exact jobs drawn to validate them */
    "CREATE TABLE sensitivity_estimates ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), tensor_id INTEGER NOT NULL REFERENCES tensors(id),"
    "  format_id INTEGER NOT NULL REFERENCES formats(id), domain TEXT NOT NULL, method TEXT NOT NULL,"
    "  kl_mean REAL, kl_se REAL, probe_format_id INTEGER REFERENCES formats(id),"
    "  PRIMARY KEY (run_id, tensor_id, format_id, domain, method));"
    "CREATE TABLE estimate_validation ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), method TEXT NOT NULL, n_jobs INTEGER NOT NULL, spearman REAL,"
    "  median_rel_error REAL, p90_rel_error REAL, PRIMARY KEY (run_id, method));",
    /* 6 -> 7: what quantizing activations costs: a linear layer's input or a layer's KV cache in
     * an activation / KV-cache format (quant/act_format.h), the rest of the model exact */
    "CREATE TABLE site_sensitivity ("
    "  run_id INTEGER NOT NULL REFERENCES runs(id), site TEXT NOT NULL, layer INTEGER NOT NULL, kind TEXT NOT NULL,"
    "  format TEXT NOT NULL, domain TEXT NOT NULL, applicable INTEGER NOT NULL, reason TEXT, bits REAL, n_scored INTEGER,"
    "  ppl REAL, ppl_delta REAL, ppl_delta_se REAL, kl_mean REAL, kl_se REAL, kl_p99 REAL, top1_agree REAL, top1_se REAL,"
    "  PRIMARY KEY (run_id, site, format, domain));",
};
#define N_MIGRATIONS ((int)(sizeof MIGRATIONS / sizeof MIGRATIONS[0]))

/* how long to wait for another process's write lock: QSENSE_DB_TIMEOUT seconds, 60 by default */
static int busy_timeout_ms(void) {
    const char *e = getenv("QSENSE_DB_TIMEOUT");
    char *end;
    long s = e ? strtol(e, &end, 10) : -1;
    return e && *e && !*end && s >= 0 && s <= 86400 ? (int)(s * 1000) : 60000;
}

/* what a failed write most likely means, for the user: SQLite says only "disk I/O error" */
static const char *write_hint(qs_db *db) {
    switch (sqlite3_errcode(db->h) & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
        return " (the disk is full or a file size limit was reached?); the database is intact and keeps every finished "
               "job: free space and run the same command again to resume";
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN: return " (is the file or its directory read-only?)";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return " (another qsense process is writing to it and held it longer than QSENSE_DB_TIMEOUT, 60 s by default); "
               "nothing was lost: every finished job is kept, and running the same command again when the other one is done "
               "resumes where this one stopped";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return " (the database is damaged: move it aside and run the profile again)";
    default: return "";
    }
}

int qs_store_fail(qs_db *db, qs_error *err, const char *what) {
    return qs_errorf(err, QS_ERR_INPUT, "%s: %s: %s%s", db->path, what, sqlite3_errmsg(db->h), write_hint(db));
}

int qs_db_exec(qs_db *db, const char *sql, qs_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int rc = qs_errorf(err, QS_ERR_INPUT, "%s: %s%s", db->path, msg ? msg : "SQL error", write_hint(db));
        sqlite3_free(msg);
        return rc;
    }
    return 0;
}

sqlite3_stmt *qs_store_prepare(qs_db *db, const char *sql) {
    sqlite3_stmt *st;
    return sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK ? st : NULL;
}

void qs_store_text(sqlite3_stmt *st, int col, char *dst, size_t cap) {
    const unsigned char *s = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", s ? (const char *)s : "");
}

double qs_store_real(sqlite3_stmt *st, int col) {
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

int qs_store_collect(sqlite3_stmt *st, void **out, int *n, size_t elem, void (*fill)(sqlite3_stmt *st, void *row),
                     qs_error *err) {
    *out = NULL;
    *n = 0;
    int cap = 0, rc = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (*n == cap) {
            int want = cap ? 2 * cap : 64;
            void *more = realloc(*out, elem * (size_t)want);
            if (!more) {
                rc = qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
                break;
            }
            *out = more;
            cap = want;
        }
        void *row = (char *)*out + elem * (size_t)(*n)++;
        memset(row, 0, elem);
        fill(st, row);
    }
    sqlite3_finalize(st);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* one integer from a query; -1 on error (SQLite's message stays in db->h) */
static int query_int(qs_db *db, const char *sql, int64_t *v) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    int rc = sqlite3_step(st) == SQLITE_ROW ? (*v = sqlite3_column_int64(st, 0), 0) : -1;
    sqlite3_finalize(st);
    return rc;
}

/* What a file is, read without writing to it. */
enum { DB_OURS, DB_EMPTY, DB_FOREIGN, DB_UNREADABLE };

static int classify(qs_db *db, int *version) {
    /* one statement, so one snapshot: another process may be creating the schema right now */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT (SELECT application_id FROM pragma_application_id), (SELECT user_version FROM "
                           "pragma_user_version), (SELECT count(*) FROM sqlite_master), (SELECT count(*) FROM sqlite_master "
                           "WHERE type = 'table' AND name IN ('models', 'runs', 'tensors', 'formats', 'jobs'))",
                           -1, &st, NULL) != SQLITE_OK)
        return DB_UNREADABLE;
    if (sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return DB_UNREADABLE;
    }
    int64_t app = sqlite3_column_int64(st, 0), ver = sqlite3_column_int64(st, 1), n_tables = sqlite3_column_int64(st, 2),
            n_ours = sqlite3_column_int64(st, 3);
    sqlite3_finalize(st);
    *version = (int)ver;
    if (app == QS_DB_APPLICATION_ID) return DB_OURS;
    if (app != 0) return DB_FOREIGN;
    if (ver == 0 && n_tables == 0) return DB_EMPTY;
    /* before version 5 there was no marker: a database with qsense's first tables and a version we wrote */
    if (ver >= 1 && ver <= 4 && n_ours == 5) return DB_OURS;
    return DB_FOREIGN;
}

/* files this process has checked already (device, inode, size, mtime): the check reads the whole
 * file, and quantize opens its database once per tensor */
typedef struct {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
} file_stamp;
static file_stamp checked[16];
static int n_checked;

static int stamp_of(const char *path, file_stamp *s) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *s = (file_stamp){st.st_dev, st.st_ino, st.st_size, st.st_mtim};
    return 0;
}

static int was_checked(const file_stamp *s) {
    for (int i = 0; i < n_checked; i++)
        if (!memcmp(&checked[i], s, sizeof *s)) return 1;
    return 0;
}

/* SQLite's own consistency check: the full one on small files, the quick one (pages and records,
 * not index contents) past 64 MiB */
static int check_integrity(qs_db *db, qs_error *err) {
    file_stamp s;
    int have = stamp_of(db->path, &s) == 0;
    if (have && was_checked(&s)) return 0;
    const char *sql = have && s.size > ((off_t)64 << 20) ? "PRAGMA quick_check(1)" : "PRAGMA integrity_check(1)";
    sqlite3_stmt *st;
    char first[300] = "";
    int ok = 0;
    if (sqlite3_prepare_v2(db->h, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *r = (const char *)sqlite3_column_text(st, 0);
            ok = r && !strcmp(r, "ok");
            snprintf(first, sizeof first, "%s", r ? r : "?");
        }
        sqlite3_finalize(st);
    }
    if (!ok) {
        if (!first[0]) snprintf(first, sizeof first, "%s", sqlite3_errmsg(db->h));
        return qs_errorf(err, QS_ERR_INPUT,
                         "%s: the database is damaged (SQLite's integrity check: %s); qsense will not read results from "
                         "it: restore a copy, or move it aside and run qsense profile again",
                         db->path, first);
    }
    if (have) {
        if (n_checked == (int)(sizeof checked / sizeof *checked)) n_checked = 0;
        checked[n_checked++] = s;
    }
    return 0;
}

/* the URI that opens path read-only without touching the -wal/-shm files (a read-only directory) */
static char *immutable_uri(const char *path) {
    size_t n = strlen(path);
    char *u = malloc(3 * n + 32);
    if (!u) return NULL;
    size_t k = (size_t)sprintf(u, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#' || *p < 0x20 || *p >= 0x7f) k += (size_t)sprintf(u + k, "%%%02X", *p);
        else u[k++] = (char)*p;
    }
    sprintf(u + k, "?immutable=1");
    return u;
}

/* WAL mode, once per file. Switching needs the file to itself and SQLite does not wait for that
 * (no busy handler): a second process opening a new database at the same moment retries. */
static int set_wal(qs_db *db, qs_error *err) {
    for (int waited_ms = 0;; waited_ms += 20) {
        sqlite3_stmt *st;
        int rc = sqlite3_prepare_v2(db->h, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK) {
            rc = sqlite3_step(st);
            /* a switch that could not happen answers with the mode that stays */
            int is_wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
                         !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
            sqlite3_finalize(st);
            if (is_wal) return 0;
            if (rc == SQLITE_ROW) rc = SQLITE_BUSY;
        }
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) break;
        if (waited_ms >= busy_timeout_ms()) break;
        usleep(20000);
    }
    return qs_store_fail(db, err, "switching to WAL mode");
}

static int migrate(qs_db *db, qs_error *err) {
    /* the version is read again under the write lock: another process may have created the
     * schema between our first look and now */
    int rc = qs_db_exec(db, "BEGIN IMMEDIATE;", err);
    if (rc) return rc;
    int64_t v = 0;
    if (query_int(db, "PRAGMA user_version", &v)) rc = qs_store_fail(db, err, "reading the schema version");
    for (; !rc && v < N_MIGRATIONS; v++) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version=%d;", (int)v + 1);
        if (!(rc = qs_db_exec(db, MIGRATIONS[v], err))) rc = qs_db_exec(db, sql, err);
    }
    if (!rc) rc = qs_db_exec(db, "COMMIT;", err);
    else qs_db_exec(db, "ROLLBACK;", NULL);
    return rc;
}

int qs_db_open(qs_db **out, const char *path, qs_db_mode mode, qs_error *err) {
    *out = NULL;
    struct stat st;
    int exists = stat(path, &st) == 0;
    if (!exists && mode != QS_DB_CREATE)
        return qs_errorf(err, QS_ERR_INPUT, "%s: %s; give the database a qsense profile run wrote", path,
                         errno == ENOENT ? "no such database" : strerror(errno));
    if (exists && !S_ISREG(st.st_mode))
        return qs_errorf(err, QS_ERR_INPUT, "%s: not a regular file; a qsense database is an SQLite file", path);
    if (!exists && mode == QS_DB_CREATE) {
        /* create it empty and exclusively, so that a dangling symbolic link is never followed */
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            return qs_errorf(err, QS_ERR_INPUT, "%s: cannot create the database: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
    }
    qs_db *db = calloc(1, sizeof *db);
    if (!db) return qs_errorf(err, QS_ERR_INTERNAL, "out of memory");
    db->path = strdup(path);
    const int flags = mode == QS_DB_READ ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    int rc = 0, version = 0, kind = DB_UNREADABLE;
    if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: cannot open the database: %s", path, db->h ? sqlite3_errmsg(db->h) : "?");
        goto fail;
    }
    sqlite3_busy_timeout(db->h, busy_timeout_ms());
    kind = classify(db, &version);
    const int why = sqlite3_errcode(db->h) & 0xff;
    if (kind == DB_UNREADABLE && mode == QS_DB_READ &&
        (why == SQLITE_CANTOPEN || why == SQLITE_READONLY || why == SQLITE_IOERR || why == SQLITE_FULL)) {
        /* a WAL database whose -shm file cannot be made (a read-only directory, a full disk):
         * read it as it is on disk */
        sqlite3_close(db->h);
        db->h = NULL;
        char *uri = immutable_uri(path);
        if (!uri || sqlite3_open_v2(uri, &db->h, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
            free(uri);
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: cannot open the database read-only: %s", path, db->h ? sqlite3_errmsg(db->h) : "?");
            goto fail;
        }
        free(uri);
        kind = classify(db, &version);
    }
    if (kind == DB_UNREADABLE) {
        int code = sqlite3_errcode(db->h) & 0xff;
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: %s: %s%s", path,
                       code == SQLITE_NOTADB ? "not a qsense database (not an SQLite file at all)"
                       : code == SQLITE_BUSY ? "cannot open the database while another process holds it"
                                             : "cannot open the database",
                       sqlite3_errmsg(db->h), code == SQLITE_NOTADB ? "" : write_hint(db));
        goto fail;
    }
    if (kind == DB_FOREIGN) {
        rc = qs_errorf(err, QS_ERR_INPUT,
                       "%s: not a qsense database (an SQLite file of another program: no qsense marker); qsense leaves it "
                       "untouched: give --db a new path or a database qsense profile wrote", path);
        goto fail;
    }
    if (kind == DB_EMPTY && mode != QS_DB_CREATE) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: an empty database with no qsense run in it; run qsense profile first", path);
        goto fail;
    }
    if (version > N_MIGRATIONS) {
        rc = qs_errorf(err, QS_ERR_INPUT, "%s: schema version %d is newer than this qsense (%d); upgrade qsense", path, version,
                       N_MIGRATIONS);
        goto fail;
    }
    if (kind == DB_OURS && (rc = check_integrity(db, err))) goto fail;
    if (mode == QS_DB_READ) {
        /* every reader works from version 4 on (5 added only the marker) */
        if (version < 4)
            rc = qs_errorf(err, QS_ERR_INPUT, "%s: schema version %d is too old to read; run the qsense profile command that made it "
                           "once more to upgrade it (it resumes: nothing is measured again)", path, version);
        else
            rc = qs_db_exec(db, "PRAGMA query_only=ON;", err);
        if (rc) goto fail;
        qs_input_note(path);
        *out = db;
        return 0;
    }
    if ((rc = set_wal(db, err)) || (rc = qs_db_exec(db, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL;", err)) ||
        (rc = migrate(db, err)))
        goto fail;
    qs_input_note(path);
    *out = db;
    return 0;
fail:
    qs_db_close(db);
    return rc;
}

void qs_db_close(qs_db *db) {
    if (!db) return;
    if (db->h) sqlite3_close(db->h);
    free(db->path);
    free(db);
}

const char *qs_db_path(const qs_db *db) { return db->path; }

int qs_db_begin(qs_db *db, qs_error *err) { return qs_db_exec(db, "BEGIN IMMEDIATE;", err); }
int qs_db_commit(qs_db *db, qs_error *err) { return qs_db_exec(db, "COMMIT;", err); }
void qs_db_rollback(qs_db *db) { qs_db_exec(db, "ROLLBACK;", NULL); }

