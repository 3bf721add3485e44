//! Readers: list queries, record lookup and stats, each planned onto an index.
//!
//! Every equality filter (and a user binding) becomes a posting list in
//! `postings`; the planner drives the query from the shortest list (the
//! `dims.n` counts say which) and checks the others with point lookups on the
//! same index, so a filtered page never scans the tenant. `name_contains`
//! first finds the matching names in the (small) name dictionary. With no
//! equality filter the query walks `records` by (tenant, seq) or (tenant, ts).

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use trail_core::event::{EventType, Status};
use trail_store::{
    Bucket, EventQuery, Filters, Order, Page, ReadScope, Stats, StatsQuery, StoreError,
    StoredRecord,
};
use uuid::Uuid;

use crate::dims::DimKind;

/// The resolved plan of a filter set.
struct Plan {
    /// Posting lists that must all contain the seq: (dim id, count).
    required: Vec<(i64, i64)>,
    /// Alternatives of `name_contains`, one of which must contain the seq.
    any_name: Option<Vec<(i64, i64)>>,
    from: Option<i64>,
    to: Option<i64>,
}

/// The FROM + WHERE of a planned query, with its parameters.
struct Sql {
    from_where: String,
    params: Vec<SqlValue>,
    /// The seq column of the driving table (`p.seq` or `r.seq`).
    seq_column: &'static str,
}

fn lookup_dim(
    conn: &Connection,
    tenant: i64,
    kind: DimKind,
    value: &str,
) -> Result<Option<(i64, i64)>, StoreError> {
    conn.prepare_cached("SELECT id, n FROM dims WHERE tenant_id = ?1 AND kind = ?2 AND value = ?3")
        .and_then(|mut stmt| {
            stmt.query_row(params![tenant, kind as u8, value], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
        })
        .map_err(StoreError::backend)
}

/// Resolves the filters to dims; `None` when some value was never recorded,
/// so nothing can match.
fn plan(conn: &Connection, scope: &ReadScope, filters: &Filters) -> Result<Option<Plan>, StoreError> {
    let tenant = scope.tenant.id;
    let mut wanted: Vec<(DimKind, String)> = Vec::new();
    if let Some(user) = &scope.bound_user {
        wanted.push((DimKind::User, user.clone()));
    }
    let text = [
        (DimKind::Name, &filters.name),
        (DimKind::User, &filters.user_id),
        (DimKind::Session, &filters.session_id),
        (DimKind::Project, &filters.project_id),
        (DimKind::Task, &filters.task_id),
        (DimKind::Agent, &filters.agent_id),
        (DimKind::Model, &filters.model),
        (DimKind::Provider, &filters.provider),
        (DimKind::Document, &filters.document_id),
    ];
    for (kind, value) in text {
        if let Some(value) = value {
            wanted.push((kind, value.clone()));
        }
    }
    if let Some(event_type) = filters.event_type {
        wanted.push((DimKind::Type, event_type.as_str().to_owned()));
    }
    if let Some(status) = filters.status {
        wanted.push((DimKind::Status, status.as_str().to_owned()));
    }
    if let Some(transport) = filters.transport {
        wanted.push((DimKind::Transport, transport.as_str().to_owned()));
    }
    if let Some(confirmed) = filters.confirmed {
        wanted.push((DimKind::Confirmed, confirmed.to_string()));
    }
    let mut required = Vec::with_capacity(wanted.len());
    for (kind, value) in &wanted {
        match lookup_dim(conn, tenant, *kind, value)? {
            Some(dim) => required.push(dim),
            None => return Ok(None),
        }
    }
    let any_name = match &filters.name_contains {
        None => None,
        Some(needle) => {
            let needle = needle.to_lowercase();
            let mut stmt = conn
                .prepare_cached("SELECT id, n, value FROM dims WHERE tenant_id = ?1 AND kind = ?2")
                .map_err(StoreError::backend)?;
            let rows = stmt
                .query_map(params![tenant, DimKind::Name as u8], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
                })
                .map_err(StoreError::backend)?;
            let mut matches = Vec::new();
            for row in rows {
                let (id, n, value) = row.map_err(StoreError::backend)?;
                if value.to_lowercase().contains(&needle) {
                    matches.push((id, n));
                }
            }
            if matches.is_empty() {
                return Ok(None);
            }
            Some(matches)
        }
    };
    Ok(Some(Plan {
        required,
        any_name,
        from: filters.from,
        to: filters.to,
    }))
}

fn in_list(ids: &[(i64, i64)]) -> String {
    let ids: Vec<String> = ids.iter().map(|(id, _)| id.to_string()).collect();
    ids.join(",")
}

/// Builds FROM/WHERE for the plan: driven by the shortest posting list when
/// there is one, else by the records table.
fn build(tenant: i64, plan: &Plan) -> Sql {
    let mut params: Vec<SqlValue> = vec![SqlValue::Integer(tenant)];
    let mut required = plan.required.clone();
    required.sort_by_key(|(_, n)| *n);
    let any_total: Option<i64> = plan
        .any_name
        .as_ref()
        .map(|names| names.iter().map(|(_, n)| *n).sum());
    let drive_by_names = match (any_total, required.first()) {
        (Some(total), Some((_, n))) => total < *n,
        (Some(_), None) => true,
        _ => false,
    };
    let mut sql;
    let seq_column;
    if drive_by_names || !required.is_empty() {
        seq_column = "p.seq";
        sql = String::from(
            "FROM postings p JOIN records r ON r.tenant_id = p.tenant_id AND r.seq = p.seq \
             WHERE p.tenant_id = ?1",
        );
        if drive_by_names {
            let names = plan.any_name.as_deref().unwrap_or_default();
            sql.push_str(&format!(" AND p.dim IN ({})", in_list(names)));
        } else {
            let (dim, _) = required.remove(0);
            sql.push_str(&format!(" AND p.dim = {dim}"));
        }
        if !drive_by_names {
            if let Some(names) = &plan.any_name {
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM postings q WHERE q.tenant_id = ?1 AND q.dim IN ({}) AND q.seq = p.seq)",
                    in_list(names)
                ));
            }
        }
        for (dim, _) in &required {
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM postings q WHERE q.tenant_id = ?1 AND q.dim = {dim} AND q.seq = p.seq)"
            ));
        }
    } else {
        seq_column = "r.seq";
        sql = String::from("FROM records r WHERE r.tenant_id = ?1");
    }
    if let Some(from) = plan.from {
        params.push(SqlValue::Integer(from));
        sql.push_str(&format!(" AND r.ts >= ?{}", params.len()));
    }
    if let Some(to) = plan.to {
        params.push(SqlValue::Integer(to));
        sql.push_str(&format!(" AND r.ts < ?{}", params.len()));
    }
    Sql {
        from_where: sql,
        params,
        seq_column,
    }
}

const RECORD_COLUMNS: &str = "r.seq, r.envelope, r.leaf_hash, r.has_content, c.salt, c.body";

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<StoredRecord> {
    let seq: i64 = row.get(0)?;
    let leaf: Vec<u8> = row.get(2)?;
    let has_content: bool = row.get(3)?;
    let salt: Option<Vec<u8>> = row.get(4)?;
    let body: Option<Vec<u8>> = row.get(5)?;
    let leaf_hash: [u8; 32] = leaf.try_into().map_err(|_| {
        rusqlite::Error::InvalidColumnType(2, "leaf_hash".into(), rusqlite::types::Type::Blob)
    })?;
    let content_salt = salt.and_then(|salt| <[u8; 32]>::try_from(salt).ok());
    Ok(StoredRecord {
        seq: seq as u64,
        envelope: row.get(1)?,
        leaf_hash,
        content_erased: has_content && body.is_none(),
        content: body,
        content_salt,
    })
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
    let built = build(scope.tenant.id, &plan);
    let total = if query.count {
        let sql = format!("SELECT count(*) {}", built.from_where);
        let total: i64 = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.query_row(params_from_iter(built.params.iter()), |row| row.get(0)))
            .map_err(StoreError::backend)?;
        Some(total as u64)
    } else {
        None
    };
    let mut params = built.params.clone();
    // Content is optional: join it after the driving tables, before WHERE.
    let mut sql = format!(
        "SELECT {RECORD_COLUMNS} {}",
        built
            .from_where
            .replacen(" WHERE ", " LEFT JOIN content c ON c.rid = r.rid WHERE ", 1)
    );
    let (comparison, direction) = match query.order {
        Order::Desc => ("<", "DESC"),
        Order::Asc => (">", "ASC"),
    };
    if let Some(after) = query.after_seq {
        params.push(SqlValue::Integer(after as i64));
        sql.push_str(&format!(" AND {} {comparison} ?{}", built.seq_column, params.len()));
    }
    params.push(SqlValue::Integer(i64::from(query.limit)));
    sql.push_str(&format!(
        " ORDER BY {} {direction} LIMIT ?{}",
        built.seq_column,
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

/// One record by id, if the scope may see it.
pub fn get(conn: &Connection, scope: &ReadScope, id: Uuid) -> Result<Option<StoredRecord>, StoreError> {
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM records r LEFT JOIN content c ON c.rid = r.rid \
         WHERE r.tenant_id = ?1 AND r.id = ?2"
    );
    let record = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_row(params![scope.tenant.id, id.as_bytes().as_slice()], record_from_row)
                .optional()
        })
        .map_err(StoreError::backend)?;
    let Some(record) = record else {
        return Ok(None);
    };
    if let Some(user) = &scope.bound_user {
        let Some((dim, _)) = lookup_dim(conn, scope.tenant.id, DimKind::User, user)? else {
            return Ok(None);
        };
        let visible: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM postings WHERE tenant_id = ?1 AND dim = ?2 AND seq = ?3)",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![scope.tenant.id, dim, record.seq as i64], |row| row.get(0))
            })
            .map_err(StoreError::backend)?;
        if !visible {
            return Ok(None);
        }
    }
    Ok(Some(record))
}

/// Number of records in the tenant's log.
pub fn log_size(conn: &Connection, tenant: i64) -> Result<u64, StoreError> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM records WHERE tenant_id = ?1")
        .and_then(|mut stmt| stmt.query_row([tenant], |row| row.get(0)))
        .map_err(StoreError::backend)?;
    Ok(last.map_or(0, |seq| seq as u64 + 1))
}

/// Aggregates over every matching record.
pub fn stats(conn: &Connection, scope: &ReadScope, query: &StatsQuery) -> Result<Stats, StoreError> {
    let Some(plan) = plan(conn, scope, &query.filters)? else {
        return Ok(Stats::default());
    };
    let built = build(scope.tenant.id, &plan);
    let sql = format!(
        "SELECT r.ts, r.type, r.status, r.name_dim, r.duration_ms {}",
        built.from_where
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::backend)?;
    let mut rows = stmt
        .query(params_from_iter(built.params.iter()))
        .map_err(StoreError::backend)?;
    let width = query.bucket.micros();
    let mut buckets: HashMap<i64, (u64, u64)> = HashMap::new();
    let mut by_type: HashMap<u8, u64> = HashMap::new();
    let mut by_name: HashMap<i64, u64> = HashMap::new();
    let mut durations: Vec<u64> = Vec::new();
    let mut stats = Stats::default();
    let error_code = Status::Error.code();
    while let Some(row) = rows.next().map_err(StoreError::backend)? {
        let ts: i64 = row.get(0).map_err(StoreError::backend)?;
        let event_type: u8 = row.get(1).map_err(StoreError::backend)?;
        let status: u8 = row.get(2).map_err(StoreError::backend)?;
        let name: i64 = row.get(3).map_err(StoreError::backend)?;
        let duration: Option<i64> = row.get(4).map_err(StoreError::backend)?;
        let is_error = status == error_code;
        let bucket = buckets.entry(ts.div_euclid(width) * width).or_default();
        bucket.0 += 1;
        stats.total += 1;
        if is_error {
            bucket.1 += 1;
            stats.errors += 1;
        }
        *by_type.entry(event_type).or_default() += 1;
        *by_name.entry(name).or_default() += 1;
        if let Some(duration) = duration {
            durations.push(duration.max(0) as u64);
        }
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
    stats.buckets = buckets;
    let mut types: Vec<(EventType, u64)> = by_type
        .into_iter()
        .filter_map(|(code, count)| EventType::from_code(code).map(|t| (t, count)))
        .collect();
    types.sort_by_key(|(t, _)| t.as_str());
    stats.by_type = types;
    let mut names: Vec<(i64, u64)> = by_name.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut top = Vec::new();
    let mut name_stmt = conn
        .prepare_cached("SELECT value FROM dims WHERE id = ?1")
        .map_err(StoreError::backend)?;
    for (dim, count) in names {
        let name: String = name_stmt
            .query_row([dim], |row| row.get(0))
            .map_err(StoreError::backend)?;
        top.push((name, count));
    }
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(query.top.max(1) as usize);
    stats.top_names = top;
    durations.sort_unstable();
    stats.p50_duration_ms = nearest_rank(&durations, 50);
    stats.p95_duration_ms = nearest_rank(&durations, 95);
    Ok(stats)
}

/// Nearest-rank percentile of sorted values.
pub fn nearest_rank(sorted: &[u64], percent: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}
