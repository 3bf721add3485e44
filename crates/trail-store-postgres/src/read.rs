//! Reads: filtered pages, one record, stats and the log size, as SQL over
//! `records` (with its (tenant, seq) key and the time, name, user and
//! session indexes), always inside a transaction whose row-level security
//! already limits it to the caller's tenant; every query names the tenant
//! again all the same.

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use trail_store::{EventQuery, Filters, Order, Page, ReadScope, StoreError, StoredRecord};
use uuid::Uuid;

use crate::db;

pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A WHERE clause under construction, with its parameters.
pub(crate) struct Clause {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

impl Clause {
    /// `r.tenant_id = $1` plus the scope's user binding and every filter.
    pub(crate) fn new(scope: &ReadScope, filters: &Filters) -> Clause {
        let mut clause = Clause {
            sql: "r.tenant_id = $1".into(),
            params: vec![Box::new(scope.tenant.id)],
        };
        let tenant = scope.tenant.id;
        let dims: Vec<String> = trail_store::dims::wanted_dims(scope, filters)
            .into_iter()
            .filter(|(kind, _)| crate::dims::is_indexed(*kind))
            .map(|(kind, value)| crate::dims::dim(tenant, kind, &value))
            .collect();
        if !dims.is_empty() {
            clause.push("r.dims @> $", dims);
            clause.sql.push_str("::text[]");
        }
        if let Some(user) = &scope.bound_user {
            clause.push("r.user_id = $", user.clone());
        }
        let f = filters;
        if let Some(t) = f.event_type {
            clause.push("r.type = $", i16::from(t.code()));
        }
        if let Some(s) = f.status {
            clause.push("r.status = $", i16::from(s.code()));
        }
        if let Some(v) = &f.name {
            clause.push("r.name = $", v.clone());
        }
        if let Some(v) = &f.model {
            clause.push("r.model = $", v.clone());
        }
        if let Some(v) = &f.provider {
            clause.push("r.provider = $", v.clone());
        }
        if let Some(t) = f.transport {
            clause.push("r.transport = $", i16::from(t.code()));
        }
        if let Some(c) = f.confirmed {
            clause.push("r.confirmed = $", c);
        }
        if let Some(v) = &f.name_contains {
            clause.push("strpos(lower(r.name), lower($", v.clone());
            clause.sql.push_str(")) > 0");
        }
        if let Some(from) = f.from {
            clause.push("r.ts >= $", from);
        }
        if let Some(to) = f.to {
            clause.push("r.ts < $", to);
        }
        clause
    }

    /// Appends ` AND <sql><n>` where `$<n>` is the new parameter.
    pub(crate) fn push(&mut self, sql: &str, value: impl ToSql + Sync + Send + 'static) {
        self.params.push(Box::new(value));
        self.sql.push_str(" AND ");
        self.sql.push_str(sql);
        self.sql.push_str(&self.params.len().to_string());
    }

    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

const RECORD_COLUMNS: &str = "r.seq, r.envelope, r.leaf_hash, r.has_content, c.salt, c.body";
const RECORD_FROM: &str =
    "records r LEFT JOIN content c ON c.tenant_id = r.tenant_id AND c.seq = r.seq";

fn record_from_row(row: &Row) -> StoredRecord {
    let seq: i64 = row.get(0);
    let has_content: bool = row.get(3);
    let leaf: Vec<u8> = row.get(2);
    let salt: Option<Vec<u8>> = row.get(4);
    let body: Option<Vec<u8>> = row.get(5);
    StoredRecord {
        seq: seq as u64,
        envelope: row.get(1),
        // A leaf hash of the wrong size reads as zeros: it then fails
        // verification at this seq, as any changed leaf hash does.
        leaf_hash: leaf.try_into().unwrap_or([0; 32]),
        content_erased: has_content && body.is_none(),
        content: body,
        content_salt: salt.and_then(|salt| <[u8; 32]>::try_from(salt).ok()),
    }
}

fn clamp(value: u64) -> i64 {
    value.min(i64::MAX as u64) as i64
}

/// One page of a list query.
pub async fn query(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &EventQuery,
) -> Result<Page, StoreError> {
    let total = if query.count {
        let clause = Clause::new(scope, &query.filters);
        let sql = format!("SELECT count(*) FROM records r WHERE {}", clause.sql);
        let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
        let n: i64 = tx
            .query_one(&stmt, &clause.refs())
            .await
            .map_err(db)?
            .get(0);
        Some(n as u64)
    } else {
        None
    };
    let mut clause = Clause::new(scope, &query.filters);
    let descending = query.order == Order::Desc;
    if let Some(after) = query.after_seq {
        let op = if descending { "r.seq < $" } else { "r.seq > $" };
        clause.push(op, clamp(after));
    }
    let direction = if descending { "DESC" } else { "ASC" };
    clause.params.push(Box::new(i64::from(query.limit)));
    let limit = clause.params.len();
    clause.params.push(Box::new(clamp(query.offset)));
    let offset = clause.params.len();
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM {RECORD_FROM} WHERE {} ORDER BY r.seq {direction} LIMIT ${limit} OFFSET ${offset}",
        clause.sql
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let rows = tx.query(&stmt, &clause.refs()).await.map_err(db)?;
    let records: Vec<StoredRecord> = rows.iter().map(record_from_row).collect();
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
pub async fn get(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    id: Uuid,
) -> Result<Option<StoredRecord>, StoreError> {
    let mut clause = Clause::new(scope, &Filters::default());
    clause.push("r.id = $", id);
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM {RECORD_FROM} WHERE {}",
        clause.sql
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let row = tx.query_opt(&stmt, &clause.refs()).await.map_err(db)?;
    Ok(row.as_ref().map(record_from_row))
}

/// Number of records in the tenant's log (its head's next seq).
pub async fn log_size(tx: &Transaction<'_>, tenant: i64) -> Result<u64, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT next_seq FROM log_heads WHERE tenant_id = $1")
        .await
        .map_err(db)?;
    let row = tx.query_opt(&stmt, &[&tenant]).await.map_err(db)?;
    Ok(row.map_or(0, |row| row.get::<_, i64>(0) as u64))
}
