/* store_tool — test helper standing in for `vesalius ingest` above the volume level: it drives
 * io/store exactly as the ingest loop will, on fake source files instead of DICOM.
 *
 *   store_tool ingest OUT SRC [MAX_SHARD_BYTES [LOCK_TIMEOUT_MS]]
 *       Each file in SRC is a line "series KEY" (one slice of that series) or anything else
 *       (rejected). Files already in the catalog unchanged are skipped; a series with a new or
 *       changed file is rebuilt from all of its files (an int16 CT-like volume with one slice
 *       per file). Exit 0 done, 4 done with rejects, 5 nothing to do, 6 busy, 1 failed.
 *       VS_STORE_SLOW_MS=N sleeps N ms after each volume (so a test can kill it mid-run).
 *   store_tool dump OUT     catalog rows and shard file hashes, canonical (no run ids/times)
 *   store_tool verify OUT   re-check every shard checksum; exit 1 on any corrupt volume
 */
#include <dirent.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store.h"
#include "synth.h"

typedef struct src_file {
    char path[4200];
    char key[SHARD_KEY_MAX]; /* "" when not a slice */
    char hash[80];
    int64_t size, mtime_ns;
    catalog_file_status status;
} src_file;

static int cmp_src(const void *a, const void *b) {
    const src_file *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->path, y->path);
}

static int load_sources(const char *dir, src_file **out, int *n_out) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    src_file *f = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            f = realloc(f, (size_t)cap * sizeof *f);
        }
        src_file *s = &f[n++];
        memset(s, 0, sizeof *s);
        snprintf(s->path, sizeof s->path, "%s/%s", dir, e->d_name);
        FILE *fp = fopen(s->path, "rb");
        char buf[256] = {0};
        size_t len = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
        if (fp) fclose(fp);
        if (sscanf(buf, "series %64s", s->key) != 1) s->key[0] = 0;
        unsigned char h[32];
        crypto_hash_sha256(h, (const unsigned char *)buf, len);
        strcpy(s->hash, "sha256:");
        sodium_bin2hex(s->hash + 7, sizeof s->hash - 7, h, sizeof h);
        struct stat st;
        stat(s->path, &st);
        s->size = st.st_size;
        s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    }
    closedir(d);
    qsort(f, (size_t)n, sizeof *f, cmp_src);
    *out = f;
    *n_out = n;
    return 0;
}

static catalog_source as_source(const src_file *f) {
    return (catalog_source){f->path, f->size, f->mtime_ns, f->hash, NULL};
}

static uint64_t key_seed(const char *key) {
    uint64_t h = 1469598103934665603ULL;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    return h;
}

/* Rebuild series f[lo..hi) from all its files. */
static vs_status put_series(store *s, const src_file *f, int lo, int hi, vs_error *err) {
    volume v;
    vs_status st = synth_ct(&v, hi - lo, 48, 56, key_seed(f[lo].key), f[lo].key, err);
    if (st != VS_OK) return st;
    catalog_source *src = calloc((size_t)(hi - lo), sizeof *src);
    for (int i = lo; i < hi; i++)
        src[i - lo] = as_source(&f[i]);
    shard_extra x = {"none", NULL};
    st = store_put(s, &v, &x, src, hi - lo, err);
    /* A refused volume (bad key here) rejects its files; the run goes on. */
    if (st == VS_ERR_FORMAT) {
        char reason[VS_ERROR_MSG_MAX];
        snprintf(reason, sizeof reason, "%s", err->msg);
        st = VS_OK;
        for (int i = 0; st == VS_OK && i < hi - lo; i++)
            st = store_record(s, &src[i], CATALOG_REJECTED, reason, err);
    }
    free(src);
    volume_free(&v);
    const char *slow = getenv("VS_STORE_SLOW_MS");
    if (slow) {
        struct timespec ts = {0, atol(slow) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return st;
}

static int print_reject(void *ctx, const char *path, const char *state, const char *reason) {
    (void)ctx;
    const char *base = strrchr(path, '/');
    printf("%s %s: %s\n", state, base ? base + 1 : path, reason);
    return 0;
}

static int ingest(const char *out, const char *src_dir, uint64_t max_bytes, int lock_ms) {
    src_file *f = NULL;
    int n = 0;
    if (load_sources(src_dir, &f, &n) != 0) return 1;
    store_options o;
    store_options_default(&o);
    o.shard_max_bytes = max_bytes;
    o.lock_timeout_ms = lock_ms;
    o.shard.chunk[0] = 16, o.shard.chunk[1] = o.shard.chunk[2] = 32;
    o.run_params = "{\"tool\":\"store_tool\"}";
    store *s = NULL;
    vs_error err;
    vs_status st = store_open(out, &o, &s, &err);
    if (st != VS_OK) {
        fprintf(stderr, "store_tool: %s\n", err.msg);
        free(f);
        return st == VS_ERR_BUSY ? 6 : 1;
    }
    for (int i = 0; i < n && st == VS_OK; i++) {
        catalog_source cs = as_source(&f[i]);
        st = store_file_check(s, &cs, &f[i].status, &err);
        if (st == VS_OK && !f[i].key[0] && f[i].status != CATALOG_FILE_UNCHANGED)
            st = store_record(s, &cs, CATALOG_REJECTED, "not a slice file (test)", &err);
    }
    for (int lo = 0, hi; lo < n && st == VS_OK; lo = hi) {
        int dirty = 0;
        for (hi = lo; hi < n && strcmp(f[hi].key, f[lo].key) == 0; hi++)
            dirty |= f[hi].status != CATALOG_FILE_UNCHANGED;
        if (f[lo].key[0] && dirty) st = put_series(s, f, lo, hi, &err);
    }
    free(f);
    if (st != VS_OK) {
        fprintf(stderr, "store_tool: %s\n", err.msg);
        store_abort(s);
        return 1;
    }
    if (store_each_reject(s, print_reject, NULL, &err) != VS_OK) {
        fprintf(stderr, "store_tool: %s\n", err.msg);
        store_abort(s);
        return 1;
    }
    store_summary sum;
    if (store_close(s, &sum, &err) != VS_OK) {
        fprintf(stderr, "store_tool: %s\n", err.msg);
        return 1;
    }
    printf("{\"volumes\":%d,\"replaced\":%d,\"rejected\":%d,\"shards\":%d,\"recovered\":%d}\n",
           sum.n_volumes, sum.n_replaced, sum.n_rejected, sum.n_shards, sum.n_recovered);
    if (sum.n_volumes == 0 && sum.n_rejected == 0) return 5;
    return sum.n_rejected ? 4 : 0;
}

static int print_rows(void *ctx, int n, char **vals, char **names) {
    (void)ctx;
    (void)names;
    for (int i = 0; i < n; i++)
        printf("%s%s", i ? "|" : "", vals[i] ? vals[i] : "NULL");
    printf("\n");
    return 0;
}

static int dump(const char *out) {
    char p[4200];
    snprintf(p, sizeof p, "%s/catalog.sqlite", out);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) return 1;
    static const char *const q[] = {
        "SELECT 'shard', name, sequence, n_volumes FROM shards ORDER BY sequence",
        "SELECT 'volume', v.series_key, h.name, v.checksum, v.shape, v.n_sources, v.state,"
        " v.modality FROM volumes v JOIN shards h ON v.shard_id=h.id ORDER BY h.sequence, v.id",
        "SELECT 'source', replace(s.source_key, rtrim(s.source_key, replace(s.source_key, '/', "
        "'')), ''), s.size,"
        " s.content_hash, s.state, s.reason, s.series_key, h.name FROM sources s"
        " LEFT JOIN volumes v ON s.volume_id=v.id LEFT JOIN shards h ON v.shard_id=h.id"
        " ORDER BY s.source_key",
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++)
        if (sqlite3_exec(db, q[i], print_rows, NULL, NULL) != SQLITE_OK) {
            fprintf(stderr, "store_tool: %s\n", sqlite3_errmsg(db));
            sqlite3_close(db);
            return 1;
        }
    sqlite3_close(db);
    return 0;
}

static int verify(const char *out) {
    char p[4200];
    snprintf(p, sizeof p, "%s/shards", out);
    shard_verify_result r;
    vs_error err;
    if (shard_verify_dir(p, &r, &err) != VS_OK) {
        fprintf(stderr, "store_tool: %s\n", err.msg);
        return 1;
    }
    printf("shards %d volumes %d bad_shards %d bad_volumes %d\n", r.n_shards, r.n_volumes,
           r.n_bad_shards, r.n_bad_volumes);
    return r.n_bad_shards || r.n_bad_volumes;
}

int main(int argc, char **argv) {
    if (sodium_init() < 0) return 1;
    if (argc >= 4 && strcmp(argv[1], "ingest") == 0)
        return ingest(argv[2], argv[3], argc > 4 ? strtoull(argv[4], NULL, 10) : 1u << 30,
                      argc > 5 ? atoi(argv[5]) : 0);
    if (argc == 3 && strcmp(argv[1], "dump") == 0) return dump(argv[2]);
    if (argc == 3 && strcmp(argv[1], "verify") == 0) return verify(argv[2]);
    fprintf(stderr,
            "usage: store_tool ingest OUT SRC [MAX_BYTES [LOCK_MS]] | dump OUT | verify OUT\n");
    return 2;
}
