/* Inside the store only: the SQLite handle behind a qs_db and the helpers every store file
 * uses. No file outside src/store includes this header or sqlite3.h (tests/check_layers.py). */
#ifndef QS_STORE_SQL_H
#define QS_STORE_SQL_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/db.h"

struct qs_db {
    sqlite3 *h;
    char *path;
};

/* Fails with "DB: what: SQLite's message" and a hint of what it means for the user. */
int qs_store_fail(qs_db *db, qs_error *err, const char *what);

/* Executes SQL with no result rows. */
int qs_db_exec(qs_db *db, const char *sql, qs_error *err);

/* A prepared statement, NULL (with SQLite's message kept in db->h) if the SQL does not compile. */
sqlite3_stmt *qs_store_prepare(qs_db *db, const char *sql);

/* Column col as text into dst ("" for NULL); as a double, NAN for NULL. */
void qs_store_text(sqlite3_stmt *st, int col, char *dst, size_t cap);
double qs_store_real(sqlite3_stmt *st, int col);

/* Steps st to the end (and finalizes it), one row of elem bytes per result row, zeroed and then
 * filled by fill: a malloc'd array in *out, its length in *n; on running out of memory, none. */
int qs_store_collect(sqlite3_stmt *st, void **out, int *n, size_t elem, void (*fill)(sqlite3_stmt *st, void *row),
                     qs_error *err);

/* The one row writer under the typed ones: INSERT OR REPLACE INTO table (cols...) VALUES (...).
 * Values are doubles, bound as integers (is_text 2) or reals (0), or text (1); NAN or an
 * infinity, and a NULL text, become SQL NULL. */
typedef struct {
    const char *col;
    int is_text;
    double num;
    const char *text;
} qs_db_value;
int qs_db_put_row(qs_db *db, const char *table, const qs_db_value *vals, int n, qs_error *err);

#endif
