// dcmfile_copy.cc — dcm_file_save_copy: the bytes dcm_file_save writes, with the pixel data
// copied from the source file inside the kernel instead of through DCMTK's buffers.
//
// DCMTK writes everything but the pixel data into memory (one buffer), and the pixel element
// is copied by copy_file_range from where it sits in the source file: no user-space copy of
// the pixels, one write for the header, no re-open and re-read of the source through DCMTK's
// lazy loading. Native pixel data gets DCMTK's element header and the source's value;
// encapsulated pixel data (JPEG, JPEG-LS, JPEG 2000, RLE) is copied whole, header, items and
// delimiter. Used only when the layout makes the result provably the same as dcm_file_save's
// (see make_plan); otherwise dcm_file_save.
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrma.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmdata/dcwcache.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

namespace {

// DCMTK's output stream into a std::string.
class string_consumer : public DcmConsumer {
  public:
    std::string bytes;
    OFBool good() const override { return OFTrue; }
    OFCondition status() const override { return EC_Normal; }
    OFBool isFlushed() const override { return OFTrue; }
    offile_off_t avail() const override { return 1 << 30; }
    offile_off_t write(const void *buf, offile_off_t n) override {
        bytes.append(static_cast<const char *>(buf), static_cast<size_t>(n));
        return n;
    }
    void flush() override {}
};

class string_stream : public DcmOutputStream {
  public:
    explicit string_stream(DcmConsumer *c) : DcmOutputStream(c) {}
};

struct copy_plan {
    int src = -1;           // the source file, open
    bool own_src = false;   // opened here (else the dcm_file's, kept by dcm_file_load_open)
    off_t offset = 0;       // where the bytes to copy start in it
    uint64_t length = 0;    // how many
    unsigned char head[12]; // the pixel element header we write before them (native only)
    size_t head_len = 0;
};

void put16(unsigned char *p, uint16_t v) { p[0] = v & 0xFF, p[1] = v >> 8; }
void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (v >> (8 * i)) & 0xFF;
}
uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

// Native pixel data: DCMTK writes the element header (its own VR) and the value as loaded, so
// the value unchanged since loading (not in memory: lazily read from the source) is copied,
// after the header DCMTK would write. The source must hold this very element there (tag and
// length; the VR may differ, OB vs OW).
bool plan_native(dcm_file *f, DcmElement *pix, bool explicit_vr, int fd, copy_plan &p) {
    const dcm_file_facts &fa = f->facts;
    if (pix->valueLoaded()) return false;
    uint32_t len = pix->getLengthField();
    if (len != fa.pixel_length || len % 2 != 0 || len == DCM_UndefinedLength) return false;
    std::string vr = DcmVR(pix->getVR()).getValidVRName();
    if (explicit_vr && vr != "OB" && vr != "OW") return false;
    size_t hl = explicit_vr ? 12 : 8;
    if (fa.pixel_end - fa.pixel_offset != hl + len) return false;
    put16(p.head, 0x7FE0), put16(p.head + 2, 0x0010);
    if (explicit_vr) {
        p.head[4] = (unsigned char)vr[0], p.head[5] = (unsigned char)vr[1];
        p.head[6] = p.head[7] = 0;
    }
    put32(p.head + hl - 4, len);
    unsigned char src_head[12];
    if (pread(fd, src_head, hl, (off_t)fa.pixel_offset) != (ssize_t)hl ||
        memcmp(src_head, p.head, 4) != 0 || memcmp(src_head + hl - 4, p.head + hl - 4, 4) != 0)
        return false;
    p.offset = (off_t)(fa.pixel_offset + hl);
    p.length = len;
    p.head_len = hl;
    return true;
}

// Encapsulated pixel data, still in its original representation: DCMTK writes the header
// (7FE0,0010) OB 0000 FFFFFFFF, each item (FFFE,E000) with its length and bytes, and the
// delimiter (FFFE,E0DD) 00000000. The source's element is copied whole when it is exactly
// that: the same header, the same items (count and even lengths) as DCMTK loaded, and the
// delimiter ending where dcm_file_check found the element's end.
bool plan_encapsulated(dcm_file *f, DcmElement *pix, E_TransferSyntax xs, int fd, copy_plan &p) {
    const dcm_file_facts &fa = f->facts;
    DcmPixelData *pd = OFstatic_cast(DcmPixelData *, pix);
    E_TransferSyntax orig = EXS_Unknown, cur = EXS_Unknown;
    const DcmRepresentationParameter *orig_par = nullptr, *cur_par = nullptr;
    pd->getOriginalRepresentationKey(orig, orig_par);
    pd->getCurrentRepresentationKey(cur, cur_par);
    DcmPixelSequence *seq = nullptr;
    if (orig != xs || cur != xs || orig_par != cur_par ||
        pd->getEncapsulatedRepresentation(xs, orig_par, seq).bad() || !seq)
        return false;
    static const unsigned char head[12] = {0xE0, 0x7F, 0x10, 0x00, 'O',  'B',
                                           0,    0,    0xFF, 0xFF, 0xFF, 0xFF};
    unsigned char h[12];
    uint64_t pos = fa.pixel_offset, end = fa.pixel_end;
    if (pread(fd, h, 12, (off_t)pos) != 12 || memcmp(h, head, 12) != 0) return false;
    pos += 12;
    for (unsigned long k = 0; k < seq->card(); k++) {
        DcmPixelItem *item = nullptr;
        if (seq->getItem(item, k).bad() || !item || end - pos < 8 ||
            pread(fd, h, 8, (off_t)pos) != 8)
            return false;
        uint32_t len = get32(h + 4);
        if (get32(h) != 0xE000FFFEu || len % 2 != 0 || len != item->getLengthField() ||
            end - pos - 8 < len)
            return false;
        pos += 8 + (uint64_t)len;
    }
    if (end - pos != 8 || pread(fd, h, 8, (off_t)pos) != 8 || get32(h) != 0xE0DDFFFEu ||
        get32(h + 4) != 0)
        return false;
    p.offset = (off_t)fa.pixel_offset;
    p.length = end - fa.pixel_offset;
    p.head_len = 0;
    return true;
}

// 1 when the copy gives dcm_file_save's bytes: little-endian pixel data (native, or
// encapsulated in its original representation), unchanged since loading, the last element of
// the dataset to be written (whatever followed it in the source, trailing padding or private
// elements, was removed), no group length for group 7FE0 (it would count the pixels), and the
// source file unchanged in size, holding the element where dcm_file_check found it.
bool make_plan(dcm_file *f, DcmElement *pix, E_TransferSyntax xs, copy_plan &p) {
    const dcm_file_facts &fa = f->facts;
    DcmXfer x(xs);
    bool native = xs == EXS_LittleEndianExplicit || xs == EXS_LittleEndianImplicit;
    bool encapsulated = x.isEncapsulated() && x.isLittleEndian() && x.isExplicitVR() &&
                        x.getStreamCompression() == ESC_none && fa.pixel_encapsulated;
    if ((!native && !encapsulated) || (native && fa.pixel_encapsulated)) return false;
    if (!fa.has_pixel_data || fa.pixel_end <= fa.pixel_offset || pix->ident() != EVR_PixelData)
        return false;
    DcmDataset *ds = f->dataset();
    if (ds->card() == 0 || ds->getElement(ds->card() - 1) != pix ||
        ds->tagExists(DcmTagKey(0x7FE0, 0x0000)))
        return false;
    int fd = f->fd >= 0 ? f->fd : open(f->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == fa.file_bytes &&
              fa.pixel_end <= (uint64_t)st.st_size &&
              (native ? plan_native(f, pix, xs == EXS_LittleEndianExplicit, fd, p)
                      : plan_encapsulated(f, pix, xs, fd, p));
    if (!ok) {
        if (fd != f->fd) close(fd);
        return false;
    }
    p.src = fd;
    p.own_src = fd != f->fd;
    return true;
}

void release(copy_plan &p) {
    if (p.src >= 0 && p.own_src) close(p.src);
    p.src = -1;
}

// DCMTK's bytes of f without its pixel element (put back before returning).
OFCondition write_header(dcm_file *f, DcmElement *pix, E_TransferSyntax xs, std::string &out) {
    DcmDataset *ds = f->dataset();
    ds->remove(pix);
    string_consumer c;
    OFCondition cond = EC_Normal;
    {
        string_stream s(&c);
        DcmWriteCache wcache;
        f->ff.transferInit();
        cond = f->ff.write(s, xs, EET_ExplicitLength, &wcache, EGL_recalcGL, EPD_noChange, 0, 0, 0,
                           EWM_updateMeta);
        f->ff.transferEnd();
    }
    OFCondition put = ds->insert(pix, OFTrue);
    if (cond.good()) cond = put;
    if (cond.good()) out.swap(c.bytes);
    return cond;
}

bool write_all(int fd, const void *buf, size_t n) {
    const char *p = static_cast<const char *>(buf);
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w, n -= (size_t)w;
    }
    return true;
}

// n bytes from src at off to the end of dst: copy_file_range, or pread/write where the kernel
// cannot (another file system, an old kernel).
bool copy_range(int src, off_t off, int dst, size_t n) {
    while (n > 0) {
        ssize_t c = copy_file_range(src, &off, dst, nullptr, n, 0);
        if (c < 0 && errno == EINTR) continue;
        if (c < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP))
            break;
        if (c <= 0) return false;
        n -= (size_t)c;
    }
    static const size_t kChunk = 1 << 20;
    std::string buf(n < kChunk ? n : kChunk, '\0');
    while (n > 0) {
        size_t want = n < kChunk ? n : kChunk;
        ssize_t r = pread(src, &buf[0], want, off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0 || !write_all(dst, buf.data(), (size_t)r)) return false;
        off += r, n -= (size_t)r;
    }
    return true;
}

} // namespace

extern "C" vs_status dcm_file_save_copy(dcm_file *f, const char *path, int *copied, vs_error *err) {
    copy_plan p;
    if (copied) *copied = 0;
    std::string header;
    try {
        E_TransferSyntax xs = f->dataset()->getOriginalXfer();
        DcmElement *pix = nullptr;
        if (f->dataset()->findAndGetElement(DCM_PixelData, pix, OFFalse).bad() || !pix ||
            !make_plan(f, pix, xs, p))
            return dcm_file_save(f, path, err);
        OFCondition c = write_header(f, pix, xs, header);
        if (c.bad()) {
            release(p);
            return VS_FAIL(err, VS_ERR_IO, "%s: cannot write DICOM (%s)", path, c.text());
        }
        header.append(reinterpret_cast<const char *>(p.head), p.head_len);
    } catch (...) {
        release(p);
        return VS_FAIL(err, VS_ERR_IO, "%s: DICOM writer failed", path);
    }
    int dst = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    bool ok = dst >= 0 && write_all(dst, header.data(), header.size()) &&
              copy_range(p.src, p.offset, dst, p.length);
    int saved = errno;
    if (dst >= 0 && close(dst) != 0 && ok) ok = false, saved = errno;
    release(p);
    if (!ok) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write DICOM (%s)", path, strerror(saved));
    if (copied) *copied = 1;
    return VS_OK;
}
