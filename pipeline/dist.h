/* dist.h — running as one of N processes started by a launcher (mpirun, mpiexec, srun).
 *
 * vesalius starts no processes of its own: a launcher does, and tells each one its rank in
 * environment variables. dist_detect reads them (no MPI call, in the lean front too);
 * dist_start initialises MPI only when they are there, after every re-exec (pretrain's
 * OMP_WAIT_POLICY, core.c), and checks that MPI sees the processes the launcher started.
 *
 * Invariants:
 *   1. Without a launcher's variables, or with --distributed off, no MPI function is called:
 *      one process, exactly as a build without MPI.
 *   2. N processes that do not see each other (srun without MPI wire-up, a launcher of another
 *      MPI, a build without MPI) are an environment error (exit 3) on every one of them,
 *      before any of them writes anything.
 *   3. Only the thread that called dist_start calls MPI (MPI_THREAD_FUNNELED); a failed MPI
 *      call ends the whole job (MPI_Abort) after one line naming the rank and the call, so no
 *      rank is left waiting (group.h invariant 3).
 */
#ifndef VS_DIST_H
#define VS_DIST_H

#include "group.h"
#include "status.h"

enum { DIST_AUTO = 0, DIST_OFF = 1 }; /* g_cli.distributed, the global --distributed */

/* What the environment says about the launcher. */
typedef struct dist_launch {
    const char *launcher; /* "mpirun (Open MPI)", "PMIx", "PMI", "srun"; NULL: none */
    int size;             /* processes it started; 0: it does not say */
    int rank;             /* this one; -1: it does not say */
    int wired;            /* 1: MPI wire-up variables (Open MPI, PMIx or PMI) are present */
} dist_launch;

/* The launcher from the variables get() returns (getenv; the tests pass a table). In order:
 * OMPI_COMM_WORLD_SIZE/RANK (Open MPI's mpirun), PMIX_RANK (PMIx: srun --mpi=pmix, prterun;
 * its size from SLURM_STEP_NUM_TASKS), PMI_SIZE/PMI_RANK (MPICH's mpiexec, srun --mpi=pmi2),
 * SLURM_STEP_NUM_TASKS/SLURM_PROCID alone (srun without MPI wire-up). */
void dist_detect(char *(*get)(const char *name), dist_launch *out);

/* For a command that runs as one process: VS_ERR_USAGE naming the command and the launcher
 * when the environment says more than one process was started (mode DIST_OFF: VS_OK); *rank
 * then receives the launcher's rank of this process (so that only rank 0 says it). */
vs_status dist_refuse_ranks(const char *cmd, int mode, int *rank, vs_error *err);

/* Start: one process (no launcher, or DIST_OFF), or MPI over the launcher's processes.
 * VS_ERR_ENV when they do not see each other (invariant 2). */
vs_status dist_start(int mode, vs_error *err);
/* This process's place once started: rank 0 of 1 before dist_start or without MPI. */
int dist_rank(void);
int dist_size(void);
/* The started processes as a vs_group (size 1 when alone). */
const vs_group *dist_group(void);
/* Finalise MPI when dist_start initialised it; returns rc. Every rank calls it, last. */
int dist_end(int rc);
/* Point to point, for a writer (rank 0) and its workers (ingest). Messages of one tag travel in
 * order between two ranks; a failed call, or a message of another size than `bytes`, ends the
 * whole job (invariant 3). Sizes above INT_MAX bytes go as several messages. */
enum { DIST_ANY = -1 }; /* dist_recv's `from`: whichever rank sends first */
void dist_send(int to, int tag, const void *buf, size_t bytes);
/* Receive exactly `bytes` from `from` (or DIST_ANY); returns the sender's rank. */
int dist_recv(int from, int tag, void *buf, size_t bytes);
/* End the whole job after one line naming this rank and why: for a protocol that cannot go on
 * (a bug, or no memory for a message already on its way). Does not return. */
void dist_fail(const char *why);

/* Whether this build can run across processes (MPI compiled in). */
int dist_available(void);

#endif
