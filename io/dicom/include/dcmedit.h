/* dcmedit.h — the elements of a loaded dcm_file, for policy written in C (de-identification):
 * the items of a dataset (the dataset itself, the items of its sequences) and their elements,
 * read and edited one at a time through a table of functions. DCMTK implements the table
 * (dcmedit.cc); a test implements it over a plain tree, so the policy is tested without DCMTK.
 *
 * Invariants:
 *   1. Handles are borrowed: an element handle is valid until its item is edited (remove,
 *      replace_ui, insert, erase); an item handle until its sequence is emptied.
 *   2. An edit returns 0 (or the new element), or -1 (NULL) with the library's reason kept
 *      for last_error. A read returns NULL (or 0) when the value is absent or unreadable.
 *   3. Nothing throws across: an exception inside any call (out of memory included) becomes
 *      its failure value, and threw() stays 1 for the rest of the walk.
 *   4. Strings handed out are malloc'ed copies the caller frees; multiple values keep DICOM's
 *      backslash between them.
 */
#ifndef VS_DCMEDIT_H
#define VS_DCMEDIT_H

#include <stddef.h>
#include <stdint.h>

#include "dcmfile.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dcm_edit dcm_edit; /* one walk over one dataset: the implementation's state */
typedef struct dcm_item dcm_item; /* the dataset, or an item of a sequence */
typedef struct dcm_elem dcm_elem; /* an element of an item */

/* Tags are (group << 16) | element. */
typedef struct dcm_edit_ops {
    /* --- reading the tree ---------------------------------------------------------------- */
    dcm_item *(*root)(dcm_edit *ed);                              /* the dataset */
    unsigned long (*count)(dcm_edit *ed, dcm_item *it);           /* elements of an item */
    dcm_elem *(*at)(dcm_edit *ed, dcm_item *it, unsigned long i); /* in tag order */
    uint32_t (*tag)(dcm_edit *ed, dcm_elem *e);
    const char *(*vr)(dcm_edit *ed, dcm_elem *e);         /* "PN", "SQ", "UN", ... */
    uint32_t (*length)(dcm_edit *ed, dcm_elem *e);        /* value length in bytes */
    unsigned long (*n_items)(dcm_edit *ed, dcm_elem *sq); /* items of a sequence */
    dcm_item *(*item)(dcm_edit *ed, dcm_elem *sq, unsigned long k);
    /* --- reading values ------------------------------------------------------------------ */
    char *(*values)(dcm_edit *ed, dcm_elem *e, size_t *len); /* every value, as text */
    char *(*value0)(dcm_edit *ed, dcm_elem *e);              /* the first value, as text */
    uint8_t *(*bytes)(dcm_edit *ed, dcm_elem *e, size_t *n); /* the raw value */
    int (*conforms)(dcm_edit *ed, dcm_elem *e);              /* 1: the value fits its VR */
    char *(*find)(dcm_edit *ed, dcm_item *it, uint32_t tag); /* first value of it's element */
    int (*in_dictionary)(dcm_edit *ed, uint32_t tag);        /* 1: the data dictionary has it */
    /* --- editing (0 or -1) --------------------------------------------------------------- */
    int (*put)(dcm_edit *ed, dcm_elem *e, const char *value);
    int (*put_zeros)(dcm_edit *ed, dcm_elem *e, uint32_t n_bytes); /* binary VRs */
    int (*clear)(dcm_edit *ed, dcm_elem *e);           /* empty value; a sequence loses its items */
    int (*one_empty_item)(dcm_edit *ed, dcm_elem *sq); /* a sequence of one empty item */
    int (*remove)(dcm_edit *ed, dcm_item *it, unsigned long i); /* the i-th element of it */
    /* Replace it's element of this tag by a UI element holding value: the new element, or
     * NULL on failure. */
    dcm_elem *(*replace_ui)(dcm_edit *ed, dcm_item *it, uint32_t tag, const char *value);
    /* Put value into it's element of this tag, creating it (VR from the dictionary). */
    int (*insert)(dcm_edit *ed, dcm_item *it, uint32_t tag, const char *value);
    void (*erase)(dcm_edit *ed, dcm_item *it, uint32_t tag); /* when present */
    /* A new last item of it's sequence sq_tag (created when absent); NULL on failure. */
    dcm_item *(*append_item)(dcm_edit *ed, dcm_item *it, uint32_t sq_tag);
    /* Fresh file meta information (written from the dataset on save), zeroed preamble. */
    int (*fresh_meta)(dcm_edit *ed);
    /* --- failures -------------------------------------------------------------------------- */
    const char *(*last_error)(dcm_edit *ed); /* the reason of the last failed edit */
    int (*threw)(dcm_edit *ed);              /* 1 once anything inside threw (invariant 3) */
} dcm_edit_ops;

/* DCMTK's table, over a loaded file: dcm_file_edit_open gives its state (NULL: out of memory),
 * dcm_file_edit_close frees it (not the file). */
extern const dcm_edit_ops dcm_file_edit_ops;
dcm_edit *dcm_file_edit_open(dcm_file *f);
void dcm_file_edit_close(dcm_edit *ed);

#ifdef __cplusplus
}
#endif
#endif
