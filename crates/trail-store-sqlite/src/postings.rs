//! Posting blocks: the inverted index behind every equality filter.
//!
//! Each commit writes, for every (tenant, dim) it touched, one row holding
//! the sorted seqs of that commit's records filed under the dim, as
//! delta-encoded LEB128 varints. A batch of 10,000 events thus adds a few
//! thousand small rows instead of ~100,000 index entries, which is what keeps
//! durable ingest fast on a store that already holds millions of records.
//!
//! Blocks of one dim never overlap (seqs grow commit after commit), so they
//! are ordered by `first_seq`. [`PostingList`] reads them lazily: in order,
//! to drive a query, or one block at a time to answer "does this seq belong
//! to the list" while checking the other filters.

use rusqlite::{params, Connection, OptionalExtension};
use trail_store::StoreError;

/// Encodes increasing seqs as deltas from `seqs[0]` (which is stored in its
/// own column and not repeated here).
pub fn encode(seqs: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() * 2);
    let mut previous = seqs.first().copied().unwrap_or(0);
    for &seq in seqs.iter().skip(1) {
        let mut delta = (seq - previous) as u64;
        previous = seq;
        loop {
            let byte = (delta & 0x7f) as u8;
            delta >>= 7;
            if delta == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// Decodes a block back to its seqs.
pub fn decode(first_seq: i64, bytes: &[u8]) -> Result<Vec<i64>, StoreError> {
    let mut seqs = vec![first_seq];
    let mut current = first_seq;
    let mut delta: u64 = 0;
    let mut shift = 0u32;
    for &byte in bytes {
        if shift > 56 {
            return Err(StoreError::Corrupt("posting block varint too long".into()));
        }
        delta |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            current += delta as i64;
            seqs.push(current);
            delta = 0;
            shift = 0;
        } else {
            shift += 7;
        }
    }
    if shift != 0 {
        return Err(StoreError::Corrupt(
            "posting block ends inside a varint".into(),
        ));
    }
    Ok(seqs)
}

/// Writes one block.
pub fn insert(conn: &Connection, tenant: i64, dim: i64, seqs: &[i64]) -> Result<(), StoreError> {
    let (Some(first), Some(last)) = (seqs.first(), seqs.last()) else {
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO postings (tenant_id, dim, first_seq, last_seq, n, seqs) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![tenant, dim, first, last, seqs.len() as i64, encode(seqs)])
    })
    .map_err(StoreError::backend)?;
    Ok(())
}

/// How many seqs a dim holds.
pub fn count(conn: &Connection, tenant: i64, dim: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "SELECT coalesce(sum(n), 0) FROM postings WHERE tenant_id = ?1 AND dim = ?2",
    )
    .and_then(|mut stmt| stmt.query_row(params![tenant, dim], |row| row.get(0)))
    .map_err(StoreError::backend)
}

/// Blocks fetched per round trip while iterating.
const CHUNK: i64 = 64;

/// Lazy, ordered iteration over one dim's blocks.
struct DimCursor {
    dim: i64,
    /// Decoded seqs not yet handed out, in iteration order.
    pending: std::collections::VecDeque<i64>,
    /// Exclusive bound on `first_seq` for the next chunk; `None` once the
    /// dim is exhausted.
    after_first: Option<i64>,
}

/// A lazily read posting list of one or more dims (several for
/// `name_contains`: the union of the matching names), in seq order, plus
/// point membership checks that load one block at a time.
pub struct PostingList {
    tenant: i64,
    descending: bool,
    /// Seqs at or before this (in iteration order) are skipped.
    start: Option<i64>,
    cursors: Vec<DimCursor>,
    /// Membership: the last block looked up per dim (first, last, seqs).
    cached: Vec<Option<(i64, i64, Vec<i64>)>>,
}

impl PostingList {
    /// A list over `dims`, iterating after `start` (exclusive) in the given
    /// direction; `start = None` begins at the newest (or oldest) seq.
    pub fn new(
        conn: &Connection,
        tenant: i64,
        dims: Vec<i64>,
        descending: bool,
        start: Option<i64>,
    ) -> Result<Self, StoreError> {
        let mut cursors = Vec::with_capacity(dims.len());
        for &dim in &dims {
            let after_first = match (descending, start) {
                (true, Some(start)) => start,
                (true, None) => i64::MAX,
                (false, None) => -1,
                // The block holding `start` begins at or before it.
                (false, Some(start)) => {
                    let first: Option<i64> = conn
                        .prepare_cached(
                            "SELECT max(first_seq) FROM postings \
                             WHERE tenant_id = ?1 AND dim = ?2 AND first_seq <= ?3",
                        )
                        .and_then(|mut stmt| {
                            stmt.query_row(params![tenant, dim, start], |row| row.get(0))
                        })
                        .map_err(StoreError::backend)?;
                    first.map_or(-1, |first| first - 1)
                }
            };
            cursors.push(DimCursor {
                dim,
                pending: Default::default(),
                after_first: Some(after_first),
            });
        }
        let cached = vec![None; dims.len()];
        Ok(PostingList {
            tenant,
            descending,
            start,
            cursors,
            cached,
        })
    }

    /// The next seq in iteration order.
    pub fn next(&mut self, conn: &Connection) -> Result<Option<i64>, StoreError> {
        let mut best: Option<(usize, i64)> = None;
        for index in 0..self.cursors.len() {
            if let Some(head) = self.peek(conn, index)? {
                let better = match best {
                    None => true,
                    Some((_, current)) if self.descending => head > current,
                    Some((_, current)) => head < current,
                };
                if better {
                    best = Some((index, head));
                }
            }
        }
        let Some((_, seq)) = best else {
            return Ok(None);
        };
        for cursor in &mut self.cursors {
            if cursor.pending.front() == Some(&seq) {
                cursor.pending.pop_front();
            }
        }
        Ok(Some(seq))
    }

    fn peek(&mut self, conn: &Connection, index: usize) -> Result<Option<i64>, StoreError> {
        loop {
            let cursor = &self.cursors[index];
            if let Some(head) = cursor.pending.front() {
                return Ok(Some(*head));
            }
            let Some(after_first) = cursor.after_first else {
                return Ok(None);
            };
            let sql = if self.descending {
                "SELECT first_seq, seqs FROM postings WHERE tenant_id = ?1 AND dim = ?2 \
                 AND first_seq < ?3 ORDER BY first_seq DESC LIMIT ?4"
            } else {
                "SELECT first_seq, seqs FROM postings WHERE tenant_id = ?1 AND dim = ?2 \
                 AND first_seq > ?3 ORDER BY first_seq ASC LIMIT ?4"
            };
            let mut stmt = conn.prepare_cached(sql).map_err(StoreError::backend)?;
            let mut rows = stmt
                .query(params![self.tenant, cursor.dim, after_first, CHUNK])
                .map_err(StoreError::backend)?;
            let mut loaded = Vec::new();
            let mut blocks = 0;
            let mut last_first = after_first;
            while let Some(row) = rows.next().map_err(StoreError::backend)? {
                let first: i64 = row.get(0).map_err(StoreError::backend)?;
                let bytes: Vec<u8> = row.get(1).map_err(StoreError::backend)?;
                let mut seqs = decode(first, &bytes)?;
                if self.descending {
                    seqs.reverse();
                }
                loaded.extend(seqs);
                blocks += 1;
                last_first = first;
            }
            let (descending, start) = (self.descending, self.start);
            let cursor = &mut self.cursors[index];
            cursor.after_first = (blocks == CHUNK).then_some(last_first);
            cursor
                .pending
                .extend(loaded.into_iter().filter(|&seq| match start {
                    None => true,
                    Some(start) if descending => seq < start,
                    Some(start) => seq > start,
                }));
        }
    }

    /// Whether `seq` is in the list (any of its dims).
    pub fn contains(&mut self, conn: &Connection, seq: i64) -> Result<bool, StoreError> {
        for index in 0..self.cursors.len() {
            let hit = match &self.cached[index] {
                Some((first, last, seqs)) if *first <= seq && seq <= *last => {
                    seqs.binary_search(&seq).is_ok()
                }
                _ => {
                    let block: Option<(i64, i64, Vec<u8>)> = conn
                        .prepare_cached(
                            "SELECT first_seq, last_seq, seqs FROM postings \
                             WHERE tenant_id = ?1 AND dim = ?2 AND first_seq <= ?3 \
                             ORDER BY first_seq DESC LIMIT 1",
                        )
                        .and_then(|mut stmt| {
                            stmt.query_row(
                                params![self.tenant, self.cursors[index].dim, seq],
                                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                            )
                            .optional()
                        })
                        .map_err(StoreError::backend)?;
                    match block {
                        Some((first, last, bytes)) if seq <= last => {
                            let seqs = decode(first, &bytes)?;
                            let hit = seqs.binary_search(&seq).is_ok();
                            self.cached[index] = Some((first, last, seqs));
                            hit
                        }
                        _ => false,
                    }
                }
            };
            if hit {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for seqs in [
            vec![5],
            vec![0, 1, 2, 3],
            vec![7, 200, 100_000, 100_001, 1 << 40],
        ] {
            assert_eq!(decode(seqs[0], &encode(&seqs)).expect("decode"), seqs);
        }
        assert!(decode(0, &[0x80]).is_err());
    }
}
