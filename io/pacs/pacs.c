/* pacs.c — the policy of a PACS pull (pacs.h): what to list, what to retrieve, when to retry,
 * what counts as complete. DICOM goes through pacs_net.h; received bytes into pacs_spool.h;
 * what was pulled into pacs_state.h. UIDs stay in this file's memory; everything that leaves
 * it names series and studies by keyed pseudonyms. */
#include "pacs.h"

#include "log.h"
#include "pacs_net.h"
#include "pacs_spool.h"
#include "pacs_state.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OPEN_END 2932896 /* day number of 9999-12-31: "no upper bound" */

/* DICOM tags used in queries */
#define T_STUDY_DATE 0x0008, 0x0020
#define T_MODALITIES 0x0008, 0x0061
#define T_MODALITY 0x0008, 0x0060
#define T_SOP_INSTANCE 0x0008, 0x0018
#define T_STUDY_UID 0x0020, 0x000D
#define T_SERIES_UID 0x0020, 0x000E
#define T_N_SERIES_INSTANCES 0x0020, 0x1209

typedef struct series_todo {
    char study_uid[65], series_uid[65]; /* identifiers: memory only */
    char study_key[65], series_key[65];
    char study_date[9];
    int expected;
} series_todo;

typedef struct unlisted {
    char what[96]; /* "studies dated 20230101-20230101" or "series of study KEY" */
    char reason[96];
} unlisted;

struct pacs_pull {
    pacs_url url;
    pacs_options opt;
    pacs_key_fn key;
    void *key_ctx;
    pacs_state *state;
    pacs_spool *spool;
    pnet_peer peer;
    pnet_tls tls;
    pnet_assoc *assoc;
    pnet_receiver *receiver;
    int active; /* a retrieval is in progress: the sink takes instances (under mu) */
    pthread_mutex_t mu;
    series_todo *todo;
    int n_todo, cap_todo, next;
    int current; /* the series handed over, or -1 */
    const char **paths;
    char (*names)[256]; /* catalog names of the current series' files */
    unlisted *unl;
    int n_unl, cap_unl;
    char earliest_unfinished[9]; /* the oldest study date not listed or pulled whole */
    char today[9];
    pacs_pull_summary sum;
    int started; /* series retrievals started this run */
};

/* ---- dates --------------------------------------------------------------------------- */

static int digits(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Days since 1970-01-01 of a YYYYMMDD date (checked by the URL parser or written by us). */
static int day_of(const char *yyyymmdd) {
    struct tm tm = {0};
    tm.tm_year = digits(yyyymmdd, 4) - 1900;
    tm.tm_mon = digits(yyyymmdd + 4, 2) - 1;
    tm.tm_mday = digits(yyyymmdd + 6, 2);
    tm.tm_hour = 12;
    return (int)(timegm(&tm) / 86400);
}

static void date_of(int day, char out[9]) {
    time_t t = (time_t)day * 86400 + 43200;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 9, "%Y%m%d", &tm);
}

static void unfinished(pacs_pull *p, const char *date) {
    if (!date[0]) return;
    if (!p->earliest_unfinished[0] || strcmp(date, p->earliest_unfinished) < 0)
        snprintf(p->earliest_unfinished, sizeof p->earliest_unfinished, "%s", date);
}

static vs_status note_unlisted(pacs_pull *p, const char *what, const char *reason, vs_error *err) {
    if (p->n_unl == p->cap_unl) {
        int cap = p->cap_unl ? 2 * p->cap_unl : 8;
        unlisted *u = realloc(p->unl, (size_t)cap * sizeof *u);
        if (!u) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        p->unl = u;
        p->cap_unl = cap;
    }
    snprintf(p->unl[p->n_unl].what, sizeof p->unl[0].what, "%s", what);
    snprintf(p->unl[p->n_unl].reason, sizeof p->unl[0].reason, "%s", reason);
    p->n_unl++;
    log_warn("%s: could not list %s: %s", p->url.name, what, reason);
    return VS_OK;
}

/* ---- connection with retries ----------------------------------------------------------- */

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A rejection for a reason that a retry cannot change (an AE title not recognized). */
static int permanent(const vs_error *e) {
    return strstr(e->msg, "not recognized") || strstr(e->msg, "TLS set-up") ||
           strstr(e->msg, "move destination") || strstr(e->msg, "not authorized");
}

/* Associate and C-ECHO, retrying with back-off what a retry may change. */
static vs_status connect_retry(const pnet_peer *peer, int services, const pacs_options *o,
                               pnet_assoc **out, vs_error *err) {
    double wait = o->backoff;
    for (int attempt = 0;; attempt++) {
        vs_status s = pnet_connect(peer, services, out, err);
        if (s == VS_OK) s = pnet_echo(*out, err);
        if (s == VS_OK) return VS_OK;
        pnet_close(*out);
        *out = NULL;
        if (s != VS_ERR_PEER || permanent(err) || attempt >= o->retries) return s;
        log_warn("%s (retry %d of %d in %.3g s)", err->msg, attempt + 1, o->retries, wait);
        sleep_s(wait);
        wait *= 2;
    }
}

static vs_status connect_peer(pacs_pull *p, vs_error *err) {
    if (p->assoc) return VS_OK;
    int services = PNET_FIND | (p->opt.retrieve == PACS_GET ? PNET_GET : PNET_MOVE);
    return connect_retry(&p->peer, services, &p->opt, &p->assoc, err);
}

/* ---- the sink: received instances into the spool, named by their keys ------------------ */

static const char *sink_open(void *ctx, const char *sop_uid, int *token) {
    pacs_pull *p = ctx;
    pthread_mutex_lock(&p->mu);
    int active = p->active;
    pthread_mutex_unlock(&p->mu);
    if (!active) return NULL; /* nothing asked for: refuse */
    char key[65];
    p->key(p->key_ctx, sop_uid, key);
    return pacs_spool_add(p->spool, key, token);
}

static void sink_done(void *ctx, int token, int ok) {
    pacs_pull *p = ctx;
    pacs_spool_done(p->spool, token, ok);
}

/* ---- listing --------------------------------------------------------------------------- */

typedef struct study_hit {
    char uid[65], date[9];
} study_hit;

typedef struct study_list {
    study_hit *v;
    int n, cap, oom;
} study_list;

static int on_study(void *ctx, const char *const *vals) {
    study_list *l = ctx;
    if (!vals[0][0] || strlen(vals[0]) > 64) return 0; /* no usable StudyInstanceUID */
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        study_hit *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    snprintf(l->v[l->n].uid, sizeof l->v[0].uid, "%s", vals[0]);
    snprintf(l->v[l->n].date, sizeof l->v[0].date, "%.8s", vals[1]);
    l->n++;
    return 0;
}

typedef struct series_hit_ctx {
    pacs_pull *p;
    const study_hit *study;
    series_todo *v;
    int n, cap, oom;
} series_hit_ctx;

static int modality_wanted(const pacs_url *u, const char *m) {
    if (u->n_modalities == 0) return 1;
    for (int i = 0; i < u->n_modalities; i++)
        if (strcmp(u->modalities[i], m) == 0) return 1;
    return 0;
}

static int on_series(void *ctx, const char *const *vals) {
    series_hit_ctx *c = ctx;
    if (!vals[0][0] || strlen(vals[0]) > 64 || !modality_wanted(&c->p->url, vals[1])) return 0;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        series_todo *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v) {
            c->oom = 1;
            return 1;
        }
        c->v = v;
        c->cap = cap;
    }
    series_todo *t = &c->v[c->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->study_uid, sizeof t->study_uid, "%s", c->study->uid);
    snprintf(t->series_uid, sizeof t->series_uid, "%s", vals[0]);
    snprintf(t->study_date, sizeof t->study_date, "%s", c->study->date);
    t->expected = vals[2][0] ? atoi(vals[2]) : -1;
    return 0;
}

static int on_instance(void *ctx, const char *const *vals) {
    (void)vals;
    (*(int *)ctx)++;
    return 0;
}

/* The instance count of a series the peer did not count itself: an image-level C-FIND. */
static vs_status count_instances(pacs_pull *p, series_todo *t, int *complete, vs_error *err) {
    pnet_key keys[] = {
        {T_STUDY_UID, t->study_uid}, {T_SERIES_UID, t->series_uid}, {T_SOP_INSTANCE, NULL}};
    int n = 0;
    pnet_find_result fr;
    vs_status s = pnet_find(p->assoc, "IMAGE", keys, 3, on_instance, &n, &fr, err);
    if (s != VS_OK) return s;
    *complete = fr.status == 0;
    t->expected = n;
    return VS_OK;
}

static int cmp_todo(const void *a, const void *b) {
    const series_todo *x = a, *y = b;
    int c = strcmp(x->study_date, y->study_date);
    if (!c) c = strcmp(x->study_key, y->study_key);
    return c ? c : strcmp(x->series_key, y->series_key);
}

/* The series of one study: keep those the catalog does not hold whole. */
static vs_status list_series(pacs_pull *p, const study_hit *st, vs_error *err) {
    pnet_key keys[] = {{T_SERIES_UID, NULL},
                       {T_MODALITY, NULL},
                       {T_N_SERIES_INSTANCES, NULL},
                       {T_STUDY_UID, st->uid}};
    series_hit_ctx c = {p, st, NULL, 0, 0, 0};
    pnet_find_result fr;
    char study_key[65];
    p->key(p->key_ctx, st->uid, study_key);
    vs_status s = pnet_find(p->assoc, "SERIES", keys, 4, on_series, &c, &fr, err);
    if (s == VS_OK && c.oom) s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory listing series");
    if (s == VS_OK && fr.status != 0) {
        char what[96];
        snprintf(what, sizeof what, "every series of study %s", study_key);
        char why[96];
        snprintf(why, sizeof why, "C-FIND ended with status 0x%04x (%s)", fr.status,
                 pnet_status_name(fr.status));
        p->sum.studies_unlisted++;
        unfinished(p, st->date);
        s = note_unlisted(p, what, why, err);
    }
    for (int i = 0; s == VS_OK && i < c.n; i++) {
        series_todo *t = &c.v[i];
        p->sum.series_listed++;
        snprintf(t->study_key, sizeof t->study_key, "%s", study_key);
        p->key(p->key_ctx, t->series_uid, t->series_key);
        if (t->expected < 0) {
            int complete = 1;
            if ((s = count_instances(p, t, &complete, err)) != VS_OK) break;
            if (!complete) {
                char what[96];
                snprintf(what, sizeof what, "every instance of series %s", t->series_key);
                p->sum.studies_unlisted++;
                unfinished(p, st->date);
                s = note_unlisted(p, what, "the image-level C-FIND was cut short", err);
                continue;
            }
        }
        char prefix[512];
        snprintf(prefix, sizeof prefix, "%s/%s/", p->url.name, t->series_key);
        int64_t have = 0;
        if ((s = pacs_state_committed(p->state, prefix, &have, err)) != VS_OK) break;
        if (t->expected > 0 && have >= t->expected) {
            p->sum.series_present++;
            continue;
        }
        if (t->expected == 0) continue; /* an empty series: nothing to pull */
        if (p->n_todo == p->cap_todo) {
            int cap = p->cap_todo ? 2 * p->cap_todo : 64;
            series_todo *v = realloc(p->todo, (size_t)cap * sizeof *v);
            if (!v) {
                s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
                break;
            }
            p->todo = v;
            p->cap_todo = cap;
        }
        p->todo[p->n_todo++] = *t;
    }
    free(c.v);
    return s;
}

static void range_text(int lo, int hi, char *out, size_t cap) {
    char a[9], b[9];
    date_of(lo, a);
    date_of(hi, b);
    if (hi >= OPEN_END)
        snprintf(out, cap, "%s-", a);
    else
        snprintf(out, cap, "%s-%s", a, b);
}

/* Studies dated lo..hi (day numbers): listed whole, or split in halves while the peer cuts
 * the listing short; a single day it still cuts short is reported, its matches kept. */
/* lo = ALL_DATES: every study, undated ones too (StudyDate matched universally). */
#define ALL_DATES INT_MIN
static vs_status list_window(pacs_pull *p, int lo, int hi, int depth, vs_error *err) {
    char range[24] = "", mods[PACS_MAX_MODALITIES * 17 + 1] = "";
    if (lo != ALL_DATES) range_text(lo, hi, range, sizeof range);
    for (int i = 0; i < p->url.n_modalities; i++) {
        if (i) strcat(mods, "\\");
        strcat(mods, p->url.modalities[i]);
    }
    pnet_key keys[] = {{T_STUDY_UID, NULL}, {T_STUDY_DATE, range}, {T_MODALITIES, mods}};
    study_list l = {0};
    pnet_find_result fr;
    vs_status s =
        pnet_find(p->assoc, "STUDY", keys, p->url.n_modalities ? 3 : 2, on_study, &l, &fr, err);
    if (s == VS_OK && l.oom) s = VS_FAIL(err, VS_ERR_NOMEM, "out of memory listing studies");
    if (s == VS_OK && fr.status != 0 && lo == ALL_DATES) {
        /* every date at once was cut short: list by date windows instead; undated studies
         * cannot be asked for by themselves, so say they may be missed */
        free(l.v);
        log_info("%s: the listing of every study was cut short (status 0x%04x): listing by date",
                 p->url.name, fr.status);
        s = note_unlisted(p, "studies without a StudyDate",
                          "the peer cut the listing of every "
                          "study short, and undated studies cannot be listed by date",
                          err);
        p->sum.windows_unlisted++;
        return s == VS_OK ? list_window(p, day_of("19000101"), OPEN_END, depth + 1, err) : s;
    }
    if (s == VS_OK && fr.status != 0 && lo < hi && depth < 64) {
        free(l.v);
        /* split an open range at today first: the past is where the studies are */
        int today = day_of(p->today);
        int mid = hi >= OPEN_END && lo < today ? today : lo + (hi - lo) / 2;
        log_info("%s: the listing of studies dated %s was cut short (status 0x%04x): splitting",
                 p->url.name, range, fr.status);
        s = list_window(p, lo, mid, depth + 1, err);
        return s == VS_OK ? list_window(p, mid + 1, hi, depth + 1, err) : s;
    }
    if (s == VS_OK && fr.status != 0) {
        char what[96], why[96];
        snprintf(what, sizeof what, "every study dated %s", range);
        snprintf(why, sizeof why, "C-FIND ended with status 0x%04x (%s)", fr.status,
                 pnet_status_name(fr.status));
        p->sum.windows_unlisted++;
        char d[9];
        date_of(lo, d);
        unfinished(p, d);
        s = note_unlisted(p, what, why, err);
    }
    for (int i = 0; s == VS_OK && i < l.n; i++) {
        p->sum.studies_listed++;
        s = list_series(p, &l.v[i], err);
    }
    free(l.v);
    return s;
}

/* ---- open / next / close --------------------------------------------------------------- */

static int in_window(const pacs_options *o) {
    if (o->window_start == o->window_end) return 1;
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    int now = tm.tm_hour * 60 + tm.tm_min;
    return o->window_start < o->window_end ? now >= o->window_start && now < o->window_end
                                           : now >= o->window_start || now < o->window_end;
}

vs_status pacs_pull_open(const pacs_url *url, const pacs_options *opt, const char *catalog_path,
                         pacs_key_fn key, void *key_ctx, pacs_pull **out, vs_error *err) {
    *out = NULL;
    pacs_pull *p = calloc(1, sizeof *p);
    if (!p) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    p->url = *url;
    p->opt = *opt;
    p->key = key;
    p->key_ctx = key_ctx;
    p->current = -1;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(p->today, sizeof p->today, "%Y%m%d", &tm);
    p->tls = (pnet_tls){opt->tls_cert[0] ? opt->tls_cert : NULL,
                        opt->tls_key[0] ? opt->tls_key : NULL, opt->tls_ca[0] ? opt->tls_ca : NULL};
    p->peer = (pnet_peer){p->url.host,          p->url.port,
                          p->url.aet,           p->opt.calling_aet,
                          opt->connect_timeout, opt->acse_timeout,
                          opt->dimse_timeout,   opt->tls_ca[0] ? &p->tls : NULL};
    vs_status s = VS_OK;
    const char *const tls_files[][2] = {
        {"tls_ca", opt->tls_ca}, {"tls_cert", opt->tls_cert}, {"tls_key", opt->tls_key}};
    for (int i = 0; i < 3 && s == VS_OK; i++)
        if (tls_files[i][1][0] && access(tls_files[i][1], R_OK) != 0)
            s = VS_FAIL(err, VS_ERR_CONFIG, "pacs %s: %s cannot be read (%s)", tls_files[i][0],
                        tls_files[i][1], strerror(errno));
    if (s == VS_OK) s = pacs_options_check(opt, err);
    if (s == VS_OK) s = pacs_state_open(catalog_path, &p->state, err);
    if (s == VS_OK) s = pacs_state_watermark(p->state, url->name, p->sum.watermark, err);
    if (s == VS_OK && !in_window(opt)) {
        p->sum.outside_window = 1;
        log_warn("%s: outside the retrieval window: nothing is listed or pulled now", url->name);
        *out = p;
        return VS_OK;
    }
    if (s == VS_OK) s = pacs_spool_open(opt->spool, &p->spool, err);
    if (s == VS_OK && opt->retrieve == PACS_MOVE) {
        pnet_sink sink = {sink_open, sink_done, p};
        s = pnet_receiver_start(opt->move_port, opt->move_aet[0] ? opt->move_aet : opt->calling_aet,
                                opt->tls_ca[0] ? &p->tls : NULL, opt->dimse_timeout, &sink,
                                &p->receiver, err);
    }
    if (s == VS_OK) s = connect_peer(p, err);
    if (s == VS_OK) {
        /* from since, or the watermark less the look-back window, whichever is later; the first
         * run without either lists every study, undated ones too */
        int lo = url->since[0] ? day_of(url->since) : ALL_DATES;
        if (p->sum.watermark[0]) {
            int w = day_of(p->sum.watermark) - opt->lookback_days;
            if (w > lo) lo = w;
        }
        int hi = url->until[0] ? day_of(url->until) : OPEN_END;
        if (lo == ALL_DATES && url->until[0]) lo = day_of("19000101");
        if (lo <= hi) s = list_window(p, lo, hi, 0, err);
    }
    if (s == VS_OK) {
        if (p->n_todo > 1) qsort(p->todo, (size_t)p->n_todo, sizeof *p->todo, cmp_todo);
        log_info("%s: %d studies, %d series listed; %d already ingested, %d to retrieve", url->name,
                 p->sum.studies_listed, p->sum.series_listed, p->sum.series_present, p->n_todo);
        *out = p;
        return VS_OK;
    }
    pacs_pull_close(p, 0, NULL);
    return s;
}

/* Why the run must stop pulling before series t (a limit or the window), or NULL. */
static const char *stop_reason(pacs_pull *p, const series_todo *t) {
    const pacs_options *o = &p->opt;
    if (!in_window(o)) return "the retrieval window closed";
    if (o->max_series && p->started >= o->max_series) return "max_series reached";
    if (o->max_instances && p->started && p->sum.instances + t->expected > o->max_instances)
        return "max_instances reached";
    if (o->max_mb && (uint64_t)p->sum.bytes >= (uint64_t)o->max_mb << 20) return "max_mb reached";
    return NULL;
}

/* One retrieval of series t into the spool; *why says what was wrong with it ("" if whole). */
static vs_status retrieve_once(pacs_pull *p, const series_todo *t, char *why, size_t cap,
                               vs_error *err) {
    pacs_spool_clear(p->spool);
    pnet_retrieve_result r;
    pthread_mutex_lock(&p->mu);
    p->active = 1;
    pthread_mutex_unlock(&p->mu);
    vs_status s;
    if (p->opt.retrieve == PACS_GET) {
        pnet_sink sink = {sink_open, sink_done, p};
        s = pnet_get_series(p->assoc, t->study_uid, t->series_uid, &sink, &r, err);
    } else {
        s = pnet_move_series(p->assoc, t->study_uid, t->series_uid,
                             p->opt.move_aet[0] ? p->opt.move_aet : p->opt.calling_aet, &r, err);
    }
    pthread_mutex_lock(&p->mu);
    p->active = 0;
    pthread_mutex_unlock(&p->mu);
    if (s != VS_OK) return s;
    /* a peer that sends more than the series asked for (a whole study, say): keep only its own */
    int foreign = 0, got = pacs_spool_count(p->spool);
    for (int i = 0; i < got; i++) {
        char uid[80];
        pnet_file_series_uid(pacs_spool_path(p->spool, i), uid, sizeof uid);
        if (strcmp(uid, t->series_uid) != 0) {
            pacs_spool_drop(p->spool, i);
            foreign++;
        }
    }
    if (foreign) {
        log_warn(
            "%s: series %s: %d instances of other series (or unreadable) were sent and dropped",
            p->url.name, t->series_key, foreign);
        got = pacs_spool_count(p->spool);
    }
    const char *dest = p->opt.move_aet[0] ? p->opt.move_aet : p->opt.calling_aet;
    if (r.status == 0xA801)
        return VS_FAIL(err, VS_ERR_PEER,
                       "%s: C-MOVE refused: move destination %s unknown to the peer",
                       pnet_where(p->assoc), dest);
    /* Some peers (Orthanc) answer an unknown destination with a plain failure. A move that fails
     * before any sub-operation while this run has received nothing by C-MOVE yet is a refusal
     * of the move itself, not a partial series: stop here instead of failing every series. */
    int failure = r.status != 0 && r.status != 0xB000 && r.status != 0xFE00;
    if (p->opt.retrieve == PACS_MOVE && failure && got == 0 && r.completed <= 0 && r.failed <= 0 &&
        r.warning <= 0 && p->sum.series_pulled == 0)
        return VS_FAIL(err, VS_ERR_PEER,
                       "%s: C-MOVE refused (status 0x%04x, %s) before sending anything: is move "
                       "destination %s known to the peer, with our receiver's port %d?",
                       pnet_where(p->assoc), r.status, pnet_status_name(r.status), dest,
                       p->opt.move_port);
    why[0] = 0;
    if (pacs_spool_error(p->spool)[0])
        snprintf(why, cap, "%s", pacs_spool_error(p->spool));
    else if (r.status != 0)
        snprintf(why, cap, "final status 0x%04x (%s), %d of %d instances", r.status,
                 pnet_status_name(r.status), got, t->expected);
    else if (r.failed > 0)
        snprintf(why, cap, "%d sub-operations failed, %d of %d instances", r.failed, got,
                 t->expected);
    else if (got < t->expected)
        snprintf(why, cap, "%d of %d instances arrived", got, t->expected);
    return VS_OK;
}

vs_status pacs_pull_next(pacs_pull *p, int *n, const char *const **paths, vs_error *err) {
    *n = 0;
    *paths = NULL;
    p->current = -1;
    if (p->spool) pacs_spool_clear(p->spool);
    while (p->next < p->n_todo) {
        series_todo *t = &p->todo[p->next];
        const char *stop = stop_reason(p, t);
        if (stop) {
            p->sum.series_deferred = p->n_todo - p->next;
            for (int i = p->next; i < p->n_todo; i++)
                unfinished(p, p->todo[i].study_date);
            log_warn("%s: %s: %d series left for a later run", p->url.name, stop,
                     p->sum.series_deferred);
            p->next = p->n_todo;
            return VS_OK;
        }
        p->started++;
        char why[200] = "";
        double wait = p->opt.backoff;
        for (int attempt = 0;; attempt++) {
            vs_status s = connect_peer(p, err);
            if (s == VS_OK) s = retrieve_once(p, t, why, sizeof why, err);
            if (s == VS_ERR_PEER && !permanent(err) && attempt < p->opt.retries) {
                snprintf(why, sizeof why, "%s", err->msg);
                pnet_close(p->assoc); /* a broken association: start afresh */
                p->assoc = NULL;
            } else if (s != VS_OK) {
                return s;
            } else if (!why[0] || attempt >= p->opt.retries) {
                break;
            }
            log_warn("%s: series %s: %s (retry %d of %d in %.3g s)", p->url.name, t->series_key,
                     why, attempt + 1, p->opt.retries, wait);
            sleep_s(wait);
            wait *= 2;
        }
        p->next++;
        int got = pacs_spool_count(p->spool);
        if (why[0]) {
            p->sum.series_partial++;
            unfinished(p, t->study_date);
            log_warn("%s: series %s is partial (%s): recorded, retried on the next run",
                     p->url.name, t->series_key, why);
            vs_status s = pacs_state_record(p->state, p->url.name, t->series_key, t->study_key,
                                            t->expected, got, "partial", why, err);
            pacs_spool_clear(p->spool);
            if (s != VS_OK) return s;
            continue;
        }
        const char **v = realloc(p->paths, (size_t)(got ? got : 1) * sizeof *v);
        if (v) p->paths = v;
        char(*names)[256] = v ? realloc(p->names, (size_t)(got ? got : 1) * sizeof *names) : NULL;
        if (!names) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
        p->names = names;
        for (int i = 0; i < got; i++) {
            v[i] = pacs_spool_path(p->spool, i);
            snprintf(names[i], sizeof names[i], "%s/%s/%s", p->url.name, t->series_key,
                     pacs_spool_key(p->spool, i));
        }
        p->sum.series_pulled++;
        p->sum.instances += got;
        p->sum.bytes += (int64_t)pacs_spool_bytes(p->spool);
        p->current = p->next - 1;
        log_info("%s: series %s: %d instances retrieved (%d of %d)", p->url.name, t->series_key,
                 got, p->next, p->n_todo);
        *n = got;
        *paths = v;
        return VS_OK;
    }
    return VS_OK;
}

int pacs_pull_source(pacs_pull *p, const char *path, const char **name, int64_t *size) {
    if (p->current < 0 || !p->spool) return 0;
    int i = pacs_spool_find(p->spool, path);
    if (i < 0) return 0;
    *name = p->names[i];
    *size = pacs_spool_size(p->spool, i);
    return 1;
}

vs_status pacs_pull_series_done(pacs_pull *p, vs_error *err) {
    if (p->current < 0) return VS_OK;
    const series_todo *t = &p->todo[p->current];
    vs_status s = pacs_state_record(p->state, p->url.name, t->series_key, t->study_key, t->expected,
                                    pacs_spool_count(p->spool), "done", NULL, err);
    pacs_spool_clear(p->spool);
    p->current = -1;
    return s;
}

/* The watermark after this run: today, or the oldest study date it left unfinished, and never
 * earlier than before. */
static void next_watermark(const pacs_pull *p, char out[9]) {
    snprintf(out, 9, "%s", p->today);
    if (p->earliest_unfinished[0] && strcmp(p->earliest_unfinished, out) < 0)
        snprintf(out, 9, "%s", p->earliest_unfinished);
    if (p->sum.watermark[0] && strcmp(p->sum.watermark, out) > 0)
        snprintf(out, 9, "%s", p->sum.watermark);
}

void pacs_pull_summary_get(const pacs_pull *p, pacs_pull_summary *s) { *s = p->sum; }

void pacs_pull_write_json(const pacs_pull *p, FILE *f, const char *in) {
    const pacs_pull_summary *s = &p->sum;
    fprintf(f, "{\n%s  \"peer\": ", in);
    log_json_string(f, p->url.name);
    fprintf(f, ",\n%s  \"outside_window\": %s,\n", in, s->outside_window ? "true" : "false");
    fprintf(f, "%s  \"studies_listed\": %d,\n%s  \"series_listed\": %d,\n", in, s->studies_listed,
            in, s->series_listed);
    fprintf(f, "%s  \"series_present\": %d,\n%s  \"series_pulled\": %d,\n", in, s->series_present,
            in, s->series_pulled);
    fprintf(f, "%s  \"series_partial\": %d,\n%s  \"series_deferred\": %d,\n", in, s->series_partial,
            in, s->series_deferred);
    fprintf(f, "%s  \"instances\": %lld,\n%s  \"bytes\": %lld,\n", in, (long long)s->instances, in,
            (long long)s->bytes);
    char mark[9] = "";
    if (!s->outside_window) next_watermark(p, mark);
    fprintf(f, "%s  \"watermark_before\": \"%s\",\n%s  \"watermark_after\": \"%s\",\n", in,
            s->watermark, in, mark[0] ? mark : s->watermark);
    fprintf(f, "%s  \"not_listed\": [", in);
    for (int i = 0; i < p->n_unl; i++) {
        fprintf(f, "%s\n%s    {\"what\": ", i ? "," : "", in);
        log_json_string(f, p->unl[i].what);
        fputs(", \"reason\": ", f);
        log_json_string(f, p->unl[i].reason);
        fputc('}', f);
    }
    fprintf(f, "%s]\n%s}", p->n_unl ? "\n  " : "", in);
}

vs_status pacs_pull_close(pacs_pull *p, int ok, vs_error *err) {
    if (!p) return VS_OK;
    vs_status s = VS_OK;
    /* after the store committed: the watermark moves only over what was listed and pulled whole */
    if (ok && p->state && !p->sum.outside_window) {
        char mark[9];
        next_watermark(p, mark);
        s = pacs_state_advance(p->state, p->url.name, mark, err);
    }
    pnet_close(p->assoc);
    pnet_receiver_stop(p->receiver);
    pacs_spool_close(p->spool);
    pacs_state_close(p->state);
    pthread_mutex_destroy(&p->mu);
    free(p->todo);
    free(p->paths);
    free(p->names);
    free(p->unl);
    free(p);
    return s;
}

/* ---- send ------------------------------------------------------------------------------ */

vs_status pacs_send(const pacs_url *url, const pacs_options *opt, const char *const *paths, int n,
                    pacs_send_result *res, vs_error *err) {
    memset(res, 0, sizeof *res);
    pnet_tls tls = {opt->tls_cert[0] ? opt->tls_cert : NULL, opt->tls_key[0] ? opt->tls_key : NULL,
                    opt->tls_ca[0] ? opt->tls_ca : NULL};
    pnet_peer peer = {url->host,
                      url->port,
                      url->aet,
                      opt->calling_aet,
                      opt->connect_timeout,
                      opt->acse_timeout,
                      opt->dimse_timeout,
                      opt->tls_ca[0] ? &tls : NULL};
    pnet_assoc *a = NULL;
    vs_status s = VS_OK;
    for (int i = 0; s == VS_OK && i < n; i++) {
        unsigned status = 0;
        double wait = opt->backoff;
        for (int attempt = 0;; attempt++) { /* a broken association: reconnect, send again */
            s = a ? VS_OK : connect_retry(&peer, PNET_STORE, opt, &a, err);
            if (s == VS_OK) s = pnet_store_file(a, paths[i], &status, err);
            if (s != VS_ERR_PEER || a == NULL || attempt >= opt->retries) break;
            log_warn("%s (retry %d of %d in %.3g s)", err->msg, attempt + 1, opt->retries, wait);
            pnet_close(a);
            a = NULL;
            sleep_s(wait);
            wait *= 2;
        }
        if (s == VS_ERR_FORMAT) { /* this file only */
            log_warn("%s", err->msg);
            res->failed++;
            s = VS_OK;
        } else if (s == VS_OK && status != 0 && status != 0xB000 && status != 0xB006 &&
                   status != 0xB007) {
            log_warn("%s: not stored by %s: status 0x%04x (%s)", paths[i], url->name, status,
                     status == 0x0122 && a ? "no presentation context for its SOP class and "
                                             "transfer syntax"
                                           : pnet_status_name(status));
            res->failed++;
        } else if (s == VS_OK) {
            res->sent++;
        }
    }
    pnet_close(a);
    return s;
}
