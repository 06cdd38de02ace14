// itk_prep.cc — resampling and N4 bias-field correction for io/prep, and image files (NIfTI,
// NRRD, MetaImage) for label masks and heatmaps, behind itk_shim.h. One translation unit on
// purpose: each ITK TU costs ~40 s to compile.
#include "itk_shim.h"

#include <itkBSplineControlPointImageFilter.h>
#include <itkImage.h>
#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>
#include <itkImageRegionConstIterator.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkN4BiasFieldCorrectionImageFilter.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>
#include <itkShrinkImageFilter.h>

#include <cmath>
#include <cstring>
#include <exception>

namespace {

using FloatImage = itk::Image<float, 3>;
using MaskImage = itk::Image<unsigned char, 3>;

// Geometry of a volume onto an ITK image (ITK's index order is ours: column, row, slice).
template <typename Img>
void set_geometry(Img *img, const int64_t size[3], const double sp[3], const double org[3],
                  const double dir[9]) {
    typename Img::RegionType region;
    typename Img::SizeType sz;
    sz[0] = (itk::SizeValueType)size[2];
    sz[1] = (itk::SizeValueType)size[1];
    sz[2] = (itk::SizeValueType)size[0];
    region.SetSize(sz);
    img->SetRegions(region);
    typename Img::SpacingType s;
    typename Img::PointType o;
    typename Img::DirectionType d;
    for (int a = 0; a < 3; a++) {
        s[a] = sp[a];
        o[a] = org[a];
        for (int c = 0; c < 3; c++)
            d(a, c) = dir[a * 3 + c];
    }
    img->SetSpacing(s);
    img->SetOrigin(o);
    img->SetDirection(d);
}

// A float copy of a volume of any voxel type.
FloatImage::Pointer to_float_image(const volume *v) {
    auto img = FloatImage::New();
    int64_t size[3] = {v->n_slices, v->n_rows, v->n_cols};
    set_geometry(img.GetPointer(), size, v->spacing, v->origin, v->direction);
    img->Allocate();
    float *dst = img->GetBufferPointer();
    size_t n = (size_t)volume_n_voxels(v);
    for (size_t i = 0; i < n; i++) {
        switch (v->dtype) {
        case VOL_INT16: dst[i] = ((const int16_t *)v->voxels)[i]; break;
        case VOL_FLOAT32: dst[i] = ((const float *)v->voxels)[i]; break;
        case VOL_UINT8: dst[i] = ((const uint8_t *)v->voxels)[i]; break;
        }
    }
    return img;
}

void copy_text(const volume *in, volume *out) {
    memcpy(out->modality, in->modality, sizeof out->modality);
    memcpy(out->body_part, in->body_part, sizeof out->body_part);
    memcpy(out->units, in->units, sizeof out->units);
    memcpy(out->patient_key, in->patient_key, sizeof out->patient_key);
    memcpy(out->study_key, in->study_key, sizeof out->study_key);
    memcpy(out->series_key, in->series_key, sizeof out->series_key);
}

vs_status resample(const volume *in, const int64_t size[3], const double spacing[3],
                   const double origin[3], const double direction[9], int nearest, volume *out,
                   vs_error *err) {
    auto src = to_float_image(in);
    using Filter = itk::ResampleImageFilter<FloatImage, FloatImage, double>;
    auto f = Filter::New();
    f->SetInput(src);
    if (nearest)
        f->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<FloatImage, double>::New());
    else
        f->SetInterpolator(itk::LinearInterpolateImageFunction<FloatImage, double>::New());
    auto ref = FloatImage::New();
    set_geometry(ref.GetPointer(), size, spacing, origin, direction);
    f->SetSize(ref->GetLargestPossibleRegion().GetSize());
    f->SetOutputSpacing(ref->GetSpacing());
    f->SetOutputOrigin(ref->GetOrigin());
    f->SetOutputDirection(ref->GetDirection());
    f->SetDefaultPixelValue(0.0f);
    f->Update();
    const float *res = f->GetOutput()->GetBufferPointer();
    vol_dtype t = nearest ? in->dtype : VOL_FLOAT32;
    memset(out, 0, sizeof *out);
    vs_status st = volume_alloc(out, size[0], size[1], size[2], t, 0, err);
    if (st != VS_OK) return st;
    size_t n = (size_t)volume_n_voxels(out);
    for (size_t i = 0; i < n; i++) {
        switch (t) {
        case VOL_INT16: ((int16_t *)out->voxels)[i] = (int16_t)std::lrint(res[i]); break;
        case VOL_FLOAT32: ((float *)out->voxels)[i] = res[i]; break;
        case VOL_UINT8: ((uint8_t *)out->voxels)[i] = (uint8_t)std::lrint(res[i]); break;
        }
    }
    memcpy(out->spacing, spacing, sizeof out->spacing);
    memcpy(out->origin, origin, sizeof out->origin);
    memcpy(out->direction, direction, sizeof out->direction);
    volume_update_affine(out);
    copy_text(in, out);
    return VS_OK;
}

vs_status n4(volume *v, const uint8_t *mask_in, int shrink, int levels, int iterations,
             vs_error *err) {
    if (v->dtype != VOL_FLOAT32) return VS_FAIL(err, VS_ERR_INTERNAL, "N4 wants a float32 volume");
    auto img = to_float_image(v);
    auto mask = MaskImage::New();
    int64_t size[3] = {v->n_slices, v->n_rows, v->n_cols};
    set_geometry(mask.GetPointer(), size, v->spacing, v->origin, v->direction);
    mask->Allocate();
    size_t n = (size_t)volume_n_voxels(v), n_in = 0;
    float *px = img->GetBufferPointer();
    for (size_t i = 0; i < n; i++) {
        int in = mask_in[i] && px[i] > 0.0f;
        mask->GetBufferPointer()[i] = (unsigned char)in;
        n_in += (size_t)in;
        if (px[i] <= 0.0f) px[i] = 1e-3f; // N4 takes logarithms; such voxels are masked out
    }
    if (n_in < 64) return VS_FAIL(err, VS_ERR_FORMAT, "N4: the foreground mask is almost empty");

    using Shrink = itk::ShrinkImageFilter<FloatImage, FloatImage>;
    using ShrinkMask = itk::ShrinkImageFilter<MaskImage, MaskImage>;
    auto si = Shrink::New();
    auto sm = ShrinkMask::New();
    si->SetInput(img);
    sm->SetInput(mask);
    for (unsigned a = 0; a < 3; a++) {
        // never shrink an axis below 4 voxels (radiographs, thin slabs)
        unsigned f = (unsigned)shrink;
        while (f > 1 && size[2 - a] / f < 4)
            f--;
        si->SetShrinkFactor(a, f);
        sm->SetShrinkFactor(a, f);
    }
    using N4 = itk::N4BiasFieldCorrectionImageFilter<FloatImage, MaskImage, FloatImage>;
    auto f = N4::New();
    f->SetInput(si->GetOutput());
    f->SetMaskImage(sm->GetOutput());
    N4::VariableSizeArrayType iters(levels);
    iters.Fill((unsigned)iterations);
    f->SetMaximumNumberOfIterations(iters);
    f->SetNumberOfFittingLevels((unsigned)levels);
    f->SetConvergenceThreshold(1e-4f);
    f->Update();

    // The log field at full resolution from the control point lattice.
    using Lattice = N4::BiasFieldControlPointLatticeType;
    using Field = N4::ScalarImageType;
    auto b = itk::BSplineControlPointImageFilter<Lattice, Field>::New();
    b->SetInput(f->GetLogBiasFieldControlPointLattice());
    b->SetSplineOrder(f->GetSplineOrder());
    b->SetSize(img->GetLargestPossibleRegion().GetSize());
    b->SetOrigin(img->GetOrigin());
    b->SetSpacing(img->GetSpacing());
    b->SetDirection(img->GetDirection());
    b->Update();
    itk::ImageRegionConstIterator<Field> it(b->GetOutput(),
                                            b->GetOutput()->GetLargestPossibleRegion());
    float *dst = (float *)v->voxels;
    for (size_t i = 0; !it.IsAtEnd(); ++it, ++i)
        if (dst[i] > 0.0f) dst[i] = (float)(dst[i] / std::exp(it.Get()[0]));
    return VS_OK;
}

vs_status read_image(const char *path, volume *out, vs_error *err) {
    auto r = itk::ImageFileReader<FloatImage>::New();
    r->SetFileName(path);
    r->Update();
    FloatImage *img = r->GetOutput();
    auto sz = img->GetLargestPossibleRegion().GetSize();
    size_t n = (size_t)sz[0] * sz[1] * sz[2];
    const float *px = img->GetBufferPointer();
    int small_ints = 1; // every value an integer in 0..255: a label map, kept as uint8
    for (size_t i = 0; i < n && small_ints; i++)
        small_ints = px[i] >= 0.0f && px[i] <= 255.0f && px[i] == std::floor(px[i]);
    memset(out, 0, sizeof *out);
    vs_status st = volume_alloc(out, (int64_t)sz[2], (int64_t)sz[1], (int64_t)sz[0],
                                small_ints ? VOL_UINT8 : VOL_FLOAT32, 0, err);
    if (st != VS_OK) return st;
    for (size_t i = 0; i < n; i++) {
        if (small_ints)
            ((uint8_t *)out->voxels)[i] = (uint8_t)px[i];
        else
            ((float *)out->voxels)[i] = px[i];
    }
    for (int a = 0; a < 3; a++) {
        out->spacing[a] = img->GetSpacing()[a];
        out->origin[a] = img->GetOrigin()[a];
        for (int c = 0; c < 3; c++)
            out->direction[a * 3 + c] = img->GetDirection()(a, c);
    }
    volume_update_affine(out);
    return VS_OK;
}

vs_status write_image(const volume *v, const char *path) {
    auto img = to_float_image(v);
    auto w = itk::ImageFileWriter<FloatImage>::New();
    w->SetFileName(path);
    w->SetInput(img);
    w->Update();
    return VS_OK;
}

} // namespace

extern "C" vs_status itkshim_read_image(const char *path, volume *out, vs_error *err) {
    try {
        return read_image(path, out, err);
    } catch (...) {
        volume_free(out);
        return VS_FAIL(err, VS_ERR_FORMAT,
                       "cannot read image %s (NIfTI, NRRD or MetaImage expected)", path);
    }
}

extern "C" vs_status itkshim_write_image(const volume *v, const char *path, vs_error *err) {
    try {
        return write_image(v, path);
    } catch (...) {
        return VS_FAIL(err, VS_ERR_IO, "cannot write image %s", path);
    }
}

extern "C" vs_status itkshim_resample(const volume *in, const int64_t size[3],
                                      const double spacing[3], const double origin[3],
                                      const double direction[9], int nearest, volume *out,
                                      vs_error *err) {
    try {
        return resample(in, size, spacing, origin, direction, nearest, out, err);
    } catch (const std::exception &e) {
        volume_free(out);
        return VS_FAIL(err, VS_ERR_LIBRARY, "ITK resampling failed: %s", e.what());
    } catch (...) {
        volume_free(out);
        return VS_FAIL(err, VS_ERR_LIBRARY, "ITK resampling failed");
    }
}

extern "C" vs_status itkshim_n4(volume *v, const uint8_t *mask, int shrink, int levels,
                                int iterations, vs_error *err) {
    try {
        return n4(v, mask, shrink, levels, iterations, err);
    } catch (const std::exception &e) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "ITK N4 bias correction failed: %s", e.what());
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "ITK N4 bias correction failed");
    }
}
