/* dcmdict_table.h — the shape of the table dcmdict_gen.cc writes at build time (C++ only). */
#ifndef VS_DCMDICT_TABLE_H
#define VS_DCMDICT_TABLE_H

struct dcm_dict_file { /* one of DCMTK's dictionary files as it was at build time */
    const char *path;
    long long size, mtime_s;
    long mtime_ns;
};

struct dcm_dict_row { /* one DcmDictEntry */
    unsigned short group, element, upper_group, upper_element;
    int evr, vm_min, vm_max, group_restriction, element_restriction;
    const char *name, *version, *private_creator;
};

extern const dcm_dict_file dcm_dict_files[];
extern const int dcm_dict_n_files;
extern const dcm_dict_row dcm_dict_rows[];
extern const int dcm_dict_n_normal, dcm_dict_n_repeating;

#endif
