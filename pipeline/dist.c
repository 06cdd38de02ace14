/* dist.c — MPI under the launcher (dist.h), and the vs_group over it (io/base group.h). Built
 * without MPI (no libopenmpi-dev when CMake ran), every process runs alone and a launcher of
 * more than one process is refused. */
#include "dist.h"

#include "log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef VS_HAVE_MPI
#include <mpi.h>
#endif

static struct {
    int started; /* MPI_Init_thread called by dist_start */
    int rank, size;
    vs_group group;
    float *slices; /* sum_f32's receive buffer: size x (the largest slice) floats */
    size_t slices_cap;
} g_dist = {0, 0, 1, {0, 1, NULL, NULL, NULL, NULL}, NULL, 0};

int dist_rank(void) { return g_dist.rank; }
int dist_size(void) { return g_dist.size; }
const vs_group *dist_group(void) { return &g_dist.group; }

#ifdef VS_HAVE_MPI
int dist_available(void) { return 1; }

/* A failed MPI call: one line, then the whole job ends (dist.h invariant 3). */
static void mpi_check(int rc, const char *call) {
    if (rc == MPI_SUCCESS) return;
    char why[MPI_MAX_ERROR_STRING] = "";
    int n = 0;
    if (MPI_Error_string(rc, why, &n) != MPI_SUCCESS) why[0] = '\0';
    log_error("rank %d: %s failed (%s); ending every rank of the job", g_dist.rank, call, why);
    MPI_Abort(MPI_COMM_WORLD, 1);
    abort(); /* MPI_Abort does not return; if it did, this process must not go on */
}

/* Counts and offsets of MPI calls are ints: a transfer above INT_MAX elements ends the job
 * with a line saying so (a model of 2^31 parameters is far beyond this trainer). */
static int mpi_count(size_t n, const char *what) {
    if (n > (size_t)INT32_MAX) {
        log_error("rank %d: %s of %zu elements is beyond MPI's int counts; ending the job",
                  g_dist.rank, what, n);
        MPI_Abort(MPI_COMM_WORLD, 1);
        abort();
    }
    return (int)n;
}

static void mpi_gather(void *ctx, const void *mine, void *all, size_t bytes) {
    (void)ctx;
    int n = mpi_count(bytes, "a gather");
    mpi_check(MPI_Allgather(mine, n, MPI_BYTE, all, n, MPI_BYTE, MPI_COMM_WORLD), "MPI_Allgather");
}

static void mpi_bcast(void *ctx, void *buf, size_t bytes) {
    (void)ctx;
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        mpi_check(MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD), "MPI_Bcast");
    }
}

/* Slice r of n elements over R ranks: [lo(r), lo(r + 1)). n <= INT32_MAX and R <= 2^20
 * (dist_detect's bound), so n * r fits in 64 bits. */
static size_t slice_lo(size_t n, int r, int R) {
    return (size_t)((uint64_t)n * (uint64_t)r / (uint64_t)R);
}

/* The rank-order sum (group.h invariant 2), as a reduce-scatter and an all-gather that only
 * move bytes: rank r receives slice r of every rank's x (MPI_Alltoallv), adds the copies in
 * rank order, and every rank gathers the summed slices (MPI_Allgatherv). Each rank sends and
 * receives 2 (R - 1) / R of x, as a ring all-reduce does. */
static void mpi_sum_f32(void *ctx, float *x, size_t n) {
    (void)ctx;
    int R = g_dist.size, me = g_dist.rank;
    mpi_count(n, "a gradient sum");
    size_t mine = slice_lo(n, me + 1, R) - slice_lo(n, me, R), lo = slice_lo(n, me, R);
    size_t need = (size_t)R * (mine ? mine : 1);
    if (need > g_dist.slices_cap) {
        free(g_dist.slices);
        g_dist.slices = malloc(need * sizeof *g_dist.slices);
        g_dist.slices_cap = g_dist.slices ? need : 0;
        if (!g_dist.slices) {
            log_error("rank %d: out of memory for the gradient sum (%zu floats); ending the job",
                      me, need);
            MPI_Abort(MPI_COMM_WORLD, 1);
            abort();
        }
    }
    int *sc = malloc(4 * (size_t)R * sizeof *sc);
    if (!sc) {
        log_error("rank %d: out of memory for the gradient sum; ending the job", me);
        MPI_Abort(MPI_COMM_WORLD, 1);
        abort();
    }
    int *sd = sc + R, *rc = sc + 2 * R, *rd = sc + 3 * R;
    for (int r = 0; r < R; r++) {
        sc[r] = (int)(slice_lo(n, r + 1, R) - slice_lo(n, r, R));
        sd[r] = (int)slice_lo(n, r, R);
        rc[r] = (int)mine;
        rd[r] = (int)((size_t)r * mine);
    }
    float *buf = g_dist.slices;
    mpi_check(MPI_Alltoallv(x, sc, sd, MPI_FLOAT, buf, rc, rd, MPI_FLOAT, MPI_COMM_WORLD),
              "MPI_Alltoallv");
    float *out = x + lo;
    memcpy(out, buf, mine * sizeof *out);
    for (int r = 1; r < R; r++) { /* rank order, element by element: the same bits anywhere */
        const float *in = buf + (size_t)r * mine;
        for (size_t i = 0; i < mine; i++)
            out[i] += in[i];
    }
    mpi_check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, x, sc, sd, MPI_FLOAT, MPI_COMM_WORLD),
              "MPI_Allgatherv");
    free(sc);
}

void dist_fail(const char *why) {
    log_error("rank %d: %s; ending every rank of the job", g_dist.rank, why);
    MPI_Abort(MPI_COMM_WORLD, 1);
    abort();
}

/* Large transfers go in pieces of 1 GiB: MPI counts are ints. */
static const size_t piece = (size_t)1 << 30;

/* Wait for rq, polling with sleeps that grow from 20 us to 1 ms: a rank waiting for its turn
 * (rank 0 for the next series, a worker for its next command or for rank 0 to take its
 * volume) leaves its core to the ranks that compute, where MPI_Wait would spin on it; the
 * ranks of a job may outnumber the cores. The latency added is under a millisecond a message. */
static void mpi_wait_polite(MPI_Request *rq, MPI_Status *st, const char *call) {
    long ns = 20000;
    for (;;) {
        int done = 0;
        mpi_check(MPI_Test(rq, &done, st), call);
        if (done) return;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL); /* EINTR: only an earlier poll */
        if (ns < 1000000) ns *= 2;
    }
}

void dist_send(int to, int tag, const void *buf, size_t bytes) {
    size_t off = 0;
    do { /* one message even for 0 bytes, so that every send has its receive */
        size_t n = bytes - off < piece ? bytes - off : piece;
        MPI_Request rq;
        MPI_Status st;
        mpi_check(
            MPI_Isend((const char *)buf + off, (int)n, MPI_BYTE, to, tag, MPI_COMM_WORLD, &rq),
            "MPI_Isend");
        mpi_wait_polite(&rq, &st, "MPI_Test (a send)");
        off += n;
    } while (off < bytes);
}

int dist_recv(int from, int tag, void *buf, size_t bytes) {
    size_t off = 0;
    int src = from == DIST_ANY ? MPI_ANY_SOURCE : from;
    do {
        size_t n = bytes - off < piece ? bytes - off : piece;
        MPI_Request rq;
        MPI_Status st;
        int got = -1;
        mpi_check(MPI_Irecv((char *)buf + off, (int)n, MPI_BYTE, src, tag, MPI_COMM_WORLD, &rq),
                  "MPI_Irecv");
        mpi_wait_polite(&rq, &st, "MPI_Test (a receive)");
        mpi_check(MPI_Get_count(&st, MPI_BYTE, &got), "MPI_Get_count");
        if (got != (int)n) {
            log_error("rank %d: a message of %d bytes from rank %d, %zu expected (tag %d); "
                      "ending the job",
                      g_dist.rank, got, st.MPI_SOURCE, n, tag);
            MPI_Abort(MPI_COMM_WORLD, 1);
            abort();
        }
        src = st.MPI_SOURCE; /* the rest of a long message comes from the same rank */
        off += n;
    } while (off < bytes);
    return src;
}

static vs_status mpi_start(const dist_launch *l, vs_error *err) {
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return VS_FAIL(err, VS_ERR_ENV, "%s started this process, but MPI could not start",
                       l->launcher);
    g_dist.started = 1;
    int rank = 0, size = 1;
    if (MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
        MPI_Comm_rank(MPI_COMM_WORLD, &rank) != MPI_SUCCESS ||
        MPI_Comm_size(MPI_COMM_WORLD, &size) != MPI_SUCCESS)
        return VS_FAIL(err, VS_ERR_ENV, "MPI started but cannot name this process's rank");
    if (provided < MPI_THREAD_FUNNELED)
        return VS_FAIL(err, VS_ERR_ENV,
                       "the MPI library offers no thread support (MPI_THREAD_FUNNELED), which "
                       "vesalius's worker threads need");
    if (l->size > 0 && size != l->size)
        return VS_FAIL(err, VS_ERR_ENV,
                       "%s started %d processes, but MPI sees %d: they do not see each other "
                       "(a launcher of another MPI than the Open MPI vesalius was built with?)",
                       l->launcher, l->size, size);
    g_dist.rank = rank, g_dist.size = size;
    g_dist.group = (vs_group){rank, size, NULL, mpi_gather, mpi_sum_f32, mpi_bcast};
    return VS_OK;
}

int dist_end(int rc) {
    if (g_dist.started) {
        free(g_dist.slices);
        g_dist.slices = NULL, g_dist.slices_cap = 0;
        g_dist.started = 0;
        if (MPI_Finalize() != MPI_SUCCESS && rc == 0) rc = 1;
    }
    return rc;
}
#else
int dist_available(void) { return 0; }

static vs_status mpi_start(const dist_launch *l, vs_error *err) {
    if (l->size == 1 || l->size == 0) {
        log_warn("%s started this process, but this vesalius was built without MPI: it runs "
                 "alone",
                 l->launcher);
        return VS_OK;
    }
    return VS_FAIL(err, VS_ERR_ENV,
                   "%s started %d processes, but this vesalius was built without MPI, so they "
                   "cannot see each other (install libopenmpi-dev and rebuild)",
                   l->launcher, l->size);
}

int dist_end(int rc) { return rc; }

void dist_fail(const char *why) {
    log_error("%s", why);
    abort();
}

/* Without MPI there is one process and no one to talk to: a call is a bug. */
void dist_send(int to, int tag, const void *buf, size_t bytes) {
    (void)to, (void)tag, (void)buf, (void)bytes;
    log_error("dist_send without MPI: a bug");
    abort();
}

int dist_recv(int from, int tag, void *buf, size_t bytes) {
    (void)from, (void)tag, (void)buf, (void)bytes;
    log_error("dist_recv without MPI: a bug");
    abort();
}
#endif

vs_status dist_start(int mode, vs_error *err) {
    if (mode == DIST_OFF) return VS_OK;
    dist_launch l;
    dist_detect(getenv, &l);
    if (!l.launcher) return VS_OK;
    if (!l.wired) {
        if (l.size <= 1) return VS_OK; /* srun -n 1 with no MPI wire-up: one process */
        return VS_FAIL(err, VS_ERR_ENV,
                       "%s started %d processes but gave them no MPI wire-up (no PMIx or PMI "
                       "variables), so they cannot see each other: launch with srun --mpi=pmix "
                       "(or --mpi=pmi2), or with mpirun",
                       l.launcher, l.size);
    }
    return mpi_start(&l, err);
}
