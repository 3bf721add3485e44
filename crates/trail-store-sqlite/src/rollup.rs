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
//! Durations are kept in log-linear buckets: exact below 1,024 ms, then 64
//! buckets per power of two (a bucket reports its lower bound, so a
//! percentile above one second is low by at most 1/64, about 1.6%).

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};
use trail_core::event::{EventType, Status};
use trail_store::{Bucket, Stats, StoreError};

use crate::varint;

/// One hour in microseconds.
pub const HOUR: i64 = 3_600_000_000;

const EXACT_BELOW: u64 = 1024;
const SUB_BITS: u32 = 6;

/// The histogram bucket of a duration.
pub fn bucket_of(ms: u64) -> u32 {
    if ms < EXACT_BELOW {
        return ms as u32;
    }
    let exponent = 63 - ms.leading_zeros(); // >= 10
    let sub = (ms >> (exponent - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    EXACT_BELOW as u32 + (exponent - 10) * (1 << SUB_BITS) + sub as u32
}

/// The smallest duration in a bucket.
pub fn bucket_floor(bucket: u32) -> u64 {
    if u64::from(bucket) < EXACT_BELOW {
        return u64::from(bucket);
    }
    let index = bucket - EXACT_BELOW as u32;
    let exponent = 10 + index / (1 << SUB_BITS);
    let sub = u64::from(index % (1 << SUB_BITS));
    ((1 << SUB_BITS) | sub) << (exponent - SUB_BITS)
}

/// A duration histogram: bucket -> count.
pub type Histogram = BTreeMap<u32, u64>;

fn encode(histogram: &Histogram) -> Vec<u8> {
    let mut out = Vec::with_capacity(histogram.len() * 3);
    let mut previous = 0u32;
    for (&bucket, &count) in histogram {
        varint::push(&mut out, u64::from(bucket - previous));
        varint::push(&mut out, count);
        previous = bucket;
    }
    out
}

fn decode_into(bytes: &[u8], histogram: &mut Histogram) -> Result<(), StoreError> {
    let values = varint::read_all(bytes, "rollup histogram")?;
    if values.len() % 2 != 0 {
        return Err(StoreError::Corrupt("rollup histogram is truncated".into()));
    }
    let mut bucket = 0u64;
    for pair in values.chunks_exact(2) {
        bucket += pair[0];
        let bucket = u32::try_from(bucket)
            .map_err(|_| StoreError::Corrupt("rollup histogram bucket out of range".into()))?;
        *histogram.entry(bucket).or_default() += pair[1];
    }
    Ok(())
}

/// (tenant, hour, type, status, name dim).
pub type RollupKey = (i64, i64, u8, u8, i64);

/// What a commit adds to the rollups.
#[derive(Default)]
pub struct Pending {
    rows: HashMap<RollupKey, (i64, Histogram)>,
}

impl Pending {
    /// Counts one record.
    pub fn add(&mut self, key: RollupKey, duration_ms: Option<u64>) {
        let (n, histogram) = self.rows.entry(key).or_default();
        *n += 1;
        if let Some(ms) = duration_ms {
            *histogram.entry(bucket_of(ms)).or_default() += 1;
        }
    }

    /// Merges everything into the `rollups` table.
    pub fn flush(self, conn: &Connection) -> Result<(), StoreError> {
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
        for ((tenant, hour, event_type, status, name), (mut n, mut histogram)) in self.rows {
            let key = params![tenant, hour, event_type, status, name];
            let existing: Option<(i64, Vec<u8>)> = read
                .query_row(key, |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(StoreError::backend)?;
            if let Some((stored, bytes)) = existing {
                n += stored;
                decode_into(&bytes, &mut histogram)?;
            }
            write
                .execute(params![
                    tenant,
                    hour,
                    event_type,
                    status,
                    name,
                    n,
                    encode(&histogram)
                ])
                .map_err(StoreError::backend)?;
        }
        Ok(())
    }
}

/// Aggregates for a stats answer, fed by rollup rows and by single records.
#[derive(Default)]
pub struct Tally {
    hours: HashMap<i64, (u64, u64)>,
    by_type: HashMap<u8, u64>,
    by_name: HashMap<i64, u64>,
    durations: Histogram,
    total: u64,
    errors: u64,
}

impl Tally {
    /// Counts one record.
    pub fn add_record(
        &mut self,
        ts: i64,
        event_type: u8,
        status: u8,
        name: i64,
        duration: Option<i64>,
    ) {
        if let Some(ms) = duration {
            *self
                .durations
                .entry(bucket_of(ms.max(0) as u64))
                .or_default() += 1;
        }
        self.count(ts.div_euclid(HOUR), event_type, status, name, 1);
    }

    /// Counts a rollup row.
    pub fn add_rollup(
        &mut self,
        hour: i64,
        event_type: u8,
        status: u8,
        name: i64,
        n: u64,
        durations: &[u8],
    ) -> Result<(), StoreError> {
        decode_into(durations, &mut self.durations)?;
        self.count(hour, event_type, status, name, n);
        Ok(())
    }

    fn count(&mut self, hour: i64, event_type: u8, status: u8, name: i64, n: u64) {
        let errors = if status == Status::Error.code() { n } else { 0 };
        let entry = self.hours.entry(hour).or_default();
        entry.0 += n;
        entry.1 += errors;
        self.total += n;
        self.errors += errors;
        *self.by_type.entry(event_type).or_default() += n;
        *self.by_name.entry(name).or_default() += n;
    }

    /// The stats answer: hours regrouped into buckets of `width`, names
    /// resolved, the `top` most frequent kept.
    pub fn finish(self, conn: &Connection, width: i64, top: u32) -> Result<Stats, StoreError> {
        let mut buckets: HashMap<i64, (u64, u64)> = HashMap::new();
        for (hour, (count, errors)) in self.hours {
            let start = (hour * HOUR).div_euclid(width) * width;
            let entry = buckets.entry(start).or_default();
            entry.0 += count;
            entry.1 += errors;
        }
        let mut buckets: Vec<Bucket> = buckets
            .into_iter()
            .map(|(start, (count, errors))| Bucket {
                start,
                count,
                errors,
            })
            .collect();
        buckets.sort_by_key(|bucket| bucket.start);
        let mut by_type: Vec<(EventType, u64)> = self
            .by_type
            .into_iter()
            .filter_map(|(code, count)| EventType::from_code(code).map(|t| (t, count)))
            .collect();
        by_type.sort_by_key(|(t, _)| t.as_str());
        let mut name_stmt = conn
            .prepare_cached("SELECT value FROM dims WHERE id = ?1")
            .map_err(StoreError::backend)?;
        let mut names = Vec::with_capacity(self.by_name.len());
        for (dim, count) in self.by_name {
            let name: String = name_stmt
                .query_row([dim], |row| row.get(0))
                .map_err(StoreError::backend)?;
            names.push((name, count));
        }
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names.truncate(top.max(1) as usize);
        let with_duration: u64 = self.durations.values().sum();
        let percentile = |percent: u64| -> Option<u64> {
            let rank = (percent * with_duration).div_ceil(100).max(1);
            let mut seen = 0;
            for (&bucket, &count) in &self.durations {
                seen += count;
                if seen >= rank {
                    return Some(bucket_floor(bucket));
                }
            }
            None
        };
        Ok(Stats {
            buckets,
            by_type,
            top_names: names,
            total: self.total,
            errors: self.errors,
            p50_duration_ms: percentile(50),
            p95_duration_ms: percentile(95),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_1024_and_within_1_6_percent_above() {
        for ms in 0..1024 {
            assert_eq!(bucket_floor(bucket_of(ms)), ms);
        }
        let mut previous = bucket_of(1023);
        for ms in (1024..10_000_000).step_by(97) {
            let bucket = bucket_of(ms);
            assert!(bucket >= previous, "buckets grow with the duration");
            previous = bucket;
            let floor = bucket_floor(bucket);
            assert!(floor <= ms && (ms - floor) * 64 <= ms, "{ms} -> {floor}");
        }
    }

    #[test]
    fn histograms_round_trip() {
        let mut histogram = Histogram::new();
        for (bucket, count) in [(0, 3), (17, 1), (1023, 9), (1500, 2)] {
            histogram.insert(bucket, count);
        }
        let mut back = Histogram::new();
        decode_into(&encode(&histogram), &mut back).expect("decode");
        assert_eq!(back, histogram);
        assert!(decode_into(&[0x80], &mut back).is_err());
    }
}
