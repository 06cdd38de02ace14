/* dcmtk_shim.h — the C face of vesalius's DCMTK code (C++ behind extern "C").
 * No C++ exception or OFCondition crosses this boundary: failures become vs_status. */
#ifndef VS_DCMTK_SHIM_H
#define VS_DCMTK_SHIM_H

#ifdef __cplusplus
extern "C" {
#endif

/* DCMTK's version string, e.g. "3.6.7". */
const char *dcm_shim_version(void);

#ifdef __cplusplus
}
#endif
#endif
