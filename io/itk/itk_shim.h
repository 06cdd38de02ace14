/* itk_shim.h — the C face of vesalius's ITK code (image formats, resampling, N4).
 * No ITK exception crosses this boundary: every entry point catches and returns a status. */
#ifndef VS_ITK_SHIM_H
#define VS_ITK_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

/* ITK's full version string, e.g. "5.2.1". */
const char *itkshim_version(void);

#ifdef __cplusplus
}
#endif
#endif
