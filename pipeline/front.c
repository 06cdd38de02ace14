/* front.c — how the lean `vesalius` executable reaches libvesalius_core.so: the library
 * beside the executable (the folder of /proc/self/exe), loaded with dlopen on first use, its
 * build checked against the front's, its exported entry points called (pipeline/core.c).
 *
 * Invariants:
 *   1. Only commands whose row names cli_run_core and --version load the core; the commands
 *      the front links run without HDF5, ITK or BLAS in the process.
 *   2. A missing, unloadable or mismatched core is one line naming the library and the
 *      reason, exit 3 (environment error), whatever the command.
 */
#include "cli.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern const char *const vs_git_revision;

#define CORE_LIB "libvesalius_core.so"

/* An entry point as dlsym returns it (ISO C has no cast from object to function pointer). */
typedef union core_entry {
    void *sym;
    void (*build)(const char **version, const char **revision);
    int (*run)(const cli_common *common, int argc, char **argv);
    void (*versions)(void);
} core_entry;

/* The core's path: the folder of the running executable + CORE_LIB. */
static vs_status core_path(char *out, size_t cap, vs_error *err) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return VS_FAIL(err, VS_ERR_ENV, "cannot find the vesalius executable (/proc/self/exe: %s)",
                       strerror(errno));
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) *slash = '\0';
    if ((size_t)snprintf(out, cap, "%s/%s", slash ? exe : ".", CORE_LIB) >= cap)
        return VS_FAIL(err, VS_ERR_ENV, "the vesalius executable's folder path is too long");
    return VS_OK;
}

/* dlsym of one entry point; .sym is NULL with err filled when it is missing. */
static core_entry core_sym(void *lib, const char *path, const char *name, vs_error *err) {
    core_entry e;
    e.sym = dlsym(lib, name);
    if (!e.sym) VS_FAIL(err, VS_ERR_ENV, "%s: not a vesalius core library (no %s)", path, name);
    return e;
}

/* OpenBLAS (Debian's DYNAMIC_ARCH build) picks its kernels by CPU family and model as it
 * loads. A CPU it does not know by model, as virtual machines often present one ("Intel(R)
 * Xeon(R) Processor"), gets its oldest x86-64 kernels (Prescott, SSE3) even with AVX2 and
 * AVX-512 there: sgemm, most of a training step, then runs at a fraction of the CPU's speed
 * (bench/README.md, "OpenBLAS kernels"). So before the core, and OpenBLAS with it, loads, name
 * the kernel family the CPU's features allow (the sgemm kernels OpenBLAS itself uses for the
 * models it knows with those features), unless the user chose one. The choice shows in
 * `vesalius --version` and in every report's library versions. */
static void blas_kernel_hint(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (getenv("OPENBLAS_CORETYPE")) return;
    __builtin_cpu_init();
    const char *k = NULL;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        k = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        k = "Haswell";
    else if (__builtin_cpu_supports("avx"))
        k = "Sandybridge";
    /* setenv fails only without memory for the copy: OpenBLAS then chooses by itself */
    if (k && setenv("OPENBLAS_CORETYPE", k, 0) != 0) return;
#endif
}

/* The loaded core library (loaded once per process), or NULL with err filled. */
static void *core_open(vs_error *err) {
    static void *lib;
    if (lib) return lib;
    blas_kernel_hint();
    char path[4200];
    if (core_path(path, sizeof path, err) != VS_OK) return NULL;
    /* Lazy binding, as ld.so binds an executable's own libraries (RTLD_NOW would resolve the
     * whole of HDF5, ITK and OpenBLAS first: ~5 ms more); the core is linked --no-undefined. */
    void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        VS_FAIL(err, VS_ERR_ENV,
                "cannot load %s, which must sit beside the vesalius executable (%s)", path,
                why ? why : "unknown reason");
        return NULL;
    }
    core_entry build = core_sym(h, path, "vesalius_core_build", err);
    if (!build.sym) return NULL;
    const char *version = "", *revision = "";
    build.build(&version, &revision);
    if (strcmp(version, VESALIUS_VERSION) != 0 || strcmp(revision, vs_git_revision) != 0) {
        VS_FAIL(err, VS_ERR_ENV,
                "%s is from another build (vesalius %s, git %s), not this vesalius (%s, git %s)",
                path, version, revision, VESALIUS_VERSION, vs_git_revision);
        return NULL;
    }
    lib = h;
    return lib;
}

int cli_run_core(int argc, char **argv) {
    vs_error err;
    void *lib = core_open(&err);
    core_entry e = {NULL};
    if (lib) e = core_sym(lib, CORE_LIB, "vesalius_core_run", &err);
    if (!e.sym) return cli_fail(argv[0], &err);
    return e.run(&g_cli, argc, argv);
}

int cli_print_version(void) {
    printf("vesalius %s (git %s)\n", VESALIUS_VERSION, vs_git_revision);
    fflush(stdout);
    vs_error err;
    void *lib = core_open(&err);
    core_entry e = {NULL};
    if (lib) e = core_sym(lib, CORE_LIB, "vesalius_core_versions", &err);
    if (!e.sym) return cli_fail(NULL, &err);
    e.versions();
    return VS_EXIT_OK;
}
