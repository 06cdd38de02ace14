// dcmdict.cc — DCMTK's data dictionary from the build-time table (dcmdict.h).
#include "dcmdict.h"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcdicent.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dcmdict_table.h"

// Every dictionary file still the one the table was made from.
static bool files_unchanged() {
    for (int i = 0; i < dcm_dict_n_files; i++) {
        struct stat st;
        const dcm_dict_file *f = &dcm_dict_files[i];
        if (stat(f->path, &st) != 0 || (long long)st.st_size != f->size ||
            (long long)st.st_mtim.tv_sec != f->mtime_s || (long)st.st_mtim.tv_nsec != f->mtime_ns)
            return false;
    }
    return true;
}

extern "C" int dcm_dict_install(void) {
    const char *env = getenv(DCM_DICT_ENVIRONMENT_VARIABLE);
    if ((env && *env) || !files_unchanged()) return 0;
    // DCMTK builds its global dictionary on first use from DCMDICTPATH (else its default files):
    // pointed at an empty file it holds only its skeleton, and the table goes in after.
    if (setenv(DCM_DICT_ENVIRONMENT_VARIABLE, "/dev/null", 1) != 0) return 0;
    int installed = 0, locked = 0, added = 0;
    try {
        DcmDataDictionary &d = dcmDataDict.wrlock();
        locked = 1;
        if (d.isDictionaryLoaded() && d.numberOfEntries() == 0) {
            for (int i = 0; i < dcm_dict_n_normal + dcm_dict_n_repeating; i++) {
                const dcm_dict_row *r = &dcm_dict_rows[i];
                DcmDictEntry *e = new DcmDictEntry(
                    r->group, r->element, r->upper_group, r->upper_element, DcmVR((DcmEVR)r->evr),
                    r->name, r->vm_min, r->vm_max, r->version, OFFalse, r->private_creator);
                e->setGroupRangeRestriction((DcmDictRangeRestriction)r->group_restriction);
                e->setElementRangeRestriction((DcmDictRangeRestriction)r->element_restriction);
                d.addEntry(e);
                added = 1;
            }
            installed = 1;
        }
    } catch (...) { /* an allocation failed: DCMTK reloads its files below */
        installed = 0;
    }
    if (locked) dcmDataDict.wrunlock();
    unsetenv(DCM_DICT_ENVIRONMENT_VARIABLE);
    if (!installed) { // created before us, empty, or half filled: DCMTK's own files
        DcmDataDictionary &d = dcmDataDict.wrlock();
        if (added || d.numberOfEntries() == 0) d.reloadDictionaries(OFTrue, OFTrue);
        dcmDataDict.wrunlock();
    }
    return installed;
}

// ---- the check (tests) ----

static int cmp_str(const char *a, const char *b) {
    if (!a || !b) return (a != nullptr) - (b != nullptr);
    return strcmp(a, b);
}

// 0 when two entries agree in every field the dictionary keeps.
static int cmp_entry(const DcmDictEntry *a, const DcmDictEntry *b) {
    if (a->getGroup() != b->getGroup()) return a->getGroup() < b->getGroup() ? -1 : 1;
    if (a->getElement() != b->getElement()) return a->getElement() < b->getElement() ? -1 : 1;
    int c = cmp_str(a->getPrivateCreator(), b->getPrivateCreator());
    if (c) return c;
    if (a->getUpperGroup() != b->getUpperGroup() || a->getUpperElement() != b->getUpperElement() ||
        a->getEVR() != b->getEVR() || a->getVMMin() != b->getVMMin() ||
        a->getVMMax() != b->getVMMax() ||
        a->getGroupRangeRestriction() != b->getGroupRangeRestriction() ||
        a->getElementRangeRestriction() != b->getElementRangeRestriction())
        return 2;
    if (cmp_str(a->getTagName(), b->getTagName()) ||
        cmp_str(a->getStandardVersion(), b->getStandardVersion()))
        return 2;
    return 0;
}

static std::vector<const DcmDictEntry *> normal_sorted(DcmDataDictionary &d) {
    std::vector<const DcmDictEntry *> v;
    for (DcmHashDictIterator it = d.normalBegin(); it != d.normalEnd(); ++it)
        v.push_back(*it);
    std::sort(v.begin(), v.end(), [](const DcmDictEntry *a, const DcmDictEntry *b) {
        if (a->getGroup() != b->getGroup()) return a->getGroup() < b->getGroup();
        if (a->getElement() != b->getElement()) return a->getElement() < b->getElement();
        return cmp_str(a->getPrivateCreator(), b->getPrivateCreator()) < 0;
    });
    return v;
}

static int compare(DcmDataDictionary &got, DcmDataDictionary &want, char *why, size_t n) {
    if (got.numberOfNormalTagEntries() != want.numberOfNormalTagEntries() ||
        got.numberOfRepeatingTagEntries() != want.numberOfRepeatingTagEntries() ||
        got.numberOfSkeletonEntries() != want.numberOfSkeletonEntries()) {
        snprintf(why, n, "entries: %d normal, %d repeating, %d skeleton; DCMTK's files: %d, %d, %d",
                 got.numberOfNormalTagEntries(), got.numberOfRepeatingTagEntries(),
                 got.numberOfSkeletonEntries(), want.numberOfNormalTagEntries(),
                 want.numberOfRepeatingTagEntries(), want.numberOfSkeletonEntries());
        return -1;
    }
    std::vector<const DcmDictEntry *> a = normal_sorted(got), b = normal_sorted(want);
    for (size_t i = 0; i < a.size(); i++)
        if (cmp_entry(a[i], b[i])) {
            snprintf(why, n, "entry (%04X,%04X) %s differs from DCMTK's (%04X,%04X) %s",
                     a[i]->getGroup(), a[i]->getElement(), a[i]->getTagName(), b[i]->getGroup(),
                     b[i]->getElement(), b[i]->getTagName());
            return -1;
        }
    DcmDictEntryListIterator x = got.repeatingBegin(), y = want.repeatingBegin();
    for (int i = 0; x != got.repeatingEnd() && y != want.repeatingEnd(); ++x, ++y, i++)
        if (cmp_entry(*x, *y)) {
            snprintf(why, n, "repeating entry %d (%04X,%04X) %s differs from DCMTK's %s", i,
                     (*x)->getGroup(), (*x)->getElement(), (*x)->getTagName(), (*y)->getTagName());
            return -1;
        }
    return 0;
}

extern "C" int dcm_dict_check(char *why, size_t n) {
    if (n) why[0] = '\0';
    try {
        DcmDataDictionary want(OFFalse, OFTrue); // DCMTK's own load of its files
        if (!want.isDictionaryLoaded()) {
            snprintf(why, n, "DCMTK loaded no dictionary from its files");
            return -1;
        }
        DcmDataDictionary &got = dcmDataDict.wrlock();
        int r = compare(got, want, why, n);
        dcmDataDict.wrunlock();
        return r;
    } catch (...) {
        snprintf(why, n, "exception while comparing dictionaries");
        return -1;
    }
}
