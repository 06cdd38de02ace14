/* catalog.c — the ingest catalog on SQLite (catalog.h). Every statement's result is checked;
 * SQLite's message goes into the vs_error with the catalog path. */
#include "catalog.h"
#include "utc.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct catalog {
    sqlite3 *db;
    char path[4096];
};

static const char *const state_names[] = {"used", "skipped", "rejected"};

const char *catalog_state_name(catalog_state s) {
    return (unsigned)s < 3 ? state_names[s] : "unknown";
}

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY, started_at TEXT NOT NULL,"
    "  finished_at TEXT, params TEXT, status TEXT NOT NULL DEFAULT 'running',"
    "  n_volumes INTEGER, n_rejected INTEGER, n_skipped INTEGER);"
    "CREATE TABLE IF NOT EXISTS shards(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    "  sequence INTEGER NOT NULL UNIQUE, n_volumes INTEGER NOT NULL, run_id INTEGER);"
    "CREATE TABLE IF NOT EXISTS volumes(id INTEGER PRIMARY KEY, series_key TEXT NOT NULL,"
    "  shard_id INTEGER NOT NULL REFERENCES shards(id), modality TEXT, checksum TEXT NOT NULL,"
    "  shape TEXT NOT NULL, n_sources INTEGER NOT NULL,"
    "  state TEXT NOT NULL CHECK(state IN ('live','retired')), run_id INTEGER);"
    "CREATE UNIQUE INDEX IF NOT EXISTS volumes_live ON volumes(series_key) WHERE state='live';"
    "CREATE TABLE IF NOT EXISTS sources(source_key TEXT PRIMARY KEY, size INTEGER NOT NULL,"
    "  mtime_ns INTEGER NOT NULL, content_hash TEXT, instance_key TEXT,"
    "  state TEXT NOT NULL CHECK(state IN ('used','skipped','rejected')), reason TEXT,"
    "  series_key TEXT, volume_id INTEGER REFERENCES volumes(id), run_id INTEGER);"
    "CREATE INDEX IF NOT EXISTS sources_series ON sources(series_key);"
    "CREATE INDEX IF NOT EXISTS sources_instance ON sources(instance_key);"
    "CREATE TABLE IF NOT EXISTS dropped_shards(name TEXT PRIMARY KEY);";

static vs_status db_fail(catalog *c, vs_error *err, const char *what) {
    return VS_FAIL(err, VS_ERR_LIBRARY, "%s: %s: %s", c->path, what, sqlite3_errmsg(c->db));
}

static vs_status exec(catalog *c, const char *sql, vs_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        vs_status st = VS_FAIL(err, VS_ERR_LIBRARY, "%s: %s", c->path, msg ? msg : "SQLite error");
        sqlite3_free(msg);
        return st;
    }
    return VS_OK;
}

static vs_status prepare(catalog *c, const char *sql, sqlite3_stmt **st, vs_error *err) {
    if (sqlite3_prepare_v2(c->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_fail(c, err, "cannot prepare a statement");
    return VS_OK;
}

/* Bind a text value or NULL. */
static int bind_text(sqlite3_stmt *s, int i, const char *v) {
    return v ? sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(s, i);
}

static vs_status check_version(catalog *c, vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = prepare(c, "SELECT value FROM meta WHERE key='schema_version'", &s, err);
    if (st != VS_OK) return st;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        int v = atoi((const char *)sqlite3_column_text(s, 0));
        if (v > CATALOG_SCHEMA_VERSION)
            st = VS_FAIL(err, VS_ERR_FORMAT,
                         "%s: catalog schema version %d is newer than this vesalius reads (%d); "
                         "upgrade vesalius",
                         c->path, v, CATALOG_SCHEMA_VERSION);
        else if (v < CATALOG_SCHEMA_VERSION) /* version 1 named input files by their paths */
            st = VS_FAIL(err, VS_ERR_FORMAT,
                         "%s: catalog schema version %d keeps the paths of the input files, which "
                         "may name patients; remove this output folder and ingest again",
                         c->path, v);
    } else if (rc == SQLITE_DONE) {
        char sql[128];
        snprintf(sql, sizeof sql, "INSERT INTO meta(key, value) VALUES('schema_version', '%d')",
                 CATALOG_SCHEMA_VERSION);
        sqlite3_finalize(s);
        return exec(c, sql, err);
    } else {
        st = db_fail(c, err, "cannot read the schema version");
    }
    sqlite3_finalize(s);
    return st;
}

vs_status catalog_open(const char *path, catalog **out, vs_error *err) {
    *out = NULL;
    catalog *c = calloc(1, sizeof *c);
    if (!c) return VS_FAIL(err, VS_ERR_NOMEM, "cannot allocate a catalog");
    snprintf(c->path, sizeof c->path, "%s", path);
    vs_status st;
    if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        st = c->db ? db_fail(c, err, "cannot open the catalog")
                   : VS_FAIL(err, VS_ERR_NOMEM, "%s: cannot open the catalog", path);
        goto fail;
    }
    sqlite3_busy_timeout(c->db, 10000);
    if ((st = exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
                   err)) != VS_OK ||
        (st = exec(c, "BEGIN IMMEDIATE", err)) != VS_OK)
        goto fail;
    if ((st = exec(c, schema_sql, err)) != VS_OK || (st = check_version(c, err)) != VS_OK) {
        exec(c, "ROLLBACK", NULL);
        goto fail;
    }
    if ((st = exec(c, "COMMIT", err)) != VS_OK) goto fail;
    *out = c;
    return VS_OK;
fail:
    catalog_close(c);
    return st;
}

void catalog_close(catalog *c) {
    if (!c) return;
    sqlite3_close(c->db);
    free(c);
}

vs_status catalog_run_begin(catalog *c, const char *params_json, int64_t *run_id, vs_error *err) {
    sqlite3_stmt *s = NULL;
    char now[32];
    vs_utc_now(now, sizeof now, 0);
    /* The caller holds the output folder's lock: a run still 'running' was killed. */
    vs_status st = exec(c, "UPDATE runs SET status='interrupted' WHERE status='running'", err);
    if (st != VS_OK) return st;
    if ((st = prepare(c, "INSERT INTO runs(started_at, params) VALUES(?, ?)", &s, err)) != VS_OK)
        return st;
    if (bind_text(s, 1, now) != SQLITE_OK || bind_text(s, 2, params_json) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE)
        st = db_fail(c, err, "cannot record the run");
    else
        *run_id = sqlite3_last_insert_rowid(c->db);
    sqlite3_finalize(s);
    return st;
}

vs_status catalog_run_end(catalog *c, int64_t run_id, const char *status, int n_volumes,
                          int n_rejected, int n_skipped, vs_error *err) {
    sqlite3_stmt *s = NULL;
    char now[32];
    vs_utc_now(now, sizeof now, 0);
    vs_status st = prepare(c,
                           "UPDATE runs SET finished_at=?, status=?, n_volumes=?, n_rejected=?,"
                           " n_skipped=? WHERE id=?",
                           &s, err);
    if (st != VS_OK) return st;
    if (bind_text(s, 1, now) != SQLITE_OK || bind_text(s, 2, status) != SQLITE_OK ||
        sqlite3_bind_int(s, 3, n_volumes) != SQLITE_OK ||
        sqlite3_bind_int(s, 4, n_rejected) != SQLITE_OK ||
        sqlite3_bind_int(s, 5, n_skipped) != SQLITE_OK ||
        sqlite3_bind_int64(s, 6, run_id) != SQLITE_OK || sqlite3_step(s) != SQLITE_DONE)
        st = db_fail(c, err, "cannot close the run record");
    sqlite3_finalize(s);
    return st;
}

vs_status catalog_file_check(catalog *c, const catalog_source *src, catalog_file_status *status,
                             vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st =
        prepare(c, "SELECT size, mtime_ns, content_hash FROM sources WHERE source_key=?", &s, err);
    if (st != VS_OK) return st;
    if (bind_text(s, 1, src->key) != SQLITE_OK) {
        st = db_fail(c, err, "cannot look up a source");
        goto done;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        *status = CATALOG_FILE_NEW;
    } else if (rc == SQLITE_ROW) {
        int64_t size = sqlite3_column_int64(s, 0), mtime = sqlite3_column_int64(s, 1);
        const char *hash = (const char *)sqlite3_column_text(s, 2);
        if (size == src->size && mtime == src->mtime_ns)
            *status = CATALOG_FILE_UNCHANGED;
        else if (size == src->size && hash && src->content_hash &&
                 strcmp(hash, src->content_hash) == 0)
            *status = CATALOG_FILE_UNCHANGED;
        else
            *status = CATALOG_FILE_CHANGED;
    } else {
        st = db_fail(c, err, "cannot look up a source");
    }
done:
    sqlite3_finalize(s);
    return st;
}

static const char upsert_source_sql[] =
    "INSERT INTO sources(source_key, size, mtime_ns, content_hash, instance_key, state, reason,"
    " series_key, volume_id, run_id) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    " ON CONFLICT(source_key) DO UPDATE SET size=?2, mtime_ns=?3, content_hash=?4, instance_key=?5,"
    " state=?6, reason=?7, series_key=?8, volume_id=?9, run_id=?10";

static int bind_source(sqlite3_stmt *s, const catalog_source *src, catalog_state state,
                       const char *reason, const char *series_key, int64_t volume_id,
                       int64_t run_id) {
    int rc = SQLITE_OK;
    if (rc == SQLITE_OK) rc = bind_text(s, 1, src->key);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 2, src->size);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 3, src->mtime_ns);
    if (rc == SQLITE_OK) rc = bind_text(s, 4, src->content_hash);
    if (rc == SQLITE_OK) rc = bind_text(s, 5, src->instance_key);
    if (rc == SQLITE_OK) rc = bind_text(s, 6, catalog_state_name(state));
    if (rc == SQLITE_OK) rc = bind_text(s, 7, reason);
    if (rc == SQLITE_OK) rc = bind_text(s, 8, series_key);
    if (rc == SQLITE_OK)
        rc = volume_id > 0 ? sqlite3_bind_int64(s, 9, volume_id) : sqlite3_bind_null(s, 9);
    if (rc == SQLITE_OK) rc = sqlite3_bind_int64(s, 10, run_id);
    return rc;
}

vs_status catalog_record_file(catalog *c, int64_t run_id, const catalog_source *src,
                              catalog_state state, const char *reason, vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = prepare(c, upsert_source_sql, &s, err);
    if (st != VS_OK) return st;
    if (bind_source(s, src, state, reason, NULL, 0, run_id) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_DONE)
        st = db_fail(c, err, "cannot record a source");
    sqlite3_finalize(s);
    return st;
}

/* Insert one volume (retiring the live one of its series) and upsert its sources. */
static vs_status commit_volume(catalog *c, sqlite3_stmt *retire, sqlite3_stmt *ins,
                               sqlite3_stmt *src_stmt, int64_t run_id, int64_t shard_id,
                               const catalog_volume *v, vs_error *err) {
    char shape[96];
    snprintf(shape, sizeof shape, "%lld,%lld,%lld", (long long)v->shape[0], (long long)v->shape[1],
             (long long)v->shape[2]);
    sqlite3_reset(retire);
    if (bind_text(retire, 1, v->series_key) != SQLITE_OK || sqlite3_step(retire) != SQLITE_DONE)
        return db_fail(c, err, "cannot retire an older volume");
    sqlite3_reset(ins);
    if (bind_text(ins, 1, v->series_key) != SQLITE_OK ||
        sqlite3_bind_int64(ins, 2, shard_id) != SQLITE_OK ||
        bind_text(ins, 3, v->modality) != SQLITE_OK ||
        bind_text(ins, 4, v->checksum) != SQLITE_OK || bind_text(ins, 5, shape) != SQLITE_OK ||
        sqlite3_bind_int(ins, 6, v->n_sources) != SQLITE_OK ||
        sqlite3_bind_int64(ins, 7, run_id) != SQLITE_OK || sqlite3_step(ins) != SQLITE_DONE)
        return db_fail(c, err, "cannot insert a volume");
    int64_t volume_id = sqlite3_last_insert_rowid(c->db);
    for (int i = 0; i < v->n_sources; i++) {
        sqlite3_reset(src_stmt);
        if (bind_source(src_stmt, &v->sources[i], CATALOG_USED, NULL, v->series_key, volume_id,
                        run_id) != SQLITE_OK ||
            sqlite3_step(src_stmt) != SQLITE_DONE)
            return db_fail(c, err, "cannot record a source");
    }
    return VS_OK;
}

vs_status catalog_commit_shard(catalog *c, int64_t run_id, const char *shard_name, int64_t sequence,
                               const catalog_volume *vols, int n, vs_error *err) {
    sqlite3_stmt *shard = NULL, *retire = NULL, *ins = NULL, *src = NULL;
    vs_status st = exec(c, "BEGIN IMMEDIATE", err);
    if (st != VS_OK) return st;
    if ((st = prepare(c, "INSERT INTO shards(name, sequence, n_volumes, run_id) VALUES(?,?,?,?)",
                      &shard, err)) != VS_OK ||
        (st = prepare(c, "UPDATE volumes SET state='retired' WHERE series_key=? AND state='live'",
                      &retire, err)) != VS_OK ||
        (st = prepare(c,
                      "INSERT INTO volumes(series_key, shard_id, modality, checksum, shape,"
                      " n_sources, state, run_id) VALUES(?,?,?,?,?,?,'live',?)",
                      &ins, err)) != VS_OK ||
        (st = prepare(c, upsert_source_sql, &src, err)) != VS_OK)
        goto done;
    if (bind_text(shard, 1, shard_name) != SQLITE_OK ||
        sqlite3_bind_int64(shard, 2, sequence) != SQLITE_OK ||
        sqlite3_bind_int(shard, 3, n) != SQLITE_OK ||
        sqlite3_bind_int64(shard, 4, run_id) != SQLITE_OK || sqlite3_step(shard) != SQLITE_DONE) {
        st = db_fail(c, err, "cannot record a shard");
        goto done;
    }
    int64_t shard_id = sqlite3_last_insert_rowid(c->db);
    for (int i = 0; i < n && st == VS_OK; i++)
        st = commit_volume(c, retire, ins, src, run_id, shard_id, &vols[i], err);
done:
    sqlite3_finalize(shard);
    sqlite3_finalize(retire);
    sqlite3_finalize(ins);
    sqlite3_finalize(src);
    if (st == VS_OK) return exec(c, "COMMIT", err);
    exec(c, "ROLLBACK", NULL);
    return st;
}

/* Run a query returning one integer (NULL → 0). */
static vs_status query_int(catalog *c, const char *sql, const char *arg, int64_t *out,
                           vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = prepare(c, sql, &s, err);
    if (st != VS_OK) return st;
    if ((arg && bind_text(s, 1, arg) != SQLITE_OK) || sqlite3_step(s) != SQLITE_ROW)
        st = db_fail(c, err, "cannot query the catalog");
    else
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return st;
}

vs_status catalog_next_sequence(catalog *c, int64_t *sequence, vs_error *err) {
    int64_t m = 0;
    vs_status st = query_int(c, "SELECT COALESCE(MAX(sequence), 0) FROM shards", NULL, &m, err);
    if (st == VS_OK) *sequence = m + 1;
    return st;
}

vs_status catalog_shard_known(catalog *c, const char *shard_name, int *known, vs_error *err) {
    int64_t n = 0;
    vs_status st = query_int(c, "SELECT COUNT(*) FROM shards WHERE name=?", shard_name, &n, err);
    if (st == VS_OK) *known = n > 0;
    return st;
}

vs_status catalog_each_reject(catalog *c, int64_t run_id,
                              int (*fn)(void *ctx, const char *key, const char *state,
                                        const char *reason),
                              void *ctx, vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = prepare(c,
                           "SELECT source_key, state, COALESCE(reason, '') FROM sources"
                           " WHERE state != 'used' AND (?1 = 0 OR run_id = ?1) ORDER BY source_key",
                           &s, err);
    if (st != VS_OK) return st;
    if (sqlite3_bind_int64(s, 1, run_id) != SQLITE_OK) {
        st = db_fail(c, err, "cannot list rejects");
        goto done;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, (const char *)sqlite3_column_text(s, 0),
               (const char *)sqlite3_column_text(s, 1), (const char *)sqlite3_column_text(s, 2)))
            break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = db_fail(c, err, "cannot list rejects");
done:
    sqlite3_finalize(s);
    return st;
}

vs_status catalog_series_live(catalog *c, const char *series_key, int *live, vs_error *err) {
    int64_t n = 0;
    vs_status st = query_int(c, "SELECT COUNT(*) FROM volumes WHERE series_key=? AND state='live'",
                             series_key, &n, err);
    if (st == VS_OK) *live = n > 0;
    return st;
}

/* Call fn on the first text column of each row of sql (bound to arg when not NULL). */
static vs_status each_text(catalog *c, const char *sql, const char *arg,
                           int (*fn)(void *ctx, const char *s), void *ctx, vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = prepare(c, sql, &s, err);
    if (st != VS_OK) return st;
    if (arg && bind_text(s, 1, arg) != SQLITE_OK) {
        st = db_fail(c, err, "cannot query the catalog");
        goto done;
    }
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        if (fn(ctx, (const char *)sqlite3_column_text(s, 0))) break;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) st = db_fail(c, err, "cannot query the catalog");
done:
    sqlite3_finalize(s);
    return st;
}

vs_status catalog_each_shard(catalog *c, int (*fn)(void *ctx, const char *name), void *ctx,
                             vs_error *err) {
    return each_text(c, "SELECT name FROM shards ORDER BY sequence", NULL, fn, ctx, err);
}

vs_status catalog_series_sources(catalog *c, const char *series_key,
                                 int (*fn)(void *ctx, const char *key), void *ctx, vs_error *err) {
    return each_text(c,
                     "SELECT s.source_key FROM sources s JOIN volumes v ON s.volume_id=v.id"
                     " WHERE v.series_key=?1 AND v.state='live' ORDER BY s.source_key",
                     series_key, fn, ctx, err);
}

vs_status catalog_forget_shard(catalog *c, const char *shard_name, vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = exec(c, "BEGIN IMMEDIATE", err);
    if (st != VS_OK) return st;
    static const char *const sql[] = {
        "DELETE FROM sources WHERE volume_id IN (SELECT v.id FROM volumes v JOIN shards h"
        " ON v.shard_id=h.id WHERE h.name=?1)",
        "DELETE FROM volumes WHERE shard_id IN (SELECT id FROM shards WHERE name=?1)",
        "DELETE FROM shards WHERE name=?1",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && st == VS_OK; i++) {
        if ((st = prepare(c, sql[i], &s, err)) != VS_OK) break;
        if (bind_text(s, 1, shard_name) != SQLITE_OK || sqlite3_step(s) != SQLITE_DONE)
            st = db_fail(c, err, "cannot forget a lost shard");
        sqlite3_finalize(s);
    }
    if (st == VS_OK) return exec(c, "COMMIT", err);
    exec(c, "ROLLBACK", NULL);
    return st;
}

static const struct {
    const char *what, *sql;
} count_sql[] = {
    {"live", "SELECT COUNT(*) FROM volumes WHERE state='live'"},
    {"retired", "SELECT COUNT(*) FROM volumes WHERE state='retired'"},
    {"used", "SELECT COUNT(*) FROM sources WHERE state='used'"},
    {"skipped", "SELECT COUNT(*) FROM sources WHERE state='skipped'"},
    {"rejected", "SELECT COUNT(*) FROM sources WHERE state='rejected'"},
    {"shards", "SELECT COUNT(*) FROM shards"},
};

vs_status catalog_count(catalog *c, const char *what, int64_t *n, vs_error *err) {
    for (size_t i = 0; i < sizeof count_sql / sizeof count_sql[0]; i++)
        if (strcmp(count_sql[i].what, what) == 0)
            return query_int(c, count_sql[i].sql, NULL, n, err);
    return VS_FAIL(err, VS_ERR_INTERNAL, "unknown catalog count '%s'", what);
}

/* ---- compaction ---------------------------------------------------------------------- */

/* Voxels of a "S,R,C" shape text (0 when malformed). */
static int64_t shape_voxels(const char *shape) {
    long long a = 0, b = 0, c = 0;
    if (!shape || sscanf(shape, "%lld,%lld,%lld", &a, &b, &c) != 3) return 0;
    return (int64_t)(a * b * c);
}

vs_status catalog_each_shard_usage(catalog *c, catalog_usage_fn fn, void *ctx, vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = prepare(c,
                           "SELECT h.name, h.sequence, v.shape, v.state FROM shards h"
                           " LEFT JOIN volumes v ON v.shard_id=h.id ORDER BY h.sequence, v.id",
                           &s, err);
    if (st != VS_OK) return st;
    char name[256] = "";
    int64_t seq = 0, live = 0, all = 0;
    int have = 0, rc, stop = 0;
    while (!stop && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *n = (const char *)sqlite3_column_text(s, 0);
        if (have && strcmp(n, name) != 0) {
            stop = fn(ctx, name, seq, live, all);
            live = all = 0;
        }
        snprintf(name, sizeof name, "%s", n);
        seq = sqlite3_column_int64(s, 1);
        have = 1;
        const char *state = (const char *)sqlite3_column_text(s, 3);
        int64_t vox = shape_voxels((const char *)sqlite3_column_text(s, 2));
        all += vox;
        if (state && strcmp(state, "live") == 0) live += vox;
    }
    if (stop)
        rc = SQLITE_DONE;
    else if (rc == SQLITE_DONE && have)
        fn(ctx, name, seq, live, all);
    if (rc != SQLITE_DONE) st = db_fail(c, err, "cannot list shard usage");
    sqlite3_finalize(s);
    return st;
}

vs_status catalog_shard_live_keys(catalog *c, const char *shard_name,
                                  int (*fn)(void *ctx, const char *key), void *ctx, vs_error *err) {
    return each_text(c,
                     "SELECT v.series_key FROM volumes v JOIN shards h ON v.shard_id=h.id"
                     " WHERE h.name=?1 AND v.state='live' ORDER BY v.id",
                     shard_name, fn, ctx, err);
}

/* Run sql with ?1 bound to arg (and ?2 to i2 when i2 >= 0); *changes gets the rows touched. */
static vs_status exec_bound(catalog *c, const char *sql, const char *arg, int64_t i2, int *changes,
                            vs_error *err) {
    sqlite3_stmt *s = NULL;
    vs_status st = prepare(c, sql, &s, err);
    if (st != VS_OK) return st;
    if (bind_text(s, 1, arg) != SQLITE_OK ||
        (i2 >= 0 && sqlite3_bind_int64(s, 2, i2) != SQLITE_OK) || sqlite3_step(s) != SQLITE_DONE)
        st = db_fail(c, err, "cannot update the catalog for compaction");
    else if (changes)
        *changes = sqlite3_changes(c->db);
    sqlite3_finalize(s);
    return st;
}

/* Take an emptied shard out of the catalog and onto the drop list (inside a transaction). */
static vs_status drop_shard_rows(catalog *c, const char *name, vs_error *err) {
    int64_t live = 0;
    vs_status st = query_int(c,
                             "SELECT COUNT(*) FROM volumes v JOIN shards h ON v.shard_id=h.id"
                             " WHERE h.name=? AND v.state='live'",
                             name, &live, err);
    if (st == VS_OK && live)
        return VS_FAIL(err, VS_ERR_INTERNAL, "%s: shard %s still holds live volumes", c->path,
                       name);
    static const char *const sql[] = {
        "UPDATE sources SET volume_id=NULL WHERE volume_id IN (SELECT v.id FROM volumes v"
        " JOIN shards h ON v.shard_id=h.id WHERE h.name=?1)",
        "DELETE FROM volumes WHERE shard_id IN (SELECT id FROM shards WHERE name=?1)",
        "DELETE FROM shards WHERE name=?1",
        "INSERT OR IGNORE INTO dropped_shards(name) VALUES(?1)",
    };
    for (size_t i = 0; i < sizeof sql / sizeof sql[0] && st == VS_OK; i++)
        st = exec_bound(c, sql[i], name, -1, NULL, err);
    return st;
}

vs_status catalog_commit_compaction(catalog *c, int64_t run_id, const char *shard_name,
                                    int64_t sequence, const char *const *keys, int n_keys,
                                    const char *const *emptied, int n_emptied, vs_error *err) {
    vs_status st = exec(c, "BEGIN IMMEDIATE", err);
    if (st != VS_OK) return st;
    if (shard_name) {
        sqlite3_stmt *s = NULL;
        if ((st =
                 prepare(c, "INSERT INTO shards(name, sequence, n_volumes, run_id) VALUES(?,?,?,?)",
                         &s, err)) != VS_OK)
            goto done;
        if (bind_text(s, 1, shard_name) != SQLITE_OK ||
            sqlite3_bind_int64(s, 2, sequence) != SQLITE_OK ||
            sqlite3_bind_int(s, 3, n_keys) != SQLITE_OK ||
            sqlite3_bind_int64(s, 4, run_id) != SQLITE_OK || sqlite3_step(s) != SQLITE_DONE)
            st = db_fail(c, err, "cannot record a shard");
        sqlite3_finalize(s);
        int64_t id = sqlite3_last_insert_rowid(c->db);
        for (int i = 0; i < n_keys && st == VS_OK; i++) {
            int moved = 0;
            st =
                exec_bound(c, "UPDATE volumes SET shard_id=?2 WHERE series_key=?1 AND state='live'",
                           keys[i], id, &moved, err);
            if (st == VS_OK && moved != 1)
                st = VS_FAIL(err, VS_ERR_INTERNAL, "%s: a moved volume has no live row", c->path);
        }
    }
    for (int i = 0; i < n_emptied && st == VS_OK; i++)
        st = drop_shard_rows(c, emptied[i], err);
done:
    if (st == VS_OK) return exec(c, "COMMIT", err);
    exec(c, "ROLLBACK", NULL);
    return st;
}

vs_status catalog_each_dropped_shard(catalog *c, int (*fn)(void *ctx, const char *name), void *ctx,
                                     vs_error *err) {
    return each_text(c, "SELECT name FROM dropped_shards ORDER BY name", NULL, fn, ctx, err);
}

vs_status catalog_dropped_shard_gone(catalog *c, const char *shard_name, vs_error *err) {
    return exec_bound(c, "DELETE FROM dropped_shards WHERE name=?1", shard_name, -1, NULL, err);
}
