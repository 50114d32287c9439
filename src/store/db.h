/* qs_db: the results database (SQLite). A versioned schema, migrated forward on open, in WAL
 * mode; every job's rows are written inside one transaction, so a killed run loses at most the
 * job in flight and a re-run resumes. Bulk arrays are staged in the `arrays` table in the same
 * transaction and exported to one HDF5 file per run (see h5export.h). docs/schema.md documents
 * every table. The store decides nothing: callers say what to write, and ask for what they read
 * through the typed functions of profile_rows.h (the profile's writes), runs.h (a run and what it
 * holds), measures.h (per-tensor costs and statistics), plans.h, checks.h and arrays.h; the SQL
 * behind them stays in src/store. */
#ifndef QS_DB_H
#define QS_DB_H

#include <stdint.h>

#include "core/qs_error.h"

typedef struct qs_db qs_db;

#define QS_DB_SCHEMA_VERSION 6
/* PRAGMA application_id of a qsense database ("QSNS"): the marker that tells ours from another
 * program's SQLite file (databases from before version 5 are recognised by their tables) */
#define QS_DB_APPLICATION_ID 0x51534E53

typedef enum {
    QS_DB_READ,   /* read-only: never creates, migrates, or switches the journal; a read-only file or
                   * directory is fine */
    QS_DB_WRITE,  /* an existing qsense database, migrated forward (plan records its plans) */
    QS_DB_CREATE, /* as WRITE, and a missing or empty file becomes a new database (profile, check) */
} qs_db_mode;

/* Opens a qsense database. Refuses, without writing a byte, a file that is not one (another
 * program's SQLite file, or not SQLite at all), one from a newer qsense, and one that fails
 * SQLite's integrity check (once per file and process). Creating the schema is one transaction
 * that re-reads the version under the write lock, so two processes starting on a new file agree. */
int qs_db_open(qs_db **out, const char *path, qs_db_mode mode, qs_error *err);
void qs_db_close(qs_db *db);
const char *qs_db_path(const qs_db *db);

int qs_db_begin(qs_db *db, qs_error *err);
int qs_db_commit(qs_db *db, qs_error *err);
void qs_db_rollback(qs_db *db);

#endif
