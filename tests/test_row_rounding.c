/* Rounding a matrix a block of rows at a time (quant/row_rounding.h) gives exactly what rounding
 * it whole gives, for every format that says it can: the per-tensor int scales (with and without
 * the clipping search), per-tensor fp8, NVIDIA's FP4 with its tensor scale, dense-and-sparse
 * (whose threshold is found by radix selection over the blocks, with values tied at it kept in row
 * order), and the row-independent formats. The matrix has a heavy tail and planted ties at the
 * sparse threshold; scans and rounding use different uneven block sizes, and the rounding runs
 * twice, the second time from the last block back (the engine reads an embedding's rows in token
 * order). AWQ (its exponent searched over the blocks) and GPTQ (its factor of H made once) round
 * by rows too, with inputs whose channels differ widely in size, and round a lookup table plainly
 * as the whole tensor does; without statistics they refuse. Scans out of turn are refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/row_rounding.h"
#include "tests/test_util.h"

enum { ROWS = 37, COLS = 256 };

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

/* a block of rows rounded, with its scans before it, in blocks of `scan_rows` and `round_rows` */
static int round_by_rows(const qs_format *f, const float *w, float *out, const qs_calib *cal, int scan_rows,
                         int round_rows, qs_error *err) {
    qs_row_rounding *r;
    int rc = qs_row_rounding_open(&r, f, ROWS, COLS, err);
    for (int p = 0; !rc && p < qs_format_row_scans(f); p++)
        for (int64_t r0 = 0; !rc && r0 < ROWS; r0 += scan_rows)
            rc = qs_row_rounding_scan(r, p, w + r0 * COLS, ROWS - r0 < scan_rows ? ROWS - r0 : scan_rows, cal, err);
    for (int pass = 0; pass < 2 && !rc; pass++) { /* the second from the last block back */
        memset(out, 0, sizeof(float) * ROWS * COLS);
        const int step = pass ? round_rows + 4 : round_rows, blocks = (ROWS + step - 1) / step;
        for (int b = 0; !rc && b < blocks; b++) {
            const int64_t r0 = (int64_t)(pass ? blocks - 1 - b : b) * step, n = ROWS - r0 < step ? ROWS - r0 : step;
            rc = qs_row_rounding_round(r, w + r0 * COLS, out + r0 * COLS, r0, n, cal, err);
        }
    }
    qs_row_rounding_close(r);
    return rc;
}

int main(void) {
    static float w[ROWS * COLS], whole[ROWS * COLS], rows[ROWS * COLS], importance[COLS];
    for (int i = 0; i < ROWS * COLS; i++) {
        const double g = sqrt(-2 * log(uniform())) * cos(6.283185307179586 * uniform());
        w[i] = (float)(g * (uniform() < 0.01 ? 8 : 1)) * (i % 5 == 0 ? -1.0f : 1.0f);
    }
    /* 0.45 % of 9472 values is 43 outliers: 20 larger than 30, 60 at exactly +-30 (the threshold;
     * the first 23 in row order are kept), spread over the rows */
    for (int k = 0; k < 80; k++) w[(k * 331 + 17) % (ROWS * COLS)] = k < 20 ? 40.0f + k : (k % 2 ? 30.0f : -30.0f);
    /* calibration inputs X (TOKENS, COLS), a few channels 20x the rest (what AWQ protects) */
    enum { TOKENS = 96 };
    static float x[TOKENS * COLS], gram[COLS * COLS], mean_abs[COLS];
    for (int t = 0; t < TOKENS; t++)
        for (int c = 0; c < COLS; c++) x[t * COLS + c] = (float)((uniform() - 0.5) * (c % 37 == 3 ? 20 : 1));
    for (int c = 0; c < COLS; c++) {
        double sq = 0, ab = 0;
        for (int t = 0; t < TOKENS; t++) {
            sq += (double)x[t * COLS + c] * x[t * COLS + c];
            ab += fabs(x[t * COLS + c]);
        }
        importance[c] = (float)(sq / TOKENS);
        mean_abs[c] = (float)(ab / TOKENS);
        for (int d = 0; d < COLS; d++) {
            double g = 0;
            for (int t = 0; t < TOKENS; t++) g += (double)x[t * COLS + c] * x[t * COLS + d];
            gram[c * COLS + d] = (float)g;
        }
    }
    const qs_calib cal = {.importance = importance, .gram = gram, .mean_abs = mean_abs};
    const qs_calib table = {.lookup = 1}; /* an embedding: no inputs */
    static float plain[ROWS * COLS];
    int awq_moved = 0, awq_gptq = 0;
    int tested = 0, scanned = 0;
    for (int i = 0; i < qs_format_count(); i++) {
        const qs_format *f = qs_format_at(i);
        qs_error err = {0};
        if (!qs_format_applies(f, ROWS, COLS, NULL, 0)) continue;
        if (!qs_format_rounds_by_rows(f)) {
            CHECK(f->family == QS_FAM_SPARSE, "%s: only dense-and-sparse over a per-tensor base takes it whole",
                  f->name);
            qs_row_rounding *r;
            CHECK(qs_row_rounding_open(&r, f, ROWS, COLS, &err) == QS_ERR_USAGE, "%s: refused", f->name);
            continue;
        }
        CHECK(qs_format_fake_quantize_calib(f, w, whole, ROWS, COLS, &cal, &err) == 0, "%s: %s", f->name, err.msg);
        CHECK(round_by_rows(f, w, rows, &cal, 7, 5, &err) == 0, "%s: %s", f->name, err.msg);
        CHECK(!memcmp(whole, rows, sizeof whole), "%s: by rows as whole", f->name);
        if (f->awq || f->gptq) {
            awq_gptq++;
            /* the statistics mattered: the rounding differs from the base format's */
            const qs_format *base = f->awq ? f->base : qs_format_find(qs_format_stored_type(f->name), NULL);
            CHECK(base && qs_format_fake_quantize(base, w, plain, ROWS, COLS, &err) == 0, "%s: base", f->name);
            awq_moved += f->awq && memcmp(plain, rows, sizeof plain) != 0;
            CHECK(!f->gptq || memcmp(plain, rows, sizeof plain) != 0, "%s: GPTQ compensated", f->name);
            /* a table read by index: rounded plainly, by rows as whole */
            CHECK(qs_format_fake_quantize_calib(f, w, whole, ROWS, COLS, &table, &err) == 0, "%s: %s", f->name,
                  err.msg);
            CHECK(round_by_rows(f, w, rows, &table, 6, 11, &err) == 0, "%s: %s", f->name, err.msg);
            CHECK(!memcmp(whole, rows, sizeof whole) && !memcmp(plain, rows, sizeof plain), "%s: a table, plain",
                  f->name);
            CHECK(round_by_rows(f, w, rows, NULL, 7, 5, &err) != 0, "%s: no statistics, refused", f->name);
        }
        tested++;
        scanned += qs_format_row_scans(f) > 0;
    }
    CHECK(scanned >= 12, "formats with a per-tensor figure covered: %d", scanned);
    CHECK(awq_gptq >= 12 && awq_moved >= 4, "AWQ and GPTQ formats by rows: %d, AWQ away from plain: %d", awq_gptq,
          awq_moved);
    printf("%d formats by rows, %d of them with scans, %d AWQ or GPTQ\n", tested, scanned, awq_gptq);

    /* the threshold's ties: the sparse format keeps exactly 43 values, the first 23 at +-30 */
    const qs_format *sp = qs_format_find("int4-g128-asym-sp0.45", NULL);
    qs_error err = {0};
    CHECK(sp && round_by_rows(sp, w, rows, &cal, 3, 9, &err) == 0, "%s", err.msg);
    /* what it must be: those 43 values zeroed for the dense part, rounded by the base format,
     * then put back (exact in fp16) */
    static float dense[ROWS * COLS], want[ROWS * COLS];
    int kept = 0, ties = 0;
    for (int i = 0; i < ROWS * COLS; i++) {
        const int keep = fabsf(w[i]) > 30.0f || (fabsf(w[i]) == 30.0f && ties++ < 23);
        kept += keep;
        dense[i] = keep ? 0.0f : w[i];
    }
    CHECK(kept == 43 && ties == 60, "the planted outliers: %d kept, %d ties", kept, ties);
    CHECK(sp && qs_format_fake_quantize(sp->base, dense, want, ROWS, COLS, &err) == 0, "%s", err.msg);
    for (int i = 0; i < ROWS * COLS; i++)
        if (dense[i] == 0.0f && w[i] != 0.0f) want[i] = w[i];
    CHECK(!memcmp(want, rows, sizeof want), "the threshold and the first 23 ties in row order kept");

    /* out of turn */
    const qs_format *t4 = qs_format_find("int4-tensor-sym-mse", NULL);
    CHECK(t4 != NULL, "int4-tensor-sym-mse is registered");
    qs_row_rounding *r;
    CHECK(t4 && qs_row_rounding_open(&r, t4, ROWS, COLS, &err) == 0, "%s", err.msg);
    if (t4 && r) {
        CHECK(qs_row_rounding_round(r, w, rows, 0, 5, NULL, &err) == QS_ERR_USAGE, "rounding before the scans");
        CHECK(qs_row_rounding_scan(r, 1, w, 5, NULL, &err) == QS_ERR_USAGE, "the second scan first");
        CHECK(qs_row_rounding_scan(r, 0, w, ROWS, NULL, &err) == 0 &&
                  qs_row_rounding_scan(r, 1, w, ROWS, NULL, &err) == 0,
              "%s", err.msg);
        CHECK(qs_row_rounding_scan(r, 1, w, 1, NULL, &err) == QS_ERR_USAGE, "a third scan");
        CHECK(qs_row_rounding_round(r, w, rows, 0, 5, NULL, &err) == 0, "%s", err.msg);
        CHECK(qs_row_rounding_round(r, w, rows, ROWS - 2, 5, NULL, &err) == QS_ERR_USAGE, "past the last row");
        qs_row_rounding_close(r);
    }
    return test_done("test_row_rounding");
}
