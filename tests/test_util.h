/* Minimal test harness: CHECK macros that count failures, paths from the environment that
 * CTest sets (QSENSE_MODELS, QSENSE_DATA, ...), running the qsense binary, reading JSON. */
#ifndef QS_TEST_UTIL_H
#define QS_TEST_UTIL_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

extern int qs_test_failures, qs_test_checks;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        qs_test_checks++;                                                             \
        if (!(cond)) {                                                                \
            qs_test_failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
            fprintf(stderr, __VA_ARGS__);                                             \
            fputc('\n', stderr);                                                      \
        }                                                                             \
    } while (0)

/* |got - want| <= rel * |want| */
#define CHECK_REL(got, want, rel, what)                                                              \
    CHECK(fabs((double)(got) - (double)(want)) <= (rel) * fabs((double)(want)), "%s: got %.6f, want %.6f (rel tol %g)", \
          what, (double)(got), (double)(want), (double)(rel))

/* Prints a summary line and returns the process exit code. */
int test_done(const char *name);

/* $QSENSE_MODELS/name etc. (malloc'd; never NULL) */
char *model_path(const char *name);
char *data_path(const char *name);
char *reference_path(const char *name);
const char *qsense_bin(void);
/* a fresh temporary directory (malloc'd) */
char *temp_dir(void);

/* Runs a shell command; captures stdout+stderr into *out (malloc'd) and returns the exit code. */
int run_cmd(const char *cmd, char **out);

/* Runs a shell command in dir with $Q set to the qsense binary: run_in(dir, &out, "$Q ppl %s", m).
 * Output (stdout + stderr) into *out (malloc'd); returns the exit code. */
int run_in(const char *dir, char **out, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* sha256 of a file's bytes as hex ("" if it cannot be read) */
void file_sha256(const char *path, char out[65]);
/* number of files under dir whose names match the shell pattern (find -name) */
int count_files_matching(const char *dir, const char *pattern);

cJSON *read_json(const char *path);
/* mean KL of model against base on text (qsense ppl --base ... --json), ctx-token chunks, with
 * llama.cpp's activation rounding when llamacpp_numerics; NAN (and a failed check) on error */
double qsense_kl(const char *model, const char *base, const char *text, int ctx, int llamacpp_numerics);
/* cJSON number from a path like "f32.final_ppl" (objects only); NAN if missing */
double json_num(cJSON *root, const char *dotted);

/* Every row of the given queries on the database at path, as text ("a|b|c\n" per row); columns
 * named run_id, tensor_id and format_id are left out (they differ between databases). Caller
 * frees. */
char *db_dump(const char *path, const char *const *queries, int n_queries);
/* Compares two db_dump texts field by field: text exactly, numbers within rel of the larger
 * magnitude (+1e-12). Returns the fields that differ (-1: a different row or field count);
 * *worst gets the largest relative difference of the numbers. */
int dumps_differ(const char *a, const char *b, double rel, double *worst);
/* 1 when x and y agree within rel of the larger magnitude (+1e-12) */
int close_rel(double x, double y, double rel);

#endif
