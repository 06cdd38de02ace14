/* dcmcheck.c — walk a DICOM file's element structure before DCMTK is allowed near it.
 *
 * Every length field is checked against the bytes that remain in its container (file, item,
 * sequence), every explicit VR against the VR table, nesting depth is bounded, and the image
 * size (Rows x Columns x Frames) and native pixel length are checked against the limits. The
 * file is read with pread, never mapped (a file truncated while mapped would kill the process
 * with SIGBUS): its first DCM_PREFIX bytes at once, any element header past them when the walk
 * reaches it, so a 2 GB pixel value is skipped, not read. Once a file passes, DCMTK can only
 * allocate what the file really holds.
 *
 * Invariants:
 *   1. dcm_file_check allocates the prefix (at most DCM_PREFIX bytes) and, for a deflated
 *      dataset, the whole file and its inflated size, bounded by limits->max_file_bytes.
 *   2. Any element whose value would end past its container makes the file rejected.
 *   3. A file that turns out shorter than it was when opened (truncated while read) is
 *      rejected naming it; nothing reads past its end.
 */
#include "dcmfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define UNDEFINED_LENGTH 0xFFFFFFFFu
#define MAX_DEPTH 24
#define DEFAULT_MAX_FILE (4ull << 30)
#define DEFAULT_MAX_VOXELS (1ull << 31)
#define DCM_PREFIX (1u << 20) /* read at open: the header of every ordinary file */
#define AT_MAX 64             /* the most bytes the walk reads at one place */

/* The transfer syntaxes vesalius reads; anything else is rejected with its UID named. */
static const struct ts_row {
    const char *uid;
    const char *name;
    unsigned char explicit_vr, big_endian, encapsulated, deflated;
} ts_table[] = {
    {"1.2.840.10008.1.2", "implicit VR little endian", 0, 0, 0, 0},
    {"1.2.840.10008.1.2.1", "explicit VR little endian", 1, 0, 0, 0},
    {"1.2.840.10008.1.2.2", "explicit VR big endian", 1, 1, 0, 0},
    {"1.2.840.10008.1.2.1.99", "deflated explicit VR little endian", 1, 0, 0, 1},
    {"1.2.840.10008.1.2.4.50", "JPEG baseline", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.4.51", "JPEG extended", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.4.57", "JPEG lossless", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.4.70", "JPEG lossless SV1", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.4.80", "JPEG-LS lossless", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS near-lossless", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 lossless", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000", 1, 0, 1, 0},
    {"1.2.840.10008.1.2.5", "RLE lossless", 1, 0, 1, 0},
};

const char *dcm_file_transfer_syntax_at(int i) {
    return i >= 0 && (size_t)i < sizeof ts_table / sizeof ts_table[0] ? ts_table[i].uid : NULL;
}

/* Explicit VRs; `lng` marks the ones with a 2-byte reserved field and a 4-byte length. */
static const struct vr_row {
    char vr[3];
    unsigned char lng;
} vr_table[] = {
    {"AE", 0}, {"AS", 0}, {"AT", 0}, {"CS", 0}, {"DA", 0}, {"DS", 0}, {"DT", 0},
    {"FL", 0}, {"FD", 0}, {"IS", 0}, {"LO", 0}, {"LT", 0}, {"PN", 0}, {"SH", 0},
    {"SL", 0}, {"SS", 0}, {"ST", 0}, {"TM", 0}, {"UI", 0}, {"UL", 0}, {"US", 0},
    {"OB", 1}, {"OD", 1}, {"OF", 1}, {"OL", 1}, {"OV", 1}, {"OW", 1}, {"SQ", 1},
    {"SV", 1}, {"UC", 1}, {"UN", 1}, {"UR", 1}, {"UT", 1}, {"UV", 1},
};

/* Image attributes whose VR and size the reader relies on (explicit syntaxes only). */
static const struct img_tag {
    uint32_t tag;
    const char *name;
    const char *vr;
    size_t offset; /* into dcm_file_facts, a uint32_t */
} img_tags[] = {
    {0x00280002u, "SamplesPerPixel", "US", offsetof(dcm_file_facts, samples)},
    {0x00280010u, "Rows", "US", offsetof(dcm_file_facts, rows)},
    {0x00280011u, "Columns", "US", offsetof(dcm_file_facts, cols)},
    {0x00280100u, "BitsAllocated", "US", offsetof(dcm_file_facts, bits_allocated)},
};

typedef struct walk {
    const unsigned char *buf; /* the first `have` bytes (a deflated dataset: all of it) */
    size_t size;              /* of the file, or of the inflated dataset */
    size_t have;
    int fd;         /* for bytes past `have` (-1: none) */
    int short_read; /* the file ended before `size`: truncated while read */
    unsigned char scratch[AT_MAX];
    int big_endian;
    const char *path;
    dcm_file_facts *facts;
    vs_error *err;
    int file_offsets; /* 1: positions in buf are offsets in the file (not inflated) */
    int pixel_places; /* top-level PixelData elements seen */
} walk;

/* [off, off + n) of fd into buf: the bytes read (fewer at the end of the file), -1 on error. */
static ssize_t read_at(int fd, void *buf, size_t n, size_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) return -1;
        if (k == 0) break;
        got += (size_t)k;
    }
    return (ssize_t)got;
}

/* n (<= AT_MAX) bytes at pos: from the prefix, else read now; a file that ends early gives
 * zeros and marks the walk (invariant 3). */
static const unsigned char *at(walk *w, size_t pos, size_t n) {
    if (pos + n <= w->have) return w->buf + pos;
    memset(w->scratch, 0, sizeof w->scratch);
    if (w->fd < 0 || n > AT_MAX || read_at(w->fd, w->scratch, n, pos) != (ssize_t)n)
        w->short_read = 1;
    return w->scratch;
}

static uint16_t rd16(walk *w, size_t p) {
    const unsigned char *b = at(w, p, 2);
    return w->big_endian ? (uint16_t)(b[0] << 8 | b[1]) : (uint16_t)(b[1] << 8 | b[0]);
}

static uint32_t rd32(walk *w, size_t p) {
    const unsigned char *b = at(w, p, 4);
    return w->big_endian ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]
                         : (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

static const struct vr_row *vr_find(const unsigned char *p) {
    for (size_t i = 0; i < sizeof vr_table / sizeof vr_table[0]; i++)
        if (vr_table[i].vr[0] == p[0] && vr_table[i].vr[1] == p[1]) return &vr_table[i];
    return NULL;
}

static vs_status fail(walk *w, uint32_t tag, const char *what) {
    return VS_FAIL(w->err, VS_ERR_FORMAT, "%s: %s at (%04X,%04X)", w->path, what,
                   (unsigned)(tag >> 16), (unsigned)(tag & 0xFFFF));
}

/* Record the image facts from a top-level element. */
static vs_status note_fact(walk *w, uint32_t tag, const char *vr, size_t pos, uint32_t len) {
    for (size_t i = 0; i < sizeof img_tags / sizeof img_tags[0]; i++) {
        if (img_tags[i].tag != tag) continue;
        if ((vr && strcmp(vr, img_tags[i].vr) != 0) || len != 2)
            return VS_FAIL(w->err, VS_ERR_FORMAT,
                           "%s: %s has the wrong VR or length (%s, %u bytes)", w->path,
                           img_tags[i].name, vr ? vr : "implicit", (unsigned)len);
        *(uint32_t *)((char *)w->facts + img_tags[i].offset) = rd16(w, pos);
        return VS_OK;
    }
    if (tag == 0x00280008u) { /* NumberOfFrames, IS: a decimal integer with optional spaces */
        char s[16];
        if (len == 0 || len >= sizeof s)
            return VS_FAIL(w->err, VS_ERR_FORMAT, "%s: NumberOfFrames has a bad length (%u bytes)",
                           w->path, (unsigned)len);
        memcpy(s, at(w, pos, len), len);
        s[len] = 0;
        char *end = NULL;
        long n = strtol(s, &end, 10);
        while (end && *end == ' ')
            end++;
        if (!end || end == s || *end || n < 1 || n > 0x7FFFFFFFL)
            return VS_FAIL(w->err, VS_ERR_FORMAT, "%s: NumberOfFrames is not a positive integer",
                           w->path);
        w->facts->frames = (uint32_t)n;
    } else if (tag == 0x7FE00010u) {
        if (vr && strcmp(vr, "OB") != 0 && strcmp(vr, "OW") != 0 && strcmp(vr, "UN") != 0)
            return VS_FAIL(w->err, VS_ERR_FORMAT, "%s: PixelData has the wrong VR (%s)", w->path,
                           vr);
        w->facts->has_pixel_data = 1;
        w->facts->pixel_length = len;
    }
    return VS_OK;
}

static vs_status walk_elements(walk *w, size_t pos, size_t end, int explicit_vr, int depth,
                               int until_delim, size_t *out);

/* Where the top-level PixelData element sits, when positions are file offsets. */
static void note_pixel_place(walk *w, size_t start, size_t end) {
    int again = w->pixel_places++ > 0; /* a second one: which DCMTK keeps is not ours to guess */
    w->facts->pixel_offset = w->file_offsets && !again ? start : 0;
    w->facts->pixel_end = w->file_offsets && !again ? end : 0;
}

/* Items of a sequence between pos and end (end is the container's end when undefined). */
static vs_status walk_items(walk *w, uint32_t sq_tag, size_t pos, size_t end, int undefined,
                            int explicit_vr, int depth, int fragments, size_t *out) {
    while (pos < end || undefined) {
        if (end - pos < 8) return fail(w, sq_tag, "sequence truncated");
        uint32_t tag = (uint32_t)rd16(w, pos) << 16 | rd16(w, pos + 2);
        uint32_t len = rd32(w, pos + 4);
        pos += 8;
        if (tag == 0xFFFEE0DDu) {
            if (!undefined)
                return fail(w, sq_tag, "sequence delimiter in a defined-length sequence");
            *out = pos;
            return VS_OK;
        }
        if (tag != 0xFFFEE000u) return fail(w, sq_tag, "sequence holds a non-item element");
        if (len == UNDEFINED_LENGTH) {
            if (fragments) return fail(w, sq_tag, "pixel fragment with undefined length");
            vs_status s = walk_elements(w, pos, end, explicit_vr, depth + 1, 1, &pos);
            if (s) return s;
            continue;
        }
        if (len > end - pos) return fail(w, sq_tag, "item length points past its container");
        if (!fragments) {
            size_t dummy;
            vs_status s = walk_elements(w, pos, pos + len, explicit_vr, depth + 1, 0, &dummy);
            if (s) return s;
        }
        pos += len;
    }
    *out = pos;
    return VS_OK;
}

/* Elements from pos to end; with until_delim, stop after an item delimitation item. */
static vs_status walk_elements(walk *w, size_t pos, size_t end, int explicit_vr, int depth,
                               int until_delim, size_t *out) {
    if (depth > MAX_DEPTH)
        return VS_FAIL(w->err, VS_ERR_FORMAT,
                       "%s: sequences nested deeper "
                       "than %d levels",
                       w->path, MAX_DEPTH);
    while (pos < end) {
        if (end - pos < 8) return fail(w, 0, "element header truncated");
        uint32_t tag = (uint32_t)rd16(w, pos) << 16 | rd16(w, pos + 2);
        if (tag == 0xFFFEE00Du) {
            if (!until_delim) return fail(w, tag, "item delimiter outside an item");
            *out = pos + 8;
            return VS_OK;
        }
        if (tag >> 16 == 0xFFFE) return fail(w, tag, "item tag outside a sequence");
        char vr[3] = {0};
        int lng = 1;
        uint32_t len;
        size_t hdr;
        if (explicit_vr) {
            const struct vr_row *r = vr_find(at(w, pos + 4, 2));
            if (!r) return fail(w, tag, "invalid VR");
            memcpy(vr, r->vr, 2);
            lng = r->lng;
            if (lng) {
                if (end - pos < 12) return fail(w, tag, "element header truncated");
                len = rd32(w, pos + 8);
                hdr = 12;
            } else {
                len = rd16(w, pos + 6);
                hdr = 8;
            }
        } else {
            len = rd32(w, pos + 4);
            hdr = 8;
        }
        pos += hdr;
        if (len == UNDEFINED_LENGTH) {
            if (tag == 0x7FE00010u) { /* also inside an icon image sequence */
                if (!explicit_vr) return fail(w, tag, "encapsulated pixel data in implicit VR");
                size_t start = pos - hdr;
                vs_status s = walk_items(w, tag, pos, end, 1, explicit_vr, depth, 1, &pos);
                if (s) return s;
                if (depth == 0) {
                    w->facts->has_pixel_data = 1;
                    w->facts->pixel_encapsulated = 1;
                    note_pixel_place(w, start, pos);
                }
                continue;
            }
            if (explicit_vr && strcmp(vr, "SQ") != 0 && strcmp(vr, "UN") != 0)
                return fail(w, tag, "undefined length on a non-sequence VR");
            /* UN with undefined length is a sequence encoded in implicit VR (PS3.5 6.2.2). */
            int sub_explicit = explicit_vr && strcmp(vr, "UN") != 0;
            vs_status s = walk_items(w, tag, pos, end, 1, sub_explicit, depth, 0, &pos);
            if (s) return s;
            continue;
        }
        if (len > end - pos)
            return fail(w, tag, "length field points past the end of its container");
        /* Implicit VR, or UN (which DCMTK may re-read as a sequence from its dictionary): a
         * value that starts with an item tag is walked as a sequence too. */
        int looks_sq = len >= 8 && rd16(w, pos) == 0xFFFE && rd16(w, pos + 2) == 0xE000;
        int is_sq =
            explicit_vr ? strcmp(vr, "SQ") == 0 || (strcmp(vr, "UN") == 0 && looks_sq) : looks_sq;
        if (is_sq) {
            size_t dummy;
            int sub_explicit = explicit_vr && strcmp(vr, "UN") != 0;
            vs_status s = walk_items(w, tag, pos, pos + len, 0, sub_explicit, depth, 0, &dummy);
            if (s) return s;
        } else if (depth == 0) {
            vs_status s = note_fact(w, tag, explicit_vr ? vr : NULL, pos, len);
            if (s) return s;
            if (tag == 0x7FE00010u) note_pixel_place(w, pos - hdr, pos + len);
        }
        pos += len;
    }
    if (until_delim) return fail(w, 0, "item not terminated (file truncated)");
    *out = pos;
    return VS_OK;
}

static const struct ts_row *ts_find(const char *uid) {
    for (size_t i = 0; i < sizeof ts_table / sizeof ts_table[0]; i++)
        if (strcmp(ts_table[i].uid, uid) == 0) return &ts_table[i];
    return NULL;
}

/* The meta group (0002,xxxx), explicit VR little endian, from pos; returns the dataset start. */
static vs_status walk_meta(walk *w, size_t pos, size_t *ds_start) {
    while (pos + 8 <= w->size && rd16(w, pos) == 0x0002) {
        uint32_t tag = (uint32_t)rd16(w, pos) << 16 | rd16(w, pos + 2);
        const struct vr_row *r = vr_find(at(w, pos + 4, 2));
        if (!r) return fail(w, tag, "invalid VR in the meta information");
        uint32_t len;
        if (r->lng) {
            if (pos + 12 > w->size) return fail(w, tag, "meta information truncated");
            len = rd32(w, pos + 8);
            pos += 12;
        } else {
            len = rd16(w, pos + 6);
            pos += 8;
        }
        if (len > w->size - pos) return fail(w, tag, "meta element length points past the file");
        if (tag == 0x00020010u) {
            size_t n =
                len < sizeof w->facts->transfer_syntax ? len : sizeof w->facts->transfer_syntax - 1;
            memcpy(w->facts->transfer_syntax, at(w, pos, n), n);
            w->facts->transfer_syntax[n] = 0;
            while (n > 0 && (w->facts->transfer_syntax[n - 1] == 0 ||
                             w->facts->transfer_syntax[n - 1] == ' '))
                w->facts->transfer_syntax[--n] = 0;
        }
        pos += len;
    }
    *ds_start = pos;
    return VS_OK;
}

/* A dataset without meta information: guess the encoding from its first element, as DCMTK
 * does. Returns 0 when the bytes do not look like DICOM at all. */
static int sniff_raw(const unsigned char *b, size_t n, const char **ts_uid) {
    if (n < 8) return 0;
    uint16_t g_le = (uint16_t)(b[1] << 8 | b[0]), g_be = (uint16_t)(b[0] << 8 | b[1]);
    int vr_ok = vr_find(b + 4) != NULL;
    if (g_le == 0x0008 || g_le == 0x0002 || g_le == 0x0004 || g_le == 0x0010) {
        *ts_uid = vr_ok ? "1.2.840.10008.1.2.1" : "1.2.840.10008.1.2";
        return 1;
    }
    if ((g_be == 0x0008 || g_be == 0x0004 || g_be == 0x0010) && vr_ok) {
        *ts_uid = "1.2.840.10008.1.2.2";
        return 1;
    }
    return 0;
}

/* Inflate a raw-deflate dataset into a new buffer bounded by `limit` bytes. */
static vs_status inflate_dataset(const unsigned char *src, size_t n, uint64_t limit,
                                 const char *path, unsigned char **out, size_t *out_n,
                                 vs_error *err) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -15) != Z_OK)
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: zlib init failed", path);
    size_t cap = n * 4 + 4096, used = 0;
    if (cap > limit) cap = (size_t)limit;
    unsigned char *buf = malloc(cap);
    vs_status st = VS_OK;
    if (!buf) {
        st = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory inflating", path);
        goto done;
    }
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)(n > 0x7FFFFFFF ? 0x7FFFFFFF : n);
    for (;;) {
        if (used == cap) {
            if (cap >= limit) {
                st = VS_FAIL(err, VS_ERR_FORMAT,
                             "%s: deflated dataset inflates past the size limit", path);
                goto done;
            }
            size_t ncap = cap * 2 > limit ? (size_t)limit : cap * 2;
            unsigned char *nb = realloc(buf, ncap);
            if (!nb) {
                st = VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory inflating", path);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        z.next_out = buf + used;
        z.avail_out = (uInt)(cap - used > 0x7FFFFFFF ? 0x7FFFFFFF : cap - used);
        int rc = inflate(&z, Z_NO_FLUSH);
        used = (size_t)(z.next_out - buf);
        if (rc == Z_STREAM_END) break;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "%s: deflated dataset is corrupt", path);
            goto done;
        }
        if (rc == Z_BUF_ERROR && z.avail_in == 0) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "%s: deflated dataset is truncated", path);
            goto done;
        }
    }
done:
    inflateEnd(&z);
    if (st) {
        free(buf);
        return st;
    }
    *out = buf;
    *out_n = used;
    return VS_OK;
}

/* Compare what the pixel data holds with what Rows x Columns x Frames x samples needs. */
static vs_status check_image(walk *w, const dcm_file_limits *limits) {
    dcm_file_facts *f = w->facts;
    if (!f->has_pixel_data) return VS_OK;
    uint64_t max_vox = limits && limits->max_voxels ? limits->max_voxels : DEFAULT_MAX_VOXELS;
    uint64_t frames = f->frames ? f->frames : 1;
    uint64_t vox = (uint64_t)f->rows * f->cols * frames; /* < 2^64: 16 + 16 + 31 bits */
    if (f->rows == 0 || f->cols == 0) /* nothing to decode; frames must not size anything */
        return frames > 1 ? VS_FAIL(w->err, VS_ERR_FORMAT, "%s: frames without a size", w->path)
                          : VS_OK;
    if (vox > max_vox)
        return VS_FAIL(w->err, VS_ERR_FORMAT,
                       "%s: image of %ux%ux%llu voxels exceeds the limit of %llu", w->path,
                       (unsigned)f->rows, (unsigned)f->cols, (unsigned long long)frames,
                       (unsigned long long)max_vox);
    /* Colour images are skipped, never decoded; YBR_FULL_422 is legitimately shorter. */
    if (f->pixel_encapsulated || f->samples > 1) return VS_OK;
    uint64_t samples = f->samples ? f->samples : 1;
    uint64_t bits = vox * samples * f->bits_allocated;
    uint64_t need = (bits + 7) / 8;
    if (f->pixel_length < need)
        return VS_FAIL(w->err, VS_ERR_FORMAT,
                       "%s: pixel data holds %llu bytes, the image needs %llu", w->path,
                       (unsigned long long)f->pixel_length, (unsigned long long)need);
    return VS_OK;
}

/* Read bytes [have, want) of the file into *buf (grown to want); 0, or -1 when the file ends
 * early or cannot be read (the caller rejects it as truncated). */
static int read_more(int fd, unsigned char **buf, size_t *have, size_t want) {
    unsigned char *b = realloc(*buf, want ? want : 1);
    if (!b) return -1;
    *buf = b;
    if (read_at(fd, b + *have, want - *have, *have) != (ssize_t)(want - *have)) return -1;
    *have = want;
    return 0;
}

vs_status dcm_file_check_src(const char *path, const dcm_file_limits *limits, dcm_file_facts *facts,
                             dcm_file_src *src, vs_error *err) {
    memset(facts, 0, sizeof *facts);
    src->fd = -1, src->bytes = NULL, src->have = 0, src->size = 0;
    /* O_NONBLOCK: a FIFO named by a DICOMDIR must not hang the run; it is refused below. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return VS_FAIL(err, VS_ERR_IO, "%s: cannot open the file", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return VS_FAIL(err, VS_ERR_IO, "%s: not a regular file", path);
    }
    uint64_t max_file =
        limits && limits->max_file_bytes ? limits->max_file_bytes : DEFAULT_MAX_FILE;
    facts->file_bytes = (uint64_t)st.st_size;
    if ((uint64_t)st.st_size > max_file) {
        close(fd);
        facts->is_dicom = 1;
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: file of %lld bytes exceeds the size limit", path,
                       (long long)st.st_size);
    }
    if (st.st_size < 8) {
        close(fd);
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: not DICOM (too short)", path);
    }
    size_t size = (size_t)st.st_size, have = 0;
    unsigned char *head = NULL;
    if (read_more(fd, &head, &have, size < DCM_PREFIX ? size : DCM_PREFIX) != 0) {
        free(head);
        close(fd);
        return VS_FAIL(err, VS_ERR_IO, "%s: the file was truncated while it was read", path);
    }

    walk w = {head, size, have, fd, 0, {0}, 0, path, facts, err, 1, 0};
    unsigned char *inflated = NULL;
    vs_status s = VS_OK;
    size_t ds = 0;
    if (size >= 132 && memcmp(head + 128, "DICM", 4) == 0) {
        facts->is_dicom = 1;
        facts->has_meta = 1;
        s = walk_meta(&w, 132, &ds);
        if (s) goto done;
        if (!facts->transfer_syntax[0]) {
            /* pydicom's meta_missing_tsyntax: DCMTK guesses from the first element; so do we. */
            if (size - ds < 8) {
                s = VS_FAIL(err, VS_ERR_FORMAT, "%s: no dataset after the meta information", path);
                goto done;
            }
            strcpy(facts->transfer_syntax,
                   vr_find(at(&w, ds + 4, 2)) ? "1.2.840.10008.1.2.1" : "1.2.840.10008.1.2");
        }
    } else {
        const char *uid = NULL;
        if (!sniff_raw(head, have, &uid)) {
            s = VS_FAIL(err, VS_ERR_FORMAT, "%s: not DICOM (no DICM prefix, no dataset)", path);
            goto done;
        }
        facts->is_dicom = 1;
        strcpy(facts->transfer_syntax, uid);
    }
    const struct ts_row *ts = ts_find(facts->transfer_syntax);
    if (!ts) {
        /* A transfer syntax UID is not patient data, but damaged bytes are not printed. */
        int uid_ok = facts->transfer_syntax[0] != 0;
        for (const char *p = facts->transfer_syntax; *p; p++)
            if (!((*p >= '0' && *p <= '9') || *p == '.')) uid_ok = 0;
        s = VS_FAIL(err, VS_ERR_FORMAT, "%s: unsupported transfer syntax %s", path,
                    uid_ok ? facts->transfer_syntax : "(not a valid UID)");
        goto done;
    }
    w.big_endian = ts->big_endian;
    if (ts->deflated) { /* the whole dataset, inflated, is walked in memory */
        size_t n = 0;
        if (read_more(fd, &head, &have, size) != 0) {
            w.short_read = 1;
            goto done;
        }
        s = inflate_dataset(head + ds, size - ds, max_file, path, &inflated, &n, err);
        if (s) goto done;
        w.buf = inflated;
        w.size = w.have = n;
        w.fd = -1;
        w.file_offsets = 0;
        ds = 0;
    }
    size_t end_pos = 0;
    s = walk_elements(&w, ds, w.size, ts->explicit_vr, 0, 0, &end_pos);
    if (!s) s = check_image(&w, limits);
done:
    free(inflated);
    if (w.short_read) /* what was read is not the file: nothing else counts */
        s = VS_FAIL(err, VS_ERR_IO, "%s: the file was truncated while it was read", path);
    if (s != VS_OK) {
        free(head);
        close(fd);
        return s;
    }
    src->fd = fd, src->bytes = head, src->have = have, src->size = size;
    return VS_OK;
}

void dcm_file_src_close(dcm_file_src *src, int keep_fd) {
    free((void *)src->bytes);
    if (src->fd >= 0 && !keep_fd) close(src->fd);
    src->fd = -1, src->bytes = NULL, src->have = 0, src->size = 0;
}

vs_status dcm_file_check(const char *path, const dcm_file_limits *limits, dcm_file_facts *facts,
                         vs_error *err) {
    dcm_file_src src;
    vs_status s = dcm_file_check_src(path, limits, facts, &src, err);
    if (s == VS_OK) dcm_file_src_close(&src, 0);
    return s;
}
