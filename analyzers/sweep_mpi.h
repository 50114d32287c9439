/* The sensitivity sweep over MPI ranks (Open MPI; optional at build time: QSENSE_MPI).
 * `mpirun -n N qsense profile MODEL --sensitivity ...`: every rank opens the model and makes
 * the same base run; rank 0 alone runs the analyzers and owns the database. Its sweep hands the
 * units (sweep_units.h) out dynamically: a dispatcher thread answers each worker that is ready
 * with the next unit, while rank 0's own thread measures units too; each worker streams one
 * result per (tensor, format, domain) back as soon as it has it, and rank 0 writes it with its
 * job mark in one transaction. The same code measures every unit, in whichever process, so the
 * rows are those of a single-process run. A killed rank loses its unit in flight (Open MPI
 * then ends the whole job); the written jobs stay, and the same command resumes.
 * Built without MPI, a run launched by mpirun with several ranks is refused by name. */
#ifndef QS_SWEEP_MPI_H
#define QS_SWEEP_MPI_H

#include "analyzers/sweep_units.h"
#include "core/qs_error.h"

/* Initializes MPI when the process was started by an MPI launcher (its environment says so);
 * else nothing. 0, or an error when it cannot. */
int qs_mpi_init(int *argc, char ***argv, qs_error *err);
/* The world's size (1 without MPI), this process's rank, the ranks on this machine. */
int qs_mpi_size(void);
int qs_mpi_rank(void);
int qs_mpi_local_size(void);
/* 1 when this binary was built with MPI */
int qs_mpi_available(void);
void qs_mpi_finalize(void);
/* Ends every rank (after rank 0 failed: the workers would wait for it forever). */
void qs_mpi_abort(int code);

/* Rank 0: measures units [0, n) across the world (n may be 0: the workers are only released),
 * calling write (in this thread) with every result. */
int qs_sweep_mpi_run(qs_sens *s, const qs_sweep_unit *units, int n, qs_sweep_result_fn write, void *user, qs_error *err);
/* Ranks > 0: measures the units rank 0 hands out until it says stop; on a failure tells rank 0
 * why (it stops handing out units and fails the run). */
int qs_sweep_mpi_serve(qs_sens *s, qs_error *err);
/* Ranks > 0 that failed before serving (opening the model, the base run): tells rank 0 why, so
 * it does not wait for this rank. */
void qs_sweep_mpi_fail(const char *why);

#endif
