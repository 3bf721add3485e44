//! Hourly rollups, so that stats over long ranges read a few rows per hour
//! instead of every record.
//!
//! Each commit adds, per (tenant, hour, type, status, name) it touched, the
//! record count and a histogram of durations to one `rollups` row (read,
//! merged, written back: rollups are derived data and not append-only).
//! Stats filtered only by type, status, name and time are answered from
//! them, with the partial hours at the edges of a range counted from the
//! records themselves; any other filter goes through the posting lists.
//!
//! The duration buckets, the histogram encoding and the tally of a stats
//! answer are shared with the other backends (`trail_store::rollup`).

use rusqlite::{params, Connection, OptionalExtension};
use trail_store::rollup::{encode, merge_encoded, subtract_encoded, Deltas};
use trail_store::{Stats, StoreError};

pub use trail_store::rollup::HOUR;

/// (tenant, hour, type, status, name dim).
pub type RollupKey = (i64, i64, u8, u8, i64);

/// What a commit adds to the rollups.
#[derive(Default)]
pub struct Pending {
    rows: Deltas<RollupKey>,
}

impl Pending {
    /// Counts one record.
    pub fn add(&mut self, key: RollupKey, duration_ms: Option<u64>) {
        self.rows.add(key, duration_ms);
    }

    /// Merges everything into the `rollups` table.
    pub fn flush(self, conn: &Connection) -> Result<(), StoreError> {
        self.apply(conn, false)
    }

    /// Takes everything back out of the `rollups` table (the records were
    /// retired).
    pub fn retract(self, conn: &Connection) -> Result<(), StoreError> {
        self.apply(conn, true)
    }

    fn apply(self, conn: &Connection, subtract: bool) -> Result<(), StoreError> {
        let mut read = conn
            .prepare_cached(
                "SELECT n, durations FROM rollups WHERE tenant_id = ?1 AND hour = ?2 \
                 AND type = ?3 AND status = ?4 AND name_dim = ?5",
            )
            .map_err(StoreError::backend)?;
        let mut write = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO rollups (tenant_id, hour, type, status, name_dim, n, durations) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(StoreError::backend)?;
        let mut remove = conn
            .prepare_cached(
                "DELETE FROM rollups WHERE tenant_id = ?1 AND hour = ?2 \
                 AND type = ?3 AND status = ?4 AND name_dim = ?5",
            )
            .map_err(StoreError::backend)?;
        for ((tenant, hour, event_type, status, name), (n, histogram)) in self.rows.into_rows() {
            let mut n = n as i64;
            let key = params![tenant, hour, event_type, status, name];
            let existing: Option<(i64, Vec<u8>)> = read
                .query_row(key, |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(StoreError::backend)?;
            let durations = match existing {
                // A row no record is left in goes, so stats show no empty
                // bucket, type or name.
                Some((stored, _)) if subtract && stored <= n => {
                    remove.execute(key).map_err(StoreError::backend)?;
                    continue;
                }
                Some((stored, bytes)) if subtract => {
                    n = stored - n;
                    subtract_encoded(&bytes, &histogram)?
                }
                Some((stored, bytes)) => {
                    n += stored;
                    merge_encoded(&bytes, &histogram)?
                }
                None if subtract => continue,
                None => encode(&histogram),
            };
            write
                .execute(params![
                    tenant, hour, event_type, status, name, n, durations
                ])
                .map_err(StoreError::backend)?;
        }
        Ok(())
    }
}

/// Aggregates for a stats answer, names as name dims.
pub type Tally = trail_store::rollup::Tally<i64>;

/// The stats answer of a tally: name dims resolved through the dictionary.
pub fn finish(tally: Tally, conn: &Connection, width: i64, top: u32) -> Result<Stats, StoreError> {
    let mut name_stmt = conn
        .prepare_cached("SELECT value FROM dims WHERE id = ?1")
        .map_err(StoreError::backend)?;
    tally.finish(width, top, |dim| {
        name_stmt
            .query_row([dim], |row| row.get(0))
            .map_err(StoreError::backend)
    })
}
