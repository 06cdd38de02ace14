// dcmedit.cc — dcmedit.h's table over DCMTK: each entry is one DCMTK call on a DcmItem or
// DcmElement (the handles are those pointers), an OFCondition becomes 0 / -1 and its text, and
// no exception leaves a function (invariant 3 of dcmedit.h).
#include "dcmedit.h"
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmdata/dcvrui.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

struct dcm_edit {
    dcm_file *f;
    char why[160]; // the last failed edit's reason
    int threw;
};

namespace {

DcmItem *I(dcm_item *it) { return reinterpret_cast<DcmItem *>(it); }
DcmElement *E(dcm_elem *e) { return reinterpret_cast<DcmElement *>(e); }
dcm_item *item_handle(DcmItem *it) { return reinterpret_cast<dcm_item *>(it); }
DcmTagKey key(uint32_t tag) { return DcmTagKey((Uint16)(tag >> 16), (Uint16)(tag & 0xFFFF)); }

int result(dcm_edit *ed, OFCondition c) {
    if (c.good()) return 0;
    snprintf(ed->why, sizeof ed->why, "%s", c.text());
    return -1;
}

// Run body; an exception becomes `failed` and marks the walk (invariant 3).
template <class T, class F> T guard(dcm_edit *ed, T failed, F body) {
    try {
        return body();
    } catch (...) {
        ed->threw = 1;
        snprintf(ed->why, sizeof ed->why, "DCMTK threw");
        return failed;
    }
}

// A malloc'ed copy. Out of memory throws, so guard fails the walk: a value that cannot be
// handed out must never read as an absent one (an absent BurnedInAnnotation accepts a file).
char *copy(const OFString &s, size_t *len) {
    char *out = static_cast<char *>(malloc(s.size() + 1));
    if (!out) throw std::bad_alloc();
    memcpy(out, s.data(), s.size());
    out[s.size()] = '\0';
    if (len) *len = s.size();
    return out;
}

dcm_item *root(dcm_edit *ed) {
    return guard(ed, (dcm_item *)nullptr, [&] { return item_handle(ed->f->dataset()); });
}

unsigned long count(dcm_edit *ed, dcm_item *it) {
    return guard(ed, 0ul, [&] { return I(it)->card(); });
}

dcm_elem *at(dcm_edit *ed, dcm_item *it, unsigned long i) {
    return guard(ed, (dcm_elem *)nullptr,
                 [&] { return reinterpret_cast<dcm_elem *>(I(it)->getElement(i)); });
}

uint32_t tag(dcm_edit *ed, dcm_elem *e) {
    return guard(ed, 0u, [&] {
        DcmTag t = E(e)->getTag();
        return ((uint32_t)t.getGroup() << 16) | t.getElement();
    });
}

const char *vr(dcm_edit *ed, dcm_elem *e) {
    return guard(ed, "UN", [&] { return DcmVR(E(e)->ident()).getVRName(); });
}

uint32_t length(dcm_edit *ed, dcm_elem *e) {
    return guard(ed, 0u, [&] { return (uint32_t)E(e)->getLength(); });
}

unsigned long n_items(dcm_edit *ed, dcm_elem *sq) {
    return guard(ed, 0ul, [&] { return OFstatic_cast(DcmSequenceOfItems *, E(sq))->card(); });
}

dcm_item *item(dcm_edit *ed, dcm_elem *sq, unsigned long k) {
    return guard(ed, (dcm_item *)nullptr, [&] {
        return item_handle(OFstatic_cast(DcmSequenceOfItems *, E(sq))->getItem(k));
    });
}

char *values(dcm_edit *ed, dcm_elem *e, size_t *len) {
    return guard(ed, (char *)nullptr, [&]() -> char * {
        OFString s;
        if (E(e)->getOFStringArray(s).bad()) return nullptr;
        return copy(s, len);
    });
}

char *value0(dcm_edit *ed, dcm_elem *e) {
    return guard(ed, (char *)nullptr, [&]() -> char * {
        OFString s;
        if (E(e)->getOFString(s, 0).bad()) return nullptr;
        return copy(s, nullptr);
    });
}

uint8_t *bytes(dcm_edit *ed, dcm_elem *e, size_t *n) {
    return guard(ed, (uint8_t *)nullptr, [&]() -> uint8_t * {
        Uint8 *b = nullptr;
        if (E(e)->getUint8Array(b).bad() || !b) return nullptr;
        size_t len = E(e)->getLength();
        uint8_t *out = static_cast<uint8_t *>(malloc(len + 1));
        if (!out) throw std::bad_alloc(); // as copy()
        memcpy(out, b, len);
        *n = len;
        return out;
    });
}

int conforms(dcm_edit *ed, dcm_elem *e) {
    return guard(ed, 0, [&] { return E(e)->checkValue().good() ? 1 : 0; });
}

char *find(dcm_edit *ed, dcm_item *it, uint32_t tag) {
    return guard(ed, (char *)nullptr, [&]() -> char * {
        OFString s;
        if (I(it)->findAndGetOFString(key(tag), s).bad()) return nullptr;
        return copy(s, nullptr);
    });
}

int in_dictionary(dcm_edit *ed, uint32_t tag) {
    return guard(ed, 1, [&] {
        const DcmDataDictionary &dict = dcmDataDict.rdlock();
        const DcmDictEntry *entry = dict.findEntry(key(tag), nullptr);
        dcmDataDict.rdunlock();
        return entry != nullptr ? 1 : 0;
    });
}

int put(dcm_edit *ed, dcm_elem *e, const char *value) {
    return guard(ed, -1, [&] { return result(ed, E(e)->putString(value)); });
}

// Zeros as bytes (OB, UN), else as words (OW), else an empty value.
int put_zeros(dcm_edit *ed, dcm_elem *e, uint32_t n_bytes) {
    return guard(ed, -1, [&] {
        std::vector<Uint8> zeros(n_bytes, 0);
        OFCondition c = E(e)->putUint8Array(zeros.data(), (unsigned long)zeros.size());
        if (c.bad())
            c = E(e)->putUint16Array(reinterpret_cast<Uint16 *>(zeros.data()), zeros.size() / 2);
        if (c.bad()) c = E(e)->clear();
        return result(ed, c);
    });
}

int clear(dcm_edit *ed, dcm_elem *e) {
    return guard(ed, -1, [&] {
        DcmElement *el = E(e);
        return result(ed, el->ident() == EVR_SQ ? OFstatic_cast(DcmSequenceOfItems *, el)->clear()
                                                : el->clear());
    });
}

int one_empty_item(dcm_edit *ed, dcm_elem *sq) {
    return guard(ed, -1, [&] {
        DcmSequenceOfItems *seq = OFstatic_cast(DcmSequenceOfItems *, E(sq));
        OFCondition c = seq->clear();
        if (c.good()) c = seq->insert(new DcmItem());
        return result(ed, c);
    });
}

int remove_at(dcm_edit *ed, dcm_item *it, unsigned long i) {
    return guard(ed, -1, [&] {
        delete I(it)->remove(i);
        return 0;
    });
}

dcm_elem *replace_ui(dcm_edit *ed, dcm_item *it, uint32_t tag, const char *value) {
    return guard(ed, (dcm_elem *)nullptr, [&]() -> dcm_elem * {
        DcmUniqueIdentifier *ui = new DcmUniqueIdentifier(DcmTag(key(tag), EVR_UI));
        OFCondition c = ui->putString(value);
        if (c.good()) c = I(it)->insert(ui, OFTrue); // replaces (and deletes) the old element
        if (c.good()) return reinterpret_cast<dcm_elem *>(static_cast<DcmElement *>(ui));
        delete ui;
        result(ed, c);
        return nullptr;
    });
}

int insert(dcm_edit *ed, dcm_item *it, uint32_t tag, const char *value) {
    return guard(ed, -1, [&] { return result(ed, I(it)->putAndInsertString(key(tag), value)); });
}

void erase(dcm_edit *ed, dcm_item *it, uint32_t tag) {
    guard(ed, 0, [&] {
        I(it)->findAndDeleteElement(key(tag));
        return 0;
    });
}

dcm_item *append_item(dcm_edit *ed, dcm_item *it, uint32_t sq_tag) {
    return guard(ed, (dcm_item *)nullptr, [&]() -> dcm_item * {
        DcmItem *out = nullptr;
        if (result(ed, I(it)->findOrCreateSequenceItem(key(sq_tag), out, -2)) != 0) return nullptr;
        return item_handle(out);
    });
}

// A default-constructed DcmMetaInfo holds 128 zero bytes and "DICM"; the meta elements are
// written from the dataset's (new) SOP UIDs on save.
int fresh_meta(dcm_edit *ed) {
    return guard(ed, -1, [&] {
        DcmMetaInfo fresh;
        *ed->f->ff.getMetaInfo() = fresh;
        return 0;
    });
}

const char *last_error(dcm_edit *ed) { return ed->why; }
int threw(dcm_edit *ed) { return ed->threw; }

} // namespace

extern "C" const dcm_edit_ops dcm_file_edit_ops = {
    root,       count,         at,     tag,       vr,          length,
    n_items,    item,          values, value0,    bytes,       conforms,
    find,       in_dictionary, put,    put_zeros, clear,       one_empty_item,
    remove_at,  replace_ui,    insert, erase,     append_item, fresh_meta,
    last_error, threw,
};

extern "C" dcm_edit *dcm_file_edit_open(dcm_file *f) {
    dcm_edit *ed = static_cast<dcm_edit *>(calloc(1, sizeof *ed));
    if (ed) ed->f = f;
    return ed;
}

extern "C" void dcm_file_edit_close(dcm_edit *ed) { free(ed); }
