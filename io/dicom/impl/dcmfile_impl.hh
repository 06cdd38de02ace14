// dcmfile_impl.hh — the C++ inside of a dcm_file, for the DCMTK shims only (never C code).
#ifndef VS_DCMFILE_IMPL_HH
#define VS_DCMFILE_IMPL_HH

#include "dcmfile.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcfilefo.h>

#include <string>

#include <unistd.h>

struct dcm_file {
    DcmFileFormat ff;
    std::string path;
    std::string transfer_syntax;
    dcm_file_facts facts;
    int fd = -1; // the source, kept open by dcm_file_load_open for dcm_file_save_copy
    DcmDataset *dataset() { return ff.getDataset(); }
    dcm_file() = default;
    dcm_file(const dcm_file &) = delete;
    dcm_file &operator=(const dcm_file &) = delete;
    ~dcm_file() {
        if (fd >= 0) close(fd);
    }
};

#endif
