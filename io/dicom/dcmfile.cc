// dcmfile.cc — load and save one DICOM file with DCMTK, sizes checked first; the file is
// opened once, checked, and DCMTK parses the bytes the check read (the rest with pread).
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <new>

#include <unistd.h>

namespace {

// The bytes of a checked file for DCMTK: the prefix dcm_file_check read, then pread on its
// descriptor (never a mapping: a file truncated meanwhile gives a short read, which DCMTK reports
// as a parse error naming nothing we print but the path, instead of SIGBUS).
class src_producer : public DcmProducer {
  public:
    explicit src_producer(const dcm_file_src &src) : src_(src) {}
    OFBool good() const override { return status_.good(); }
    OFCondition status() const override { return status_; }
    OFBool eos() override { return pos_ >= (offile_off_t)src_.size; }
    offile_off_t avail() override { return good() ? (offile_off_t)src_.size - pos_ : 0; }
    offile_off_t read(void *buf, offile_off_t buflen) override {
        offile_off_t n = buflen < avail() ? buflen : avail(), got = 0;
        while (got < n) {
            size_t at = (size_t)(pos_ + got);
            if (at < src_.have) { // from the prefix
                size_t k = src_.have - at < (size_t)(n - got) ? src_.have - at : (size_t)(n - got);
                memcpy((char *)buf + got, src_.bytes + at, k);
                got += (offile_off_t)k;
                continue;
            }
            ssize_t k = pread(src_.fd, (char *)buf + got, (size_t)(n - got), (off_t)at);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) { // the file ended early: truncated since it was checked
                status_ = EC_StreamNotifyClient;
                break;
            }
            got += (offile_off_t)k;
        }
        pos_ += got;
        return got;
    }
    offile_off_t skip(offile_off_t skiplen) override {
        offile_off_t n = skiplen < avail() ? skiplen : avail();
        pos_ += n;
        return n;
    }
    void putback(offile_off_t num) override {
        if (num <= pos_)
            pos_ -= num;
        else
            status_ = EC_PutbackFailed;
    }

  private:
    dcm_file_src src_;
    offile_off_t pos_ = 0;
    OFCondition status_ = EC_Normal;
};

// DCMTK's input stream over a checked file: the header is parsed without opening the file
// again. A value DCMTK leaves on disk (over maxReadLength: pixel data) gets the factory
// DcmInputFileStream would give it (path and offset), so reading it later opens the file by
// path exactly as loadFile's stream would.
class src_stream : public DcmInputStream {
  public:
    src_stream(const dcm_file_src &src, const char *path)
        : DcmInputStream(&producer_), producer_(src), path_(path) {
    } // DcmInputStream stores the pointer
    DcmInputStreamFactory *newFactory() const override {
        if (currentProducer() != &producer_) return nullptr; // a filter (deflate) is installed
        return new DcmInputFileStreamFactory(path_, tell());
    }

  private:
    src_producer producer_;
    OFFilename path_;
};

// DcmFileFormat::loadFile(path, EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect) on src.
// maxReadLength: element values above 4 KiB are read lazily, so a lying length field cannot
// make DCMTK allocate before we check it against the file size. The structure was checked, so
// every length DCMTK sees fits inside the file.
OFCondition parse(dcm_file *f, const dcm_file_src &src, const char *path) {
    src_stream in(src, path);
    OFCondition c = f->ff.clear();
    if (c.bad()) return c;
    f->ff.transferInit();
    c = f->ff.read(in, EXS_Unknown, EGL_noChange, 4096);
    f->ff.transferEnd();
    return c;
}

vs_status load(const char *path, const dcm_file_limits *limits, int keep_open, dcm_file **out,
               dcm_file_facts *out_facts, vs_error *err) {
    *out = nullptr;
    dcm_file_facts &facts = *out_facts;
    dcm_file_src src;
    vs_status s = dcm_file_check_src(path, limits, &facts, &src, err);
    if (s) return s;
    dcm_file *f = new (std::nothrow) dcm_file;
    if (!f) {
        dcm_file_src_close(&src, 0);
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
    }
    f->facts = facts;
    try {
        OFCondition c = parse(f, src, path);
        if (c.bad()) {
            vs_error_set(err, VS_ERR_FORMAT, __FILE__, __LINE__, "%s: not readable as DICOM (%s)",
                         path, c.text());
            s = VS_ERR_FORMAT;
        } else {
            f->path = path;
            E_TransferSyntax xs = f->dataset()->getOriginalXfer();
            DcmXfer x(xs);
            f->transfer_syntax = x.getXferID() ? x.getXferID() : "";
        }
    } catch (...) {
        s = VS_FAIL(err, VS_ERR_FORMAT, "%s: DICOM parser failed", path);
    }
    if (s == VS_OK && keep_open) f->fd = src.fd;
    dcm_file_src_close(&src, s == VS_OK && keep_open);
    if (s != VS_OK) {
        delete f;
        return s;
    }
    *out = f;
    return VS_OK;
}

} // namespace

extern "C" vs_status dcm_file_load(const char *path, const dcm_file_limits *limits, dcm_file **out,
                                   vs_error *err) {
    dcm_file_facts facts;
    return load(path, limits, 0, out, &facts, err);
}

extern "C" vs_status dcm_file_load_open(const char *path, const dcm_file_limits *limits,
                                        dcm_file **out, vs_error *err) {
    dcm_file_facts facts;
    return load(path, limits, 1, out, &facts, err);
}

extern "C" vs_status dcm_file_load_facts(const char *path, const dcm_file_limits *limits,
                                         dcm_file **out, dcm_file_facts *out_facts, vs_error *err) {
    return load(path, limits, 0, out, out_facts, err);
}

extern "C" vs_status dcm_file_save(dcm_file *f, const char *path, vs_error *err) {
    try {
        E_TransferSyntax xs = f->dataset()->getOriginalXfer();
        if (xs == EXS_Unknown) xs = EXS_LittleEndianExplicit;
        OFCondition c = f->ff.saveFile(path, xs, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0,
                                       0, EWM_updateMeta);
        if (c.bad()) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write DICOM (%s)", path, c.text());
    } catch (...) {
        return VS_FAIL(err, VS_ERR_IO, "%s: DICOM writer failed", path);
    }
    return VS_OK;
}

extern "C" void dcm_file_free(dcm_file *f) { delete f; }

extern "C" const char *dcm_file_transfer_syntax(const dcm_file *f) {
    return f->transfer_syntax.c_str();
}

extern "C" const char *dcm_file_path(const dcm_file *f) { return f->path.c_str(); }

extern "C" const dcm_file_facts *dcm_file_get_facts(const dcm_file *f) { return &f->facts; }

extern "C" void dcm_file_quiet(void) {
    static std::once_flag once;
    try {
        std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
    } catch (...) {
    }
}
