// dicom_dcmtk.cc — the DCMTK half of io/dicom: header fields, frame decoding, DICOMDIR records.
// Thin by design: values come out as C types, every DCMTK failure becomes a vs_status, and no
// exception crosses back into C (catch (...) in every entry point).
#include "dicom_internal.h"
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include <fcntl.h>
#include <unistd.h>

extern "C" void dcm_shim_register_codecs(void) {
    static std::once_flag once;
    std::call_once(once, [] {
        // DCMTK's own warnings would go to stderr, unstructured; our reasons say what matters.
        OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
        DcmRLEDecoderRegistration::registerCodecs();
        // Keep the colour model as stored: colour images are skipped anyway, and grey JPEG
        // is never converted.
        DJDecoderRegistration::registerCodecs(EDC_never);
        DJLSDecoderRegistration::registerCodecs();
    });
}

static void get_str(DcmItem *ds, const DcmTagKey &key, char *dst, size_t n) {
    OFString s;
    dst[0] = 0;
    if (ds->findAndGetOFStringArray(key, s).bad()) return;
    size_t b = 0, e = s.size();
    while (b < e && s[b] == ' ')
        b++;
    while (e > b && (s[e - 1] == ' ' || s[e - 1] == 0))
        e--;
    size_t len = e - b < n - 1 ? e - b : n - 1;
    memcpy(dst, s.c_str() + b, len);
    dst[len] = 0;
}

static int32_t get_us(DcmItem *ds, const DcmTagKey &key, int32_t absent) {
    Uint16 v;
    return ds->findAndGetUint16(key, v).good() ? (int32_t)v : absent;
}

static int32_t get_is(DcmItem *ds, const DcmTagKey &key) {
    Sint32 v;
    return ds->findAndGetSint32(key, v).good() ? (int32_t)v : DCM_NO_INT;
}

static double get_ds(DcmItem *ds, const DcmTagKey &key, double absent) {
    Float64 v;
    return ds->findAndGetFloat64(key, v).good() ? v : absent;
}

// n values of a DS attribute; 1 when all were present and finite.
static int get_ds_n(DcmItem *ds, const DcmTagKey &key, double *out, int n) {
    for (int i = 0; i < n; i++) {
        Float64 v;
        if (ds->findAndGetFloat64(key, v, (unsigned long)i).bad()) return 0;
        if (!(v == v) || v > 1e9 || v < -1e9) return 0;
        out[i] = v;
    }
    return 1;
}

// ImageType as "A\B\C", upper case, each component trimmed (some writers pad with spaces).
static void get_image_type(DcmItem *ds, char *dst, size_t n) {
    OFString s;
    dst[0] = 0;
    if (ds->findAndGetOFStringArray(DCM_ImageType, s).bad()) return;
    size_t o = 0;
    size_t i = 0;
    while (i <= s.size() && o + 1 < n) {
        size_t j = s.find('\\', i);
        if (j == OFString_npos) j = s.size();
        size_t b = i, e = j;
        while (b < e && s[b] == ' ')
            b++;
        while (e > b && s[e - 1] == ' ')
            e--;
        if (o > 0 && o + 1 < n) dst[o++] = '\\';
        for (size_t k = b; k < e && o + 1 < n; k++)
            dst[o++] = (char)toupper((unsigned char)s[k]);
        i = j + 1;
    }
    dst[o] = 0;
}

// The first item of sequence `seq` inside `item`, or NULL.
static DcmItem *sub_item(DcmItem *item, const DcmTagKey &seq) {
    DcmItem *out = nullptr;
    if (!item || item->findAndGetSequenceItem(seq, out, 0).bad()) return nullptr;
    return out;
}

// Fill a frame's geometry and rescale from a per-frame item, falling back to the shared item.
static void read_functional_groups(DcmItem *per, DcmItem *shared, dcm_frame *fr) {
    DcmItem *groups[2] = {per, shared};
    for (DcmItem *g : groups) {
        if (!g) continue;
        DcmItem *it;
        if (!fr->has_ipp && (it = sub_item(g, DCM_PlanePositionSequence)))
            fr->has_ipp = get_ds_n(it, DCM_ImagePositionPatient, fr->ipp, 3);
        if (!fr->has_iop && (it = sub_item(g, DCM_PlaneOrientationSequence)))
            fr->has_iop = get_ds_n(it, DCM_ImageOrientationPatient, fr->iop, 6);
        if (fr->spacing[0] == 0 && (it = sub_item(g, DCM_PixelMeasuresSequence)))
            if (!get_ds_n(it, DCM_PixelSpacing, fr->spacing, 2))
                fr->spacing[0] = fr->spacing[1] = 0;
        if ((it = sub_item(g, DCM_PixelValueTransformationSequence)) && fr->slope == 0) {
            fr->slope = get_ds(it, DCM_RescaleSlope, 0);
            fr->intercept = get_ds(it, DCM_RescaleIntercept, 0);
        }
        if (fr->temporal == DCM_NO_INT && (it = sub_item(g, DCM_FrameContentSequence))) {
            Uint32 v;
            if (it->findAndGetUint32(DCM_TemporalPositionIndex, v).good())
                fr->temporal = (int32_t)v;
        }
    }
}

static vs_status read_frames(DcmDataset *ds, dcm_header *h, vs_error *err) {
    int32_t n = h->frames;
    h->frame = (dcm_frame *)calloc((size_t)n, sizeof(dcm_frame));
    if (!h->frame) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory for %d frames", (int)n);
    dcm_frame top = {};
    top.has_ipp = get_ds_n(ds, DCM_ImagePositionPatient, top.ipp, 3);
    top.has_iop = get_ds_n(ds, DCM_ImageOrientationPatient, top.iop, 6);
    if (get_ds_n(ds, DCM_PixelSpacing, top.spacing, 2)) {
    } else if (get_ds_n(ds, DCM_ImagerPixelSpacing, top.spacing, 2)) {
        h->spacing_is_imager = 1;
    } else {
        top.spacing[0] = top.spacing[1] = 0;
    }
    top.slope = get_ds(ds, DCM_RescaleSlope, 0);
    top.intercept = get_ds(ds, DCM_RescaleIntercept, 0);
    top.temporal = DCM_NO_INT;

    DcmSequenceOfItems *per_seq = nullptr;
    DcmItem *shared = sub_item(ds, DCM_SharedFunctionalGroupsSequence);
    if (ds->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_seq).good() && per_seq) {
        if ((int32_t)per_seq->card() != n) {
            h->frames_problem = "per-frame functional groups do not match NumberOfFrames";
            for (int32_t i = 0; i < n; i++)
                h->frame[i] = top;
            return VS_OK;
        }
        h->enhanced = 1;
        for (int32_t i = 0; i < n; i++) {
            dcm_frame *fr = &h->frame[i];
            fr->temporal = DCM_NO_INT;
            read_functional_groups(per_seq->getItem((unsigned long)i), shared, fr);
            if (!fr->has_ipp && top.has_ipp) {
                fr->has_ipp = 1;
                memcpy(fr->ipp, top.ipp, sizeof fr->ipp);
            }
            if (!fr->has_iop && top.has_iop) {
                fr->has_iop = 1;
                memcpy(fr->iop, top.iop, sizeof fr->iop);
            }
            if (fr->spacing[0] == 0) memcpy(fr->spacing, top.spacing, sizeof fr->spacing);
            if (fr->slope == 0) {
                fr->slope = top.slope;
                fr->intercept = top.intercept;
            }
        }
    } else {
        for (int32_t i = 0; i < n; i++)
            h->frame[i] = top;
    }
    for (int32_t i = 0; i < n; i++)
        if (h->frame[i].slope == 0) {
            h->frame[i].slope = 1;
            h->frame[i].intercept = 0;
        }
    return VS_OK;
}

static void read_padding(DcmDataset *ds, dcm_header *h) {
    DcmElement *e = nullptr;
    if (ds->findAndGetElement(DCM_PixelPaddingValue, e).bad() || !e) return;
    if (e->ident() == EVR_SS) {
        Sint16 v;
        if (e->getSint16(v).good()) {
            h->padding = v;
            h->has_padding = 1;
        }
    } else {
        Uint16 v;
        if (e->getUint16(v).good()) {
            h->padding = h->pixel_rep ? (int32_t)(int16_t)v : (int32_t)v;
            h->has_padding = 1;
        }
    }
}

extern "C" vs_status dcm_shim_read_header(dcm_file *f, dcm_header *h, dcm_header_text *t,
                                          vs_error *err) {
    memset(h, 0, sizeof *h);
    memset(t, 0, sizeof *t);
    try {
        DcmDataset *ds = f->dataset();
        DcmMetaInfo *meta = f->ff.getMetaInfo();
        get_str(ds, DCM_SOPClassUID, t->sop_class, sizeof t->sop_class);
        if (!t->sop_class[0] && meta)
            get_str(meta, DCM_MediaStorageSOPClassUID, t->sop_class, sizeof t->sop_class);
        h->is_dicomdir = strcmp(t->sop_class, "1.2.840.10008.1.3.10") == 0;
        get_str(ds, DCM_SOPInstanceUID, t->sop_instance, sizeof t->sop_instance);
        get_str(ds, DCM_StudyInstanceUID, t->study_uid, sizeof t->study_uid);
        get_str(ds, DCM_SeriesInstanceUID, t->series_uid, sizeof t->series_uid);
        get_str(ds, DCM_PatientID, t->patient_id, sizeof t->patient_id);
        get_str(ds, DCM_Modality, t->modality, sizeof t->modality);
        get_str(ds, DCM_BodyPartExamined, t->body_part, sizeof t->body_part);
        get_str(ds, DCM_PhotometricInterpretation, t->photometric, sizeof t->photometric);
        get_image_type(ds, t->image_type, sizeof t->image_type);
        const dcm_file_facts *fa = &f->facts;
        h->has_pixel_data = fa->has_pixel_data;
        h->rows = (int32_t)fa->rows;
        h->cols = (int32_t)fa->cols;
        h->frames = fa->frames ? (int32_t)fa->frames : 1;
        h->samples = fa->samples ? (int32_t)fa->samples : 1;
        h->bits_allocated = (int32_t)fa->bits_allocated;
        h->bits_stored = get_us(ds, DCM_BitsStored, h->bits_allocated);
        h->high_bit = get_us(ds, DCM_HighBit, h->bits_stored - 1);
        h->pixel_rep = get_us(ds, DCM_PixelRepresentation, 0);
        read_padding(ds, h);
        h->echo = get_is(ds, DCM_EchoNumbers);
        h->temporal = get_is(ds, DCM_TemporalPositionIdentifier);
        h->acquisition = get_is(ds, DCM_AcquisitionNumber);
        h->series_number = get_is(ds, DCM_SeriesNumber);
        h->slice_thickness = get_ds(ds, DCM_SliceThickness, 0);
        h->spacing_between = get_ds(ds, DCM_SpacingBetweenSlices, 0);
        if (h->has_pixel_data) {
            vs_status s = read_frames(ds, h, err);
            if (s) {
                dcm_header_free(h);
                return s;
            }
        }
    } catch (...) {
        dcm_header_free(h);
        return VS_FAIL(err, VS_ERR_FORMAT, "header could not be read");
    }
    return VS_OK;
}

extern "C" void dcm_header_free(dcm_header *h) {
    free(h->frame);
    h->frame = nullptr;
    free(h->sop_instance);
    h->sop_instance = nullptr;
}

// Native little-endian pixel data that DCMTK has not loaded, where dcm_file_check found it:
// the frame's bytes with one pread straight into buf. DCMTK would read the whole value into a
// buffer of its own (fresh pages per file, kept until the file is freed) and copy the frame
// out. Returns 0 when the fast path does not apply (the caller asks DCMTK), 1 when it ran
// (*st says how).
static int native_frame(dcm_file *f, DcmElement *e, uint32_t frame, void *buf, uint64_t n,
                        vs_status *st, vs_error *err) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const dcm_file_facts &fa = f->facts;
    const std::string &xs = f->transfer_syntax;
    if ((xs != "1.2.840.10008.1.2" && xs != "1.2.840.10008.1.2.1") || fa.pixel_encapsulated ||
        fa.pixel_offset == 0 || fa.pixel_end < fa.pixel_length || e->valueLoaded())
        return 0;
    uint64_t start = fa.pixel_end - fa.pixel_length, at = (uint64_t)frame * n;
    if (at + n > fa.pixel_length || at + n < at) return 0; // DCMTK gives the reason
    int fd = f->fd >= 0 ? f->fd : open(f->path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *st = VS_FAIL(err, VS_ERR_FORMAT, "cannot open the file again to read its pixels");
        return 1;
    }
    uint64_t done = 0;
    while (done < n) {
        ssize_t got = pread(fd, (char *)buf + done, n - done, (off_t)(start + at + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        done += (uint64_t)got;
    }
    if (fd != f->fd) close(fd);
    *st = done == n ? VS_OK
                    : VS_FAIL(err, VS_ERR_FORMAT,
                              "frame %u: the file is shorter than when it was "
                              "checked (changed or truncated)",
                              (unsigned)frame);
    return 1;
#else
    (void)f, (void)e, (void)frame, (void)buf, (void)n, (void)st, (void)err;
    return 0;
#endif
}

extern "C" vs_status dcm_shim_decode_frame(dcm_file *f, uint32_t frame, uint32_t *start_fragment,
                                           void *buf, uint64_t buf_bytes, vs_error *err) {
    if (buf_bytes > 0xFFFFFFFFull) return VS_FAIL(err, VS_ERR_FORMAT, "frame over 4 GB");
    try {
        dcm_shim_register_codecs();
        DcmDataset *ds = f->dataset();
        if (dcm_shim_is_jpeg2000(f->transfer_syntax.c_str()))
            return dcm_shim_decode_j2k(f, frame, buf, buf_bytes, err);
        DcmElement *e = nullptr;
        // Only a DcmPixelData may be cast as one (a damaged VR makes DCMTK build another class).
        if (ds->findAndGetElement(DCM_PixelData, e).bad() || !e || e->ident() != EVR_PixelData)
            return VS_FAIL(err, VS_ERR_FORMAT, "no usable pixel data element");
        DcmPixelData *pd = OFstatic_cast(DcmPixelData *, e);
        Uint32 need = 0;
        if (pd->getUncompressedFrameSize(ds, need).bad() || need > buf_bytes)
            return VS_FAIL(err, VS_ERR_FORMAT, "frame size does not match the image attributes");
        vs_status st = VS_OK;
        if (need == buf_bytes && native_frame(f, e, frame, buf, buf_bytes, &st, err)) return st;
        OFString colour;
        Uint32 frag = *start_fragment;
        OFCondition c = pd->getUncompressedFrame(ds, frame, frag, buf, (Uint32)buf_bytes, colour);
        if (c.bad())
            return VS_FAIL(err, VS_ERR_FORMAT, "frame %u does not decode (%s)", (unsigned)frame,
                           c.text());
        *start_fragment = frag;
        // Decoded copies of compressed frames would otherwise pile up in the dataset.
        pd->removeAllButOriginalRepresentations();
    } catch (...) {
        return VS_FAIL(err, VS_ERR_FORMAT, "frame %u: decoder failed", (unsigned)frame);
    }
    return VS_OK;
}

extern "C" vs_status dcm_shim_dicomdir_files(dcm_file *f, void (*add)(void *ctx, const char *rel),
                                             void *ctx, vs_error *err) {
    try {
        DcmSequenceOfItems *seq = nullptr;
        if (f->dataset()->findAndGetSequence(DCM_DirectoryRecordSequence, seq).bad() || !seq)
            return VS_OK; // an empty DICOMDIR references nothing
        for (unsigned long i = 0; i < seq->card(); i++) {
            OFString id;
            if (seq->getItem(i)->findAndGetOFStringArray(DCM_ReferencedFileID, id).bad()) continue;
            std::string rel(id.c_str());
            for (char &ch : rel)
                if (ch == '\\') ch = '/';
            while (!rel.empty() && rel.back() == ' ')
                rel.pop_back();
            if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos) continue;
            add(ctx, rel.c_str());
        }
    } catch (...) {
        return VS_FAIL(err, VS_ERR_FORMAT, "DICOMDIR records could not be read");
    }
    return VS_OK;
}
