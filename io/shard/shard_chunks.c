/* shard_chunks.c — parallel chunk filtering for the shard writer.
 *
 * HDF5 runs its filter pipeline (shuffle → deflate → Fletcher-32) in the calling thread, one
 * chunk at a time. Here worker threads apply the same filters to a batch of chunks and the
 * calling thread writes them in chunk order with H5Dwrite_chunk, so the file is byte-identical
 * whatever the thread count, and readers (HDF5, h5py) undo the filters as usual.
 *
 * Invariants:
 *   1. A filtered chunk is what HDF5's own filters read back: shuffle as H5Zshuffle.c, a zlib
 *      stream (libdeflate's compressor, see shard_deflater: faster than zlib's, so the bytes
 *      differ from zlib's own but any inflate reads them), Fletcher-32 as
 *      H5checksum.c appended little-endian (H5Zfletcher32.c). Edge chunks are full-size,
 *      zero-padded.
 *   2. At most 4 filtered chunks per thread are held in memory at once.
 *   3. The bytes of a chunk depend only on its voxels and the level: the thread count changes
 *      which thread filters it, never what it holds or where it is written.
 */
#include "shard_h5.h"

#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libdeflate.h>

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

/* ---- the compressor ------------------------------------------------------------------- */

/* libdeflate at every level: its output is a function of the input and the level (no state
 * carried between calls, no read of memory it did not write, the same bytes on every CPU:
 * oracle/test_shard_deflate_paths.sh). ISA-L's igzip (levels 1-2, 3-4x faster on CT) was
 * dropped because its bytes were not: ISA-L 2.30 read an uninitialised stream field (hist_bits,
 * fixed by zeroing it), and after that fix concurrent ingests of one folder still wrote other,
 * valid, streams for 1-2 chunks of about one ingest in a hundred (threads 2-4; none of it
 * reproduced in one thread from the same chunks, whatever the buffers' alignment, the bytes
 * around them or the chunk deflated before; bench/README.md). */
struct shard_deflater {
    struct libdeflate_compressor *ld;
};

const char *shard_deflate_name(int level) {
    return level <= 0 ? "none" : "libdeflate " LIBDEFLATE_VERSION_STRING;
}

size_t shard_deflate_bound(size_t n) { return libdeflate_zlib_compress_bound(NULL, n); }

void shard_deflater_free(shard_deflater *z) {
    if (!z) return;
    if (z->ld) libdeflate_free_compressor(z->ld);
    free(z);
}

shard_deflater *shard_deflater_new(int level) {
    shard_deflater *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    if (!(z->ld = libdeflate_alloc_compressor(level))) {
        shard_deflater_free(z);
        return NULL;
    }
    return z;
}

size_t shard_deflate(shard_deflater *z, const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
    return libdeflate_zlib_compress(z->ld, in, n, out, cap);
}

/* The chunks of one volume, filtered by worker threads and written in chunk order by the
 * caller. Chunk k goes to slot k % n_slots; a worker claims the next chunk only while its slot
 * is free (invariant 2), and the caller writes chunk k once ready[k % n_slots] == k + 1. */
typedef struct chunk_job {
    const uint8_t *voxels;
    hsize_t dims[3], chunk[3], grid[3]; /* grid: chunks per axis */
    size_t es, chunk_bytes, bound;
    int level;
    hsize_t total;
    int n_slots;
    uint8_t **out;   /* per slot: (bound + 4) */
    size_t *out_len; /* per slot; 0: compression failed */
    hsize_t *ready;  /* per slot: chunk index + 1 when filtered, 0 when free */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hsize_t next_claim, next_write;
    int stop;
} chunk_job;

/* What one filtering thread owns. */
typedef struct chunk_worker {
    chunk_job *job;
    uint8_t *shuf; /* (chunk_bytes) */
    shard_deflater *z;
} chunk_worker;

static void chunk_origin(const chunk_job *j, hsize_t index, hsize_t at[3]) {
    at[2] = (index % j->grid[2]) * j->chunk[2];
    at[1] = (index / j->grid[2] % j->grid[1]) * j->chunk[1];
    at[0] = (index / j->grid[2] / j->grid[1]) * j->chunk[0];
}

/* Gather chunk `index` out of the volume straight into shuffled (planar) order, zero-padded at
 * the edges: plane b holds byte b of every element, as H5Zshuffle.c lays it out. */
static void gather_shuffled(const chunk_job *j, hsize_t index, uint8_t *shuf) {
    hsize_t at[3];
    chunk_origin(j, index, at);
    hsize_t nz = j->dims[0] - at[0] < j->chunk[0] ? j->dims[0] - at[0] : j->chunk[0];
    hsize_t ny = j->dims[1] - at[1] < j->chunk[1] ? j->dims[1] - at[1] : j->chunk[1];
    hsize_t nx = j->dims[2] - at[2] < j->chunk[2] ? j->dims[2] - at[2] : j->chunk[2];
    size_t n_elem = j->chunk_bytes / j->es;
    if (nz < j->chunk[0] || ny < j->chunk[1] || nx < j->chunk[2]) memset(shuf, 0, j->chunk_bytes);
    for (hsize_t z = 0; z < nz; z++)
        for (hsize_t y = 0; y < ny; y++) {
            size_t dst = (size_t)((z * j->chunk[1] + y) * j->chunk[2]);
            const uint8_t *src =
                j->voxels + (((at[0] + z) * j->dims[1] + at[1] + y) * j->dims[2] + at[2]) * j->es;
            if (j->es == 1) {
                memcpy(shuf + dst, src, (size_t)nx);
            } else if (j->es == 2) { /* int16, the common case, without the inner stride */
                uint8_t *p0 = shuf + dst, *p1 = shuf + n_elem + dst;
                for (size_t i = 0; i < (size_t)nx; i++) {
                    p0[i] = src[2 * i];
                    p1[i] = src[2 * i + 1];
                }
            } else {
                for (size_t b = 0; b < j->es; b++)
                    for (size_t i = 0; i < (size_t)nx; i++)
                        shuf[b * n_elem + dst + i] = src[i * j->es + b];
            }
        }
}

/* Shuffle, deflate (zlib stream), append Fletcher-32 little-endian: chunk `index` into `slot`. */
static void filter_chunk(chunk_worker *w, hsize_t index, int slot) {
    chunk_job *j = w->job;
    uint8_t *out = j->out[slot];
    gather_shuffled(j, index, w->shuf);
    size_t len = j->chunk_bytes;
    if (j->level > 0) {
        len = shard_deflate(w->z, w->shuf, j->chunk_bytes, out, j->bound);
        if (len == 0) { /* cannot happen with a buffer of the compress bound */
            j->out_len[slot] = 0;
            return;
        }
    } else {
        memcpy(out, w->shuf, len);
    }
    uint32_t f = fletcher32(out, len);
    for (int k = 0; k < 4; k++)
        out[len + (size_t)k] = (uint8_t)(f >> (8 * k));
    j->out_len[slot] = len + 4;
}

static void *chunk_worker_run(void *p) {
    chunk_worker *w = p;
    chunk_job *j = w->job;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while (!j->stop && j->next_claim < j->total &&
               j->next_claim - j->next_write >= (hsize_t)j->n_slots)
            pthread_cond_wait(&j->cv, &j->mu);
        if (j->stop || j->next_claim >= j->total) break;
        hsize_t k = j->next_claim++;
        int slot = (int)(k % (hsize_t)j->n_slots);
        pthread_mutex_unlock(&j->mu);
        filter_chunk(w, k, slot);
        pthread_mutex_lock(&j->mu);
        j->ready[slot] = k + 1;
        pthread_cond_broadcast(&j->cv);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

static void free_job(chunk_job *j, chunk_worker *w, int n_workers) {
    for (int t = 0; t < n_workers; t++) {
        free(w[t].shuf);
        shard_deflater_free(w[t].z);
    }
    for (int s = 0; j->out && s < j->n_slots; s++)
        free(j->out[s]);
    free(j->out);
    free(j->out_len);
    free(j->ready);
}

/* Early write-back: every WRITEBACK_BYTES of chunks written, ask the kernel to start writing
 * the file's dirty pages (sync_file_range, SYNC_FILE_RANGE_WRITE: it neither waits nor
 * promises durability), so the store's fsync at the end of the shard finds most of the bytes on
 * their way to the disk instead of starting them all at once. Only a hint: a file that cannot
 * be opened for it, or a kernel that refuses it, writes the same bytes later. */
#define WRITEBACK_BYTES (16u << 20)

typedef struct writeback {
    int fd;         /* -1: no hint */
    size_t pending; /* bytes written since the last hint */
} writeback;

static void writeback_note(writeback *wb, size_t n) {
    if (wb->fd < 0 || (wb->pending += n) < WRITEBACK_BYTES) return;
    wb->pending = 0;
    if (sync_file_range(wb->fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0) { /* e.g. a FUSE folder */
        close(wb->fd);
        wb->fd = -1;
    }
}

/* Write chunk k (waiting for a worker to filter it, unless the caller filters it itself). */
static vs_status write_one(chunk_job *j, hid_t d, const char *path, hsize_t k, writeback *wb,
                           vs_error *err) {
    int slot = (int)(k % (hsize_t)j->n_slots);
    hsize_t at[3];
    chunk_origin(j, k, at);
    if (j->out_len[slot] == 0)
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: the compressor failed on a chunk", path);
    if (H5Dwrite_chunk(d, H5P_DEFAULT, 0, at, j->out_len[slot], j->out[slot]) < 0)
        return shard_h5_fail(err, path, "cannot write a chunk");
    writeback_note(wb, j->out_len[slot]);
    return VS_OK;
}

vs_status shard_write_chunks(hid_t d, const char *path, const void *voxels, const hsize_t dims[3],
                             const hsize_t chunk[3], size_t es, int level, int n_threads,
                             vs_error *err) {
    chunk_job j;
    memset(&j, 0, sizeof j);
    j.voxels = voxels;
    j.es = es;
    j.level = level;
    j.chunk_bytes = es;
    j.total = 1;
    for (int a = 0; a < 3; a++) {
        j.dims[a] = dims[a];
        j.chunk[a] = chunk[a];
        j.grid[a] = (dims[a] + chunk[a] - 1) / chunk[a];
        j.chunk_bytes *= (size_t)chunk[a];
        j.total *= j.grid[a];
    }
    int n_workers = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads;
    if ((hsize_t)n_workers > j.total) n_workers = (int)j.total;
    /* One thread: the caller filters and writes each chunk in turn, no worker. */
    int threaded = n_workers > 1;
    j.n_slots = threaded ? 4 * n_workers : 1;
    j.bound = shard_deflate_bound(j.chunk_bytes);
    chunk_worker w[64];
    memset(w, 0, sizeof w);
    j.out = calloc((size_t)j.n_slots, sizeof *j.out);
    j.out_len = calloc((size_t)j.n_slots, sizeof *j.out_len);
    j.ready = calloc((size_t)j.n_slots, sizeof *j.ready);
    vs_status st = VS_OK;
    if (!j.out || !j.out_len || !j.ready)
        st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate chunk buffers");
    for (int s = 0; st == VS_OK && s < j.n_slots; s++)
        if (!(j.out[s] = malloc(j.bound + 4)))
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate chunk buffers");
    for (int t = 0; st == VS_OK && t < n_workers; t++) {
        w[t].job = &j;
        if (!(w[t].shuf = malloc(j.chunk_bytes)))
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate chunk buffers");
        else if (level > 0 && !(w[t].z = shard_deflater_new(level)))
            st = VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a compressor (level %d)", level);
    }
    if (st != VS_OK) {
        free_job(&j, w, n_workers);
        return st;
    }
    writeback wb = {open(path, O_RDONLY | O_CLOEXEC), 0};
    if (!threaded) {
        for (hsize_t k = 0; k < j.total && st == VS_OK; k++) {
            filter_chunk(&w[0], k, 0);
            st = write_one(&j, d, path, k, &wb, err);
        }
        if (wb.fd >= 0) close(wb.fd);
        free_job(&j, w, n_workers);
        return st;
    }
    pthread_mutex_init(&j.mu, NULL);
    pthread_cond_init(&j.cv, NULL);
    pthread_t th[64];
    int started = 0;
    while (started < n_workers &&
           pthread_create(&th[started], NULL, chunk_worker_run, &w[started]) == 0)
        started++;
    if (started == 0) { /* no thread at all: the bytes are the same, only slower */
        for (hsize_t k = 0; k < j.total && st == VS_OK; k++) {
            filter_chunk(&w[0], k, (int)(k % (hsize_t)j.n_slots));
            st = write_one(&j, d, path, k, &wb, err);
        }
    }
    for (hsize_t k = 0; started && k < j.total && st == VS_OK; k++) {
        int slot = (int)(k % (hsize_t)j.n_slots);
        pthread_mutex_lock(&j.mu);
        while (j.ready[slot] != k + 1)
            pthread_cond_wait(&j.cv, &j.mu);
        pthread_mutex_unlock(&j.mu);
        st = write_one(&j, d, path, k, &wb, err);
        pthread_mutex_lock(&j.mu);
        j.ready[slot] = 0;
        j.next_write = k + 1;
        pthread_cond_broadcast(&j.cv);
        pthread_mutex_unlock(&j.mu);
    }
    pthread_mutex_lock(&j.mu);
    j.stop = 1;
    pthread_cond_broadcast(&j.cv);
    pthread_mutex_unlock(&j.mu);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    if (wb.fd >= 0) close(wb.fd);
    pthread_cond_destroy(&j.cv);
    pthread_mutex_destroy(&j.mu);
    free_job(&j, w, n_workers);
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
