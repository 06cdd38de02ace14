// dcmwrite.cc — the DICOM writer behind dcmwrite.h.
#include "dcmwrite.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcrlerp.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djencode.h>
#include <dcmtk/dcmjpeg/djrplol.h>
#include <dcmtk/dcmjpls/djencode.h>
#include <dcmtk/dcmjpls/djrparam.h>
#include <dcmtk/oflog/oflog.h>

#include <mutex>
#include <new>
#include <vector>

struct dcm_writer {
    DcmFileFormat ff;
    std::vector<DcmItem *> stack; // current item is stack.back(); the dataset is stack[0]
};

static void register_encoders() {
    static std::once_flag once;
    std::call_once(once, [] {
        // DCMTK's own logger would print codec notes on stderr; errors reach us as OFCondition.
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        DcmRLEEncoderRegistration::registerCodecs();
        DJEncoderRegistration::registerCodecs();
        DJLSEncoderRegistration::registerCodecs();
    });
}

extern "C" vs_status dcm_writer_create(dcm_writer **out, vs_error *err) {
    *out = nullptr;
    try {
        register_encoders();
        dcm_writer *w = new dcm_writer;
        w->stack.push_back(w->ff.getDataset());
        *out = w;
    } catch (...) {
        return VS_FAIL(err, VS_ERR_NOMEM, "cannot create a DICOM dataset");
    }
    return VS_OK;
}

extern "C" void dcm_writer_free(dcm_writer *w) { delete w; }

static vs_status put_tag(dcm_writer *w, const DcmTag &tag, const char *value, vs_error *err) {
    try {
        OFCondition c = w->stack.back()->putAndInsertString(tag, value, OFTrue);
        if (c.bad())
            return VS_FAIL(err, VS_ERR_LIBRARY, "cannot put (%04x,%04x): %s", tag.getGTag(),
                           tag.getETag(), c.text());
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "DCMTK failed putting an attribute");
    }
    return VS_OK;
}

extern "C" vs_status dcm_writer_put(dcm_writer *w, uint32_t tag, const char *value, vs_error *err) {
    DcmTag t((Uint16)(tag >> 16), (Uint16)(tag & 0xffff));
    if (t.getEVR() == EVR_UNKNOWN || t.getEVR() == EVR_UN)
        return VS_FAIL(err, VS_ERR_INTERNAL, "(%04x,%04x) is not in the dictionary; give its VR",
                       tag >> 16, tag & 0xffff);
    return put_tag(w, t, value, err);
}

extern "C" vs_status dcm_writer_put_vr(dcm_writer *w, uint32_t tag, const char *vr,
                                       const char *value, vs_error *err) {
    DcmVR v(vr);
    if (v.getEVR() == EVR_UNKNOWN) return VS_FAIL(err, VS_ERR_INTERNAL, "unknown VR %s", vr);
    DcmTag t((Uint16)(tag >> 16), (Uint16)(tag & 0xffff), v);
    return put_tag(w, t, value, err);
}

extern "C" vs_status dcm_writer_item_begin(dcm_writer *w, uint32_t seq_tag, vs_error *err) {
    if (w->stack.size() >= 16) return VS_FAIL(err, VS_ERR_INTERNAL, "sequences nested too deep");
    try {
        DcmItem *item = nullptr;
        OFCondition c = w->stack.back()->findOrCreateSequenceItem(
            DcmTagKey((Uint16)(seq_tag >> 16), (Uint16)(seq_tag & 0xffff)), item, -2 /* append */);
        if (c.bad() || !item)
            return VS_FAIL(err, VS_ERR_LIBRARY, "cannot open an item of (%04x,%04x): %s",
                           seq_tag >> 16, seq_tag & 0xffff, c.text());
        w->stack.push_back(item);
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "DCMTK failed opening a sequence item");
    }
    return VS_OK;
}

extern "C" vs_status dcm_writer_item_end(dcm_writer *w, vs_error *err) {
    if (w->stack.size() <= 1) return VS_FAIL(err, VS_ERR_INTERNAL, "no sequence item is open");
    w->stack.pop_back();
    return VS_OK;
}

extern "C" vs_status dcm_writer_put_pixels(dcm_writer *w, uint16_t rows, uint16_t cols,
                                           uint16_t bits_stored, int pixel_representation,
                                           const uint16_t *pixels, vs_error *err) {
    if (bits_stored < 1 || bits_stored > 16)
        return VS_FAIL(err, VS_ERR_INTERNAL, "bits stored %u", bits_stored);
    try {
        DcmItem *ds = w->stack[0];
        OFCondition c = ds->putAndInsertUint16(DCM_Rows, rows);
        if (c.good()) c = ds->putAndInsertUint16(DCM_Columns, cols);
        if (c.good()) c = ds->putAndInsertUint16(DCM_SamplesPerPixel, 1);
        if (c.good()) c = ds->putAndInsertUint16(DCM_BitsAllocated, 16);
        if (c.good()) c = ds->putAndInsertUint16(DCM_BitsStored, bits_stored);
        if (c.good()) c = ds->putAndInsertUint16(DCM_HighBit, (Uint16)(bits_stored - 1));
        if (c.good())
            c = ds->putAndInsertUint16(DCM_PixelRepresentation, pixel_representation ? 1 : 0);
        if (c.good())
            c = ds->putAndInsertUint16Array(DCM_PixelData, pixels, (unsigned long)rows * cols);
        if (c.bad()) return VS_FAIL(err, VS_ERR_LIBRARY, "cannot put pixel data: %s", c.text());
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "DCMTK failed putting pixel data");
    }
    return VS_OK;
}

// DCMTK's JPEG-LS encoder pads an odd-length fragment after the EOI marker with a byte it
// never initialises, so the same image can encode to different bytes. PS3.5 A.4 asks for a
// trailing NUL: write it, which makes output deterministic.
static void zero_fragment_padding(DcmDataset *ds) {
    DcmElement *el = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, el).bad() || !el || el->ident() != EVR_PixelData)
        return;
    DcmPixelData *pd = OFstatic_cast(DcmPixelData *, el);
    DcmPixelSequence *seq = nullptr;
    E_TransferSyntax xs = EXS_Unknown;
    const DcmRepresentationParameter *param = nullptr;
    pd->getCurrentRepresentationKey(xs, param);
    if (pd->getEncapsulatedRepresentation(xs, param, seq).bad() || !seq) return;
    for (unsigned long i = 1; i < seq->card(); i++) { // item 0 is the offset table
        DcmPixelItem *item = nullptr;
        Uint8 *bytes = nullptr;
        if (seq->getItem(item, i).bad() || !item || item->getUint8Array(bytes).bad() || !bytes)
            continue;
        Uint32 n = item->getLength();
        if (n >= 3 && bytes[n - 3] == 0xFF && bytes[n - 2] == 0xD9) bytes[n - 1] = 0;
    }
}

extern "C" vs_status dcm_writer_save(dcm_writer *w, const char *path, const char *ts_uid,
                                     vs_error *err) {
    try {
        DcmXfer x(ts_uid);
        E_TransferSyntax xs = x.getXfer();
        if (xs == EXS_Unknown)
            return VS_FAIL(err, VS_ERR_USAGE, "unknown transfer syntax %s", ts_uid);
        DcmDataset *ds = w->ff.getDataset();
        OFCondition c = EC_Normal;
        // DCMTK's encoders (CharLS for JPEG-LS in particular) are not thread-safe: with two
        // threads encoding at once the output bytes differ from run to run. Serialise them.
        static std::mutex codec_lock;
        std::unique_lock<std::mutex> hold(codec_lock, std::defer_lock);
        if (x.isEncapsulated()) {
            hold.lock();
            DJ_RPLossless jpeg_lossless(1, 0);
            DJLSRepresentationParameter jls_lossless(0, OFTrue);
            DcmRLERepresentationParameter rle;
            const DcmRepresentationParameter *param = nullptr;
            if (xs == EXS_JPEGProcess14SV1 || xs == EXS_JPEGProcess14)
                param = &jpeg_lossless;
            else if (xs == EXS_JPEGLSLossless)
                param = &jls_lossless;
            else if (xs == EXS_RLELossless)
                param = &rle;
            else
                return VS_FAIL(err, VS_ERR_USAGE, "the writer does not encode %s", ts_uid);
            c = ds->chooseRepresentation(xs, param);
            if (c.good() && !ds->canWriteXfer(xs)) c = EC_CannotChangeRepresentation;
            if (c.bad())
                return VS_FAIL(err, VS_ERR_LIBRARY, "cannot encode pixel data as %s: %s", ts_uid,
                               c.text());
            zero_fragment_padding(ds);
        }
        c = w->ff.saveFile(path, xs, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0,
                           EWM_fileformat);
        if (c.bad()) return VS_FAIL(err, VS_ERR_IO, "%s: cannot write DICOM (%s)", path, c.text());
    } catch (...) {
        return VS_FAIL(err, VS_ERR_IO, "%s: DICOM writer failed", path);
    }
    return VS_OK;
}
