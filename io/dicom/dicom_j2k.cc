// dicom_j2k.cc — JPEG 2000 frames (1.2.840.10008.1.2.4.90 / .91), which DCMTK 3.6.7 cannot
// decode: OpenJPEG on the frame's encapsulated fragments, taken from the dataset dcm_file_check
// already validated (no second DICOM parser). Grey images only; colour is skipped earlier.
#include "dicom_internal.h"
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>

#include <openjpeg.h>

#include <cstring>
#include <vector>

namespace {

struct mem_stream {
    const unsigned char *p;
    size_t n, pos;
};

OPJ_SIZE_T mem_read(void *buf, OPJ_SIZE_T n, void *u) {
    mem_stream *m = static_cast<mem_stream *>(u);
    if (m->pos >= m->n) return (OPJ_SIZE_T)-1;
    size_t k = n < m->n - m->pos ? n : m->n - m->pos;
    memcpy(buf, m->p + m->pos, k);
    m->pos += k;
    return k;
}

OPJ_OFF_T mem_skip(OPJ_OFF_T n, void *u) {
    mem_stream *m = static_cast<mem_stream *>(u);
    if (n < 0) {
        if ((size_t)-n > m->pos) return -1;
        m->pos -= (size_t)-n;
    } else {
        m->pos = (size_t)n > m->n - m->pos ? m->n : m->pos + (size_t)n;
    }
    return n;
}

OPJ_BOOL mem_seek(OPJ_OFF_T n, void *u) {
    mem_stream *m = static_cast<mem_stream *>(u);
    if (n < 0 || (size_t)n > m->n) return OPJ_FALSE;
    m->pos = (size_t)n;
    return OPJ_TRUE;
}

void quiet(const char *, void *) {}

// The bytes of one frame: all fragments when there is one frame, else fragment `frame`.
vs_status frame_bytes(dcm_file *f, uint32_t frame, std::vector<unsigned char> &out, vs_error *err) {
    DcmDataset *ds = f->dataset();
    DcmElement *e = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, e).bad() || !e || e->ident() != EVR_PixelData)
        return VS_FAIL(err, VS_ERR_FORMAT, "no usable pixel data element");
    DcmPixelData *pd = OFstatic_cast(DcmPixelData *, e);
    DcmPixelSequence *seq = nullptr;
    E_TransferSyntax xs = ds->getOriginalXfer();
    if (pd->getEncapsulatedRepresentation(xs, nullptr, seq).bad() || !seq)
        return VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 pixel data is not encapsulated");
    unsigned long n_items = seq->card(); // item 0 is the basic offset table
    if (n_items < 2) return VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 pixel data has no fragments");
    unsigned long n_frag = n_items - 1;
    uint32_t frames = f->facts.frames ? f->facts.frames : 1;
    unsigned long first, last;
    if (frames == 1) {
        first = 1;
        last = n_frag;
    } else if (n_frag == frames) {
        first = last = frame + 1;
    } else {
        return VS_FAIL(err, VS_ERR_FORMAT, "%lu JPEG 2000 fragments for %u frames",
                       (unsigned long)n_frag, (unsigned)frames);
    }
    for (unsigned long i = first; i <= last; i++) {
        DcmPixelItem *item = nullptr;
        Uint8 *p = nullptr;
        if (seq->getItem(item, i).bad() || !item || item->getUint8Array(p).bad())
            return VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 fragment %lu unreadable", i);
        Uint32 len = item->getLength();
        if (len && p) out.insert(out.end(), p, p + len);
    }
    return VS_OK;
}

} // namespace

extern "C" int dcm_shim_is_jpeg2000(const char *ts) {
    return strcmp(ts, "1.2.840.10008.1.2.4.90") == 0 || strcmp(ts, "1.2.840.10008.1.2.4.91") == 0;
}

extern "C" vs_status dcm_shim_decode_j2k(dcm_file *f, uint32_t frame, void *buf, uint64_t buf_bytes,
                                         vs_error *err) {
    opj_codec_t *codec = nullptr;
    opj_stream_t *stream = nullptr;
    opj_image_t *img = nullptr;
    vs_status st = VS_OK;
    try {
        std::vector<unsigned char> bytes;
        st = frame_bytes(f, frame, bytes, err);
        if (st) return st;
        if (bytes.size() < 12) return VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 frame too short");
        // A raw codestream starts FF 4F FF 51; anything else is treated as a JP2 file.
        bool raw = bytes[0] == 0xFF && bytes[1] == 0x4F;
        codec = opj_create_decompress(raw ? OPJ_CODEC_J2K : OPJ_CODEC_JP2);
        opj_set_info_handler(codec, quiet, nullptr);
        opj_set_warning_handler(codec, quiet, nullptr);
        opj_set_error_handler(codec, quiet, nullptr);
        opj_dparameters_t prm;
        opj_set_default_decoder_parameters(&prm);
        mem_stream ms = {bytes.data(), bytes.size(), 0};
        stream = opj_stream_create(1 << 16, OPJ_TRUE);
        opj_stream_set_user_data(stream, &ms, nullptr);
        opj_stream_set_user_data_length(stream, bytes.size());
        opj_stream_set_read_function(stream, mem_read);
        opj_stream_set_skip_function(stream, mem_skip);
        opj_stream_set_seek_function(stream, mem_seek);
        if (!opj_setup_decoder(codec, &prm) || !opj_read_header(stream, codec, &img) || !img) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 header does not decode");
            goto done;
        }
        // Refuse before decoding: the codestream must match the DICOM image size exactly.
        const dcm_file_facts &fa = f->facts;
        if (img->numcomps != 1 || img->x1 - img->x0 != fa.cols || img->y1 - img->y0 != fa.rows) {
            st = VS_FAIL(err, VS_ERR_FORMAT,
                         "JPEG 2000 codestream (%u components, %ux%u) does not "
                         "match the image (%ux%u grey)",
                         (unsigned)img->numcomps, (unsigned)(img->x1 - img->x0),
                         (unsigned)(img->y1 - img->y0), (unsigned)fa.cols, (unsigned)fa.rows);
            goto done;
        }
        if (!opj_decode(codec, stream, img) || !opj_end_decompress(codec, stream)) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 frame %u does not decode", (unsigned)frame);
            goto done;
        }
        const opj_image_comp_t &c = img->comps[0];
        size_t n = (size_t)fa.rows * fa.cols;
        if (!c.data || c.w != fa.cols || c.h != fa.rows || c.prec > 32) {
            st = VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 component does not match the image");
            goto done;
        }
        // Samples go out as stored bits (two's complement for signed); the pixel rules then mask
        // and sign-extend by the DICOM header, as for every other syntax: the header's Pixel
        // Representation wins over the codestream's signedness (dicom_internal.h).
        if (fa.bits_allocated == 8 && buf_bytes >= n)
            for (size_t i = 0; i < n; i++)
                ((uint8_t *)buf)[i] = (uint8_t)c.data[i];
        else if (fa.bits_allocated == 16 && buf_bytes >= 2 * n)
            for (size_t i = 0; i < n; i++)
                ((uint16_t *)buf)[i] = (uint16_t)c.data[i];
        else if (fa.bits_allocated == 32 && buf_bytes >= 4 * n)
            for (size_t i = 0; i < n; i++)
                ((uint32_t *)buf)[i] = (uint32_t)c.data[i];
        else
            st = VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 output buffer does not fit");
    } catch (...) {
        st = VS_FAIL(err, VS_ERR_FORMAT, "JPEG 2000 decoder failed");
    }
done:
    if (img) opj_image_destroy(img);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
    return st;
}
