/* pacs_state.c — the PACS tables of the catalog (pacs_state.h), on SQLite. */
#include "pacs_state.h"
#include "utc.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pacs_state {
    sqlite3 *db;
    char path[4096];
};

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS pacs_peers(peer TEXT PRIMARY KEY, watermark TEXT,"
    "  last_run TEXT);"
    "CREATE TABLE IF NOT EXISTS pacs_series(peer TEXT NOT NULL, series_key TEXT NOT NULL,"
    "  study_key TEXT, expected INTEGER NOT NULL, received INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK(state IN ('done','partial')), reason TEXT,"
    "  updated_at TEXT NOT NULL, PRIMARY KEY(peer, series_key));";

static vs_status db_fail(pacs_state *s, vs_error *err, const char *what) {
    return VS_FAIL(err, VS_ERR_LIBRARY, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

vs_status pacs_state_open(const char *catalog_path, pacs_state **out, vs_error *err) {
    *out = NULL;
    pacs_state *s = calloc(1, sizeof *s);
    if (!s) return VS_FAIL(err, VS_ERR_NOMEM, "out of memory");
    snprintf(s->path, sizeof s->path, "%s", catalog_path);
    vs_status st = VS_OK;
    char *msg = NULL;
    if (sqlite3_open_v2(catalog_path, &s->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        st = s->db ? db_fail(s, err, "cannot open the catalog")
                   : VS_FAIL(err, VS_ERR_NOMEM, "%s: cannot open the catalog", catalog_path);
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 10000);
    if (sqlite3_exec(s->db, "PRAGMA synchronous=FULL;", NULL, NULL, &msg) != SQLITE_OK ||
        sqlite3_exec(s->db, schema_sql, NULL, NULL, &msg) != SQLITE_OK) {
        st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: cannot add the PACS tables: %s", catalog_path,
                     msg ? msg : "SQLite error");
        sqlite3_free(msg);
        goto fail;
    }
    *out = s;
    return VS_OK;
fail:
    pacs_state_close(s);
    return st;
}

void pacs_state_close(pacs_state *s) {
    if (!s) return;
    sqlite3_close(s->db);
    free(s);
}

vs_status pacs_state_watermark(pacs_state *s, const char *peer, char out[9], vs_error *err) {
    sqlite3_stmt *q = NULL;
    out[0] = 0;
    if (sqlite3_prepare_v2(s->db, "SELECT watermark FROM pacs_peers WHERE peer=?", -1, &q, NULL) !=
            SQLITE_OK ||
        sqlite3_bind_text(q, 1, peer, -1, SQLITE_TRANSIENT) != SQLITE_OK) {
        sqlite3_finalize(q);
        return db_fail(s, err, "cannot read a watermark");
    }
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_text(q, 0))
        snprintf(out, 9, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_fail(s, err, "cannot read a watermark");
    return VS_OK;
}

vs_status pacs_state_advance(pacs_state *s, const char *peer, const char *date, vs_error *err) {
    sqlite3_stmt *q = NULL;
    char now[32];
    vs_utc_now(now, sizeof now, 0);
    static const char sql[] =
        "INSERT INTO pacs_peers(peer, watermark, last_run) VALUES(?1, ?2, ?3)"
        " ON CONFLICT(peer) DO UPDATE SET last_run=?3, watermark=CASE WHEN watermark IS NULL"
        " OR watermark < ?2 THEN ?2 ELSE watermark END";
    vs_status st = VS_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, peer, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        (date && date[0] ? sqlite3_bind_text(q, 2, date, -1, SQLITE_TRANSIENT)
                         : sqlite3_bind_null(q, 2)) != SQLITE_OK ||
        sqlite3_bind_text(q, 3, now, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_DONE)
        st = db_fail(s, err, "cannot record a watermark");
    sqlite3_finalize(q);
    return st;
}

vs_status pacs_state_committed(pacs_state *s, const char *prefix, int64_t *n, vs_error *err) {
    sqlite3_stmt *q = NULL;
    size_t len = strlen(prefix);
    if (len == 0 || len >= 1024 || prefix[len - 1] != '/')
        return VS_FAIL(err, VS_ERR_INTERNAL, "a series prefix must end with '/'");
    char upper[1024];
    memcpy(upper, prefix, len + 1);
    upper[len - 1] = '/' + 1; /* every path under prefix sorts in [prefix, upper) */
    vs_status st = VS_OK;
    /* a range on the primary key (an index search), not LIKE (a scan; '%' and '_' in paths) */
    if (sqlite3_prepare_v2(
            s->db, "SELECT COUNT(*) FROM sources WHERE source_key >= ?1 AND source_key < ?2", -1,
            &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, prefix, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, upper, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_ROW)
        st = db_fail(s, err, "cannot count a series' sources");
    else
        *n = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return st;
}

vs_status pacs_state_record(pacs_state *s, const char *peer, const char *series_key,
                            const char *study_key, int expected, int received, const char *state,
                            const char *reason, vs_error *err) {
    sqlite3_stmt *q = NULL;
    char now[32];
    vs_utc_now(now, sizeof now, 0);
    static const char sql[] =
        "INSERT INTO pacs_series(peer, series_key, study_key, expected, received, state, reason,"
        " updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(peer, series_key) DO"
        " UPDATE SET study_key=?3, expected=?4, received=?5, state=?6, reason=?7, updated_at=?8";
    vs_status st = VS_OK;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK ||
        sqlite3_bind_text(q, 1, peer, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(q, 2, series_key, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_text(q, 3, study_key, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_bind_int(q, 4, expected) != SQLITE_OK ||
        sqlite3_bind_int(q, 5, received) != SQLITE_OK ||
        sqlite3_bind_text(q, 6, state, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        (reason ? sqlite3_bind_text(q, 7, reason, -1, SQLITE_TRANSIENT)
                : sqlite3_bind_null(q, 7)) != SQLITE_OK ||
        sqlite3_bind_text(q, 8, now, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
        sqlite3_step(q) != SQLITE_DONE)
        st = db_fail(s, err, "cannot record a series' retrieval");
    sqlite3_finalize(q);
    return st;
}
