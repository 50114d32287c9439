/* OpenBLAS kernel choice (see qs_blas.h). */
#include "core/qs_blas.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* instruction-set level: 1 SSE, 2 AVX, 3 AVX2 + FMA, 4 AVX-512 (F, CD, BW, DQ, VL) */
static int cpu_level(void) {
    __builtin_cpu_init(); /* libgcc also checks that the OS saves the wider registers (XGETBV) */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return 4;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 3;
    if (__builtin_cpu_supports("avx")) return 2;
    return 1;
}

/* the level of an OpenBLAS x86-64 core name; 0 for a name we do not know (left alone) */
static int core_level(const char *core) {
    static const struct {
        const char *name;
        int level;
    } cores[] = {
        {"SkylakeX", 4},  {"CooperLake", 4}, {"SapphireRapids", 4}, {"Haswell", 3},    {"Zen", 3},
        {"Excavator", 3}, {"Sandybridge", 2}, {"Bulldozer", 2},     {"Piledriver", 2}, {"Steamroller", 2},
        {"Prescott", 1},  {"Core2", 1},      {"Penryn", 1},         {"Dunnington", 1}, {"Nehalem", 1},
        {"Atom", 1},      {"Barcelona", 1},  {"Opteron", 1},        {"Opteron_SSE3", 1}, {"Nano", 1},
        {"Bobcat", 1},    {"Katmai", 1},     {"Coppermine", 1},     {"Northwood", 1},
    };
    for (size_t i = 0; i < sizeof cores / sizeof *cores; i++)
        if (!strcasecmp(core, cores[i].name)) return cores[i].level;
    return 0;
}

static const char *const BEST[] = {"Prescott", "Prescott", "Sandybridge", "Haswell", "SkylakeX"};

const char *qs_blas_best_core(void) { return BEST[cpu_level()]; }

const char *qs_blas_choose(const char *detected, int level) {
    const int have = core_level(detected ? detected : "");
    if (have == 0 || level < 1 || level > 4 || have >= level) return NULL;
    return BEST[level];
}

int qs_blas_cpu_level(void) { return cpu_level(); }

const char *qs_blas_core(void) {
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

const char *qs_blas_how(void) {
    const char *how = getenv("QSENSE_BLAS_PICKED");
    if (how && !strcmp(how, "1")) return "auto";
    const char *user = getenv("OPENBLAS_CORETYPE");
    return user && *user ? "user" : "detected";
}

void qs_blas_pick_kernels(char **argv) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if ((user && *user) || getenv("QSENSE_BLAS_PICKED")) return; /* the user's choice, or done already */
    /* under valgrind /proc/self/exe is valgrind itself, and its CPU is an emulated one */
    const char *pre = getenv("LD_PRELOAD");
    if (pre && strstr(pre, "vgpreload")) return;
    const char *better = qs_blas_choose(qs_blas_core(), cpu_level());
    if (!better) return;
    setenv("OPENBLAS_CORETYPE", better, 1);
    setenv("QSENSE_BLAS_PICKED", "1", 1); /* once: never a loop, whatever OpenBLAS makes of it */
    execv("/proc/self/exe", argv);
    /* the exec failed: carry on with the kernels we have, and say so in --version */
    unsetenv("OPENBLAS_CORETYPE");
    setenv("QSENSE_BLAS_PICKED", "0", 1);
}
