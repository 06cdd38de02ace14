/* pacs_state.h — what was pulled from which PACS, in the output folder's catalog
 * (OUT/catalog.sqlite, two tables of its own beside io/catalog's; io/SHARD_SCHEMA.md).
 *
 *   pacs_peers(peer, watermark, last_run)          one row per PACS ("pacs://AET@host:port")
 *   pacs_series(peer, series_key, study_key, expected, received, state, reason, updated_at)
 *
 * Invariants:
 *   1. Pseudonyms only: series and studies are named by their keyed UID pseudonyms (io/deid),
 *      never by an original UID; counts, states ('done' or 'partial') and reasons that name no
 *      header value.
 *   2. What is in the shards is the catalog's `sources` table, committed with each shard: an
 *      instance pulled from a PACS is the source "pacs://AET@host:port/SERIES_KEY/INSTANCE_KEY".
 *      pacs_state_committed counts them, so a series whose shard was never sealed (a killed
 *      run) is pulled again, and one that was is not.
 *   3. The watermark of a peer only moves forward, and only past dates whose studies were all
 *      listed and pulled whole.
 * Opened on its own SQLite connection while io/store holds the folder's lock.
 */
#ifndef VS_PACS_STATE_H
#define VS_PACS_STATE_H

#include <stdint.h>

#include "status.h"

typedef struct pacs_state pacs_state;

vs_status pacs_state_open(const char *catalog_path, pacs_state **out, vs_error *err);
void pacs_state_close(pacs_state *s);

/* The peer's watermark (YYYYMMDD), "" when it has none. */
vs_status pacs_state_watermark(pacs_state *s, const char *peer, char out[9], vs_error *err);
/* Move it forward to date (kept when date is not later). */
vs_status pacs_state_advance(pacs_state *s, const char *peer, const char *date, vs_error *err);

/* Sources of the catalog whose path starts with prefix (a series' instances in the shards). */
vs_status pacs_state_committed(pacs_state *s, const char *prefix, int64_t *n, vs_error *err);

/* Record the outcome of a series' retrieval (one committed transaction). */
vs_status pacs_state_record(pacs_state *s, const char *peer, const char *series_key,
                            const char *study_key, int expected, int received, const char *state,
                            const char *reason, vs_error *err);

#endif
