/* test_dcmcheck — dcm_file_check's structural rules on files built byte by byte here:
 * every rule of its invariant 1 refuses the file it is written for, with its reason, and a
 * well-formed file passes with the right facts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "dcmfile.h"

typedef struct buf {
    unsigned char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put16(buf *b, uint16_t v) {
    unsigned char c[2] = {(unsigned char)v, (unsigned char)(v >> 8)};
    put(b, c, 2);
}

static void put32(buf *b, uint32_t v) {
    unsigned char c[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(b, c, 4);
}

/* One explicit VR little endian element header (value not written). */
static void elem(buf *b, uint16_t g, uint16_t e, const char *vr, uint32_t len) {
    put16(b, g);
    put16(b, e);
    put(b, vr, 2);
    int lng = strstr("OB OD OF OL OV OW SQ SV UC UN UR UT UV", vr) != NULL;
    if (lng) {
        put16(b, 0);
        put32(b, len);
    } else {
        put16(b, (uint16_t)len);
    }
}

static void elem_us(buf *b, uint16_t g, uint16_t e, uint16_t v) {
    elem(b, g, e, "US", 2);
    put16(b, v);
}

static void item(buf *b, uint16_t e, uint32_t len) {
    put16(b, 0xFFFE);
    put16(b, e);
    put32(b, len);
}

/* Preamble, DICM and a meta group naming transfer syntax ts. */
static void header(buf *b, const char *ts) {
    unsigned char pre[128] = {0};
    put(b, pre, 128);
    put(b, "DICM", 4);
    size_t n = strlen(ts) + (strlen(ts) & 1);
    elem(b, 0x0002, 0x0010, "UI", (uint32_t)n);
    put(b, ts, strlen(ts));
    if (strlen(ts) & 1) put(b, "", 1);
}

/* A 2x2 16-bit grey image with `pixel_bytes` of pixel data. */
static void image(buf *b, uint16_t rows, uint16_t cols, uint32_t pixel_bytes) {
    elem_us(b, 0x0028, 0x0002, 1);
    elem_us(b, 0x0028, 0x0010, rows);
    elem_us(b, 0x0028, 0x0011, cols);
    elem_us(b, 0x0028, 0x0100, 16);
    elem(b, 0x7FE0, 0x0010, "OW", pixel_bytes);
    unsigned char *z = calloc(1, pixel_bytes + 1);
    put(b, z, pixel_bytes);
    free(z);
}

static char g_path[64];

static vs_status check_buf(const buf *b, const dcm_file_limits *lim, dcm_file_facts *facts,
                           vs_error *err) {
    snprintf(g_path, sizeof g_path, "/tmp/test_dcmcheck_%d.dcm", (int)getpid());
    FILE *f = fopen(g_path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->p, 1, b->n, f), b->n);
    fclose(f);
    vs_status s = dcm_file_check(g_path, lim, facts, err);
    unlink(g_path);
    return s;
}

static void expect_reject(buf *b, const dcm_file_limits *lim, const char *why) {
    dcm_file_facts facts;
    vs_error err = {0};
    vs_status s = check_buf(b, lim, &facts, &err);
    if (s != VS_ERR_FORMAT || !strstr(err.msg, why))
        fail_msg("expected a reject for '%s', got status %d: %s", why, (int)s, err.msg);
    free(b->p);
}

static void test_valid_image(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    image(&b, 2, 2, 8);
    dcm_file_facts facts;
    vs_error err = {0};
    assert_int_equal(check_buf(&b, NULL, &facts, &err), VS_OK);
    assert_int_equal(facts.rows, 2);
    assert_int_equal(facts.cols, 2);
    assert_int_equal(facts.bits_allocated, 16);
    assert_int_equal(facts.pixel_length, 8);
    assert_true(facts.is_dicom && facts.has_meta && facts.has_pixel_data);
    assert_string_equal(facts.transfer_syntax, "1.2.840.10008.1.2.1");
    free(b.p);
}

static void test_short_pixel_data(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    image(&b, 2, 2, 6);
    expect_reject(&b, NULL, "pixel data holds 6 bytes, the image needs 8");
}

static void test_length_past_end(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem(&b, 0x0010, 0x0010, "LO", 200);
    put(&b, "Short", 5);
    expect_reject(&b, NULL, "points past the end");
}

static void test_huge_length_in_pixel_data(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem_us(&b, 0x0028, 0x0010, 2);
    elem(&b, 0x7FE0, 0x0010, "OW", 0xFFFFFFF0u);
    put(&b, "\0\0\0\0", 4);
    expect_reject(&b, NULL, "points past the end");
}

static void test_invalid_vr(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    put16(&b, 0x0008);
    put16(&b, 0x0060);
    put(&b, "ZZ", 2);
    put16(&b, 2);
    put(&b, "CT", 2);
    expect_reject(&b, NULL, "invalid VR");
}

static void test_wrong_vr_for_rows(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem(&b, 0x0028, 0x0010, "SH", 4);
    put(&b, "512 ", 4);
    expect_reject(&b, NULL, "Rows has the wrong VR");
}

static void test_undefined_length_on_string(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem(&b, 0x0010, 0x0010, "UT", 0xFFFFFFFFu);
    expect_reject(&b, NULL, "undefined length on a non-sequence VR");
}

static void test_item_past_sequence(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem(&b, 0x0008, 0x1140, "SQ", 16);
    item(&b, 0xE000, 100); /* says 100 bytes inside a 16-byte sequence */
    elem_us(&b, 0x0028, 0x0010, 2);
    put(&b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 20);
    expect_reject(&b, NULL, "item length points past its container");
}

static void test_deep_nesting(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    for (int i = 0; i < 40; i++) {
        elem(&b, 0x0008, 0x1140, "SQ", 0xFFFFFFFFu);
        item(&b, 0xE000, 0xFFFFFFFFu);
    }
    for (int i = 0; i < 40; i++) {
        item(&b, 0xE00D, 0);
        item(&b, 0xE0DD, 0);
    }
    expect_reject(&b, NULL, "nested deeper");
}

static void test_unterminated_sequence(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem(&b, 0x0008, 0x1140, "SQ", 0xFFFFFFFFu);
    item(&b, 0xE000, 0xFFFFFFFFu);
    elem_us(&b, 0x0028, 0x0010, 2);
    expect_reject(&b, NULL, "truncated");
}

static void test_unknown_transfer_syntax(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.4.100"); /* MPEG2 */
    image(&b, 2, 2, 8);
    expect_reject(&b, NULL, "unsupported transfer syntax 1.2.840.10008.1.2.4.100");
}

static void test_voxel_limit(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem(&b, 0x0028, 0x0008, "IS", 6);
    put(&b, "60000 ", 6);
    image(&b, 60000, 60000, 8);
    expect_reject(&b, NULL, "exceeds the limit");
}

static void test_bad_number_of_frames(void **state) {
    (void)state;
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1");
    elem(&b, 0x0028, 0x0008, "IS", 2);
    put(&b, "1A", 2);
    image(&b, 2, 2, 8);
    expect_reject(&b, NULL, "NumberOfFrames is not a positive integer");
}

static void test_not_dicom(void **state) {
    (void)state;
    buf b = {0};
    const char *text = "This is a README file, not a DICOM file at all.\n";
    put(&b, text, strlen(text));
    dcm_file_facts facts;
    vs_error err = {0};
    assert_int_equal(check_buf(&b, NULL, &facts, &err), VS_ERR_FORMAT);
    assert_int_equal(facts.is_dicom, 0); /* skipped by the reader, not rejected */
    free(b.p);
}

static void test_deflate_bomb(void **state) {
    (void)state;
    /* 64 MiB of zeros deflate to ~64 KiB; with a 1 MiB file limit the inflation must stop. */
    size_t big = 64u << 20;
    unsigned char *zeros = calloc(1, big);
    assert_non_null(zeros);
    uLong bound = compressBound((uLong)big);
    unsigned char *z = malloc(bound);
    z_stream zs = {0};
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = zeros;
    zs.avail_in = (uInt)big;
    zs.next_out = z;
    zs.avail_out = (uInt)bound;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t zn = zs.total_out;
    deflateEnd(&zs);
    buf b = {0};
    header(&b, "1.2.840.10008.1.2.1.99");
    put(&b, z, zn);
    free(z);
    free(zeros);
    dcm_file_limits lim = {1u << 20, 0};
    expect_reject(&b, &lim, "inflates past the size limit");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_image),
        cmocka_unit_test(test_short_pixel_data),
        cmocka_unit_test(test_length_past_end),
        cmocka_unit_test(test_huge_length_in_pixel_data),
        cmocka_unit_test(test_invalid_vr),
        cmocka_unit_test(test_wrong_vr_for_rows),
        cmocka_unit_test(test_undefined_length_on_string),
        cmocka_unit_test(test_item_past_sequence),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_unterminated_sequence),
        cmocka_unit_test(test_unknown_transfer_syntax),
        cmocka_unit_test(test_voxel_limit),
        cmocka_unit_test(test_bad_number_of_frames),
        cmocka_unit_test(test_not_dicom),
        cmocka_unit_test(test_deflate_bomb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
