//! Stats: aggregates over the records matching a query.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use trail_core::event::{EventType, Status};
use trail_store::{Bucket, ReadScope, Stats, StatsQuery, StoreError};

use crate::db;
use crate::read::Clause;

/// Aggregates over the matching records: one grouped scan for buckets,
/// types and names, one ordered pass over durations for the percentiles
/// (nearest rank, exact).
pub async fn stats(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &StatsQuery,
) -> Result<Stats, StoreError> {
    let mut clause = Clause::new(scope, &query.filters);
    let width = query.bucket.micros();
    clause.params.push(Box::new(width));
    let w = clause.params.len();
    clause
        .params
        .push(Box::new(i16::from(Status::Error.code())));
    let e = clause.params.len();
    let sql = format!(
        "SELECT r.ts - ((r.ts % ${w}) + ${w}) % ${w} AS bucket, r.type, r.name, count(*), \
         count(*) FILTER (WHERE r.status = ${e}) \
         FROM records r WHERE {} GROUP BY 1, 2, 3",
        clause.sql
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let rows = tx.query(&stmt, &clause.refs()).await.map_err(db)?;
    let mut buckets: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut by_type: HashMap<i16, u64> = HashMap::new();
    let mut by_name: HashMap<String, u64> = HashMap::new();
    let (mut total, mut errors) = (0u64, 0u64);
    for row in &rows {
        let start: i64 = row.get(0);
        let event_type: i16 = row.get(1);
        let name: String = row.get(2);
        let n = row.get::<_, i64>(3) as u64;
        let err = row.get::<_, i64>(4) as u64;
        let bucket = buckets.entry(start).or_default();
        bucket.0 += n;
        bucket.1 += err;
        *by_type.entry(event_type).or_default() += n;
        *by_name.entry(name).or_default() += n;
        total += n;
        errors += err;
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
    let mut by_type: Vec<(EventType, u64)> = by_type
        .into_iter()
        .filter_map(|(code, n)| {
            u8::try_from(code)
                .ok()
                .and_then(EventType::from_code)
                .map(|t| (t, n))
        })
        .collect();
    by_type.sort_by_key(|(t, _)| t.as_str());
    let mut top_names: Vec<(String, u64)> = by_name.into_iter().collect();
    top_names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_names.truncate(query.top.max(1) as usize);

    let clause = Clause::new(scope, &query.filters);
    let sql = format!(
        "SELECT rn, n, d FROM (SELECT r.duration_ms AS d, \
         row_number() OVER (ORDER BY r.duration_ms) AS rn, count(*) OVER () AS n \
         FROM records r WHERE {} AND r.duration_ms IS NOT NULL) x \
         WHERE rn = greatest((50 * n + 99) / 100, 1) OR rn = greatest((95 * n + 99) / 100, 1)",
        clause.sql
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let rows = tx.query(&stmt, &clause.refs()).await.map_err(db)?;
    let mut p50 = None;
    let mut p95 = None;
    for row in &rows {
        let rank: i64 = row.get(0);
        let n: i64 = row.get(1);
        let duration = row.get::<_, i64>(2).max(0) as u64;
        let rank_of = |p: i64| ((p * n + 99) / 100).max(1);
        if rank == rank_of(50) {
            p50 = Some(duration);
        }
        if rank == rank_of(95) {
            p95 = Some(duration);
        }
    }
    Ok(Stats {
        buckets,
        by_type,
        top_names,
        total,
        errors,
        p50_duration_ms: p50,
        p95_duration_ms: p95,
    })
}
