// dcmfile_impl.hh — the C++ inside of a dcmfile, for the DCMTK shims only (never C code).
#ifndef VS_DCMFILE_IMPL_HH
#define VS_DCMFILE_IMPL_HH

#include "dcmfile.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <string>

struct dcmfile {
    DcmFileFormat ff;
    std::string path;
    std::string transfer_syntax;
    dcmfile_facts facts;
    DcmDataset *dataset() { return ff.getDataset(); }
};

#endif
