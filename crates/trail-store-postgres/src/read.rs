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

use crate::{clamp, db};

pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A WHERE clause under construction, with its parameters.
pub(crate) struct Clause {
    pub(crate) sql: String,
    pub(crate) params: Vec<Param>,
}

/// The column filters `trail_match` applies itself, in its parameter
/// order (type, status, name, model, provider, transport, confirmed, from,
/// to); NULL where not filtered.
fn match_params(f: &Filters) -> Vec<Param> {
    vec![
        Box::new(f.event_type.map(|t| i16::from(t.code()))),
        Box::new(f.status.map(|s| i16::from(s.code()))),
        Box::new(f.name.clone()),
        Box::new(f.model.clone()),
        Box::new(f.provider.clone()),
        Box::new(f.transport.map(|t| i16::from(t.code()))),
        Box::new(f.confirmed),
        Box::new(f.from),
        Box::new(f.to),
    ]
}

/// The indexed dims the scope and filters ask for, as stored strings.
fn indexed_dims(scope: &ReadScope, filters: &Filters) -> Vec<String> {
    let tenant = scope.tenant.id;
    trail_store::dims::wanted_dims(scope, filters)
        .into_iter()
        .filter(|(kind, _)| crate::dims::is_indexed(*kind))
        .map(|(kind, value)| crate::dims::dim(tenant, kind, &value))
        .collect()
}

impl Clause {
    /// `r.tenant_id = $1` plus the scope's user binding and every filter.
    pub(crate) fn new(scope: &ReadScope, filters: &Filters) -> Clause {
        let mut clause = Clause::without_dims(scope, filters);
        let dims = indexed_dims(scope, filters);
        if !dims.is_empty() {
            clause.push("r.seq = ANY(ARRAY(SELECT trail_match($", dims);
            clause
                .sql
                .push_str("::text[], 0, 9223372036854775807, NULL, true");
            for value in match_params(filters) {
                clause.params.push(value);
                clause.sql.push_str(&format!(", ${}", clause.params.len()));
            }
            clause.sql.push_str(")))");
        }
        clause
    }

    /// Every filter but the indexed dims (which the caller looks up through
    /// `trail_match`).
    fn without_dims(scope: &ReadScope, filters: &Filters) -> Clause {
        let mut clause = Clause {
            sql: "r.tenant_id = $1".into(),
            params: vec![Box::new(scope.tenant.id)],
        };
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
    StoredRecord::from_columns(
        row.get::<_, i64>(0) as u64,
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    )
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
    let dims = indexed_dims(scope, &query.filters);
    let records = if dims.is_empty() {
        page(tx, scope, query, None).await?
    } else {
        page_by_dims(tx, scope, query, dims).await?
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

/// The page itself: matching records in seq order after the cursor, at
/// most `limit` after skipping `offset`; with `among`, only those seqs.
async fn page(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &EventQuery,
    among: Option<(Vec<i64>, u64)>,
) -> Result<Vec<StoredRecord>, StoreError> {
    let mut clause = Clause::without_dims(scope, &query.filters);
    let descending = query.order == Order::Desc;
    if let Some(after) = query.after_seq {
        let op = if descending { "r.seq < $" } else { "r.seq > $" };
        clause.push(op, clamp(after));
    }
    let (limit, offset) = match among {
        Some((seqs, wanted)) => {
            clause.push("r.seq = ANY($", seqs);
            clause.sql.push(')');
            (clamp(wanted), 0)
        }
        None => (i64::from(query.limit), clamp(query.offset)),
    };
    let direction = if descending { "DESC" } else { "ASC" };
    clause.params.push(Box::new(limit));
    let limit = clause.params.len();
    clause.params.push(Box::new(offset));
    let offset = clause.params.len();
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM {RECORD_FROM} WHERE {} ORDER BY r.seq {direction} LIMIT ${limit} OFFSET ${offset}",
        clause.sql
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let rows = tx.query(&stmt, &clause.refs()).await.map_err(db)?;
    Ok(rows.iter().map(record_from_row).collect())
}

/// Seqs `trail_match` asks for in its first round; each further round asks
/// for four times more, up to [`MAX_ROUND`].
const FIRST_ROUND: i64 = 256;
const MAX_ROUND: i64 = 65_536;

/// A page whose filters include indexed dims. Row-level security keeps the
/// planner from using the GIN index under `trail_app` (`@>` is not
/// leakproof), so the matching seqs come from `trail_match`, a SECURITY
/// DEFINER function that searches the index for the transaction's tenant
/// only, newest (or oldest) first, in rounds; the other filters are checked
/// on those records until the page is full.
async fn page_by_dims(
    tx: &Transaction<'_>,
    scope: &ReadScope,
    query: &EventQuery,
    dims: Vec<String>,
) -> Result<Vec<StoredRecord>, StoreError> {
    let descending = query.order == Order::Desc;
    let (mut lo, mut hi) = (0i64, i64::MAX);
    if let Some(after) = query.after_seq {
        if descending {
            hi = clamp(after);
        } else {
            lo = clamp(after).saturating_add(1);
        }
    }
    let wanted = query.offset.saturating_add(u64::from(query.limit));
    let mut skip = query.offset;
    let mut records = Vec::with_capacity(query.limit as usize);
    // trail_match applies every filter but name_contains: without it, the
    // first round is the page.
    let mut round = if query.filters.name_contains.is_none() {
        clamp(wanted).clamp(1, MAX_ROUND)
    } else {
        FIRST_ROUND
            .max(clamp(wanted).saturating_mul(2))
            .min(MAX_ROUND)
    };
    let stmt = tx
        .prepare_cached(
            "SELECT s FROM trail_match($1::text[], $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) AS s",
        )
        .await
        .map_err(db)?;
    let filters = match_params(&query.filters);
    loop {
        let k = round as i32;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&dims, &lo, &hi, &k, &descending];
        params.extend(filters.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)));
        let seqs: Vec<i64> = tx
            .query(&stmt, &params)
            .await
            .map_err(db)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let Some(&last) = seqs.last() else { break };
        let exhausted = (seqs.len() as i64) < round;
        let need = skip + (u64::from(query.limit) - records.len() as u64);
        for record in page(tx, scope, query, Some((seqs, need))).await? {
            if skip > 0 {
                skip -= 1;
            } else {
                records.push(record);
            }
        }
        if records.len() >= query.limit as usize || exhausted {
            break;
        }
        if descending {
            hi = last;
        } else {
            lo = last.saturating_add(1);
        }
        round = (round * 4).min(MAX_ROUND);
    }
    records.truncate(query.limit as usize);
    Ok(records)
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
