// dcmtk_shim.cc — DCMTK calls for vesalius, behind the C API of dcmtk_shim.h.
#include "dcmtk_shim.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcuid.h>

extern "C" const char *dcm_shim_version(void) { return OFFIS_DCMTK_VERSION; }
