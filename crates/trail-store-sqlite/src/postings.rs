//! Posting blocks: the inverted index behind every equality filter.
//!
//! Each commit writes, for every (tenant, dim) it touched, one row holding
//! the sorted seqs of that commit's records filed under the dim, as
//! delta-encoded LEB128 varints. A batch of 10,000 events thus adds a few
//! thousand small rows instead of ~100,000 index entries, which is what keeps
//! durable ingest fast on a store that already holds millions of records.
//!
//! The table is keyed (tenant, segment, dim, first_seq), where a segment is
//! a run of 2^16 seqs: every block a commit writes lands in the current
//! segment's small, hot region of the B-tree, instead of next to the dim's
//! older blocks all over the file (with tens of thousands of sessions and
//! documents that scattering dirtied one page per block per commit). A
//! block never spans two segments.
//!
//! Blocks of one dim never overlap (seqs grow commit after commit), so they
//! are ordered by `first_seq`. [`PostingList`] reads them lazily, segment by
//! segment: in order, to drive a query, or one block at a time to answer
//! "does this seq belong to the list" while checking the other filters.

use rusqlite::{params, Connection, OptionalExtension};
use trail_store::StoreError;

use trail_store::varint;

/// Encodes increasing seqs as deltas from `seqs[0]` (which is stored in its
/// own column and not repeated here).
pub fn encode(seqs: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() * 2);
    for pair in seqs.windows(2) {
        varint::push(&mut out, (pair[1] - pair[0]) as u64);
    }
    out
}

/// Decodes a block back to its seqs.
pub fn decode(first_seq: i64, bytes: &[u8]) -> Result<Vec<i64>, StoreError> {
    let mut seqs = Vec::with_capacity(bytes.len() + 1);
    seqs.push(first_seq);
    let mut current = first_seq;
    for delta in varint::read_all(bytes, "posting block")? {
        current += delta as i64;
        seqs.push(current);
    }
    Ok(seqs)
}

/// Bits of a seq below its segment number.
pub const SEGMENT_BITS: u32 = 16;

fn segment(seq: i64) -> i64 {
    seq >> SEGMENT_BITS
}

/// Writes the blocks of one dim for one commit (one per segment touched).
pub fn insert(conn: &Connection, tenant: i64, dim: i64, seqs: &[i64]) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO postings (tenant_id, segment, dim, first_seq, last_seq, n, seqs) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(StoreError::backend)?;
    for block in seqs.chunk_by(|a, b| segment(*a) == segment(*b)) {
        let (Some(first), Some(last)) = (block.first(), block.last()) else {
            continue;
        };
        stmt.execute(params![
            tenant,
            segment(*first),
            dim,
            first,
            last,
            block.len() as i64,
            encode(block)
        ])
        .map_err(StoreError::backend)?;
    }
    Ok(())
}

/// The newest segment of a tenant, if it has any posting.
fn last_segment(conn: &Connection, tenant: i64) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT max(segment) FROM postings WHERE tenant_id = ?1")
        .and_then(|mut stmt| stmt.query_row([tenant], |row| row.get(0)))
        .map_err(StoreError::backend)
}

/// Deletes the blocks of retired records (every seq below `end`). Retiring
/// whole commits keeps every block wholly on one side of `end`.
pub fn retire(conn: &Connection, tenant: i64, end: i64) -> Result<(), StoreError> {
    if end <= 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "DELETE FROM postings WHERE tenant_id = ?1 AND segment <= ?2 AND last_seq < ?3",
    )
    .and_then(|mut stmt| stmt.execute(params![tenant, segment(end - 1), end]))
    .map_err(StoreError::backend)?;
    Ok(())
}

/// Every seq of one dim, ascending.
pub fn all_seqs(conn: &Connection, tenant: i64, dim: i64) -> Result<Vec<i64>, StoreError> {
    let mut list = PostingList::new(conn, tenant, vec![dim], false, None)?;
    let mut seqs = Vec::new();
    while let Some(seq) = list.next(conn)? {
        seqs.push(seq);
    }
    Ok(seqs)
}

/// How many seqs a dim holds.
pub fn count(conn: &Connection, tenant: i64, dim: i64) -> Result<i64, StoreError> {
    let Some(last) = last_segment(conn, tenant)? else {
        return Ok(0);
    };
    let mut stmt = conn
        .prepare_cached(
            "SELECT coalesce(sum(n), 0) FROM postings WHERE tenant_id = ?1 AND segment = ?2 AND dim = ?3",
        )
        .map_err(StoreError::backend)?;
    let mut total = 0i64;
    for segment in 0..=last {
        total += stmt
            .query_row(params![tenant, segment, dim], |row| row.get::<_, i64>(0))
            .map_err(StoreError::backend)?;
    }
    Ok(total)
}

/// Blocks fetched per round trip while iterating.
const CHUNK: i64 = 64;

/// Lazy, ordered iteration over one dim's blocks.
struct DimCursor {
    dim: i64,
    /// Decoded seqs not yet handed out, in iteration order.
    pending: std::collections::VecDeque<i64>,
    /// The segment being read.
    segment: i64,
    /// Exclusive bound on `first_seq` for the next chunk within `segment`;
    /// `None` once the dim is exhausted.
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
    /// The newest segment that exists (iteration in ascending order stops
    /// after it).
    last_segment: i64,
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
        let last_segment = last_segment(conn, tenant)?.unwrap_or(-1);
        let mut cursors = Vec::with_capacity(dims.len());
        for &dim in &dims {
            let (segment, after_first) = match (descending, start) {
                (true, Some(start)) => (segment(start).min(last_segment), start),
                (true, None) => (last_segment, i64::MAX),
                (false, None) => (0, -1),
                // The block holding `start` begins at or before it.
                (false, Some(start)) => {
                    let first: Option<i64> = conn
                        .prepare_cached(
                            "SELECT max(first_seq) FROM postings \
                             WHERE tenant_id = ?1 AND segment = ?2 AND dim = ?3 AND first_seq <= ?4",
                        )
                        .and_then(|mut stmt| {
                            stmt.query_row(params![tenant, segment(start), dim, start], |row| {
                                row.get(0)
                            })
                        })
                        .map_err(StoreError::backend)?;
                    (segment(start), first.map_or(-1, |first| first - 1))
                }
            };
            cursors.push(DimCursor {
                dim,
                pending: Default::default(),
                segment,
                after_first: Some(after_first),
            });
        }
        let cached = vec![None; dims.len()];
        Ok(PostingList {
            tenant,
            descending,
            start,
            last_segment,
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
            let segment = cursor.segment;
            if segment < 0 || segment > self.last_segment {
                self.cursors[index].after_first = None;
                return Ok(None);
            }
            let sql = if self.descending {
                "SELECT first_seq, seqs FROM postings WHERE tenant_id = ?1 AND segment = ?2 \
                 AND dim = ?3 AND first_seq < ?4 ORDER BY first_seq DESC LIMIT ?5"
            } else {
                "SELECT first_seq, seqs FROM postings WHERE tenant_id = ?1 AND segment = ?2 \
                 AND dim = ?3 AND first_seq > ?4 ORDER BY first_seq ASC LIMIT ?5"
            };
            let mut stmt = conn.prepare_cached(sql).map_err(StoreError::backend)?;
            let mut rows = stmt
                .query(params![
                    self.tenant,
                    segment,
                    cursor.dim,
                    after_first,
                    CHUNK
                ])
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
            if blocks == CHUNK {
                cursor.after_first = Some(last_first);
            } else if descending {
                // This segment is done: go on with the one before.
                cursor.segment -= 1;
                cursor.after_first = Some(i64::MAX);
            } else {
                cursor.segment += 1;
                cursor.after_first = Some(-1);
            }
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
                             WHERE tenant_id = ?1 AND segment = ?2 AND dim = ?3 AND first_seq <= ?4 \
                             ORDER BY first_seq DESC LIMIT 1",
                        )
                        .and_then(|mut stmt| {
                            stmt.query_row(
                                params![self.tenant, segment(seq), self.cursors[index].dim, seq],
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

    /// Blocks spread over several segments, written as commits would:
    /// iteration in both orders from any start, membership and counts agree
    /// with a plain model.
    #[test]
    fn lists_span_segments() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn).expect("migrate");
        let seg = 1i64 << SEGMENT_BITS;
        // dim 1: sparse everywhere; dim 2: dense in segment 1 and 3 only;
        // dim 3: a single seq. Commits of 5,000 seqs.
        let all: Vec<i64> = (0..4 * seg + 123).collect();
        let dim1: Vec<i64> = all.iter().copied().filter(|s| s % 997 == 3).collect();
        let dim2: Vec<i64> = all
            .iter()
            .copied()
            .filter(|s| (s / seg == 1 || s / seg == 3) && s % 3 == 0)
            .collect();
        let dim3 = vec![2 * seg + 5];
        for commit in all.chunks(5000) {
            let (lo, hi) = (commit[0], commit[commit.len() - 1]);
            for (dim, seqs) in [(1, &dim1), (2, &dim2), (3, &dim3)] {
                let part: Vec<i64> = seqs
                    .iter()
                    .copied()
                    .filter(|s| *s >= lo && *s <= hi)
                    .collect();
                insert(&conn, 7, dim, &part).expect("insert");
            }
        }
        for (dims, want) in [
            (vec![1], dim1.clone()),
            (vec![2], dim2.clone()),
            (vec![3], dim3.clone()),
            (vec![1, 3], {
                let mut u = dim1.clone();
                u.extend(&dim3);
                u.sort_unstable();
                u
            }),
        ] {
            if dims.len() == 1 {
                assert_eq!(count(&conn, 7, dims[0]).expect("count"), want.len() as i64);
            }
            for start in [
                None,
                Some(0),
                Some(seg - 1),
                Some(seg),
                Some(2 * seg + 5),
                Some(4 * seg + 122),
            ] {
                for descending in [true, false] {
                    let mut list =
                        PostingList::new(&conn, 7, dims.clone(), descending, start).expect("list");
                    let mut got = Vec::new();
                    while let Some(seq) = list.next(&conn).expect("next") {
                        got.push(seq);
                    }
                    let mut expected: Vec<i64> = want
                        .iter()
                        .copied()
                        .filter(|s| match (start, descending) {
                            (None, _) => true,
                            (Some(b), true) => *s < b,
                            (Some(b), false) => *s > b,
                        })
                        .collect();
                    if descending {
                        expected.reverse();
                    }
                    assert_eq!(
                        got, expected,
                        "dims {dims:?} start {start:?} desc {descending}"
                    );
                }
            }
            let mut list = PostingList::new(&conn, 7, dims.clone(), true, None).expect("list");
            for probe in [
                0,
                3,
                1000,
                seg + 3,
                seg + 4,
                2 * seg + 5,
                3 * seg,
                4 * seg + 120,
            ] {
                assert_eq!(
                    list.contains(&conn, probe).expect("contains"),
                    want.contains(&probe),
                    "{dims:?} {probe}"
                );
            }
        }
        // Another tenant sees nothing.
        assert_eq!(count(&conn, 8, 1).expect("count"), 0);
    }

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
