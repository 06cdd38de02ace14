/* dcmdict_table.h — the shape of the table dcmdict_gen.cc writes at build time (C++ only). */
#ifndef VS_DCMDICT_TABLE_H
#define VS_DCMDICT_TABLE_H

struct dcmdict_file { /* one of DCMTK's dictionary files as it was at build time */
    const char *path;
    long long size, mtime_s;
    long mtime_ns;
};

struct dcmdict_row { /* one DcmDictEntry */
    unsigned short group, element, upper_group, upper_element;
    int evr, vm_min, vm_max, group_restriction, element_restriction;
    const char *name, *version, *private_creator;
};

extern const dcmdict_file dcmdict_files[];
extern const int dcmdict_n_files;
extern const dcmdict_row dcmdict_rows[];
extern const int dcmdict_n_normal, dcmdict_n_repeating;

#endif
