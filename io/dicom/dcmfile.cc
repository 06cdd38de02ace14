// dcmfile.cc — load and save one DICOM file with DCMTK, sizes checked first; the file is
// opened and mapped once, checked, and DCMTK parses the mapped bytes.
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcistrmf.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

#include <mutex>
#include <new>

namespace {

// DCMTK's input stream over the bytes dcmfile_check mapped: the header is parsed without
// opening the file again. A value DCMTK leaves on disk (over maxReadLength: pixel data) gets
// the factory DcmInputFileStream would give it (path and offset), so reading it later opens
// the file by path exactly as loadFile's stream would; nothing keeps a pointer to the mapping.
class mapped_stream : public DcmInputStream {
  public:
    mapped_stream(const unsigned char *bytes, size_t n, const char *path)
        : DcmInputStream(&producer_), path_(path) { // DcmInputStream only stores the pointer
        producer_.setBuffer(bytes, (offile_off_t)n);
        producer_.setEos();
    }
    DcmInputStreamFactory *newFactory() const override {
        if (currentProducer() != &producer_) return nullptr; // a filter (deflate) is installed
        return new DcmInputFileStreamFactory(path_, tell());
    }

  private:
    DcmBufferProducer producer_;
    OFFilename path_;
};

// DcmFileFormat::loadFile(path, EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect) on src.
// maxReadLength: element values above 4 KiB are read lazily, so a lying length field cannot
// make DCMTK allocate before we check it against the file size. The structure was checked, so
// every length DCMTK sees fits inside the file.
OFCondition parse(dcmfile *f, const dcmfile_src &src, const char *path) {
    mapped_stream in(src.bytes, src.size, path);
    OFCondition c = f->ff.clear();
    if (c.bad()) return c;
    f->ff.transferInit();
    c = f->ff.read(in, EXS_Unknown, EGL_noChange, 4096);
    f->ff.transferEnd();
    return c;
}

vs_status load(const char *path, const dcmfile_limits *limits, int keep_open, dcmfile **out,
               dcmfile_facts *out_facts, vs_error *err) {
    *out = nullptr;
    dcmfile_facts &facts = *out_facts;
    dcmfile_src src;
    vs_status s = dcmfile_check_src(path, limits, &facts, &src, err);
    if (s) return s;
    dcmfile *f = new (std::nothrow) dcmfile;
    if (!f) {
        dcmfile_src_close(&src, 0);
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
    dcmfile_src_close(&src, s == VS_OK && keep_open);
    if (s != VS_OK) {
        delete f;
        return s;
    }
    *out = f;
    return VS_OK;
}

} // namespace

extern "C" vs_status dcmfile_load(const char *path, const dcmfile_limits *limits, dcmfile **out,
                                  vs_error *err) {
    dcmfile_facts facts;
    return load(path, limits, 0, out, &facts, err);
}

extern "C" vs_status dcmfile_load_open(const char *path, const dcmfile_limits *limits,
                                       dcmfile **out, vs_error *err) {
    dcmfile_facts facts;
    return load(path, limits, 1, out, &facts, err);
}

extern "C" vs_status dcmfile_load_facts(const char *path, const dcmfile_limits *limits,
                                        dcmfile **out, dcmfile_facts *out_facts, vs_error *err) {
    return load(path, limits, 0, out, out_facts, err);
}

extern "C" vs_status dcmfile_save(dcmfile *f, const char *path, vs_error *err) {
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

extern "C" void dcmfile_free(dcmfile *f) { delete f; }

extern "C" const char *dcmfile_transfer_syntax(const dcmfile *f) {
    return f->transfer_syntax.c_str();
}

extern "C" const char *dcmfile_path(const dcmfile *f) { return f->path.c_str(); }

extern "C" const dcmfile_facts *dcmfile_get_facts(const dcmfile *f) { return &f->facts; }

extern "C" void dcmfile_quiet(void) {
    static std::once_flag once;
    try {
        std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
    } catch (...) {
    }
}
