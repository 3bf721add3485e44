//! The two sanctioned deletions: retirement of the oldest records and
//! erasure of one user's content.
//!
//! Each runs in its own `BEGIN IMMEDIATE` transaction that first inserts
//! its guard row into `sanction` (the delete triggers let a DELETE through
//! only while that row exists), deletes, removes the guard row again and
//! commits; an ordinary DELETE outside them still aborts.
//!
//! **Retirement** removes a prefix of the log, whole commits at a time (all
//! records of a commit share one `received_at`, which never decreases along
//! the log), so every posting block lies wholly inside or wholly outside
//! the retired range and is deleted or kept as a unit. The retired leaf
//! hashes move to `tree_nodes` level 0, so every root and proof still
//! computes; the records' counts and durations are subtracted from the
//! rollups. The number retired is `max(idx) + 1` of those level-0 nodes.
//!
//! **Erasure** deletes the `content` rows (salt and body) of one user's
//! records, found through the user's posting list. Connections run with
//! `secure_delete`, so freed cells and pages are zeroed, and after the
//! commit a truncating WAL checkpoint leaves no older page image in the
//! WAL file.

use rusqlite::{params, Connection, OptionalExtension};
use trail_store::dims::DimKind;
use trail_store::StoreError;

use crate::postings;
use crate::rollup::{Pending, HOUR};
use crate::schema::{rid, rid_range};

/// Most records one retirement transaction takes on sqlite (about 40 ms
/// of work with full content): ingest waits for one batch at most.
pub const MAX_BATCH: u32 = 1_000;

/// Records retired so far: seqs below this are gone.
pub fn retired(conn: &Connection, tenant: i64) -> Result<u64, StoreError> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT max(idx) FROM tree_nodes WHERE tenant_id = ?1 AND level = 0")
        .and_then(|mut stmt| stmt.query_row([tenant], |row| row.get(0)))
        .map_err(StoreError::backend)?;
    Ok(last.map_or(0, |idx| idx as u64 + 1))
}

/// Runs `work` in an immediate transaction holding the `kind` guard row.
fn sanctioned<T>(
    conn: &Connection,
    kind: &str,
    work: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::backend)?;
    let outcome = conn
        .execute("INSERT INTO sanction (kind) VALUES (?1)", [kind])
        .map_err(StoreError::backend)
        .and_then(|_| work())
        .and_then(|value| {
            conn.execute_batch("DELETE FROM sanction; COMMIT")
                .map_err(StoreError::backend)?;
            Ok(value)
        });
    if outcome.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

/// Retires one batch: the records from the first remaining one on, in seq
/// order, received before `cutoff`, about `batch` of them but ending at a
/// commit boundary. Returns the retired range `[first, end)`.
pub fn retire_batch(
    conn: &Connection,
    tenant: i64,
    cutoff: i64,
    batch: u32,
) -> Result<(u64, u64), StoreError> {
    sanctioned(conn, "retire", || {
        let first = retired(conn, tenant)?;
        let (_, tenant_end) = rid_range(tenant);
        // The last record of the batch (by count and cutoff).
        let last: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT seq, received_at FROM (SELECT seq, received_at FROM records \
                 WHERE rid >= ?1 AND rid < ?2 ORDER BY rid LIMIT ?3) \
                 WHERE received_at < ?4 ORDER BY seq DESC LIMIT 1",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![rid(tenant, first as i64), tenant_end, batch.max(1), cutoff],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
            })
            .map_err(StoreError::backend)?;
        let Some((last_seq, last_received)) = last else {
            return Ok((first, first));
        };
        // A record received before the cutoff after a later one cannot be
        // (received_at never decreases), so the rows up to `last_seq` are
        // all old enough; the batch extends to the end of their commit.
        let next: Option<i64> = conn
            .prepare_cached(
                "SELECT seq FROM records WHERE rid > ?1 AND rid < ?2 AND received_at <> ?3 \
                 ORDER BY rid LIMIT 1",
            )
            .and_then(|mut stmt| {
                stmt.query_row(
                    params![rid(tenant, last_seq), tenant_end, last_received],
                    |row| row.get(0),
                )
                .optional()
            })
            .map_err(StoreError::backend)?;
        let end = match next {
            Some(seq) => seq as u64,
            None => crate::read::log_size(conn, tenant)?,
        };
        let (low, high) = (rid(tenant, first as i64), rid(tenant, end as i64));
        let moved = conn
            .prepare_cached(
                "INSERT INTO tree_nodes (tenant_id, level, idx, hash) \
                 SELECT tenant_id, 0, seq, leaf_hash FROM records WHERE rid >= ?1 AND rid < ?2",
            )
            .and_then(|mut stmt| stmt.execute([low, high]))
            .map_err(StoreError::backend)?;
        if moved as u64 != end - first {
            return Err(StoreError::Corrupt(format!(
                "seqs {first}..{end} should all be present, found {moved}"
            )));
        }
        let mut retract = Pending::default();
        {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT ts, type, status, name_dim, duration_ms FROM records \
                     WHERE rid >= ?1 AND rid < ?2",
                )
                .map_err(StoreError::backend)?;
            let mut rows = stmt.query([low, high]).map_err(StoreError::backend)?;
            while let Some(row) = rows.next().map_err(StoreError::backend)? {
                let ts: i64 = row.get(0).map_err(StoreError::backend)?;
                let duration: Option<i64> = row.get(4).map_err(StoreError::backend)?;
                retract.add(
                    (
                        tenant,
                        ts.div_euclid(HOUR),
                        row.get(1).map_err(StoreError::backend)?,
                        row.get(2).map_err(StoreError::backend)?,
                        row.get(3).map_err(StoreError::backend)?,
                    ),
                    duration.and_then(|ms| u64::try_from(ms).ok()),
                );
            }
        }
        retract.retract(conn)?;
        for sql in [
            "DELETE FROM content WHERE rid >= ?1 AND rid < ?2",
            "DELETE FROM records WHERE rid >= ?1 AND rid < ?2",
        ] {
            conn.prepare_cached(sql)
                .and_then(|mut stmt| stmt.execute([low, high]))
                .map_err(StoreError::backend)?;
        }
        postings::retire(conn, tenant, end as i64)?;
        Ok((first, end))
    })
}

/// Erases the content of every record of `user_id`; returns how many
/// records lost content.
pub fn erase_user(
    conn: &Connection,
    tenant: i64,
    user_id: &str,
    gate: &crate::commit::WriteGate,
) -> Result<u64, StoreError> {
    let dim: Option<i64> = conn
        .prepare_cached("SELECT id FROM dims WHERE tenant_id = ?1 AND kind = ?2 AND value = ?3")
        .and_then(|mut stmt| {
            stmt.query_row(params![tenant, DimKind::User as u8, user_id], |row| {
                row.get(0)
            })
            .optional()
        })
        .map_err(StoreError::backend)?;
    let Some(dim) = dim else { return Ok(0) };
    // The user's records as of now, erased a batch per transaction, each in
    // its turn with the committer (a record retired meanwhile has no
    // content row left to delete).
    let seqs = postings::all_seqs(conn, tenant, dim)?;
    let mut erased = 0u64;
    for chunk in seqs.chunks(MAX_BATCH as usize) {
        let _turn = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        erased += sanctioned(conn, "erase", || {
            let mut delete = conn
                .prepare_cached("DELETE FROM content WHERE rid = ?1")
                .map_err(StoreError::backend)?;
            let mut erased = 0u64;
            for &seq in chunk {
                erased += delete
                    .execute([rid(tenant, seq)])
                    .map_err(StoreError::backend)? as u64;
            }
            Ok(erased)
        })?;
    }
    if erased > 0 {
        truncate_wal(conn);
    }
    Ok(erased)
}

/// Copies every WAL frame into the database and truncates the WAL to zero
/// bytes, so no page image from before a deletion stays in it. Readers or
/// another process's writes can hold it back; it is retried for a while and
/// then left to the background checkpointer with a warning.
fn truncate_wal(conn: &Connection) {
    for attempt in 0..50 {
        let busy: rusqlite::Result<i64> =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0));
        match busy {
            Ok(0) => return,
            Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20 * (attempt + 1))),
            Err(error) => {
                tracing::warn!(%error, "truncating the WAL after an erasure failed");
                return;
            }
        }
    }
    tracing::warn!("the WAL could not be truncated after an erasure: readers held it");
}
