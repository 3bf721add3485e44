//! Readers: list queries, record lookup and stats, each planned onto an index.
//!
//! Every equality filter (and a user binding) becomes a posting list (see
//! `postings.rs`); the planner drives the query from the shortest list and
//! checks each candidate against the others one block at a time, so a
//! filtered page never scans the tenant. `name_contains` first finds the
//! matching names in the (small) name dictionary and reads the union of their
//! lists. With no equality filter the query walks `records` by (tenant, seq)
//! or (tenant, ts).

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use trail_core::event::{EventType, Status};
use trail_store::rollup::{rollups_can_answer, split_hours};
use trail_store::{
    EventQuery, Filters, Order, Page, ReadScope, Stats, StatsQuery, StoreError, StoredRecord,
};
use uuid::Uuid;

use crate::dims::DimKind;
use crate::postings::{self, PostingList};
use crate::rollup::{self, Tally, HOUR};
use crate::schema::{rid, rid_range};

/// The resolved plan of a filter set.
struct Plan {
    /// Posting lists that must all contain the seq: (dims of the list, total
    /// seqs); a list of several dims is their union (`name_contains`).
    lists: Vec<(Vec<i64>, i64)>,
    from: Option<i64>,
    to: Option<i64>,
}

fn lookup_dim(
    conn: &Connection,
    tenant: i64,
    kind: DimKind,
    value: &str,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT id FROM dims WHERE tenant_id = ?1 AND kind = ?2 AND value = ?3")
        .and_then(|mut stmt| {
            stmt.query_row(params![tenant, kind as u8, value], |row| row.get(0))
                .optional()
        })
        .map_err(StoreError::backend)
}

/// The name dims whose name contains `needle`, ignoring case.
fn names_containing(conn: &Connection, tenant: i64, needle: &str) -> Result<Vec<i64>, StoreError> {
    let needle = needle.to_lowercase();
    let mut stmt = conn
        .prepare_cached("SELECT id, value FROM dims WHERE tenant_id = ?1 AND kind = ?2")
        .map_err(StoreError::backend)?;
    let rows = stmt
        .query_map(params![tenant, DimKind::Name as u8], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(StoreError::backend)?;
    let mut dims = Vec::new();
    for row in rows {
        let (id, value) = row.map_err(StoreError::backend)?;
        if value.to_lowercase().contains(&needle) {
            dims.push(id);
        }
    }
    Ok(dims)
}

/// Resolves the filters to dims; `None` when some value was never recorded,
/// so nothing can match.
fn plan(
    conn: &Connection,
    scope: &ReadScope,
    filters: &Filters,
) -> Result<Option<Plan>, StoreError> {
    let tenant = scope.tenant.id;
    let wanted = trail_store::dims::wanted_dims(scope, filters);
    let mut lists = Vec::with_capacity(wanted.len() + 1);
    for (kind, value) in &wanted {
        match lookup_dim(conn, tenant, *kind, value)? {
            Some(dim) => lists.push((vec![dim], postings::count(conn, tenant, dim)?)),
            None => return Ok(None),
        }
    }
    if let Some(needle) = &filters.name_contains {
        let dims = names_containing(conn, tenant, needle)?;
        if dims.is_empty() {
            return Ok(None);
        }
        let mut total = 0;
        for dim in &dims {
            total += postings::count(conn, tenant, *dim)?;
        }
        lists.push((dims, total));
    }
    if lists.iter().any(|(_, total)| *total == 0) {
        return Ok(None);
    }
    // The shortest list drives.
    lists.sort_by_key(|(_, total)| *total);
    Ok(Some(Plan {
        lists,
        from: filters.from,
        to: filters.to,
    }))
}

/// The hour lists covering `[from, to)`: (hour, dim, records in it), oldest
/// first. Only hours that hold records have a dim.
fn hour_dims(
    conn: &Connection,
    tenant: i64,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Vec<(i64, i64, i64)>, StoreError> {
    let first = from.map_or(i64::MIN, |from| from.div_euclid(HOUR));
    let last = to.map_or(i64::MAX, |to| (to - 1).div_euclid(HOUR));
    let mut stmt = conn
        .prepare_cached("SELECT id, value FROM dims WHERE tenant_id = ?1 AND kind = ?2")
        .map_err(StoreError::backend)?;
    let rows = stmt
        .query_map(params![tenant, DimKind::Hour as u8], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(StoreError::backend)?;
    let mut hours = Vec::new();
    for row in rows {
        let (dim, value) = row.map_err(StoreError::backend)?;
        let hour: i64 = value
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("hour dim {dim} is {value:?}")))?;
        if (first..=last).contains(&hour) {
            hours.push((hour, dim, postings::count(conn, tenant, dim)?));
        }
    }
    hours.sort_unstable();
    Ok(hours)
}

/// The first and last seq filed under a dim.
fn dim_span(conn: &Connection, tenant: i64, dim: i64) -> Result<Option<(i64, i64)>, StoreError> {
    let first = PostingList::new(conn, tenant, vec![dim], false, None)?.next(conn)?;
    let last = PostingList::new(conn, tenant, vec![dim], true, None)?.next(conn)?;
    Ok(first.zip(last))
}

/// The seq span `[first, last]` holding every record of the hours that
/// overlap `[from, to)`, each hour with its span; records with a time in the
/// range all lie inside, so a rowid-range scan with a time check finds them.
fn time_spans(
    conn: &Connection,
    tenant: i64,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Vec<(i64, i64, i64, i64)>, StoreError> {
    let mut spans = Vec::new();
    for (hour, dim, n) in hour_dims(conn, tenant, from, to)? {
        if let Some((first, last)) = dim_span(conn, tenant, dim)? {
            spans.push((hour, n, first, last));
        }
    }
    Ok(spans)
}

/// Runs `sql` (whose WHERE ends in `rid BETWEEN ?1 AND ?2 AND ts >= ?3
/// AND ts < ?4`) over the records of one hour's span within `[low, high)`.
fn scan_span<T>(
    conn: &Connection,
    tenant: i64,
    sql: &str,
    (first, last): (i64, i64),
    (low, high): (i64, i64),
    mut row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::backend)?;
    let mut rows = stmt
        .query(params![rid(tenant, first), rid(tenant, last), low, high])
        .map_err(StoreError::backend)?;
    let mut out = Vec::new();
    while let Some(found) = rows.next().map_err(StoreError::backend)? {
        out.push(row(found).map_err(StoreError::backend)?);
    }
    Ok(out)
}

/// Walks the seqs that match a plan with posting lists, in order: the
/// driver list proposes, the other lists and the time range dispose.
struct Matches<'c> {
    conn: &'c Connection,
    tenant: i64,
    driver: PostingList,
    checks: Vec<PostingList>,
    from: Option<i64>,
    to: Option<i64>,
}

impl<'c> Matches<'c> {
    fn new(
        conn: &'c Connection,
        tenant: i64,
        plan: &Plan,
        descending: bool,
        after: Option<i64>,
    ) -> Result<Self, StoreError> {
        let mut lists = plan
            .lists
            .iter()
            .map(|(dims, _)| PostingList::new(conn, tenant, dims.clone(), descending, after))
            .collect::<Result<Vec<_>, _>>()?;
        if lists.is_empty() {
            return Err(StoreError::Backend(
                "a plan without posting lists cannot drive a walk".into(),
            ));
        }
        let driver = lists.remove(0);
        Ok(Matches {
            conn,
            tenant,
            driver,
            checks: lists,
            from: plan.from,
            to: plan.to,
        })
    }

    fn next(&mut self) -> Result<Option<i64>, StoreError> {
        'candidates: while let Some(seq) = self.driver.next(self.conn)? {
            for check in &mut self.checks {
                if !check.contains(self.conn, seq)? {
                    continue 'candidates;
                }
            }
            if self.from.is_some() || self.to.is_some() {
                let ts: i64 = self
                    .conn
                    .prepare_cached("SELECT ts FROM records WHERE rid = ?1")
                    .and_then(|mut stmt| stmt.query_row([rid(self.tenant, seq)], |row| row.get(0)))
                    .map_err(StoreError::backend)?;
                if self.from.is_some_and(|from| ts < from) || self.to.is_some_and(|to| ts >= to) {
                    continue;
                }
            }
            return Ok(Some(seq));
        }
        Ok(None)
    }
}

const RECORD_COLUMNS: &str = "r.seq, r.envelope, r.leaf_hash, r.has_content, c.salt, c.body";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<StoredRecord> {
    // Bytes are read whether the column holds a blob or text, so that a
    // record edited behind trail's back still reads, and verification can
    // name it instead of failing on a type error.
    let bytes = |index: usize| -> rusqlite::Result<Option<Vec<u8>>> {
        let value = row.get_ref(index)?;
        Ok(match value {
            rusqlite::types::ValueRef::Null => None,
            other => Some(other.as_bytes().map(<[u8]>::to_vec).unwrap_or_default()),
        })
    };
    let seq: i64 = row.get(0)?;
    Ok(StoredRecord::from_columns(
        seq as u64,
        bytes(1)?.unwrap_or_default(),
        bytes(2)?.unwrap_or_default(),
        row.get(3)?,
        bytes(4)?,
        bytes(5)?,
    ))
}

/// One page of a list query.
pub fn query(conn: &Connection, scope: &ReadScope, query: &EventQuery) -> Result<Page, StoreError> {
    let Some(plan) = plan(conn, scope, &query.filters)? else {
        return Ok(Page {
            records: Vec::new(),
            next_cursor: None,
            total: query.count.then_some(0),
        });
    };
    let tenant = scope.tenant.id;
    let descending = query.order == Order::Desc;
    let after = query.after_seq.map(|seq| seq.min(i64::MAX as u64) as i64);
    let records = if plan.lists.is_empty() {
        page_from_records(conn, tenant, &plan, query, after)?
    } else {
        let mut matches = Matches::new(conn, tenant, &plan, descending, after)?;
        let mut skip = query.offset;
        let mut records = Vec::with_capacity(query.limit as usize);
        while records.len() < query.limit as usize {
            let Some(seq) = matches.next()? else { break };
            if skip > 0 {
                skip -= 1;
                continue;
            }
            records.push(record_at(conn, tenant, seq)?);
        }
        records
    };
    let total = if query.count {
        Some(count(conn, tenant, &plan)?)
    } else {
        None
    };
    let next_cursor = if records.len() == query.limit as usize {
        records.last().map(|record| record.seq)
    } else {
        None
    };
    Ok(Page {
        records,
        next_cursor,
        total,
    })
}

/// Rows a time-filtered page examines in seq order before it falls back to
/// the hour lists.
const TIME_SCAN_WINDOW: i64 = 20_000;

/// A page straight from `records` (no equality filter).
///
/// A time range is usually recent, and time follows seq closely, so the page
/// is first looked for by walking seqs in order over a bounded window
/// (checking ts on each row); only when the window does not fill the page do
/// the records are walked over the seq span of the range's hours only.
fn page_from_records(
    conn: &Connection,
    tenant: i64,
    plan: &Plan,
    query: &EventQuery,
    after: Option<i64>,
) -> Result<Vec<StoredRecord>, StoreError> {
    let (start, _) = rid_range(tenant);
    // The log occupies [start, start + size) of the tenant's rid range.
    let end = start + log_size(conn, tenant)? as i64;
    let (low, high) = match (query.order, after) {
        (Order::Desc, Some(after)) => (start, rid(tenant, after).min(end)),
        (Order::Desc, None) => (start, end),
        (Order::Asc, Some(after)) => ((rid(tenant, after) + 1).min(end), end),
        (Order::Asc, None) => (start, end),
    };
    if plan.from.is_none() && plan.to.is_none() {
        return page_in_window(conn, plan, query, (low, high));
    }
    let window = match query.order {
        Order::Desc => (low.max(high - TIME_SCAN_WINDOW), high),
        Order::Asc => (low, high.min(low + TIME_SCAN_WINDOW)),
    };
    let records = page_in_window(conn, plan, query, window)?;
    if records.len() == query.limit as usize || window == (low, high) {
        return Ok(records);
    }
    // Every record of the range lies within the seq span of its hours.
    let spans = time_spans(conn, tenant, plan.from, plan.to)?;
    let (Some(first), Some(last)) = (
        spans.iter().map(|(_, _, first, _)| *first).min(),
        spans.iter().map(|(_, _, _, last)| *last).max(),
    ) else {
        return Ok(Vec::new());
    };
    let span = (low.max(rid(tenant, first)), high.min(rid(tenant, last) + 1));
    if span.0 >= span.1 {
        return Ok(Vec::new());
    }
    page_in_window(conn, plan, query, span)
}

/// The page among rids in `[low, high)` in rid order, time checked per row.
fn page_in_window(
    conn: &Connection,
    plan: &Plan,
    query: &EventQuery,
    (low, high): (i64, i64),
) -> Result<Vec<StoredRecord>, StoreError> {
    let mut params: Vec<SqlValue> = vec![SqlValue::Integer(low), SqlValue::Integer(high)];
    let mut sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records r LEFT JOIN content c ON c.rid = r.rid \
         WHERE r.rid >= ?1 AND r.rid < ?2"
    );
    if let Some(from) = plan.from {
        params.push(SqlValue::Integer(from));
        sql.push_str(&format!(" AND r.ts >= ?{}", params.len()));
    }
    if let Some(to) = plan.to {
        params.push(SqlValue::Integer(to));
        sql.push_str(&format!(" AND r.ts < ?{}", params.len()));
    }
    let direction = match query.order {
        Order::Desc => "DESC",
        Order::Asc => "ASC",
    };
    params.push(SqlValue::Integer(i64::from(query.limit)));
    sql.push_str(&format!(
        " ORDER BY r.rid {direction} LIMIT ?{}",
        params.len()
    ));
    params.push(SqlValue::Integer(query.offset.min(i64::MAX as u64) as i64));
    sql.push_str(&format!(" OFFSET ?{}", params.len()));
    let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::backend)?;
    let records = stmt
        .query_map(params_from_iter(params.iter()), record_from_row)
        .map_err(StoreError::backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::backend)?;
    Ok(records)
}

/// Every match of the plan.
fn count(conn: &Connection, tenant: i64, plan: &Plan) -> Result<u64, StoreError> {
    if plan.lists.is_empty() && plan.from.is_none() && plan.to.is_none() {
        return Ok(log_size(conn, tenant)? - crate::retention::retired(conn, tenant)?);
    }
    if plan.lists.is_empty() {
        // Whole hours count from their lists; the edge hours by a scan of
        // their seq span with a time check.
        let mut total = 0u64;
        for (hour, n, first, last) in time_spans(conn, tenant, plan.from, plan.to)? {
            let low = plan.from.unwrap_or(i64::MIN).max(hour * HOUR);
            let high = plan.to.unwrap_or(i64::MAX).min((hour + 1) * HOUR);
            if (low, high) == (hour * HOUR, (hour + 1) * HOUR) {
                total += n as u64;
            } else {
                let counted = scan_span(
                    conn,
                    tenant,
                    "SELECT count(*) FROM records r \
                     WHERE r.rid BETWEEN ?1 AND ?2 AND r.ts >= ?3 AND r.ts < ?4",
                    (first, last),
                    (low, high),
                    |row| row.get::<_, i64>(0),
                )?;
                total += counted.first().copied().unwrap_or(0) as u64;
            }
        }
        return Ok(total);
    }
    if plan.lists.len() == 1 && plan.from.is_none() && plan.to.is_none() {
        return Ok(plan.lists[0].1 as u64);
    }
    let mut matches = Matches::new(conn, tenant, plan, false, None)?;
    let mut total = 0;
    while matches.next()?.is_some() {
        total += 1;
    }
    Ok(total)
}

/// The record at a seq.
fn record_at(conn: &Connection, tenant: i64, seq: i64) -> Result<StoredRecord, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records r LEFT JOIN content c ON c.rid = r.rid \
         WHERE r.rid = ?1"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([rid(tenant, seq)], record_from_row))
        .map_err(|error| {
            StoreError::Corrupt(format!("seq {seq} is indexed but unreadable: {error}"))
        })
}

/// One record by id, if the scope may see it.
pub fn get(
    conn: &Connection,
    scope: &ReadScope,
    id: Uuid,
) -> Result<Option<StoredRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records r LEFT JOIN content c ON c.rid = r.rid \
         WHERE r.tenant_id = ?1 AND r.id = ?2"
    );
    let record = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(
                params![scope.tenant.id, id.as_bytes().as_slice()],
                record_from_row,
            )
            .optional()
        })
        .map_err(StoreError::backend)?;
    let Some(record) = record else {
        return Ok(None);
    };
    if let Some(user) = &scope.bound_user {
        let Some(dim) = lookup_dim(conn, scope.tenant.id, DimKind::User, user)? else {
            return Ok(None);
        };
        let mut list = PostingList::new(conn, scope.tenant.id, vec![dim], true, None)?;
        if !list.contains(conn, record.seq as i64)? {
            return Ok(None);
        }
    }
    Ok(Some(record))
}

/// Number of records in the tenant's log.
pub fn log_size(conn: &Connection, tenant: i64) -> Result<u64, StoreError> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT max(rid) - ?1 FROM records WHERE rid >= ?1 AND rid < ?2")
        .and_then(|mut stmt| {
            let (start, end) = rid_range(tenant);
            stmt.query_row([start, end], |row| row.get(0))
        })
        .map_err(StoreError::backend)?;
    match last {
        Some(seq) => Ok(seq as u64 + 1),
        // Empty, or every record retired.
        None => crate::retention::retired(conn, tenant),
    }
}

const STATS_COLUMNS: &str = "r.ts, r.type, r.status, r.name_dim, r.duration_ms";

/// (ts, type, status, name dim, duration) of one record.
type StatsRow = (i64, u8, u8, i64, Option<i64>);

fn stats_row(row: &Row<'_>) -> rusqlite::Result<StatsRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

/// Aggregates over every matching record: from the hourly rollups when the
/// filters allow it (type, status, name, time), else record by record
/// through the posting lists or the time index.
pub fn stats(
    conn: &Connection,
    scope: &ReadScope,
    query: &StatsQuery,
) -> Result<Stats, StoreError> {
    let tenant = scope.tenant.id;
    let width = query.bucket.micros();
    let mut tally = Tally::default();
    if scope.bound_user.is_none() && rollups_can_answer(&query.filters) {
        if !stats_from_rollups(conn, tenant, &query.filters, &mut tally)? {
            return Ok(Stats::default());
        }
        return rollup::finish(tally, conn, width, query.top);
    }
    let Some(plan) = plan(conn, scope, &query.filters)? else {
        return Ok(Stats::default());
    };
    // Every filter the rollups are not keyed by, and a user binding, is a
    // posting list, so here the lists drive (an empty plan took the rollup
    // path above).
    let mut matches = Matches::new(conn, tenant, &plan, false, None)?;
    let sql = format!("SELECT {STATS_COLUMNS} FROM records r WHERE r.rid = ?1");
    let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::backend)?;
    while let Some(seq) = matches.next()? {
        let (ts, event_type, status, name, duration) = stmt
            .query_row([rid(tenant, seq)], stats_row)
            .map_err(StoreError::backend)?;
        tally.add_record(ts, event_type, status, name, duration);
    }
    rollup::finish(tally, conn, width, query.top)
}

/// Feeds the tally from rollups for whole hours and from records for the
/// partial hours at the edges; false when nothing can match.
fn stats_from_rollups(
    conn: &Connection,
    tenant: i64,
    filters: &Filters,
    tally: &mut Tally,
) -> Result<bool, StoreError> {
    let mut names: Option<Vec<i64>> = None;
    if let Some(name) = &filters.name {
        match lookup_dim(conn, tenant, DimKind::Name, name)? {
            Some(dim) => names = Some(vec![dim]),
            None => return Ok(false),
        }
    }
    if let Some(needle) = &filters.name_contains {
        let matching = names_containing(conn, tenant, needle)?;
        names = Some(match names {
            Some(exact) => exact
                .into_iter()
                .filter(|dim| matching.contains(dim))
                .collect(),
            None => matching,
        });
    }
    if names.as_ref().is_some_and(Vec::is_empty) {
        return Ok(false);
    }
    let type_code = filters.event_type.map(EventType::code);
    let status_code = filters.status.map(Status::code);
    let wanted = |event_type: u8, status: u8, name: i64| {
        type_code.is_none_or(|t| t == event_type)
            && status_code.is_none_or(|s| s == status)
            && names.as_ref().is_none_or(|names| names.contains(&name))
    };
    let split = split_hours(filters.from, filters.to);
    if let Some((first_hour, end_hour)) = split.whole {
        let mut stmt = conn
            .prepare_cached(
                "SELECT hour, type, status, name_dim, n, durations FROM rollups \
                 WHERE tenant_id = ?1 AND hour >= ?2 AND hour < ?3",
            )
            .map_err(StoreError::backend)?;
        let mut rows = stmt
            .query(params![tenant, first_hour, end_hour])
            .map_err(StoreError::backend)?;
        while let Some(row) = rows.next().map_err(StoreError::backend)? {
            let (event_type, status, name): (u8, u8, i64) = (
                row.get(1).map_err(StoreError::backend)?,
                row.get(2).map_err(StoreError::backend)?,
                row.get(3).map_err(StoreError::backend)?,
            );
            if wanted(event_type, status, name) {
                let n: i64 = row.get(4).map_err(StoreError::backend)?;
                let durations = row.get_ref(5).map_err(StoreError::backend)?;
                let durations = durations.as_blob().map_err(StoreError::backend)?;
                tally.add_rollup(
                    row.get(0).map_err(StoreError::backend)?,
                    event_type,
                    status,
                    name,
                    n as u64,
                    durations,
                )?;
            }
        }
    }
    // An edge spans at most two hours: scan each hour's seq span, checking
    // time (within the hour, so no record is counted twice).
    let sql = format!(
        "SELECT {STATS_COLUMNS} FROM records r \
         WHERE r.rid BETWEEN ?1 AND ?2 AND r.ts >= ?3 AND r.ts < ?4"
    );
    for (low, high) in split.edges {
        for (hour, _, first, last) in time_spans(conn, tenant, Some(low), Some(high))? {
            let range = (low.max(hour * HOUR), high.min((hour + 1) * HOUR));
            for (ts, event_type, status, name, duration) in
                scan_span(conn, tenant, &sql, (first, last), range, stats_row)?
            {
                if wanted(event_type, status, name) {
                    tally.add_record(ts, event_type, status, name, duration);
                }
            }
        }
    }
    Ok(true)
}
