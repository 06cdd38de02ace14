// dcmfile.cc — load and save one DICOM file with DCMTK, sizes checked first.
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <new>
#include <sys/stat.h>

static const uint64_t kDefaultMaxFile = 4ull << 30;

extern "C" vs_status dcmfile_load(const char *path, const dcmfile_limits *limits, dcmfile **out,
                                  vs_error *err) {
    *out = nullptr;
    struct stat st;
    if (stat(path, &st) != 0) return VS_FAIL(err, VS_ERR_IO, "%s: cannot read the file", path);
    uint64_t max_file = limits && limits->max_file_bytes ? limits->max_file_bytes : kDefaultMaxFile;
    if ((uint64_t)st.st_size > max_file)
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: file of %lld bytes exceeds the size limit", path,
                       (long long)st.st_size);
    dcmfile *f = new (std::nothrow) dcmfile;
    if (!f) return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
    try {
        // maxReadLength: element values above 4 KiB are read lazily, so a lying length field
        // cannot make DCMTK allocate before we check it against the file size.
        OFCondition c = f->ff.loadFile(path, EXS_Unknown, EGL_noChange, 4096, ERM_autoDetect);
        if (c.bad()) {
            vs_error_set(err, VS_ERR_FORMAT, __FILE__, __LINE__, "%s: not readable as DICOM (%s)",
                         path, c.text());
            delete f;
            return VS_ERR_FORMAT;
        }
        f->path = path;
        E_TransferSyntax xs = f->dataset()->getOriginalXfer();
        DcmXfer x(xs);
        f->transfer_syntax = x.getXferID() ? x.getXferID() : "";
    } catch (...) {
        delete f;
        return VS_FAIL(err, VS_ERR_FORMAT, "%s: DICOM parser failed", path);
    }
    *out = f;
    return VS_OK;
}

extern "C" vs_status dcmfile_save(dcmfile *f, const char *path, vs_error *err) {
    try {
        E_TransferSyntax xs = f->dataset()->getOriginalXfer();
        if (xs == EXS_Unknown) xs = EXS_LittleEndianExplicit;
        OFCondition c = f->ff.saveFile(path, xs, EET_ExplicitLength, EGL_recalcGL, EPD_noChange,
                                       0, 0, EWM_updateMeta);
        if (c.bad())
            return VS_FAIL(err, VS_ERR_IO, "%s: cannot write DICOM (%s)", path, c.text());
    } catch (...) {
        return VS_FAIL(err, VS_ERR_IO, "%s: DICOM writer failed", path);
    }
    return VS_OK;
}

extern "C" void dcmfile_free(dcmfile *f) { delete f; }

extern "C" const char *dcmfile_transfer_syntax(const dcmfile *f) {
    return f->transfer_syntax.c_str();
}
