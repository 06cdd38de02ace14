/* pacs.h — ingest from a PACS: `pacs://PACS_AET@host:port?modality=CT,MR&since=20180101`.
 *
 * The policy of a pull, in C (DICOM itself is io/pacs/pacs_net.h, a thin DCMTK shim):
 *   1. C-ECHO; study-level C-FIND by date range (from `since`, or the peer's watermark less the
 *      look-back window, to `until` or open; a first run with neither lists every study, undated
 *      ones too) and ModalitiesInStudy; a listing the peer cut short (a final status other than
 *      success, e.g. Orthanc's LimitFindResults) is split in two date halves, down to single
 *      days; what still cannot be listed is reported.
 *   2. Series-level C-FIND per study (Modality filtered here too, for peers that ignore
 *      ModalitiesInStudy); the instance count from NumberOfSeriesRelatedInstances, or from an
 *      image-level C-FIND when the peer does not return it.
 *   3. A series is pulled when the catalog holds fewer of its instances than the peer has
 *      (new or grown); per series: C-GET (one association, no inbound port) or C-MOVE to our
 *      own receiver, then the instance count and the sub-operation counters are checked
 *      (instances of other series a peer may send along are dropped). A
 *      complete series is handed over (pacs_pull_next) exactly as a folder's files would be;
 *      a partial one is retried with back-off, then recorded 'partial' and reported, and
 *      pulled again on the next run.
 *   4. Limits per run (series, instances, MiB) and a time-of-day window stop the pull between
 *      series; what is left is counted as deferred and the watermark does not pass it.
 * Received bytes live in a pacs_spool (memory or a 0700 spool of unnamed files), emptied after
 * each series. Identifiers (UIDs) stay in memory: the catalog, the summary and every message
 * name series and studies by keyed pseudonyms only.
 */
#ifndef VS_PACS_H
#define VS_PACS_H

#include <stdint.h>
#include <stdio.h>

#include "status.h"

#define PACS_MAX_MODALITIES 16

typedef struct pacs_url {
    char aet[17];
    char host[256];
    int port;
    char modalities[PACS_MAX_MODALITIES][17];
    int n_modalities; /* 0: every modality */
    char since[9];    /* YYYYMMDD, "" when not given */
    char until[9];
    char name[300]; /* "pacs://AET@host:port": the peer's name in the catalog and messages */
} pacs_url;

/* 1 when s is meant as a PACS source (starts with "pacs:", any case). */
int pacs_url_is(const char *s);
/* Parse a PACS URL; VS_ERR_USAGE naming what is wrong (the URL itself is the operator's). */
vs_status pacs_url_parse(const char *s, pacs_url *u, vs_error *err);

typedef enum pacs_retrieve { PACS_GET = 0, PACS_MOVE = 1 } pacs_retrieve;

/* How to reach a PACS and when: filled by the caller from the study's pacs section (whose
 * rows in studies/study.h hold every default and range); io/pacs keeps no defaults. */
typedef struct pacs_options {
    char calling_aet[17]; /* our AE title */
    pacs_retrieve retrieve;
    int move_port;                /* our C-STORE receiver's port (retrieve: move) */
    char move_aet[17];            /* the move destination ("" = calling_aet) */
    int lookback_days;            /* nightly runs re-list this many days before the watermark */
    int window_start, window_end; /* minutes of the day; equal: any time */
    int max_series;               /* per run; 0: no limit */
    int64_t max_instances;        /* per run; 0: no limit */
    int64_t max_mb;               /* MiB retrieved per run; 0: no limit */
    int connect_timeout, acse_timeout, dimse_timeout; /* seconds */
    int retries;                                      /* per connection and per partial series */
    double backoff;   /* seconds before the first retry, doubled after each */
    char spool[4096]; /* "" : memory; else a 0700 folder of unnamed files */
    char tls_ca[4096], tls_cert[4096], tls_key[4096]; /* tls_ca set: TLS */
} pacs_options;

/* "HH:MM-HH:MM" (may wrap midnight) into minutes of the day; "" or NULL: any time (equal). */
vs_status pacs_window_parse(const char *text, int *start, int *end, vs_error *err);
/* AE titles (1-16 printable characters, no backslash) and the TLS files asked for together. */
vs_status pacs_options_check(const pacs_options *o, vs_error *err);

/* ---- a pull ---------------------------------------------------------------------------- */

/* The keyed pseudonym of a UID (io/deid's deid_uid_key). */
typedef void (*pacs_key_fn)(void *ctx, const char *uid, char out[65]);

typedef struct pacs_pull pacs_pull;

/* What a pull did, for the run summary and the log (no identifier). */
typedef struct pacs_pull_summary {
    int studies_listed, series_listed;
    int series_present;  /* already in the catalog whole: not retrieved */
    int series_pulled;   /* retrieved whole and handed over */
    int series_partial;  /* retrieved incompletely after every retry: recorded, pulled next run */
    int series_deferred; /* left for a later run by a limit or the time-of-day window */
    int64_t instances, bytes;
    int windows_unlisted; /* date windows the peer would not list whole */
    int studies_unlisted; /* studies whose series the peer would not list whole */
    int outside_window;   /* 1: the run started outside the time-of-day window */
    char watermark[9];    /* after the run */
} pacs_pull_summary;

/* Open a pull: connect (retrying with back-off), C-ECHO, list what is new. catalog_path is the
 * output folder's catalog (the store must hold the folder's lock). VS_ERR_PEER when the peer
 * cannot be reached or refuses us after every retry. */
vs_status pacs_pull_open(const pacs_url *url, const pacs_options *opt, const char *catalog_path,
                         pacs_key_fn key, void *key_ctx, pacs_pull **out, vs_error *err);

/* Retrieve the next series that needs it and hand over its instances: *n and the paths of
 * the files (readable until the next call or pacs_pull_close). *n = 0: nothing left. */
vs_status pacs_pull_next(pacs_pull *p, int *n, const char *const **paths, vs_error *err);
/* The catalog source of a handed-over file: its name ("pacs://AET@host:port/SERIES/INSTANCE")
 * and size; 0 when path is not one of the current series' files. */
int pacs_pull_source(pacs_pull *p, const char *path, const char **name, int64_t *size);
/* After the current series was ingested: record it done. */
vs_status pacs_pull_series_done(pacs_pull *p, vs_error *err);

void pacs_pull_summary_get(const pacs_pull *p, pacs_pull_summary *s);
/* The run summary's object for this pull: counts, the watermark before and after, and what
 * could not be listed (date windows, or studies and series by pseudonym). */
void pacs_pull_write_json(const pacs_pull *p, FILE *f, const char *indent);
/* Call after the store committed (ok: the run succeeded): move the watermark over what was
 * listed and pulled whole; close the association, stop the receiver, empty the spool. NULL
 * is fine. */
vs_status pacs_pull_close(pacs_pull *p, int ok, vs_error *err);

/* ---- send: C-STORE to a (research) PACS ------------------------------------------------- */

typedef struct pacs_send_result {
    int sent;   /* stored (success or a warning status) */
    int failed; /* unreadable, or refused by the peer (each named in a warning) */
} pacs_send_result;

/* C-STORE each of paths[0..n) to url as it is (its own transfer syntax), over one association
 * (re-opened with back-off when it breaks). The caller decides which files may leave: io/pacs
 * sends what it is given. VS_ERR_PEER when the peer cannot be reached or refuses us. */
vs_status pacs_send(const pacs_url *url, const pacs_options *opt, const char *const *paths, int n,
                    pacs_send_result *res, vs_error *err);

#endif
