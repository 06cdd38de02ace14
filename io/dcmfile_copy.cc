// dcmfile_copy.cc — dcmfile_save_copy: the bytes dcmfile_save writes, with the native pixel
// data copied from the source file inside the kernel instead of through DCMTK's buffers.
//
// DCMTK writes everything but the pixel data into memory (one buffer), we append the pixel
// element's header and the value is copied by copy_file_range from where it sits in the
// source file: no user-space copy of the pixels, one write for the header, no re-open and
// re-read of the source through DCMTK's lazy loading. Used only when the layout makes the
// result provably the same as dcmfile_save's (see copy_plan); otherwise dcmfile_save.
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcostrma.h>
#include <dcmtk/dcmdata/dcpixel.h>
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
    off_t offset = 0;       // where the pixel value starts in it
    uint32_t length = 0;    // its length (even)
    unsigned char head[12]; // the pixel element header dcmfile_save would write
    size_t head_len = 0;
};

void put16(unsigned char *p, uint16_t v) { p[0] = v & 0xFF, p[1] = v >> 8; }
void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (v >> (8 * i)) & 0xFF;
}

// 1 when the copy gives dcmfile_save's bytes: little-endian native pixel data, unchanged
// since loading (still on disk), the last element of the dataset and of the source file (so
// its value ends at EOF, which the header right before it confirms), no group length for
// group 7FE0 (it would count the pixels), and the source file unchanged in size.
bool make_plan(dcmfile *f, DcmElement *pix, E_TransferSyntax xs, copy_plan &p) {
    const dcmfile_facts &fa = f->facts;
    bool explicit_vr = xs == EXS_LittleEndianExplicit;
    if (!explicit_vr && xs != EXS_LittleEndianImplicit) return false;
    if (!fa.has_pixel_data || fa.pixel_encapsulated || pix->ident() != EVR_PixelData ||
        pix->valueLoaded())
        return false;
    DcmDataset *ds = f->dataset();
    if (ds->card() == 0 || ds->getElement(ds->card() - 1) != pix ||
        ds->tagExists(DcmTagKey(0x7FE0, 0x0000)))
        return false;
    uint32_t len = pix->getLengthField();
    if (len != fa.pixel_length || len % 2 != 0 || len == DCM_UndefinedLength) return false;
    std::string vr = DcmVR(pix->getVR()).getValidVRName();
    if (explicit_vr && vr != "OB" && vr != "OW") return false;

    int fd = open(f->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    unsigned char src_head[12];
    size_t hl = explicit_vr ? 12 : 8;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != fa.file_bytes ||
        (uint64_t)st.st_size < len + hl ||
        pread(fd, src_head, hl, st.st_size - len - hl) != (ssize_t)hl) {
        close(fd);
        return false;
    }
    put16(p.head, 0x7FE0), put16(p.head + 2, 0x0010);
    if (explicit_vr) {
        p.head[4] = (unsigned char)vr[0], p.head[5] = (unsigned char)vr[1];
        p.head[6] = p.head[7] = 0;
    }
    put32(p.head + hl - 4, len);
    // the source holds this very element right before EOF (its VR may differ: OB vs OW)
    if (memcmp(src_head, p.head, 4) != 0 || memcmp(src_head + hl - 4, p.head + hl - 4, 4) != 0) {
        close(fd);
        return false;
    }
    p.src = fd;
    p.offset = st.st_size - len;
    p.length = len;
    p.head_len = hl;
    return true;
}

// DCMTK's bytes of f without its pixel element (put back before returning).
OFCondition write_header(dcmfile *f, DcmElement *pix, E_TransferSyntax xs, std::string &out) {
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

extern "C" vs_status dcmfile_save_copy(dcmfile *f, const char *path, int *copied, vs_error *err) {
    copy_plan p;
    if (copied) *copied = 0;
    std::string header;
    try {
        E_TransferSyntax xs = f->dataset()->getOriginalXfer();
        DcmElement *pix = nullptr;
        if (f->dataset()->findAndGetElement(DCM_PixelData, pix, OFFalse).bad() || !pix ||
            !make_plan(f, pix, xs, p))
            return dcmfile_save(f, path, err);
        OFCondition c = write_header(f, pix, xs, header);
        if (c.bad()) {
            close(p.src);
            return VS_FAIL(err, VS_ERR_IO, "%s: cannot write DICOM (%s)", path, c.text());
        }
        header.append(reinterpret_cast<const char *>(p.head), p.head_len);
    } catch (...) {
        if (p.src >= 0) close(p.src);
        return VS_FAIL(err, VS_ERR_IO, "%s: DICOM writer failed", path);
    }
    int dst = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    bool ok = dst >= 0 && write_all(dst, header.data(), header.size()) &&
              copy_range(p.src, p.offset, dst, p.length);
    int saved = errno;
    if (dst >= 0 && close(dst) != 0 && ok) ok = false, saved = errno;
    close(p.src);
    if (!ok) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write DICOM (%s)", path, strerror(saved));
    if (copied) *copied = 1;
    return VS_OK;
}
