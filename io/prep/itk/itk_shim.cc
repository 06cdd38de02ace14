// itk_shim.cc — ITK calls for vesalius, behind the C API of itk_shim.h.
#include "itk_shim.h"

#include <itkVersion.h>

#include <string>

extern "C" const char *itkshim_version(void) {
    static std::string v;
    try {
        if (v.empty()) v = itk::Version::GetITKVersion();
    } catch (...) {
        return "unknown";
    }
    return v.c_str();
}
