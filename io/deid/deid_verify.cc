// deid_verify.cc — deid_verify_file: scan a DICOM file for what de-identification must not
// leave behind. Hits name the file and the tag path, never the value.
#include "deid_internal.h"
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvr.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <strings.h>
#include <vector>

namespace {

struct scan {
    const char *path;
    const deid_phi *phi;
    deid_hit_fn fn;
    void *user;
    int hits = 0;
    unsigned char opt[DEID_N_OPTIONS] = {0};
    // values the raw scan must not flag as UIDs: every UI value (checked here) and the text of
    // attributes the profile keeps (e.g. SoftwareVersions "1.0.0.20170515")
    std::vector<std::string> accepted;
};

void hit(scan &s, const std::string &where, const char *what) {
    deid_hit h;
    h.path = s.path;
    snprintf(h.where, sizeof h.where, "%s", where.c_str());
    h.what = what;
    s.hits++;
    if (s.fn) s.fn(&h, s.user);
}

std::string tag_str(const DcmTag &t) {
    char b[16];
    snprintf(b, sizeof b, "(%04X,%04X)", t.getGroup(), t.getElement());
    return b;
}

bool is_string_vr(DcmEVR vr) {
    static const DcmEVR text[] = {EVR_AE, EVR_AS, EVR_CS, EVR_DA, EVR_DS, EVR_DT,
                                  EVR_IS, EVR_LO, EVR_LT, EVR_PN, EVR_SH, EVR_ST,
                                  EVR_TM, EVR_UC, EVR_UI, EVR_UR, EVR_UT};
    for (DcmEVR t : text)
        if (vr == t) return true;
    return false;
}

// The options a file declares in DeidentificationMethodCodeSequence.
void read_declared(scan &s, DcmDataset *ds) {
    for (int k = 0;; k++) {
        DcmItem *item = nullptr;
        if (ds->findAndGetSequenceItem(DCM_DeidentificationMethodCodeSequence, item, k).bad())
            break;
        OFString code;
        item->findAndGetOFString(DCM_CodeValue, code);
        for (int o = 0; o < DEID_N_OPTIONS; o++)
            if (code == deid_option_code((deid_option)o)) s.opt[o] = 1;
    }
}

bool is_empty(DcmElement *el) {
    if (el->ident() == EVR_SQ) return OFstatic_cast(DcmSequenceOfItems *, el)->card() == 0;
    return el->getLength() == 0;
}

// The values of a string element (split at backslashes), trailing padding removed.
std::vector<std::string> uid_values(DcmElement *el) {
    std::vector<std::string> out;
    OFString v;
    if (el->getOFStringArray(v).bad()) return out;
    size_t start = 0;
    for (;;) {
        size_t p = v.find('\\', start);
        std::string u = v.substr(start, p == OFString_npos ? OFString_npos : p - start).c_str();
        while (!u.empty() && (u.back() == ' ' || u.back() == '\0'))
            u.pop_back();
        if (!u.empty()) out.push_back(u);
        if (p == OFString_npos) return out;
        start = p + 1;
    }
}

void check_uids(scan &s, const std::vector<std::string> &uids, const std::string &where) {
    for (const std::string &u : uids)
        if (!deid_uid_is_standard(u.c_str()) && !deid_uid_is_pseudonym(u.c_str())) {
            hit(s, where, "UID not of the 2.25 pseudonym form");
            return;
        }
}

// A private data element (gggg,bbee) the declared Retain Safe Private option keeps: its block's
// creator (gggg,00bb) in the same item, element byte ee and VR are a row of Table E.3.10-1 and
// its value conforms to its VR (as anonymize decides, io/deid/deid_apply.c private_remove).
bool private_element_safe(DcmItem *item, DcmElement *el) {
    DcmTag t = el->getTag();
    Uint16 g = t.getGroup(), e = t.getElement();
    OFString creator;
    return e >= 0x1000 && item->findAndGetOFString(DcmTagKey(g, e >> 8), creator).good() &&
           deid_private_is_safe(creator.c_str(), g, (uint8_t)(e & 0xFF),
                                DcmVR(el->ident()).getVRName()) &&
           (el->ident() == EVR_SQ || el->checkValue().good());
}

// Any private element is a hit unless the file declares Retain Safe Private and the element is
// safe, or it is the creator (gggg,00bb) of a block holding a safe element (as anonymize keeps
// a creator only for a block that keeps an element).
bool private_safe(const scan &s, DcmItem *item, DcmElement *el) {
    if (!s.opt[DEID_OPT_RETAIN_SAFE_PRIVATE]) return false;
    DcmTag t = el->getTag();
    Uint16 g = t.getGroup(), e = t.getElement();
    if (e < 0x10 || (e > 0xFF && e < 0x1000)) return false;
    if (e >= 0x1000) return private_element_safe(item, el);
    for (unsigned long k = 0; k < item->card(); k++) {
        DcmElement *other = item->getElement(k);
        DcmTag o = other->getTag();
        if (o.getGroup() == g && o.getElement() >> 8 == e && private_element_safe(item, other))
            return true;
    }
    return false;
}

void scan_item(scan &s, DcmItem *item, const std::string &prefix, int depth);

void scan_element(scan &s, DcmItem *item, DcmElement *el, const std::string &where, int depth) {
    DcmTag tag = el->getTag();
    Uint16 g = tag.getGroup(), e = tag.getElement();
    bool kept = false; // the declared options keep this attribute as it was
    if (g & 1) {
        if (!private_safe(s, item, el))
            hit(s, where,
                e >= 0x10 && e <= 0xFF ? "private creator of no safe element"
                                       : "private attribute");
    } else if (const deid_rule *r = deid_rule_find(g, e)) {
        deid_action a = deid_rule_resolve(r, s.opt);
        bool combined = r->basic >= DEID_ZD;
        if (a == DEID_X && (!combined || !is_empty(el)))
            hit(s, where, "attribute the profile removes");
        kept = a == DEID_K; // e.g. Device UID under Retain Device Identity
    }
    // text the profile keeps: K under the declared options, or a standard attribute not in it
    bool text_kept = !(g & 1) && (kept || !deid_rule_find(g, e));
    if (el->ident() == EVR_UI) {
        std::vector<std::string> uids = uid_values(el);
        if (!kept && !s.opt[DEID_OPT_RETAIN_UIDS] && !deid_uid_tag_is_class(g, e))
            check_uids(s, uids, where);
        s.accepted.insert(s.accepted.end(), uids.begin(), uids.end());
    } else if (text_kept && is_string_vr(el->ident())) {
        std::vector<std::string> values = uid_values(el);
        s.accepted.insert(s.accepted.end(), values.begin(), values.end());
    }
    if (deid_phi_count(s.phi) > 0 && is_string_vr(el->ident())) {
        OFString v;
        size_t at = 0;
        if (el->getOFStringArray(v).good() && deid_phi_find(s.phi, v.c_str(), v.size(), &at))
            hit(s, where, "listed identifier in a text value");
    }
    if (el->ident() == EVR_SQ) {
        DcmSequenceOfItems *sq = OFstatic_cast(DcmSequenceOfItems *, el);
        for (unsigned long k = 0; k < sq->card(); k++)
            scan_item(s, sq->getItem(k), where + "[" + std::to_string(k) + "].", depth + 1);
    }
}

void scan_item(scan &s, DcmItem *item, const std::string &prefix, int depth) {
    if (depth > 64) {
        hit(s, prefix, "sequence nesting deeper than 64 (not scanned)");
        return;
    }
    for (unsigned long i = 0; i < item->card(); i++) {
        DcmElement *el = item->getElement(i);
        scan_element(s, item, el, prefix + tag_str(el->getTag()), depth);
    }
}

} // namespace

extern "C" vs_status deid_verify_file(const char *path, const deid_phi *phi, deid_hit_fn fn,
                                      void *user, int *n_hits, vs_error *err) {
    dcm_file *f = nullptr;
    dcm_file_quiet();
    vs_status st = dcm_file_load(path, nullptr, &f, err);
    if (st != VS_OK) return st;
    scan s;
    s.path = path;
    s.phi = phi;
    s.fn = fn;
    s.user = user;
    try {
        DcmDataset *ds = f->dataset();
        read_declared(s, ds);
        OFString removed;
        if (ds->findAndGetOFString(DCM_PatientIdentityRemoved, removed).bad() || removed != "YES")
            hit(s, "(0012,0062)", "PatientIdentityRemoved is not YES");
        scan_item(s, f->ff.getMetaInfo(), "meta ", 0);
        scan_item(s, ds, "", 0);
    } catch (...) {
        dcm_file_free(f);
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: scanning failed inside DCMTK", path);
    }
    dcm_file_free(f);
    // UIDs outside UI elements (in text, UN, OB values) are what the raw scan adds
    std::vector<const char *> allowed;
    try {
        for (const std::string &u : s.accepted)
            allowed.push_back(u.c_str());
    } catch (...) {
        return VS_FAIL(err, VS_ERR_NOMEM, "%s: out of memory scanning", path);
    }
    st = deid_scan_raw(path, phi, allowed.data(), (int)allowed.size(), fn, user, &s.hits, err);
    *n_hits += s.hits;
    return st;
}
