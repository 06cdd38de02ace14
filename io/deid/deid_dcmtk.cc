// deid_dcmtk.cc — deid_apply: the profile applied to every element of a loaded dcmfile, at
// every nesting depth, with DCMTK. Decisions come from the table (deid_rule_find/resolve);
// this file only turns an action into an edit of an element. No exception leaves this file.
#include "deid_internal.h"
#include "dcmfile_impl.hh"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcdicent.h>
#include <dcmtk/dcmdata/dcelem.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmdata/dcvrui.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <mutex>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

const int kMaxDepth = 64; // deeper nesting is removed outright (hostile files)
// Past this many identifiers, scrubbing would cost idents x text length: text under action C
// is emptied instead (the stricter way).
const size_t kMaxIdents = 4096;

struct walker {
    deid_ctx *ctx;
    const unsigned char *opt;
    deid_file_result *res;
    int shift_days;
    bool cleaning = false; // inside a sequence being cleaned (action C): free text is scrubbed
    std::vector<std::string> idents; // identifiers to scrub from free text, longest first
    std::vector<const char *> ident_ptrs;
    bool too_many_idents = false;
    OFCondition fail = EC_Normal;
    DcmTagKey fail_tag;
};

bool vr_is(const char *vr, const char *list) { // list: "LO SH ST"
    for (const char *p = list; *p; p += p[2] ? 3 : 2)
        if (p[0] == vr[0] && p[1] == vr[1]) return true;
    return false;
}

const char *kTextVRs = "LO SH ST LT UT UC PN CS";
const char *kBinaryVRs = "OB OW OF OD OL OV UN";

std::vector<std::string> split_values(const OFString &s) {
    std::vector<std::string> out;
    size_t start = 0;
    for (;;) {
        size_t p = s.find('\\', start);
        out.emplace_back(s.substr(start, p == OFString_npos ? OFString_npos : p - start).c_str());
        if (p == OFString_npos) break;
        start = p + 1;
    }
    return out;
}

std::string join_values(const std::vector<std::string> &v) {
    std::string s;
    for (size_t i = 0; i < v.size(); i++)
        s += (i ? "\\" : "") + v[i];
    return s;
}

void note(walker &w, OFCondition c, DcmElement *el) {
    if (c.bad() && w.fail.good()) {
        w.fail = c;
        w.fail_tag = el->getTag();
    }
}

// --- pass 1: identifiers that free text must not repeat -----------------------------------

void add_ident(walker &w, const std::string &v) {
    std::string t = v;
    while (!t.empty() && t.back() == ' ')
        t.pop_back();
    while (!t.empty() && t.front() == ' ')
        t.erase(0, 1);
    if (t.size() >= 2) w.idents.push_back(t);
}

void add_tokens(walker &w, const std::string &v) {
    add_ident(w, v);
    std::string tok;
    for (char c : v + " ") {
        if (c == '^' || c == '=' || c == ' ' || c == ',' || c == '.' || c == '-') {
            add_ident(w, tok);
            tok.clear();
        } else {
            tok += c;
        }
    }
}

void add_date(walker &w, const std::string &d) {
    if (d.size() < 8) return;
    std::string y = d.substr(0, 4), m = d.substr(4, 2), dd = d.substr(6, 2);
    const std::string forms[] = {d.substr(0, 8),         y + "-" + m + "-" + dd,
                                 y + "." + m + "." + dd, y + "/" + m + "/" + dd,
                                 dd + "." + m + "." + y, dd + "/" + m + "/" + y,
                                 m + "/" + dd + "/" + y};
    for (const auto &f : forms)
        add_ident(w, f);
}

void collect_item(walker &w, DcmItem *item, int depth) {
    if (depth > kMaxDepth) return;
    for (unsigned long i = 0; i < item->card(); i++) {
        DcmElement *el = item->getElement(i);
        const char *vr = DcmVR(el->ident()).getVRName();
        if (el->ident() == EVR_SQ) {
            DcmSequenceOfItems *sq = OFstatic_cast(DcmSequenceOfItems *, el);
            for (unsigned long k = 0; k < sq->card(); k++)
                collect_item(w, sq->getItem(k), depth + 1);
            continue;
        }
        DcmTag tag = el->getTag();
        if (tag.getGroup() & 1) continue;
        const deid_rule *r = deid_rule_find(tag.getGroup(), tag.getElement());
        bool names = vr_is(vr, "PN") || (r && vr_is(vr, "LO SH LT ST AE UC") &&
                                         deid_keyword_is_identifier(r->keyword));
        bool date = vr_is(vr, "DA DT");
        if (!names && !date) continue;
        OFString s;
        if (el->getOFStringArray(s).bad()) continue;
        for (const auto &v : split_values(s)) {
            if (names)
                add_tokens(w, v);
            else
                add_date(w, v);
        }
    }
}

void finish_idents(walker &w) {
    std::sort(w.idents.begin(), w.idents.end(), [](const std::string &a, const std::string &b) {
        return a.size() != b.size() ? a.size() > b.size() : a < b;
    });
    w.idents.erase(std::unique(w.idents.begin(), w.idents.end()), w.idents.end());
    w.too_many_idents = w.idents.size() > kMaxIdents;
    for (const auto &s : w.idents)
        w.ident_ptrs.push_back(s.c_str());
}

// --- pass 2: actions ------------------------------------------------------------------------

void walk_item(walker &w, DcmItem *item, int depth);

void walk_sequence(walker &w, DcmElement *el, int depth) {
    DcmSequenceOfItems *sq = OFstatic_cast(DcmSequenceOfItems *, el);
    for (unsigned long k = 0; k < sq->card(); k++)
        walk_item(w, sq->getItem(k), depth + 1);
}

void map_uids(walker &w, DcmElement *el, bool skip_standard) {
    OFString s;
    if (el->getOFStringArray(s).bad() || s.empty()) return;
    std::vector<std::string> v = split_values(s);
    for (auto &u : v) {
        while (!u.empty() && (u.back() == ' ' || u.back() == '\0'))
            u.pop_back();
        if (u.empty() || (skip_standard && deid_uid_is_standard(u.c_str()))) continue;
        char out[DEID_KEY_MAX];
        deid_uid_key(w.ctx, u.c_str(), out);
        u = out;
    }
    note(w, el->putString(join_values(v).c_str()), el);
    w.res->n_uids++;
}

void shift_dates(walker &w, DcmElement *el, bool dt) {
    OFString s;
    if (el->getOFStringArray(s).bad()) return;
    std::vector<std::string> v = split_values(s);
    for (auto &d : v) {
        char out[64];
        if (dt)
            deid_shift_dt(d.c_str(), w.shift_days, out, sizeof out);
        else
            deid_shift_da(d.c_str(), w.shift_days, out, sizeof out);
        d = out;
    }
    note(w, el->putString(join_values(v).c_str()), el);
}

void clean_text(walker &w, DcmElement *el) {
    OFString s;
    if (el->getOFStringArray(s).bad() || s.empty()) return;
    if (w.too_many_idents) {
        note(w, el->putString(""), el);
        return;
    }
    std::vector<char> out(s.size() + 1);
    deid_text_clean(s.c_str(), w.ident_ptrs.data(), (int)w.ident_ptrs.size(), out.data(),
                    out.size());
    note(w, el->putString(out.data()), el);
}

void dummy(walker &w, DcmElement *el, const char *vr) {
    if (vr_is(vr, kBinaryVRs)) {
        Uint32 n = el->getLength();
        if (n < 2) n = 2;
        std::vector<Uint8> zeros(n + (n & 1), 0);
        OFCondition c = el->putUint8Array(zeros.data(), (unsigned long)zeros.size());
        if (c.bad())
            c = el->putUint16Array(reinterpret_cast<Uint16 *>(zeros.data()), zeros.size() / 2);
        if (c.bad()) c = el->clear();
        note(w, c, el);
        return;
    }
    note(w, el->putString(deid_dummy_for_vr(vr)), el);
}

// 1 when neither the profile nor DCMTK's data dictionary knows this public tag: a vendor's
// misuse of a public group or a damaged tag number could hold anything, so it is removed.
bool unknown_public(const DcmTag &tag) {
    const DcmDataDictionary &dict = dcmDataDict.rdlock();
    const DcmDictEntry *entry = dict.findEntry(tag, nullptr);
    dcmDataDict.rdunlock();
    return entry == nullptr;
}

// The action for an element the profile does not list.
deid_action default_action(const walker &w, const DcmTag &tag, const char *vr) {
    if (vr_is(vr, "SQ")) return DEID_K;
    if (vr_is(vr, "UI"))
        return w.opt[DEID_OPT_RETAIN_UIDS] ||
                       deid_uid_tag_is_class(tag.getGroup(), tag.getElement())
                   ? DEID_K
                   : DEID_U;
    if (w.cleaning && vr_is(vr, "LO SH ST LT UT UC PN")) return DEID_C;
    if (vr_is(vr, "DA DT")) { // any other date is temporal information too
        if (w.opt[DEID_OPT_RETAIN_FULL_DATES]) return DEID_K;
        return w.opt[DEID_OPT_RETAIN_MODIFIED_DATES] ? DEID_C : DEID_X;
    }
    return DEID_K;
}

// 1 when an element of block bb of group g follows index i in item (the walk goes backwards,
// so those are the block's elements already judged and kept).
bool block_kept(DcmItem *item, unsigned long i, Uint16 g, Uint16 bb) {
    for (unsigned long k = i + 1; k < item->card(); k++) {
        DcmTag t = item->getElement(k)->getTag();
        if (t.getGroup() != g) break;
        if (t.getElement() >> 8 == bb) return true;
    }
    return false;
}

// 1: remove the private element at index i. Under Retain Safe Private, a data element
// (gggg,bbee) stays when the creator at (gggg,00bb) of the same item, element byte ee and its
// VR are a row of Table E.3.10-1 (io/deid_private.c, *row gets it) and its value conforms to
// its VR (a name in a DS is not a table speed); a creator stays only while its block keeps an
// element. Everything else private goes.
bool private_remove(walker &w, DcmItem *item, unsigned long i, DcmElement *el, const char *vr,
                    const deid_safe_private **row) {
    *row = nullptr;
    if (!w.opt[DEID_OPT_RETAIN_SAFE_PRIVATE]) return true;
    Uint16 g = el->getTag().getGroup(), e = el->getTag().getElement();
    OFString creator;
    if (e >= 0x0010 && e <= 0x00FF) return !block_kept(item, i, g, e);
    if (e < 0x1000) return true; // (gggg,0001-000F), (gggg,0100-0FFF): no creator reserves them
    if (item->findAndGetOFString(DcmTagKey(g, e >> 8), creator).bad()) return true;
    if (!deid_private_is_safe(creator.c_str(), g, (uint8_t)(e & 0xFF), vr)) return true;
    if (!vr_is(vr, "SQ") && el->checkValue().bad()) return true;
    *row = deid_private_safe_row(creator.c_str(), g, (uint8_t)(e & 0xFF));
    return false;
}

// A kept safe private element: a sequence is walked like any other, and UIDs become
// pseudonyms like every other instance UID (the table keeps references such as an analyzed
// series UID; Retain UIDs keeps them as they are). A UID element read as UN (implicit VR, not
// in DCMTK's dictionary) is replaced by a UI element first.
void private_keep(walker &w, DcmItem *item, DcmElement *el, const char *vr,
                  const deid_safe_private *row, int depth) {
    if (vr_is(vr, "SQ")) {
        walk_sequence(w, el, depth);
        return;
    }
    if (!row || strcmp(row->vr, "UI") != 0 || w.opt[DEID_OPT_RETAIN_UIDS]) return;
    if (vr_is(vr, "UI")) {
        map_uids(w, el, true);
        return;
    }
    Uint8 *bytes = nullptr;
    std::string value;
    if (el->getUint8Array(bytes).good() && bytes)
        value.assign(reinterpret_cast<const char *>(bytes), el->getLength());
    while (!value.empty() && (value.back() == '\0' || value.back() == ' '))
        value.pop_back();
    DcmUniqueIdentifier *ui = new DcmUniqueIdentifier(DcmTag(el->getTag(), EVR_UI));
    OFCondition c = ui->putString(value.c_str());
    if (c.good()) map_uids(w, ui, true);
    if (c.good()) c = item->insert(ui, OFTrue); // replaces (and deletes) el
    if (c.bad()) delete ui;
    note(w, c, el);
}

// Action C by VR: sequences cleaned inside, dates shifted (Modified Dates), AE titles keyed,
// text scrubbed of identifiers. Overlay and curve bitmaps are graphics the Clean Graphics
// option keeps (no OCR here: flagged); any other binary value cannot be cleaned: zeroed.
void clean(walker &w, DcmElement *el, const deid_rule *rule, const char *vr, int depth) {
    OFString s;
    char ae[17];
    if (vr_is(vr, "SQ")) {
        bool outer = w.cleaning;
        w.cleaning = true;
        walk_sequence(w, el, depth);
        w.cleaning = outer;
    } else if (vr_is(vr, "DA DT"))
        shift_dates(w, el, vr[1] == 'T');
    else if (vr_is(vr, "AE") && el->getOFString(s, 0).good() && !s.empty()) {
        deid_ae_key(w.ctx, s.c_str(), ae);
        note(w, el->putString(ae), el);
    } else if (vr_is(vr, kTextVRs))
        clean_text(w, el);
    else if (vr_is(vr, kBinaryVRs) && rule && rule->opts[DEID_OPT_CLEAN_GRAPHICS] == 'C')
        w.res->graphics_kept = 1;
    else if (vr_is(vr, kBinaryVRs))
        dummy(w, el, vr);
}

// Apply one action; returns true when the element must be removed from its item.
bool act(walker &w, DcmElement *el, const deid_rule *rule, deid_action a, const char *vr,
         int depth) {
    deid_file_result *r = w.res;
    bool sq = vr_is(vr, "SQ");
    switch (a) {
    case DEID_X: r->n_removed++; return true;
    case DEID_Z:
        r->n_emptied++;
        note(w, sq ? OFstatic_cast(DcmSequenceOfItems *, el)->clear() : el->clear(), el);
        return false;
    case DEID_D:
        if (sq) { // a dummy sequence: one empty item (the content is what identifies)
            DcmSequenceOfItems *seq = OFstatic_cast(DcmSequenceOfItems *, el);
            OFCondition c = seq->clear();
            if (c.good()) c = seq->insert(new DcmItem());
            note(w, c, el);
            r->n_dummied++;
        } else if (vr_is(vr, "UI"))
            map_uids(w, el, false);
        else
            dummy(w, el, vr), r->n_dummied++;
        return false;
    case DEID_U:
        if (sq)
            walk_sequence(w, el, depth);
        else if (vr_is(vr, "UI"))
            map_uids(w, el, !rule);
        else { // a UID we cannot read as one (UN in implicit VR files): removed, the stricter way
            r->n_removed++;
            return true;
        }
        return false;
    case DEID_C:
        r->n_cleaned++;
        clean(w, el, rule, vr, depth);
        return false;
    default: // K (and anything else): keep, cleaning inside sequences
        if (sq) walk_sequence(w, el, depth);
        return false;
    }
}

void walk_item(walker &w, DcmItem *item, int depth) {
    // Backwards, so removals keep the remaining indices valid and private data elements are
    // judged while their creator elements are still present.
    for (long i = (long)item->card() - 1; i >= 0; i--) {
        DcmElement *el = item->getElement((unsigned long)i);
        DcmTag tag = el->getTag();
        const char *vr = DcmVR(el->ident()).getVRName();
        bool remove;
        if (depth > kMaxDepth)
            remove = true;
        else if (tag.getGroup() & 1) {
            const deid_safe_private *row = nullptr;
            remove = private_remove(w, item, (unsigned long)i, el, vr, &row);
            if (remove)
                w.res->n_private_removed++;
            else
                private_keep(w, item, el, vr, row, depth);
        } else if (tag.getElement() == 0x0000)
            remove = true; // group lengths are recomputed
        else {
            const deid_rule *r = deid_rule_find(tag.getGroup(), tag.getElement());
            deid_action a = r                     ? deid_rule_resolve(r, w.opt)
                            : unknown_public(tag) ? DEID_X
                                                  : default_action(w, tag, vr);
            remove = act(w, el, r, a, vr, depth);
        }
        if (remove) delete item->remove((unsigned long)i);
    }
}

// --- burned-in text --------------------------------------------------------------------------

// Kinds of images that usually carry burned-in text when BurnedInAnnotation is absent.
const struct {
    const char *modality;   // NULL: any
    const char *sop_prefix; // NULL: any
    const char *reason;
} kBurnedInKinds[] = {
    {"US", nullptr, "ultrasound image without BurnedInAnnotation (usually burned-in text)"},
    {"XA", nullptr, "XA image without BurnedInAnnotation (screenshots carry burned-in text)"},
    {nullptr, "1.2.840.10008.5.1.4.1.1.7", "secondary capture without BurnedInAnnotation"},
    {"SC", nullptr, "secondary capture without BurnedInAnnotation"},
};

const char *burned_in_reason(DcmDataset *ds) {
    OFString burned, modality, sop;
    if (ds->findAndGetOFString(DCM_BurnedInAnnotation, burned).good()) {
        return burned == "NO" ? nullptr : "BurnedInAnnotation is not NO (burned-in text)";
    }
    ds->findAndGetOFString(DCM_Modality, modality);
    ds->findAndGetOFString(DCM_SOPClassUID, sop);
    for (const auto &k : kBurnedInKinds) {
        if (k.modality && modality != k.modality) continue;
        if (k.sop_prefix && sop.compare(0, strlen(k.sop_prefix), k.sop_prefix) != 0) continue;
        return k.reason;
    }
    return nullptr;
}

// --- markers ---------------------------------------------------------------------------------

OFCondition put_markers(walker &w, DcmDataset *ds, const char *pseudonym) {
    OFCondition c = ds->putAndInsertString(DCM_PatientName, pseudonym);
    if (c.good()) c = ds->putAndInsertString(DCM_PatientID, pseudonym);
    if (c.good()) c = ds->putAndInsertString(DCM_PatientIdentityRemoved, "YES");
    std::string method = "PS3.15 E.1 Basic Application Level Confidentiality Profile";
    const char *temporal = "REMOVED";
    if (w.opt[DEID_OPT_RETAIN_FULL_DATES]) temporal = "UNMODIFIED";
    if (w.opt[DEID_OPT_RETAIN_MODIFIED_DATES]) temporal = "MODIFIED";
    if (c.good()) c = ds->putAndInsertString(DCM_LongitudinalTemporalInformationModified, temporal);
    ds->findAndDeleteElement(DCM_DeidentificationMethodCodeSequence);
    for (int o = -1; o < DEID_N_OPTIONS && c.good(); o++) {
        if (o >= 0 && !w.opt[o]) continue;
        const char *code = o < 0 ? "113100" : deid_option_code((deid_option)o);
        const char *meaning = o < 0 ? "Basic Application Confidentiality Profile"
                                    : deid_option_meaning((deid_option)o);
        if (o >= 0) method += std::string("\\") + meaning;
        DcmItem *item = nullptr;
        c = ds->findOrCreateSequenceItem(DCM_DeidentificationMethodCodeSequence, item, -2);
        if (c.good()) c = item->putAndInsertString(DCM_CodeValue, code);
        if (c.good()) c = item->putAndInsertString(DCM_CodingSchemeDesignator, "DCM");
        if (c.good()) c = item->putAndInsertString(DCM_CodeMeaning, meaning);
    }
    if (c.good()) c = ds->putAndInsertString(DCM_DeidentificationMethod, method.c_str());
    return c;
}

// Fresh meta information (written from the dataset's new SOP UIDs on save) and a zeroed
// preamble: a default-constructed DcmMetaInfo holds 128 zero bytes and "DICM".
void reset_meta(dcmfile *f) {
    DcmMetaInfo fresh;
    *f->ff.getMetaInfo() = fresh;
}

vs_status apply(deid_ctx *ctx, dcmfile *f, deid_file_result *res, vs_error *err) {
    DcmDataset *ds = f->dataset();
    walker w;
    w.ctx = ctx;
    w.opt = ctx->opt.option;
    w.res = res;
    OFString pid, issuer, study, series, sop;
    ds->findAndGetOFString(DCM_PatientID, pid);
    ds->findAndGetOFString(DCM_IssuerOfPatientID, issuer);
    ds->findAndGetOFString(DCM_StudyInstanceUID, study);
    ds->findAndGetOFString(DCM_SeriesInstanceUID, series);
    ds->findAndGetOFString(DCM_SOPInstanceUID, sop);
    deid_patient_key(ctx, pid.c_str(), issuer.c_str(), res->patient_key);
    deid_uid_key(ctx, study.c_str(), res->study_key);
    deid_uid_key(ctx, series.c_str(), res->series_key);
    deid_uid_key(ctx, sop.c_str(), res->instance_key);

    const char *why = burned_in_reason(ds);
    if (why && !ctx->opt.accept_burned_in) {
        snprintf(res->reason, sizeof res->reason, "%s", why);
        return VS_OK;
    }
    res->burned_in_flagged = why != nullptr;
    w.shift_days = deid_date_shift(ctx, pid.c_str(), issuer.c_str());
    if (w.opt[DEID_OPT_RETAIN_MODIFIED_DATES]) res->date_shift_days = w.shift_days;

    collect_item(w, ds, 0);
    finish_idents(w);
    walk_item(w, ds, 0);
    if (w.fail.bad())
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: DCMTK cannot edit (%04X,%04X): %s",
                       f->path.c_str(), w.fail_tag.getGroup(), w.fail_tag.getElement(),
                       w.fail.text());
    OFCondition c = put_markers(w, ds, res->patient_key);
    if (c.bad())
        return VS_FAIL(err, VS_ERR_LIBRARY,
                       "%s: DCMTK cannot write the de-identification markers: %s", f->path.c_str(),
                       c.text());
    reset_meta(f);
    res->accepted = 1;

    char shift[16];
    snprintf(shift, sizeof shift, "%d", w.shift_days);
    vs_status s = deid_linkage_put(ctx, "patient", pid.c_str(), res->patient_key, err);
    if (s == VS_OK) s = deid_linkage_put(ctx, "date-shift", pid.c_str(), shift, err);
    if (s == VS_OK) s = deid_linkage_put(ctx, "study", study.c_str(), res->study_key, err);
    if (s == VS_OK) s = deid_linkage_put(ctx, "series", series.c_str(), res->series_key, err);
    if (s == VS_OK) s = deid_linkage_put(ctx, "instance", sop.c_str(), res->instance_key, err);
    return s;
}

} // namespace

extern "C" void deid_dcmtk_quiet(void) {
    static std::once_flag once;
    try {
        std::call_once(once, [] { OFLog::configure(OFLogger::FATAL_LOG_LEVEL); });
    } catch (...) {
    }
}

extern "C" vs_status deid_apply(deid_ctx *ctx, dcmfile *f, deid_file_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    try {
        return apply(ctx, f, res, err);
    } catch (...) {
        return VS_FAIL(err, VS_ERR_LIBRARY, "%s: de-identification failed inside DCMTK",
                       f->path.c_str());
    }
}
