//! Hourly rollups, the part every backend shares: so that stats over long
//! ranges read a few rows per hour instead of every record.
//!
//! A backend keeps, per (tenant, hour, type, status, name), the record count
//! and a histogram of durations, merged by each commit (derived data, updated
//! in place). Stats filtered only by type, status, name and time
//! ([`rollups_can_answer`]) are answered from the whole hours of the range
//! ([`split_hours`]) plus the records of the partial hours at its edges; a
//! [`Tally`] adds both up into the [`Stats`] answer.
//!
//! Durations are kept in log-linear buckets: exact below 1,024 ms, then 64
//! buckets per power of two (a bucket reports its lower bound, so a
//! percentile above one second is low by at most 1/64, about 1.6%). A
//! histogram is stored as LEB128 varint pairs (bucket delta, count), buckets
//! ascending.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use trail_core::event::{EventType, Status};

use crate::{Bucket, Filters, Stats, StoreError};

/// One hour in microseconds.
pub const HOUR: i64 = 3_600_000_000;

const EXACT_BELOW: u64 = 1024;
const SUB_BITS: u32 = 6;

/// The number of buckets: one past the bucket of `u64::MAX`.
pub const BUCKETS: usize = EXACT_BELOW as usize + (64 - 10) * (1 << SUB_BITS);

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

/// Writes a histogram's entries, buckets ascending.
struct Encoder {
    out: Vec<u8>,
    previous: u32,
}

impl Encoder {
    fn with_capacity(bytes: usize) -> Encoder {
        Encoder {
            out: Vec::with_capacity(bytes),
            previous: 0,
        }
    }

    fn push(&mut self, bucket: u32, count: u64) {
        crate::varint::push(&mut self.out, u64::from(bucket - self.previous));
        crate::varint::push(&mut self.out, count);
        self.previous = bucket;
    }
}

/// The stored form of a histogram.
pub fn encode(histogram: &Histogram) -> Vec<u8> {
    let mut encoder = Encoder::with_capacity(histogram.len() * 3);
    for (&bucket, &count) in histogram {
        encoder.push(bucket, count);
    }
    encoder.out
}

/// The stored form of a stored histogram plus `histogram`, in one pass
/// over both (what a commit does to each rollup row it touches).
pub fn merge_encoded(stored: &[u8], histogram: &Histogram) -> Result<Vec<u8>, StoreError> {
    let mut encoder = Encoder::with_capacity(stored.len() + histogram.len() * 3);
    let mut added = histogram.iter().peekable();
    decode_each(stored, |bucket, mut count| {
        while let Some((&b, &c)) = added.next_if(|(b, _)| **b < bucket) {
            encoder.push(b, c);
        }
        if let Some((_, &c)) = added.next_if(|(b, _)| **b == bucket) {
            count += c;
        }
        encoder.push(bucket, count);
    })?;
    for (&bucket, &count) in added {
        encoder.push(bucket, count);
    }
    Ok(encoder.out)
}

/// The stored form of a stored histogram minus `histogram` (what retiring
/// records does to the rollup rows they were counted in); counts never go
/// below zero and buckets that reach zero are dropped.
pub fn subtract_encoded(stored: &[u8], histogram: &Histogram) -> Result<Vec<u8>, StoreError> {
    let mut encoder = Encoder::with_capacity(stored.len());
    decode_each(stored, |bucket, count| {
        let left = count.saturating_sub(histogram.get(&bucket).copied().unwrap_or(0));
        if left > 0 {
            encoder.push(bucket, left);
        }
    })?;
    Ok(encoder.out)
}

/// Calls `each(bucket, count)` for every entry of a stored histogram.
pub fn decode_each(bytes: &[u8], mut each: impl FnMut(u32, u64)) -> Result<(), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("rollup histogram: {what}"));
    let mut bucket = 0u64;
    let mut pending_delta: Option<u64> = None;
    crate::varint::for_each(bytes, "rollup histogram", |value| {
        match pending_delta.take() {
            None => pending_delta = Some(value),
            Some(delta) => {
                bucket = bucket
                    .checked_add(delta)
                    .filter(|b| *b < BUCKETS as u64)
                    .ok_or_else(|| corrupt("bucket out of range"))?;
                each(bucket as u32, value);
            }
        }
        Ok(())
    })?;
    if pending_delta.is_some() {
        return Err(corrupt("truncated"));
    }
    Ok(())
}

/// Adds a stored histogram to `histogram`.
pub fn decode_into(bytes: &[u8], histogram: &mut Histogram) -> Result<(), StoreError> {
    decode_each(bytes, |bucket, count| {
        *histogram.entry(bucket).or_default() += count;
    })
}

/// What a commit adds to the rollups, per key (a backend's (tenant, hour,
/// type, status, name)): the record count and the duration histogram.
pub struct Deltas<K> {
    rows: HashMap<K, (u64, Histogram)>,
}

impl<K> Default for Deltas<K> {
    fn default() -> Self {
        Deltas {
            rows: HashMap::new(),
        }
    }
}

impl<K: Eq + Hash> Deltas<K> {
    /// Counts one record.
    pub fn add(&mut self, key: K, duration_ms: Option<u64>) {
        let (n, histogram) = self.rows.entry(key).or_default();
        *n += 1;
        if let Some(ms) = duration_ms {
            *histogram.entry(bucket_of(ms)).or_default() += 1;
        }
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Number of keys touched.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// The keys' counts and histograms.
    pub fn into_rows(self) -> impl Iterator<Item = (K, (u64, Histogram))> {
        self.rows.into_iter()
    }
}

/// Whether only filters the rollups are keyed by (type, status, name,
/// name_contains, time) are set. A user binding must be checked apart.
pub fn rollups_can_answer(filters: &Filters) -> bool {
    let rollup_only = Filters {
        event_type: filters.event_type,
        status: filters.status,
        name: filters.name.clone(),
        name_contains: filters.name_contains.clone(),
        from: filters.from,
        to: filters.to,
        ..Filters::default()
    };
    &rollup_only == filters
}

/// A time range `[from, to)` cut into whole hours and partial edge hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourSplit {
    /// Whole hours `[first, end)` (hour numbers, `ts.div_euclid(HOUR)`),
    /// none when the range holds no whole hour.
    pub whole: Option<(i64, i64)>,
    /// Time ranges `[low, high)` (unix µs) outside the whole hours; each lies
    /// within at most two hours.
    pub edges: Vec<(i64, i64)>,
}

/// Splits `[from, to)` (either end open) into whole hours and edges.
pub fn split_hours(from: Option<i64>, to: Option<i64>) -> HourSplit {
    let first_hour = from.map_or(i64::MIN, |from| -((-from).div_euclid(HOUR)));
    let end_hour = to.map_or(i64::MAX, |to| to.div_euclid(HOUR));
    let mut edges = Vec::new();
    if first_hour < end_hour {
        if let Some(from) = from.filter(|from| *from < first_hour * HOUR) {
            edges.push((from, first_hour * HOUR));
        }
        if let Some(to) = to.filter(|to| end_hour * HOUR < *to) {
            edges.push((end_hour * HOUR, to));
        }
        HourSplit {
            whole: Some((first_hour, end_hour)),
            edges,
        }
    } else {
        if let (Some(from), Some(to)) = (from, to) {
            if from < to {
                edges.push((from, to));
            }
        }
        HourSplit { whole: None, edges }
    }
}

/// Aggregates for a stats answer, fed by rollup rows and by single records;
/// `N` is how the backend names a record's name (a dictionary id, or the
/// name itself).
pub struct Tally<N> {
    hours: HashMap<i64, (u64, u64)>,
    by_type: HashMap<u8, u64>,
    by_name: HashMap<N, u64>,
    /// Count per bucket, dense (adding a stored histogram is then one pass).
    durations: Vec<u64>,
    total: u64,
    errors: u64,
}

impl<N> Default for Tally<N> {
    fn default() -> Self {
        Tally {
            hours: HashMap::new(),
            by_type: HashMap::new(),
            by_name: HashMap::new(),
            durations: Vec::new(),
            total: 0,
            errors: 0,
        }
    }
}

impl<N: Eq + Hash> Tally<N> {
    /// Counts one record.
    pub fn add_record(
        &mut self,
        ts: i64,
        event_type: u8,
        status: u8,
        name: N,
        duration: Option<i64>,
    ) {
        self.add_records(ts.div_euclid(HOUR), event_type, status, name, duration, 1);
    }

    /// Counts `n` records of one hour with the same key and duration.
    pub fn add_records(
        &mut self,
        hour: i64,
        event_type: u8,
        status: u8,
        name: N,
        duration: Option<i64>,
        n: u64,
    ) {
        if let Some(ms) = duration {
            self.add_duration(bucket_of(ms.max(0) as u64), n);
        }
        self.count(hour, event_type, status, name, n);
    }

    /// Counts a rollup row.
    pub fn add_rollup(
        &mut self,
        hour: i64,
        event_type: u8,
        status: u8,
        name: N,
        n: u64,
        durations: &[u8],
    ) -> Result<(), StoreError> {
        if self.durations.is_empty() && !durations.is_empty() {
            self.durations.resize(BUCKETS, 0);
        }
        let dense = &mut self.durations;
        decode_each(durations, |bucket, count| dense[bucket as usize] += count)?;
        self.count(hour, event_type, status, name, n);
        Ok(())
    }

    fn add_duration(&mut self, bucket: u32, n: u64) {
        if self.durations.is_empty() {
            self.durations.resize(BUCKETS, 0);
        }
        self.durations[bucket as usize] += n;
    }

    fn count(&mut self, hour: i64, event_type: u8, status: u8, name: N, n: u64) {
        let errors = if status == Status::Error.code() { n } else { 0 };
        let entry = self.hours.entry(hour).or_default();
        entry.0 += n;
        entry.1 += errors;
        self.total += n;
        self.errors += errors;
        *self.by_type.entry(event_type).or_default() += n;
        *self.by_name.entry(name).or_default() += n;
    }

    /// The stats answer: hours regrouped into buckets of `width` µs (a whole
    /// number of hours), names resolved by `resolve`, the `top` most
    /// frequent kept (ties by name); percentiles by nearest rank over the
    /// histogram.
    pub fn finish(
        self,
        width: i64,
        top: u32,
        mut resolve: impl FnMut(N) -> Result<String, StoreError>,
    ) -> Result<Stats, StoreError> {
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
        let mut names = Vec::with_capacity(self.by_name.len());
        for (name, count) in self.by_name {
            names.push((resolve(name)?, count));
        }
        names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        names.truncate(top.max(1) as usize);
        Ok(Stats {
            buckets,
            by_type,
            top_names: names,
            total: self.total,
            errors: self.errors,
            p50_duration_ms: percentile(&self.durations, 50),
            p95_duration_ms: percentile(&self.durations, 95),
        })
    }
}

/// The nearest-rank `percent` percentile of a dense histogram (count per
/// bucket), as its bucket's lower bound; `None` when it is empty.
pub fn percentile(counts: &[u64], percent: u64) -> Option<u64> {
    let with_duration: u64 = counts.iter().sum();
    if with_duration == 0 {
        return None;
    }
    let rank = (percent * with_duration).div_ceil(100).max(1);
    let mut seen = 0;
    for (bucket, &count) in counts.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(bucket_floor(bucket as u32));
        }
    }
    None
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
        assert_eq!(bucket_of(u64::MAX) as usize, BUCKETS - 1);
        assert_eq!(bucket_floor(bucket_of(u64::MAX)), 0x7f << 57);
    }

    #[test]
    fn histograms_round_trip() {
        let mut histogram = Histogram::new();
        for (bucket, count) in [(0, 3), (17, 1), (1023, 9), (1500, 2), (4479, 1 << 40)] {
            histogram.insert(bucket, count);
        }
        let mut back = Histogram::new();
        decode_into(&encode(&histogram), &mut back).expect("decode");
        assert_eq!(back, histogram);
        assert!(decode_into(&[0x80], &mut back).is_err());
        assert!(decode_into(&[0x01], &mut back).is_err(), "a delta alone");
        let mut beyond = Vec::new();
        crate::varint::push(&mut beyond, BUCKETS as u64);
        crate::varint::push(&mut beyond, 1);
        assert!(decode_into(&beyond, &mut back).is_err());
    }

    #[test]
    fn merging_into_a_stored_histogram_adds_counts() {
        let stored: Histogram = [(3, 1), (10, 2), (1100, 5)].into_iter().collect();
        for added in [
            Histogram::new(),
            [(0, 1)].into_iter().collect(),
            [(3, 4), (4, 1), (1100, 1), (4000, 2)].into_iter().collect(),
            [(5000, 1)].into_iter().collect(),
        ] {
            let mut want = stored.clone();
            for (&bucket, &count) in &added {
                *want.entry(bucket).or_default() += count;
            }
            let merged = merge_encoded(&encode(&stored), &added).expect("merge");
            assert_eq!(merged, encode(&want));
            let from_empty = merge_encoded(&[], &added).expect("merge");
            assert_eq!(from_empty, encode(&added));
        }
        assert!(merge_encoded(&[0x80], &Histogram::new()).is_err());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut counts = vec![0u64; BUCKETS];
        assert_eq!(percentile(&counts, 50), None);
        assert_eq!(percentile(&[], 50), None);
        for ms in 1..=100u64 {
            counts[bucket_of(ms) as usize] += 1;
        }
        assert_eq!(percentile(&counts, 50), Some(50));
        assert_eq!(percentile(&counts, 95), Some(95));
        counts[bucket_of(5000) as usize] += 1;
        assert_eq!(
            percentile(&counts, 100),
            Some(bucket_floor(bucket_of(5000)))
        );
    }

    #[test]
    fn ranges_split_into_whole_hours_and_edges() {
        let h = HOUR;
        assert_eq!(
            split_hours(None, None),
            HourSplit {
                whole: Some((i64::MIN, i64::MAX)),
                edges: vec![]
            }
        );
        assert_eq!(
            split_hours(Some(2 * h), Some(5 * h)),
            HourSplit {
                whole: Some((2, 5)),
                edges: vec![]
            }
        );
        assert_eq!(
            split_hours(Some(2 * h - 7), Some(5 * h + 9)),
            HourSplit {
                whole: Some((2, 5)),
                edges: vec![(2 * h - 7, 2 * h), (5 * h, 5 * h + 9)]
            }
        );
        // Inside one hour, and across one hour boundary without a whole hour.
        assert_eq!(
            split_hours(Some(h + 1), Some(h + 5)),
            HourSplit {
                whole: None,
                edges: vec![(h + 1, h + 5)]
            }
        );
        assert_eq!(
            split_hours(Some(h + 1), Some(2 * h + 5)),
            HourSplit {
                whole: None,
                edges: vec![(h + 1, 2 * h + 5)]
            }
        );
        assert_eq!(split_hours(Some(5), Some(5)).edges, vec![]);
        // Negative times round the same way.
        assert_eq!(split_hours(Some(-h - 1), None).whole, Some((-1, i64::MAX)));
    }

    #[test]
    fn tally_adds_records_and_rollups_alike() {
        let mut from_records: Tally<&str> = Tally::default();
        let mut from_rollup: Tally<&str> = Tally::default();
        let mut deltas: Deltas<(i64, u8, u8, &str)> = Deltas::default();
        let error = Status::Error.code();
        let ok = Status::Ok.code();
        let tool = EventType::ToolCall.code();
        for (i, status) in [(0u64, ok), (1, error), (2, ok), (3, ok)] {
            let duration = 100 * i + 7;
            from_records.add_record(HOUR + i as i64, tool, status, "a", Some(duration as i64));
            deltas.add((1, tool, status, "a"), Some(duration));
        }
        for ((hour, event_type, status, name), (n, histogram)) in deltas.into_rows() {
            from_rollup
                .add_rollup(hour, event_type, status, name, n, &encode(&histogram))
                .expect("add");
        }
        let resolve = |name: &str| Ok(name.to_owned());
        let a = from_records.finish(86_400_000_000, 10, resolve).expect("a");
        let b = from_rollup.finish(86_400_000_000, 10, resolve).expect("b");
        assert_eq!(a, b);
        assert_eq!((a.total, a.errors), (4, 1));
        assert_eq!(a.p50_duration_ms, Some(107));
        assert_eq!(a.buckets.len(), 1);
    }

    #[test]
    fn subtracting_undoes_merging() {
        let mut base = Histogram::new();
        base.insert(3, 2);
        base.insert(bucket_of(5_000), 7);
        let mut added = Histogram::new();
        added.insert(3, 1);
        added.insert(9, 4);
        let merged = merge_encoded(&encode(&base), &added).expect("merge");
        assert_eq!(
            subtract_encoded(&merged, &added).expect("sub"),
            encode(&base)
        );
        assert_eq!(
            subtract_encoded(&merged, &{
                let mut all = base.clone();
                all.insert(3, 3);
                all.insert(9, 4);
                all
            })
            .expect("sub"),
            Vec::<u8>::new()
        );
    }
}
