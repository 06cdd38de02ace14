/* fixture.h — read the numerical fixtures the PyTorch twins write (tests/fixtures/NAME.bin):
 * records of u32 name length, name, u32 dtype (0 float32, 1 int32), u32 count, count values,
 * little-endian, to the end of the file. Test-only helpers. */
#ifndef VS_FIXTURE_H
#define VS_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fx_record {
    char name[96];
    int dtype; /* 0 float32, 1 int32 */
    uint32_t count;
    void *data;
} fx_record;

typedef struct fixture {
    fx_record rec[256];
    int n;
    unsigned char *buf;
} fixture;

/* Load every record of the file at `path`; -1 (with a line on stderr) when it cannot be read
 * or a record runs past the end. */
static int fx_load_path(fixture *f, const char *path) {
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        return -1;
    }
    long size = -1;
    if (fseek(fp, 0, SEEK_END) == 0) size = ftell(fp);
    if (size < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot size fixture %s\n", path);
        fclose(fp);
        return -1;
    }
    f->buf = malloc((size_t)size + 1);
    if (!f->buf || fread(f->buf, 1, (size_t)size, fp) != (size_t)size) {
        fprintf(stderr, "cannot read fixture %s\n", path);
        fclose(fp);
        return -1;
    }
    fclose(fp);
    long off = 0;
    while (off + 12 <= size) {
        uint32_t len, dtype, count;
        memcpy(&len, f->buf + off, 4);
        if (f->n == 256 || len >= 96 || off + 4 + len + 8 > size) goto bad;
        fx_record *r = &f->rec[f->n++];
        memcpy(r->name, f->buf + off + 4, len);
        r->name[len] = 0;
        memcpy(&dtype, f->buf + off + 4 + len, 4);
        memcpy(&count, f->buf + off + 8 + len, 4);
        r->dtype = (int)dtype, r->count = count;
        if (off + 12 + len + 4L * count > size) goto bad;
        r->data = malloc(4 * (size_t)count + 4); /* its own allocation: aligned for its type */
        if (!r->data) goto bad;
        memcpy(r->data, f->buf + off + 12 + len, 4 * (size_t)count);
        off += 12 + len + 4L * count;
    }
    if (off == size) return 0;
bad:
    fprintf(stderr, "fixture %s: a record runs past the end (or more than 256)\n", path);
    return -1;
}

/* Load NAME from $VESALIUS_FIXTURES when set (fixtures a twin has just written), else from
 * tests/fixtures/ of the source tree ($VESALIUS_SRC, or the working folder). */
static int fx_load(fixture *f, const char *name) {
    char path[1024];
    const char *src = getenv("VESALIUS_SRC"), *dir = getenv("VESALIUS_FIXTURES");
    if (dir)
        snprintf(path, sizeof path, "%s/%s", dir, name);
    else
        snprintf(path, sizeof path, "%s/tests/fixtures/%s", src ? src : ".", name);
    return fx_load_path(f, path);
}

static const fx_record *fx_get(const fixture *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->rec[i].name, name) == 0) return &f->rec[i];
    return NULL;
}

static void fx_free(fixture *f) {
    for (int i = 0; i < f->n; i++)
        free(f->rec[i].data);
    free(f->buf);
}

#endif
