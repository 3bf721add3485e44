//! Stats: aggregates over the records matching a query.
//!
//! Filtered only by type, status, name and time (and with no user binding),
//! stats come from the hourly `rollups` the writer keeps (see `commit.rs`):
//! one row per (hour, type, status, name) for the whole hours of the range,
//! plus the records of the partial hours at its edges, found through the
//! BRIN time index (only when the rollups hold matching records in those
//! hours). Percentiles then come from the duration histograms:
//! exact below 1,024 ms, at most 1/64 low above (`trail_store::rollup`).
//! Any other filter scans the matching records.

use std::collections::HashSet;

use deadpool_postgres::Transaction;
use trail_store::rollup::{rollups_can_answer, split_hours, Tally, HOUR};
use trail_store::{Filters, ReadScope, Stats, StatsQuery, StoreError};

use crate::db;
use crate::read::Clause;

/// Aggregates over the matching records: from the rollups when the filters
/// allow it, else from the records themselves.
pub async fn stats(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &StatsQuery,
) -> Result<Stats, StoreError> {
    if scope.bound_user.is_none() && rollups_can_answer(&query.filters) {
        from_rollups(tx, scope, query).await
    } else {
        scan(tx, scope, query).await
    }
}

/// Whole hours from `rollups`, the partial hours at the edges of the range
/// from `records`.
async fn from_rollups(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &StatsQuery,
) -> Result<Stats, StoreError> {
    let filters = &query.filters;
    let split = split_hours(filters.from, filters.to);
    let mut tally: Tally<String> = Tally::default();
    // Rollup rows of every hour the range touches: the whole hours are
    // counted from them; an edge whose hours have none (nothing there
    // matches) is not scanned at all.
    let touched = (
        filters.from.map_or(i64::MIN, |from| from.div_euclid(HOUR)),
        filters.to.map_or(i64::MAX, |to| -((-to).div_euclid(HOUR))),
    );
    let mut edge_hours: HashSet<i64> = HashSet::new();
    if split.whole.is_some() || !split.edges.is_empty() {
        // The same conditions as `Clause` puts on records, over the rollups'
        // columns of the same names.
        let mut clause = Clause {
            sql: "r.tenant_id = $1".into(),
            params: vec![Box::new(scope.tenant.id)],
        };
        clause.push("r.hour >= $", touched.0);
        clause.push("r.hour < $", touched.1);
        if let Some(t) = filters.event_type {
            clause.push("r.type = $", i16::from(t.code()));
        }
        if let Some(s) = filters.status {
            clause.push("r.status = $", i16::from(s.code()));
        }
        if let Some(v) = &filters.name {
            clause.push("r.name = $", v.clone());
        }
        if let Some(v) = &filters.name_contains {
            clause.push("strpos(lower(r.name), lower($", v.clone());
            clause.sql.push_str(")) > 0");
        }
        let sql = format!(
            "SELECT r.hour, r.type, r.status, r.name, r.n, r.durations FROM rollups r WHERE {}",
            clause.sql
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
        let rows = tx.query(&stmt, &clause.refs()).await.map_err(db)?;
        for row in &rows {
            let hour: i64 = row.get(0);
            if split
                .whole
                .is_some_and(|(first, end)| first <= hour && hour < end)
            {
                tally.add_rollup(
                    hour,
                    row.get::<_, i16>(1) as u8,
                    row.get::<_, i16>(2) as u8,
                    row.get(3),
                    row.get::<_, i64>(4).max(0) as u64,
                    row.get(5),
                )?;
            } else {
                edge_hours.insert(hour);
            }
        }
    }
    // Each edge lies within at most two hours: `Clause` with the range
    // narrowed to it walks only those hours through the time index.
    for (low, high) in split.edges {
        let (first, last) = (low.div_euclid(HOUR), (high - 1).div_euclid(HOUR));
        if !(first..=last).any(|hour| edge_hours.contains(&hour)) {
            continue;
        }
        let edge = Filters {
            from: Some(low),
            to: Some(high),
            ..filters.clone()
        };
        let clause = Clause::new(scope, &edge);
        let sql = format!(
            "SELECT (r.ts - ((r.ts % {HOUR}) + {HOUR}) % {HOUR}) / {HOUR} AS hour, r.type, r.status, \
             r.name, r.duration_ms, count(*) FROM records r WHERE {} GROUP BY 1, 2, 3, 4, 5",
            clause.sql
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
        let rows = tx.query(&stmt, &clause.refs()).await.map_err(db)?;
        for row in &rows {
            tally.add_records(
                row.get(0),
                row.get::<_, i16>(1) as u8,
                row.get::<_, i16>(2) as u8,
                row.get(3),
                row.get(4),
                row.get::<_, i64>(5) as u64,
            );
        }
    }
    tally.finish(query.bucket.micros(), query.top, Ok)
}

/// Aggregates over the matching records: one grouped scan per (hour, type,
/// status, name) into the shared tally, one ordered pass over durations for
/// exact nearest-rank percentiles.
async fn scan(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &StatsQuery,
) -> Result<Stats, StoreError> {
    let clause = Clause::new(scope, &query.filters);
    let sql = format!(
        "SELECT (r.ts - ((r.ts % {HOUR}) + {HOUR}) % {HOUR}) / {HOUR} AS hour, r.type, r.status, \
         r.name, count(*) FROM records r WHERE {} GROUP BY 1, 2, 3, 4",
        clause.sql
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let mut tally: Tally<String> = Tally::default();
    for row in &tx.query(&stmt, &clause.refs()).await.map_err(db)? {
        tally.add_records(
            row.get(0),
            row.get::<_, i16>(1) as u8,
            row.get::<_, i16>(2) as u8,
            row.get(3),
            None,
            row.get::<_, i64>(4) as u64,
        );
    }
    let mut stats = tally.finish(query.bucket.micros(), query.top, Ok)?;
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
    let (mut p50, mut p95) = (None, None);
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
    // The scan has every duration: exact percentiles, not the histogram's.
    stats.p50_duration_ms = p50;
    stats.p95_duration_ms = p95;
    Ok(stats)
}
