/* shard_chunks.c — parallel chunk filtering for the shard writer.
 *
 * HDF5 runs its filter pipeline (shuffle → deflate → Fletcher-32) in the calling thread, one
 * chunk at a time. Here worker threads apply the same filters to a batch of chunks and the
 * calling thread writes them in chunk order with H5Dwrite_chunk, so the file is byte-identical
 * whatever the thread count, and readers (HDF5, h5py) undo the filters as usual.
 *
 * Invariants:
 *   1. The bytes of a filtered chunk are exactly what HDF5's own filters produce: shuffle as
 *      H5Zshuffle.c, zlib stream of compress2 at the level, Fletcher-32 as H5checksum.c
 *      appended little-endian (H5Zfletcher32.c). Edge chunks are full-size, zero-padded.
 *   2. At most `batch` filtered chunks are held in memory at once.
 */
#include "shard_h5.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <zlib.h>

/* HDF5's Fletcher-32 (H5_checksum_fletcher32): 16-bit big-endian words, sums folded every 360.
 * Each block of t words adds sum1 += sum(w_i) and sum2 += t*sum1 + sum((t - i) w_i): the same
 * uint32 arithmetic as the word-by-word loop, in a form the compiler vectorises. */
static uint32_t fletcher32(const uint8_t *data, size_t n_bytes) {
    size_t len = n_bytes / 2;
    uint32_t sum1 = 0, sum2 = 0;
    while (len) {
        size_t t = len > 360 ? 360 : len;
        len -= t;
        uint32_t s = 0, ws = 0;
        for (size_t i = 0; i < t; i++) {
            uint32_t w = (uint32_t)data[2 * i] << 8 | (uint32_t)data[2 * i + 1];
            s += w;
            ws += (uint32_t)(t - i) * w;
        }
        data += 2 * t;
        sum2 += (uint32_t)t * sum1 + ws;
        sum1 += s;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    if (n_bytes % 2) {
        sum1 += (uint32_t)(((uint16_t)*data) << 8);
        sum2 += sum1;
        sum1 = (sum1 & 0xffff) + (sum1 >> 16);
        sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
    return (sum2 << 16) | sum1;
}

typedef struct chunk_job {
    const uint8_t *voxels;
    hsize_t dims[3], chunk[3], grid[3]; /* grid: chunks per axis */
    size_t es, chunk_bytes;
    int level;
    /* the batch */
    hsize_t first; /* linear index of the batch's first chunk */
    int n, n_threads;
    uint8_t **raw, **shuf, **out; /* per slot: (chunk_bytes), (chunk_bytes), (bound + 4) */
    size_t *out_len;
    int *failed;
} chunk_job;

static void chunk_origin(const chunk_job *j, hsize_t index, hsize_t at[3]) {
    at[2] = (index % j->grid[2]) * j->chunk[2];
    at[1] = (index / j->grid[2] % j->grid[1]) * j->chunk[1];
    at[0] = (index / j->grid[2] / j->grid[1]) * j->chunk[0];
}

/* Copy chunk `index` out of the volume (zero-padded), shuffle, deflate, append Fletcher-32. */
static void filter_chunk(chunk_job *j, int slot) {
    hsize_t at[3];
    chunk_origin(j, j->first + (hsize_t)slot, at);
    uint8_t *raw = j->raw[slot], *shuf = j->shuf[slot], *out = j->out[slot];
    memset(raw, 0, j->chunk_bytes);
    hsize_t nz = j->dims[0] - at[0] < j->chunk[0] ? j->dims[0] - at[0] : j->chunk[0];
    hsize_t ny = j->dims[1] - at[1] < j->chunk[1] ? j->dims[1] - at[1] : j->chunk[1];
    hsize_t nx = j->dims[2] - at[2] < j->chunk[2] ? j->dims[2] - at[2] : j->chunk[2];
    for (hsize_t z = 0; z < nz; z++)
        for (hsize_t y = 0; y < ny; y++)
            memcpy(raw + ((z * j->chunk[1] + y) * j->chunk[2]) * j->es,
                   j->voxels +
                       (((at[0] + z) * j->dims[1] + at[1] + y) * j->dims[2] + at[2]) * j->es,
                   nx * j->es);
    size_t n_elem = j->chunk_bytes / j->es;
    if (j->es == 2) { /* int16, the common case, without the inner stride */
        for (size_t i = 0; i < n_elem; i++) {
            shuf[i] = raw[2 * i];
            shuf[n_elem + i] = raw[2 * i + 1];
        }
    } else {
        for (size_t b = 0; b < j->es; b++)
            for (size_t i = 0; i < n_elem; i++)
                shuf[b * n_elem + i] = raw[i * j->es + b];
    }
    size_t len = j->chunk_bytes;
    if (j->level > 0) {
        uLongf dlen = compressBound((uLong)j->chunk_bytes);
        if (compress2(out, &dlen, shuf, (uLong)j->chunk_bytes, j->level) != Z_OK) {
            j->failed[slot] = 1;
            return;
        }
        len = dlen;
    } else {
        memcpy(out, shuf, len);
    }
    uint32_t f = fletcher32(out, len);
    for (int k = 0; k < 4; k++)
        out[len + (size_t)k] = (uint8_t)(f >> (8 * k));
    j->out_len[slot] = len + 4;
    j->failed[slot] = 0;
}

typedef struct worker_arg {
    chunk_job *job;
    int id;
} worker_arg;

static void *worker(void *p) {
    worker_arg *a = p;
    for (int s = a->id; s < a->job->n; s += a->job->n_threads)
        filter_chunk(a->job, s);
    return NULL;
}

/* Filter the batch's chunks, in worker threads when n_threads > 1. */
static int filter_batch(chunk_job *j) {
    if (j->n_threads <= 1 || j->n == 1) {
        for (int s = 0; s < j->n; s++)
            filter_chunk(j, s);
        return 0;
    }
    pthread_t th[64];
    worker_arg args[64];
    int started = 0;
    for (int t = 0; t < j->n_threads && t < 64; t++) {
        args[t] = (worker_arg){j, t};
        if (pthread_create(&th[t], NULL, worker, &args[t]) != 0) break;
        started++;
    }
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    /* Slots of threads that did not start are done here. */
    for (int t = started; t < j->n_threads; t++)
        for (int s = t; s < j->n; s += j->n_threads)
            filter_chunk(j, s);
    return 0;
}

static void free_slots(chunk_job *j, int batch) {
    for (int s = 0; s < batch; s++) {
        if (j->raw) free(j->raw[s]);
        if (j->shuf) free(j->shuf[s]);
        if (j->out) free(j->out[s]);
    }
    free(j->raw);
    free(j->shuf);
    free(j->out);
    free(j->out_len);
    free(j->failed);
}

vs_status shard_write_chunks(hid_t d, const char *path, const void *voxels, const hsize_t dims[3],
                             const hsize_t chunk[3], size_t es, int level, int n_threads,
                             vs_error *err) {
    chunk_job j;
    memset(&j, 0, sizeof j);
    j.voxels = voxels;
    j.es = es;
    j.level = level;
    j.n_threads = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    j.chunk_bytes = es;
    hsize_t total = 1;
    for (int a = 0; a < 3; a++) {
        j.dims[a] = dims[a];
        j.chunk[a] = chunk[a];
        j.grid[a] = (dims[a] + chunk[a] - 1) / chunk[a];
        j.chunk_bytes *= (size_t)chunk[a];
        total *= j.grid[a];
    }
    int batch = 4 * j.n_threads;
    size_t bound = (size_t)compressBound((uLong)j.chunk_bytes);
    if (bound < j.chunk_bytes) bound = j.chunk_bytes;
    j.raw = calloc((size_t)batch, sizeof *j.raw);
    j.shuf = calloc((size_t)batch, sizeof *j.shuf);
    j.out = calloc((size_t)batch, sizeof *j.out);
    j.out_len = calloc((size_t)batch, sizeof *j.out_len);
    j.failed = calloc((size_t)batch, sizeof *j.failed);
    vs_status st = VS_OK;
    if (!j.raw || !j.shuf || !j.out || !j.out_len || !j.failed) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate chunk buffers");
        goto done;
    }
    for (int s = 0; s < batch; s++)
        if (!(j.raw[s] = malloc(j.chunk_bytes)) || !(j.shuf[s] = malloc(j.chunk_bytes)) ||
            !(j.out[s] = malloc(bound + 4))) {
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate chunk buffers");
            goto done;
        }
    for (hsize_t first = 0; first < total && st == VS_OK; first += (hsize_t)batch) {
        j.first = first;
        j.n = total - first < (hsize_t)batch ? (int)(total - first) : batch;
        filter_batch(&j);
        for (int s = 0; s < j.n && st == VS_OK; s++) {
            hsize_t at[3];
            chunk_origin(&j, first + (hsize_t)s, at);
            if (j.failed[s])
                st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: zlib failed to compress a chunk", path);
            else if (H5Dwrite_chunk(d, H5P_DEFAULT, 0, at, j.out_len[s], j.out[s]) < 0)
                st = shard_h5_fail(err, path, "cannot write a chunk");
        }
    }
done:
    free_slots(&j, batch);
    return st;
}

/* ---- reading boxes without HDF5's filter pipeline -------------------------------------- */

/* HDF5 holds one global lock in a thread-safe build, and decompression inside H5Dread runs
 * under it. Reading raw chunks (H5Dread_chunk, quick) and undoing the filters here lets
 * several prefetch threads decompress at once. Only for the pipelines shards use. */

int shard_chunk_layout_of(hid_t d, shard_chunk_layout *l) {
    memset(l, 0, sizeof *l);
    l->filter_at[0] = l->filter_at[1] = l->filter_at[2] = -1;
    hid_t dcpl = H5Dget_create_plist(d);
    if (dcpl < 0) return -1;
    int ok = H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 3, l->chunk) == 3;
    int n = ok ? H5Pget_nfilters(dcpl) : -1;
    ok = ok && n >= 2 && n <= 3;
    static const H5Z_filter_t order[3] = {H5Z_FILTER_SHUFFLE, H5Z_FILTER_DEFLATE,
                                          H5Z_FILTER_FLETCHER32};
    int next = 0;
    for (int i = 0; ok && i < n; i++) {
        unsigned flags = 0, cfg = 0;
        size_t nel = 0;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nel, NULL, 0, NULL, &cfg);
        while (next < 3 && order[next] != id)
            next++;
        if (next == 3)
            ok = 0;
        else
            l->filter_at[next++] = i;
    }
    /* shuffle and Fletcher-32 are required; deflate is optional (level 0) */
    l->fast = ok && l->filter_at[0] == 0 && l->filter_at[2] >= 0;
    H5Pclose(dcpl);
    return 0;
}

/* Copy the part of one chunk inside the box into out. The chunk is in shuffled (planar)
 * order, as it comes out of inflate: plane b holds byte b (little-endian) of every element, so
 * undoing the shuffle and converting to float is one pass over the voxels the box needs. */
static void copy_box(const uint8_t *planar, vol_dtype t, const hsize_t chunk[3],
                     const hsize_t at[3], const int64_t start[3], const int64_t size[3],
                     float *out) {
    size_t n_elem = (size_t)(chunk[0] * chunk[1] * chunk[2]);
    /* planes that exist for this type (a uint8 chunk has one, int16 two, float32 four) */
    size_t es = t == VOL_INT16 ? 2 : t == VOL_FLOAT32 ? 4 : 1;
    const uint8_t *p0 = planar, *p1 = planar + (es > 1 ? n_elem : 0),
                  *p2 = planar + (es > 2 ? 2 * n_elem : 0),
                  *p3 = planar + (es > 2 ? 3 * n_elem : 0);
    int64_t lo[3], hi[3];
    for (int a = 0; a < 3; a++) {
        lo[a] = start[a] > (int64_t)at[a] ? start[a] : (int64_t)at[a];
        int64_t e1 = start[a] + size[a], e2 = (int64_t)(at[a] + chunk[a]);
        hi[a] = e1 < e2 ? e1 : e2;
    }
    size_t n = (size_t)(hi[2] - lo[2]);
    for (int64_t z = lo[0]; z < hi[0]; z++)
        for (int64_t y = lo[1]; y < hi[1]; y++) {
            size_t src = ((size_t)(z - (int64_t)at[0]) * chunk[1] + (size_t)(y - (int64_t)at[1])) *
                             chunk[2] +
                         (size_t)(lo[2] - (int64_t)at[2]);
            float *dst = out +
                         ((size_t)(z - start[0]) * (size_t)size[1] + (size_t)(y - start[1])) *
                             (size_t)size[2] +
                         (size_t)(lo[2] - start[2]);
            if (t == VOL_INT16) {
                for (size_t i = 0; i < n; i++)
                    dst[i] = (float)(int16_t)(uint16_t)(p0[src + i] | (p1[src + i] << 8));
            } else if (t == VOL_FLOAT32) {
                for (size_t i = 0; i < n; i++) {
                    uint32_t u = (uint32_t)p0[src + i] | (uint32_t)p1[src + i] << 8 |
                                 (uint32_t)p2[src + i] << 16 | (uint32_t)p3[src + i] << 24;
                    memcpy(&dst[i], &u, sizeof u);
                }
            } else {
                for (size_t i = 0; i < n; i++)
                    dst[i] = p0[src + i];
            }
        }
}

/* Undo Fletcher-32 and deflate of one stored chunk into planar (chunk_bytes, shuffled order).
 * A filter whose bit is set in mask was skipped when the chunk was written; a chunk stored
 * unshuffled is shuffled here so that planar always has one layout. */
static vs_status unfilter(const shard_chunk_layout *l, uint32_t mask, uint8_t *stored, size_t n,
                          struct libdeflate_decompressor *dec, uint8_t *tmp, uint8_t *planar,
                          size_t chunk_bytes, size_t es) {
    if (!(mask & (1u << l->filter_at[2]))) {
        if (n < 4) return VS_ERR_FORMAT;
        uint32_t want = 0;
        for (int k = 0; k < 4; k++)
            want |= (uint32_t)stored[n - 4 + (size_t)k] << (8 * k);
        n -= 4;
        if (fletcher32(stored, n) != want) return VS_ERR_FORMAT;
    }
    int shuffled = !(mask & 1u);
    uint8_t *dst = shuffled ? planar : tmp;
    if (l->filter_at[1] >= 0 && !(mask & (1u << l->filter_at[1]))) {
        size_t got = 0;
        if (libdeflate_zlib_decompress(dec, stored, n, dst, chunk_bytes, &got) !=
                LIBDEFLATE_SUCCESS ||
            got != chunk_bytes)
            return VS_ERR_FORMAT;
    } else if (n == chunk_bytes) {
        memcpy(dst, stored, n);
    } else {
        return VS_ERR_FORMAT;
    }
    if (!shuffled) {
        size_t n_elem = chunk_bytes / es;
        for (size_t b = 0; b < es; b++)
            for (size_t i = 0; i < n_elem; i++)
                planar[b * n_elem + i] = tmp[i * es + b];
    }
    return VS_OK;
}

/* One box read, shared by the threads that work on its chunks. */
typedef struct box_job {
    hid_t d;
    const char *path;
    const shard_chunk_layout *l;
    vol_dtype t;
    const int64_t *start, *size;
    float *out;
    shard_cache *cache;
    int volume;
    size_t es, chunk_bytes, cap;
    hsize_t c0[3], n_chunks[3];
    uint64_t total;
    pthread_mutex_t mu; /* guards next, st, err */
    uint64_t next;
    vs_status st;
    vs_error *err;
} box_job;

/* Claim the next chunk of the box; 0 when none is left or the read failed. */
static int box_claim(box_job *j, uint64_t *index) {
    pthread_mutex_lock(&j->mu);
    int ok = j->st == VS_OK && j->next < j->total;
    if (ok) *index = j->next++;
    pthread_mutex_unlock(&j->mu);
    return ok;
}

/* Record the first failure (the box read stops there). */
static void box_fail(box_job *j, vs_status st, const vs_error *e) {
    pthread_mutex_lock(&j->mu);
    if (j->st == VS_OK) {
        j->st = st;
        *j->err = *e;
    }
    pthread_mutex_unlock(&j->mu);
}

/* Read, inflate and copy chunks until the box is done; each chunk lands in a disjoint part of
 * out, so the threads need no lock for it. */
static void *box_worker(void *arg) {
    box_job *j = arg;
    vs_error e;
    uint8_t *stored = malloc(j->cap), *tmp = malloc(j->chunk_bytes),
            *planar = malloc(j->chunk_bytes);
    struct libdeflate_decompressor *dec = libdeflate_alloc_decompressor();
    uint64_t k;
    if (!stored || !tmp || !planar || !dec) {
        box_fail(j, VS_FAIL(&e, VS_ERR_NOMEM, "cannot allocate chunk buffers"), &e);
        goto done;
    }
    while (box_claim(j, &k)) {
        hsize_t c[3] = {j->c0[0] + k / (j->n_chunks[1] * j->n_chunks[2]),
                        j->c0[1] + k / j->n_chunks[2] % j->n_chunks[1],
                        j->c0[2] + k % j->n_chunks[2]};
        hsize_t at[3] = {c[0] * j->l->chunk[0], c[1] * j->l->chunk[1], c[2] * j->l->chunk[2]};
        uint64_t key = ((uint64_t)c[0] << 42) | ((uint64_t)c[1] << 21) | (uint64_t)c[2];
        const uint8_t *hit = j->cache ? shard_cache_get(j->cache, j->volume, key) : NULL;
        if (hit) {
            copy_box(hit, j->t, j->l->chunk, at, j->start, j->size, j->out);
            shard_cache_release(j->cache, j->volume, key);
            continue;
        }
        uint32_t mask = 0;
        hsize_t n = 0;
        if (H5Dget_chunk_storage_size(j->d, at, &n) < 0 || n == 0 || n > j->cap ||
            H5Dread_chunk(j->d, H5P_DEFAULT, at, &mask, stored) < 0) {
            box_fail(j, shard_h5_fail(&e, j->path, "cannot read a chunk (corrupt data)"), &e);
            break;
        }
        if (unfilter(j->l, mask, stored, (size_t)n, dec, tmp, planar, j->chunk_bytes, j->es) !=
            VS_OK) {
            box_fail(j,
                     VS_FAIL(&e, VS_ERR_FORMAT,
                             "%s: chunk at (%llu, %llu, %llu) fails its checksum or does not "
                             "decompress (corrupt data)",
                             j->path, (unsigned long long)at[0], (unsigned long long)at[1],
                             (unsigned long long)at[2]),
                     &e);
            break;
        }
        copy_box(planar, j->t, j->l->chunk, at, j->start, j->size, j->out);
        if (j->cache && shard_cache_put(j->cache, j->volume, key, planar, j->chunk_bytes) &&
            !(planar = malloc(j->chunk_bytes))) {
            box_fail(j, VS_FAIL(&e, VS_ERR_NOMEM, "cannot allocate a chunk buffer"), &e);
            break;
        }
    }
done:
    if (dec) libdeflate_free_decompressor(dec);
    free(stored);
    free(tmp);
    free(planar);
    return NULL;
}

vs_status shard_read_box_chunks(hid_t d, const char *path, const shard_chunk_layout *l, vol_dtype t,
                                const int64_t start[3], const int64_t size[3], float *out,
                                shard_cache *cache, int volume, int n_threads, vs_error *err) {
    box_job j;
    memset(&j, 0, sizeof j);
    j.d = d, j.path = path, j.l = l, j.t = t, j.start = start, j.size = size, j.out = out;
    j.cache = cache, j.volume = volume, j.err = err, j.st = VS_OK;
    j.es = t == VOL_INT16 ? 2 : t == VOL_FLOAT32 ? 4 : 1;
    j.chunk_bytes = j.es * (size_t)(l->chunk[0] * l->chunk[1] * l->chunk[2]);
    j.cap = libdeflate_zlib_compress_bound(NULL, j.chunk_bytes) + 64;
    j.total = 1;
    for (int a = 0; a < 3; a++) {
        j.c0[a] = (hsize_t)start[a] / l->chunk[a];
        j.n_chunks[a] = (hsize_t)(start[a] + size[a] - 1) / l->chunk[a] - j.c0[a] + 1;
        j.total *= j.n_chunks[a];
    }
    pthread_mutex_init(&j.mu, NULL);
    /* Helpers only when there are chunks enough to share; the caller's thread works too. */
    pthread_t th[SHARD_READ_MAX_THREADS];
    int helpers = 0, want = n_threads < 1 ? 0 : n_threads - 1;
    if (want > SHARD_READ_MAX_THREADS) want = SHARD_READ_MAX_THREADS;
    if ((uint64_t)want >= j.total) want = (int)(j.total > 0 ? j.total - 1 : 0);
    while (helpers < want && pthread_create(&th[helpers], NULL, box_worker, &j) == 0)
        helpers++;
    box_worker(&j);
    for (int h = 0; h < helpers; h++)
        pthread_join(th[h], NULL);
    pthread_mutex_destroy(&j.mu);
    return j.st;
}
