/* test_dist — the launcher as environment variables describe it (pipeline/dist.h dist_detect),
 * over a table of the variables Open MPI's mpirun, srun with PMIx or PMI-2, MPICH's mpiexec
 * and srun without MPI wire-up set, plus malformed values; the one-process commands' refusal
 * under a launcher; and vs_group_agree (io/base group.h) over a group whose other members
 * are scripted, checked against the rule written out by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "dist.h"
#include "group.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- dist_detect */
static const char *const *g_env; /* NAME, VALUE, ..., NULL */

static char *table_get(const char *name) {
    for (const char *const *e = g_env; e && e[0]; e += 2)
        if (strcmp(e[0], name) == 0) return (char *)e[1];
    return NULL;
}

static void test_detect_table(void **state) {
    (void)state;
    static const char *none[] = {"HOME", "/root", NULL};
    static const char *ompi[] = {
        "OMPI_COMM_WORLD_SIZE", "4", "OMPI_COMM_WORLD_RANK", "3", "PMIX_RANK", "3", NULL};
    static const char *pmix_srun[] = {"PMIX_RANK",
                                      "5",
                                      "PMIX_NAMESPACE",
                                      "slurm.pmix.7.0",
                                      "SLURM_STEP_NUM_TASKS",
                                      "8",
                                      "SLURM_PROCID",
                                      "5",
                                      NULL};
    static const char *pmix_alone[] = {"PMIX_RANK", "0", NULL};
    static const char *pmi2[] = {"PMI_SIZE", "16", "PMI_RANK", "15", "SLURM_STEP_NUM_TASKS",
                                 "16",       NULL};
    static const char *pmi_rank_only[] = {"PMI_RANK", "2", NULL};
    static const char *srun_bare[] = {
        "SLURM_STEP_NUM_TASKS", "4", "SLURM_PROCID", "1", "SLURM_NTASKS", "4", NULL};
    static const char *sbatch[] = {"SLURM_NTASKS",
                                   "4",
                                   "SLURM_PROCID",
                                   "0",
                                   "SLURM_JOB_ID",
                                   "9",
                                   NULL}; /* a batch script: the job's variables, no step's */
    static const char *garbage[] = {"OMPI_COMM_WORLD_SIZE", "4x", "OMPI_COMM_WORLD_RANK", "-1",
                                    NULL};
    static const struct {
        const char *const *env;
        const char *launcher; /* NULL: none */
        int size, rank, wired;
    } rows[] = {
        {none, NULL, 0, -1, 0},
        {ompi, "mpirun (Open MPI)", 4, 3, 1},
        {pmix_srun, "PMIx", 8, 5, 1},
        {pmix_alone, "PMIx", 0, 0, 1},
        {pmi2, "PMI", 16, 15, 1},
        {pmi_rank_only, "PMI", 0, 2, 1},
        {srun_bare, "srun", 4, 1, 0},
        {sbatch, NULL, 0, -1, 0},
        {garbage, "mpirun (Open MPI)", 0, -1, 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        g_env = rows[i].env;
        dist_launch l;
        dist_detect(table_get, &l);
        print_message("row %zu: %s size %d rank %d wired %d\n", i, l.launcher ? l.launcher : "-",
                      l.size, l.rank, l.wired);
        if (!rows[i].launcher)
            assert_null(l.launcher);
        else
            assert_string_equal(l.launcher, rows[i].launcher);
        assert_int_equal(l.size, rows[i].size);
        assert_int_equal(l.rank, rows[i].rank);
        assert_int_equal(l.wired, rows[i].wired);
    }
}

/* A one-process command under a launcher of two is refused (only rank 0 will say it); with
 * --distributed off, or with one process, it runs. The real environment, set here. */
static void test_refuse_ranks(void **state) {
    (void)state;
    const char *vars[] = {
        "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_SIZE", "PMI_RANK",
        "SLURM_STEP_NUM_TASKS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    vs_error err;
    int rank = 0;
    assert_int_equal(dist_refuse_ranks("validate", DIST_AUTO, &rank, &err), VS_OK);
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1), setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    assert_int_equal(dist_refuse_ranks("validate", DIST_AUTO, &rank, &err), VS_ERR_USAGE);
    print_message("%s\n", err.msg);
    assert_non_null(strstr(err.msg, "vesalius validate runs as one process"));
    assert_non_null(strstr(err.msg, "mpirun (Open MPI) started 2"));
    assert_int_equal(rank, 1);
    rank = 0;
    assert_int_equal(dist_refuse_ranks("validate", DIST_OFF, &rank, &err), VS_OK);
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1), setenv("OMPI_COMM_WORLD_RANK", "0", 1);
    assert_int_equal(dist_refuse_ranks("validate", DIST_AUTO, &rank, &err), VS_OK);
    unsetenv("OMPI_COMM_WORLD_SIZE"), unsetenv("OMPI_COMM_WORLD_RANK");
}

/* ------------------------------------------------------------- vs_group_agree */
/* A group of `size` whose member `rank` is this process; the others' records are scripted. */
typedef struct script {
    int rank, size;
    vs_status codes[4];
    const char *msgs[4];
    size_t rec; /* the record size the gather saw */
} script;

static void script_gather(void *ctx, const void *mine, void *all, size_t bytes) {
    script *s = ctx;
    s->rec = bytes;
    /* group.c's record: int32 code, int32 line, then the message */
    for (int r = 0; r < s->size; r++) {
        uint8_t *dst = (uint8_t *)all + (size_t)r * bytes;
        if (r == s->rank) {
            memcpy(dst, mine, bytes);
            continue;
        }
        memset(dst, 0, bytes);
        int32_t code = (int32_t)s->codes[r], line = 100 + r;
        memcpy(dst, &code, 4), memcpy(dst + 4, &line, 4);
        snprintf((char *)dst + 8, bytes - 8, "%s", s->msgs[r] ? s->msgs[r] : "");
    }
}

static void test_agree(void **state) {
    (void)state;
    static const struct {
        int rank;
        vs_status codes[3];
        const char *msgs[3];
        vs_status want;
        const char *want_msg; /* NULL: VS_OK */
    } rows[] = {
        {0, {VS_OK, VS_OK, VS_OK}, {0}, VS_OK, NULL},
        {0,
         {VS_OK, VS_ERR_IO, VS_OK},
         {"", "cannot read x.h5", ""},
         VS_ERR_IO,
         "rank 1: cannot read x.h5"},
        {2, {VS_OK, VS_ERR_FORMAT, VS_ERR_IO}, {"", "bad", "worse"}, VS_ERR_FORMAT, "rank 1: bad"},
        {1,
         {VS_ERR_CONFIG, VS_ERR_CONFIG, VS_ERR_CONFIG},
         {"same", "same", "same"},
         VS_ERR_CONFIG,
         "same"},
        {1,
         {VS_ERR_CONFIG, VS_ERR_CONFIG, VS_ERR_CONFIG},
         {"same", "other", "same"},
         VS_ERR_CONFIG,
         "rank 0: same"},
        {1,
         {VS_OK, VS_ERR_NOMEM, VS_OK},
         {"", "no memory here", ""},
         VS_ERR_NOMEM,
         "rank 1: no memory here"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        script s = {rows[i].rank, 3, {0}, {0}, 0};
        for (int r = 0; r < 3; r++)
            s.codes[r] = rows[i].codes[r], s.msgs[r] = rows[i].msgs[r];
        vs_group g = {rows[i].rank, 3, &s, script_gather, NULL, NULL};
        vs_error err;
        memset(&err, 0, sizeof err);
        vs_status mine = rows[i].codes[rows[i].rank];
        if (mine != VS_OK) VS_FAIL(&err, mine, "%s", rows[i].msgs[rows[i].rank]);
        vs_status got = vs_group_agree(&g, mine, &err);
        print_message("row %zu: %d '%s'\n", i, (int)got, got ? err.msg : "");
        assert_int_equal(got, rows[i].want);
        if (rows[i].want_msg) assert_string_equal(err.msg, rows[i].want_msg);
        assert_int_equal(s.rec, 8 + VS_ERROR_MSG_MAX);
    }
    /* one process: no gather, its own status */
    vs_error err;
    VS_FAIL(&err, VS_ERR_IO, "alone");
    assert_int_equal(vs_group_agree(NULL, VS_ERR_IO, &err), VS_ERR_IO);
    assert_string_equal(err.msg, "alone");
    assert_int_equal(vs_group_max(NULL, 7), 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_table),
        cmocka_unit_test(test_refuse_ranks),
        cmocka_unit_test(test_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
