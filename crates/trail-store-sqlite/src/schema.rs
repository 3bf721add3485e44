//! Versioned migrations of the sqlite schema, applied at open.
//!
//! `PRAGMA user_version` holds the schema version. A database whose version
//! is newer than this build knows is refused with a clear message rather than
//! half-understood. Each migration runs in its own transaction.
//!
//! Layout, chosen for append speed (see ARCHITECTURE.md):
//! - `records` is a rowid table whose rowid *is* (tenant, seq):
//!   `rid = tenant_id << 40 | seq` (see [`rid`]), so a tenant's log is one
//!   contiguous rowid range, appends go to its right edge, and no separate
//!   (tenant, seq) index is written. Its one secondary index, (tenant, id)
//!   for idempotency, stays near its right edge with time-ordered ids. Time
//!   ranges are served by per-hour posting lists, not by an index on time
//!   (which cost a fifth of the ingest rate).
//! - Every equality filter goes through one inverted index, `postings`:
//!   per commit, one row per (tenant, dim) touched, holding that commit's
//!   seqs delta-encoded, keyed by segment first so each commit writes into
//!   one small region (see `postings.rs`); `dim` is a small integer from the
//!   `dims` dictionary (one row per distinct (tenant, kind, value)).
//! - `tree_nodes` holds the complete subtree hashes of each tenant's Merkle
//!   tree at every fourth level (4, 8, ...; level 0, the leaf hashes, are in
//!   `records`, and the levels between are computed from these),
//!   written in the same transaction as the leaves; `checkpoints` keeps
//!   every signed checkpoint. Both are append-only.
//! - `rollups` holds per-hour counts and duration histograms per (type,
//!   status, name): derived data, updated in place, read by stats.
//! - `content` holds the erasable part (salt and JCS content) apart from the
//!   envelope, so erasure never touches a leaf.
//! - Triggers abort UPDATE and DELETE on records, postings, content, tree
//!   nodes and checkpoints. The only deletions let through are the
//!   sanctioned ones (migration 2): retention deletes records, their content
//!   and postings, erasure deletes content, each inside a transaction that
//!   first inserts its guard row into `sanction` and deletes it before
//!   committing (see `retention.rs`), so the table is always empty outside
//!   them and an ordinary DELETE still aborts. UPDATE always aborts.
//! - Retired records keep their leaf hashes in `tree_nodes` at level 0.

use rusqlite::Connection;
use trail_store::StoreError;

/// The migrations, in order; index + 1 is the version they lead to.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    role        TEXT NOT NULL CHECK (role IN ('ingest', 'read', 'admin')),
    user_id     TEXT,
    secret_hash BLOB NOT NULL CHECK (length(secret_hash) = 32),
    label       TEXT,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys(tenant_id, created_at);
CREATE TABLE settings (
    tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id),
    body      TEXT NOT NULL
);
CREATE TABLE dims (
    id        INTEGER PRIMARY KEY,
    tenant_id INTEGER NOT NULL,
    kind      INTEGER NOT NULL,
    value     TEXT NOT NULL,
    UNIQUE (tenant_id, kind, value)
);
CREATE TABLE records (
    rid         INTEGER PRIMARY KEY CHECK (rid = (tenant_id << 40) | seq),
    tenant_id   INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    id          BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    ts          INTEGER NOT NULL,
    type        INTEGER NOT NULL,
    status      INTEGER NOT NULL,
    name_dim    INTEGER NOT NULL,
    duration_ms INTEGER,
    has_content INTEGER NOT NULL,
    envelope    BLOB NOT NULL,
    leaf_hash   BLOB NOT NULL
);
CREATE UNIQUE INDEX records_id ON records(tenant_id, id);
CREATE TABLE postings (
    tenant_id INTEGER NOT NULL,
    segment   INTEGER NOT NULL,
    dim       INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    seqs      BLOB NOT NULL,
    PRIMARY KEY (tenant_id, segment, dim, first_seq)
) WITHOUT ROWID;
CREATE TABLE tree_nodes (
    tenant_id INTEGER NOT NULL,
    level     INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    hash      BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (tenant_id, level, idx)
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    tenant_id  INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    root       BLOB NOT NULL CHECK (length(root) = 32),
    note       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, size)
) WITHOUT ROWID;
CREATE TABLE rollups (
    tenant_id INTEGER NOT NULL,
    hour      INTEGER NOT NULL,
    type      INTEGER NOT NULL,
    status    INTEGER NOT NULL,
    name_dim  INTEGER NOT NULL,
    n         INTEGER NOT NULL,
    durations BLOB NOT NULL,
    PRIMARY KEY (tenant_id, hour, type, status, name_dim)
) WITHOUT ROWID;
CREATE TABLE content (
    rid  INTEGER PRIMARY KEY,
    salt BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TRIGGER records_append_only_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'trail: records are append-only'); END;
CREATE TRIGGER records_append_only_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'trail: records are append-only'); END;
CREATE TRIGGER postings_append_only_update BEFORE UPDATE ON postings
BEGIN SELECT RAISE(ABORT, 'trail: postings are append-only'); END;
CREATE TRIGGER postings_append_only_delete BEFORE DELETE ON postings
BEGIN SELECT RAISE(ABORT, 'trail: postings are append-only'); END;
CREATE TRIGGER tree_nodes_append_only_update BEFORE UPDATE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'trail: tree nodes are append-only'); END;
CREATE TRIGGER tree_nodes_append_only_delete BEFORE DELETE ON tree_nodes
BEGIN SELECT RAISE(ABORT, 'trail: tree nodes are append-only'); END;
CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'trail: checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'trail: checkpoints are append-only'); END;
CREATE TRIGGER content_append_only_update BEFORE UPDATE ON content
BEGIN SELECT RAISE(ABORT, 'trail: content is append-only'); END;
CREATE TRIGGER content_append_only_delete BEFORE DELETE ON content
BEGIN SELECT RAISE(ABORT, 'trail: content is append-only'); END;
"#,
    r#"
CREATE TABLE sanction (
    kind TEXT NOT NULL CHECK (kind IN ('retire', 'erase'))
);
CREATE TRIGGER sanction_stays_empty AFTER INSERT ON sanction
WHEN (SELECT count(*) FROM sanction) > 1
BEGIN SELECT RAISE(ABORT, 'trail: one sanctioned deletion at a time'); END;
DROP TRIGGER records_append_only_delete;
CREATE TRIGGER records_append_only_delete BEFORE DELETE ON records
WHEN NOT EXISTS (SELECT 1 FROM sanction WHERE kind = 'retire')
BEGIN SELECT RAISE(ABORT, 'trail: records are append-only'); END;
DROP TRIGGER postings_append_only_delete;
CREATE TRIGGER postings_append_only_delete BEFORE DELETE ON postings
WHEN NOT EXISTS (SELECT 1 FROM sanction WHERE kind = 'retire')
BEGIN SELECT RAISE(ABORT, 'trail: postings are append-only'); END;
DROP TRIGGER content_append_only_delete;
CREATE TRIGGER content_append_only_delete BEFORE DELETE ON content
WHEN NOT EXISTS (SELECT 1 FROM sanction)
BEGIN SELECT RAISE(ABORT, 'trail: content is append-only'); END;
"#,
];

/// Bits of the rowid that hold the seq; the tenant id sits above them.
pub const SEQ_BITS: u32 = 40;

/// The rowid of a tenant's record at `seq`.
pub fn rid(tenant: i64, seq: i64) -> i64 {
    (tenant << SEQ_BITS) | seq
}

/// The rowid range `[start, end)` of a tenant's log.
pub fn rid_range(tenant: i64) -> (i64, i64) {
    (rid(tenant, 0), rid(tenant + 1, 0))
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`], or refuses a newer one.
pub fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(StoreError::backend)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::Incompatible(format!(
            "this database has schema version {current}, written by a newer trail; \
             this build understands versions up to {SCHEMA_VERSION}: upgrade trail"
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let version = index as i64 + 1;
        let tx = conn.transaction().map_err(StoreError::backend)?;
        tx.execute_batch(sql).map_err(StoreError::backend)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(StoreError::backend)?;
        tx.commit().map_err(StoreError::backend)?;
        tracing::info!(version, "applied sqlite migration");
    }
    Ok(())
}
