// dcmfile.cc — load and save one DICOM file with DCMTK, sizes checked first.
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <new>

extern "C" vs_status dcmfile_load(const char *path, const dcmfile_limits *limits, dcmfile **out,
                                  vs_error *err) {
    dcmfile_facts facts;
    return dcmfile_load_facts(path, limits, out, &facts, err);
}

extern "C" vs_status dcmfile_load_facts(const char *path, const dcmfile_limits *limits,
                                        dcmfile **out, dcmfile_facts *out_facts, vs_error *err) {
    *out = nullptr;
    dcmfile_facts &facts = *out_facts;
    vs_status s = dcmfile_check(path, limits, &facts, err);
    if (s) return s;
    dcmfile *f = new (std::nothrow) dcmfile;
    if (!f) return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory", path);
    f->facts = facts;
    try {
        // maxReadLength: element values above 4 KiB are read lazily, so a lying length field
        // cannot make DCMTK allocate before we check it against the file size.
        // The structure was checked, so every length DCMTK sees fits inside the file.
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
