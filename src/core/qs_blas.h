/* qs_blas: makes OpenBLAS run the kernels this CPU supports. Debian's OpenBLAS picks its
 * kernels by CPU model when it loads; a model it does not know (a new Xeon or EPYC reported
 * generically) gets its slowest, SSE3 "Prescott" kernels, 3x slower on an AVX-512 machine with
 * the same results. OpenBLAS reads OPENBLAS_CORETYPE only when the library loads, so the fix is
 * to set it and execute the program again, once, before any work. */
#ifndef QS_BLAS_H
#define QS_BLAS_H

/* Called first in main. If the user did not set OPENBLAS_CORETYPE and OpenBLAS chose kernels
 * for an older instruction set than the CPU (and the OS) supports, sets OPENBLAS_CORETYPE to
 * the best core for it and re-executes /proc/self/exe with argv; returns only when nothing is to
 * be done (or the re-exec failed, which is harmless: the slow kernels compute the same). */
void qs_blas_pick_kernels(char **argv);

/* The kernels OpenBLAS runs ("SkylakeX") and how they were chosen: "auto" (qsense picked them),
 * "user" (OPENBLAS_CORETYPE given), "detected" (OpenBLAS's own choice, already the best). */
const char *qs_blas_core(void);
const char *qs_blas_how(void);
/* The best core name for this CPU's instruction set ("SkylakeX", "Haswell", "Sandybridge",
 * "Prescott"). */
const char *qs_blas_best_core(void);

/* The decision itself: the core to ask for when OpenBLAS detected `detected` on a CPU of
 * instruction-set level `level` (1 SSE, 2 AVX, 3 AVX2 + FMA, 4 AVX-512), or NULL to leave it
 * (already as good, or a core name this table does not know). */
const char *qs_blas_choose(const char *detected, int level);
int qs_blas_cpu_level(void);

#endif
