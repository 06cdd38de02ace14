/* study_table.c — the rows of study.h's tables as data, and what needs nothing but them (key
 * and option lookup, `--help` lines). No YAML here: the lean front links this file alone. */
#include "study.h"

#include <string.h>

#define STUDY_ROW(sec, name, kind, def, lo, hi, choices, flag, readers, help)                      \
    {STUDY_PREFIX_##sec #name,                                                                     \
     STUDY_##kind,                                                                                 \
     offsetof(study, sec.name),                                                                    \
     def,                                                                                          \
     lo,                                                                                           \
     hi,                                                                                           \
     choices,                                                                                      \
     flag,                                                                                         \
     readers,                                                                                      \
     help},
const study_setting study_settings[STUDY_N_KEYS] = {STUDY_KEYS(STUDY_ROW)};

const study_setting *study_setting_find(const char *key) {
    for (int i = 0; i < STUDY_N_KEYS; i++)
        if (strcmp(study_settings[i].key, key) == 0) return &study_settings[i];
    return NULL;
}

const char *study_setting_flag(const study_setting *row, char *buf, size_t cap) {
    if (row->flag && strcmp(row->flag, "-") == 0) return "";
    const char *src = row->flag;
    if (!src) {
        src = strrchr(row->key, '.');
        src = src ? src + 1 : row->key;
    }
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = src[i] == '_' ? '-' : src[i];
    buf[n] = '\0';
    return buf;
}

static const char *kind_value(const study_setting *r) {
    switch (r->kind) {
    case STUDY_INT:
    case STUDY_I64: return "N";
    case STUDY_DBL: return "X";
    case STUDY_ENUM: return r->choices;
    case STUDY_INT3: return "Z,Y,X";
    case STUDY_DBL2: return "LO,HI";
    case STUDY_DBL3: return "X,Y,Z";
    case STUDY_TEXTS: return "A[,B...]";
    case STUDY_DBLS: return "X[,Y...]";
    case STUDY_INTS: return "N[,M...]";
    case STUDY_TEXT: return "TEXT";
    default: return "PATH";
    }
}

void study_print_options(FILE *f, unsigned readers) {
    fprintf(f,
            "\nSettings (study key: option, default; the study file's values are the defaults of\n"
            "the options, and the options win):\n");
    for (int i = 0; i < STUDY_N_KEYS; i++) {
        const study_setting *r = &study_settings[i];
        char flag[64];
        if (!(r->readers & readers) || !study_setting_flag(r, flag, sizeof flag)[0]) continue;
        char opt[160];
        const char *v = kind_value(r);
        if (r->kind == STUDY_BOOL)
            snprintf(opt, sizeof opt, "--[no-]%s", flag);
        else
            snprintf(opt, sizeof opt, "--%s %s", flag, v);
        fprintf(f, "  %-24s %s\n  %-24s (%s; %s%s)\n", opt, r->help, "", r->key,
                r->def && r->def[0] ? "default " : "no default", r->def ? r->def : "");
    }
}
