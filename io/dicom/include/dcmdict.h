/* dcmdict.h — DCMTK's data dictionary from a table built into the program.
 *
 * DCMTK parses its text dictionaries (dicom.dic, private.dic: ~7,800 entries, ~430 KB) the first
 * time any process touches a DICOM element: 10-15 ms of serial CPU, a tenth of anonymizing a
 * 300-file series. dcmdict_gen.cc writes the dictionary DCMTK loads as a table at build time;
 * dcm_dict_install puts that table in DCMTK's global dictionary instead (~1 ms).
 *
 * Invariants:
 *   1. The installed dictionary equals the one DCMTK would load, entry by entry and in the
 *      repeating-tag list's order (dcm_dict_check, test_dcmdict).
 *   2. Nothing is installed (DCMTK loads its files as usual) when DCMDICTPATH is set, when a
 *      dictionary file's size or modification time differs from the build's, or when the
 *      global dictionary was already created.
 */
#ifndef VS_DCMDICT_H
#define VS_DCMDICT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Call once, before any thread starts and before any other DCMTK use. Returns 1 when the
 * built-in table was installed, 0 when DCMTK loads (or loaded) its own files. */
int dcm_dict_install(void);

/* Compares DCMTK's global dictionary with a fresh load of its files: 0 when equal, else -1 and
 * the first difference in why. */
int dcm_dict_check(char *why, size_t n);

#ifdef __cplusplus
}
#endif

#endif
