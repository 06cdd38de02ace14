/* pacs_net.h — the C face of DCMTK's dcmnet (and dcmtls): associations, C-ECHO, C-FIND,
 * C-GET, C-MOVE and a C-STORE receiver. A thin shim: it runs one DICOM operation as told and
 * reports what happened; every decision (what to ask, when to retry, what counts as complete)
 * is made in C by io/pacs/pacs.c.
 *
 * Invariants:
 *   1. No C++ exception and no OFCondition crosses this boundary: failures are a vs_status and
 *      one line in the caller's vs_error.
 *   2. A peer that cannot be reached, refuses the connection or the association, or fails the
 *      TLS handshake is VS_ERR_PEER, the message naming host:port and the reason; a peer that
 *      stops answering within a timeout is VS_ERR_PEER too ("timed out").
 *   3. Messages never hold a header value: identifiers go in and out only through the C-FIND
 *      callback and the arguments of the retrieve calls, never into an error or a log line.
 *      DCMTK's own loggers for dcmnet and dcmtls are off (their debug output prints datasets).
 *   4. Received instances are written exactly as they arrived on the network (the file meta
 *      header built from the C-STORE request, then the dataset's bytes, never re-encoded) to
 *      the path the sink hands out.
 */
#ifndef VS_PACS_NET_H
#define VS_PACS_NET_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "status.h"

/* TLS (DICOM PS3.15 Annex B): PEM files. NULL members are left out. */
typedef struct pnet_tls {
    const char *cert; /* our certificate (the peer may require one) */
    const char *key;  /* its private key (unencrypted) */
    const char *ca;   /* certificates we trust for the peer; required */
} pnet_tls;

typedef struct pnet_peer {
    const char *host;
    int port;
    const char *called_aet;  /* the peer's AE title */
    const char *calling_aet; /* ours */
    int connect_timeout_s;   /* TCP connect */
    int acse_timeout_s;      /* association request and release */
    int dimse_timeout_s;     /* each DIMSE message (a C-GET or C-MOVE waits this long per step) */
    const pnet_tls *tls;     /* NULL: plain TCP */
} pnet_peer;

/* Where received instances go. open() gets the instance's SOP Instance UID (from the C-STORE
 * request; an identifier, to be kept in memory only) and returns the path the instance is
 * written to (valid until done()) and a token, or NULL to refuse it (out of space, over a
 * limit, no retrieval in progress); done() tells whether it arrived whole. Called from the
 * receiver's thread during a C-MOVE, from the caller's during a C-GET. */
typedef struct pnet_sink {
    const char *(*open)(void *ctx, const char *sop_instance_uid, int *token);
    void (*done)(void *ctx, int token, int ok);
    void *ctx;
} pnet_sink;

/* The final response of a C-GET or C-MOVE and its sub-operation counters (-1 when the peer
 * did not send one). received counts instances the sink took whole (C-GET only). */
typedef struct pnet_retrieve_result {
    unsigned status; /* the final DIMSE status, e.g. 0x0000 success, 0xB000 warning */
    int completed, failed, warning, remaining;
    int received;
} pnet_retrieve_result;

typedef struct pnet_assoc pnet_assoc;

enum { PNET_FIND = 1, PNET_GET = 2, PNET_MOVE = 4, PNET_STORE = 8 };

/* Open an association proposing Verification and the Study Root services asked for (PNET_*
 * bits); with PNET_GET (SCP role) or PNET_STORE (SCU role) also the storage SOP classes of
 * vesalius's images in every transfer syntax the reader decodes, one context per syntax. */
vs_status pnet_connect(const pnet_peer *peer, int services, pnet_assoc **out, vs_error *err);
/* Release (abort when the release fails); NULL is fine. */
void pnet_close(pnet_assoc *a);
/* "host:port" of the association, for messages. */
const char *pnet_where(const pnet_assoc *a);

vs_status pnet_echo(pnet_assoc *a, vs_error *err);

/* One C-FIND key: (group, element), and the value to match ("" or NULL: a return key only). */
typedef struct pnet_key {
    uint16_t group, element;
    const char *value;
} pnet_key;

/* Called once per match with the values of keys[0..n) in that order ("" when absent;
 * multi-valued ones joined by '\'). Return non-zero to cancel the query. */
typedef int (*pnet_match_fn)(void *ctx, const char *const *values);

typedef struct pnet_find_result {
    unsigned status; /* the final status: 0x0000 when the peer listed every match */
    int n_matches;
} pnet_find_result;

/* Study Root C-FIND at level ("STUDY", "SERIES", "IMAGE"). A final status other than
 * success (a peer that stopped listing, e.g. Orthanc's LimitFindResults answers Cancel) is
 * not an error: the caller reads res->status. */
vs_status pnet_find(pnet_assoc *a, const char *level, const pnet_key *keys, int n_keys,
                    pnet_match_fn fn, void *ctx, pnet_find_result *res, vs_error *err);

/* Study Root C-GET of one series; instances go to sink as they arrive. */
vs_status pnet_get_series(pnet_assoc *a, const char *study_uid, const char *series_uid,
                          const pnet_sink *sink, pnet_retrieve_result *res, vs_error *err);
/* C-STORE one DICOM file as it is (its own transfer syntax, never re-encoded). *status is the
 * peer's answer (0x0000 stored); 0x0122 without sending when no presentation context fits the
 * file's SOP class and transfer syntax. VS_ERR_FORMAT when the file cannot be read (named). */
vs_status pnet_store_file(pnet_assoc *a, const char *path, unsigned *status, vs_error *err);

/* Study Root C-MOVE of one series to dest_aet (a pnet_receiver, normally). */
vs_status pnet_move_series(pnet_assoc *a, const char *study_uid, const char *series_uid,
                           const char *dest_aet, pnet_retrieve_result *res, vs_error *err);

/* A C-STORE receiver on a port of every interface (C-MOVE's destination), on its own thread:
 * it accepts associations called aet from any peer, the same storage presentation contexts as
 * a C-GET, and C-ECHO; each instance goes to sink (which must be thread-safe). */
typedef struct pnet_receiver pnet_receiver;
vs_status pnet_receiver_start(int port, const char *aet, const pnet_tls *tls, int timeout_s,
                              const pnet_sink *sink, pnet_receiver **out, vs_error *err);
/* The number of instances taken whole so far. */
int pnet_receiver_count(pnet_receiver *r);
/* Stop accepting, end the association in progress, join the thread; NULL is fine. */
void pnet_receiver_stop(pnet_receiver *r);

/* The SeriesInstanceUID of a received file (read up to its pixel data), "" when absent or
 * unreadable. An identifier: for comparisons in memory only. */
void pnet_file_series_uid(const char *path, char *out, int cap);

/* A short name of a DIMSE status for messages, e.g. "cancel", "refused: move destination
 * unknown". */
const char *pnet_status_name(unsigned status);

#ifdef __cplusplus
}
#endif
#endif
