// dcmfile_impl.hh — the C++ inside of a dcmfile, for the DCMTK shims only (never C code).
#ifndef VS_DCMFILE_IMPL_HH
#define VS_DCMFILE_IMPL_HH

#include "dcmfile.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <string>

#include <unistd.h>

struct dcmfile {
    DcmFileFormat ff;
    std::string path;
    std::string transfer_syntax;
    dcmfile_facts facts;
    int fd = -1; // the source, kept open by dcmfile_load_open for dcmfile_save_copy
    DcmDataset *dataset() { return ff.getDataset(); }
    dcmfile() = default;
    dcmfile(const dcmfile &) = delete;
    dcmfile &operator=(const dcmfile &) = delete;
    ~dcmfile() {
        if (fd >= 0) close(fd);
    }
};

#endif
