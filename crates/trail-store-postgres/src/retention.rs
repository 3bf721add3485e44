//! Retention and erasure: the only deletions postgres allows, made by the
//! SECURITY DEFINER functions of the second migration (`schema.rs`), never by
//! `trail_app` itself.
//!
//! A retirement holds a session-level advisory lock per tenant on a
//! connection of its own for its whole loop, so one runs per tenant across
//! every server. Each batch is one transaction: lock the log head (the
//! writer's lock, so no commit of the tenant interleaves), ask
//! `trail_retire_range` for the next batch, read its rows' rollup keys, let
//! `trail_retire` move the leaf hashes to `tree_nodes` level 0 and delete the
//! content and records (it must report the same range), then subtract the
//! rows from `rollups`.
//!
//! Erasure deletes a user's content rows through `trail_erase_user` in
//! batches, then runs `VACUUM content` as the owner, so the deleted row
//! versions are removed from the table, not only hidden.

use std::collections::HashMap;

use deadpool_postgres::{ClientWrapper, Object, Pool, Transaction};
use trail_store::dims::DimKind;
use trail_store::rollup::{subtract_encoded, Deltas, HOUR};
use trail_store::{RetireOutcome, StoreError};

use crate::{begin, clamp, connection, db, pg_error};

/// Key space of the advisory locks that keep retirements of one tenant
/// apart (the checkpoint lock of `tree.rs` is `0x7472_6c01`).
const RETIRE_LOCK: i32 = 0x7472_6c02;

/// Content rows erased per transaction.
const ERASE_BATCH: i32 = 10_000;

/// The number of retired records: one past the highest retired leaf kept in
/// `tree_nodes` level 0 (retired leaves are always `[0, n)`).
pub async fn retired(tx: &Transaction<'_>, tenant: i64) -> Result<u64, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT idx + 1 FROM tree_nodes WHERE tenant_id = $1 AND level = 0 ORDER BY idx DESC LIMIT 1",
        )
        .await
        .map_err(db)?;
    let row = tx.query_opt(&stmt, &[&tenant]).await.map_err(db)?;
    Ok(row.map_or(0, |row| row.get::<_, i64>(0).max(0) as u64))
}

/// Retires the tenant's records received before `cutoff`, in batches of
/// about `batch`, unless another retirement of the tenant holds its lock;
/// runs `then` with the retired range before giving the lock up.
pub async fn retire(
    pool: &Pool,
    tenant: i64,
    cutoff: i64,
    batch: u32,
    then: trail_store::AfterRetire<'_>,
) -> Result<RetireOutcome, StoreError> {
    let client = connection(pool).await?;
    let key = i32::try_from(tenant).unwrap_or(i32::MAX);
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&RETIRE_LOCK, &key])
        .await
        .map_err(db)?
        .get(0);
    if !locked {
        return Ok(RetireOutcome::Busy);
    }
    // The connection leaves the pool: when this future is dropped midway or
    // the unlock fails, closing it releases the lock, instead of a pooled
    // connection holding it for good.
    let mut client = Object::take(client);
    let outcome = match retire_locked(&mut client, tenant, cutoff, batch).await {
        Ok(RetireOutcome::Retired { first_seq, end_seq }) => then(first_seq, end_seq)
            .await
            .map(|()| RetireOutcome::Retired { first_seq, end_seq }),
        other => other,
    };
    let unlocked = client
        .query_one("SELECT pg_advisory_unlock($1, $2)", &[&RETIRE_LOCK, &key])
        .await
        .map_err(db);
    let outcome = outcome?;
    unlocked?;
    Ok(outcome)
}

/// Most records one retirement transaction takes (about 30 ms with full
/// content): commits of the tenant wait behind its head lock for one batch
/// at most.
const MAX_BATCH: u32 = 2_000;

/// The batches of one retirement, under its lock. After each batch it
/// pauses as long as the batch took, so retirement holds a log's head at
/// most half of the time and the commits queued behind it go first.
async fn retire_locked(
    client: &mut ClientWrapper,
    tenant: i64,
    cutoff: i64,
    batch: u32,
) -> Result<RetireOutcome, StoreError> {
    let limit = i32::try_from(batch.clamp(1, MAX_BATCH)).unwrap_or(i32::MAX);
    let (first_seq, log_size) = {
        let tx = begin(client, Some(tenant)).await?;
        let first = retired(&tx, tenant).await?;
        let size = crate::read::log_size(&tx, tenant).await?;
        tx.commit().await.map_err(db)?;
        (first, size)
    };
    let mut end_seq = first_seq;
    // Records appended meanwhile are not chased (a cutoff in the future
    // would otherwise follow a busy log's head).
    while end_seq < log_size {
        let started = std::time::Instant::now();
        let tx = begin(client, Some(tenant)).await?;
        let (lo, hi) = retire_batch(&tx, tenant, cutoff, limit).await?;
        if lo != end_seq {
            return Err(StoreError::Backend(format!(
                "retirement of tenant {tenant}: the next batch starts at seq {lo}, not {end_seq} \
                 (was it retired by a retirement that did not take the lock?)"
            )));
        }
        if hi == lo {
            break;
        }
        tx.commit().await.map_err(db)?;
        end_seq = hi;
        tokio::time::sleep(started.elapsed()).await;
    }
    Ok(RetireOutcome::Retired { first_seq, end_seq })
}

/// One batch in `tx`: returns the retired range (empty when nothing more is
/// old enough).
async fn retire_batch(
    tx: &Transaction<'_>,
    tenant: i64,
    cutoff: i64,
    limit: i32,
) -> Result<(u64, u64), StoreError> {
    // The writer's lock: no commit of this tenant runs until this batch
    // commits, so the range and its rollup deltas cannot move underneath.
    tx.execute(
        "SELECT 1 FROM log_heads WHERE tenant_id = $1 FOR UPDATE",
        &[&tenant],
    )
    .await
    .map_err(db)?;
    let range = tx
        .query_one(
            "SELECT first_seq, end_seq FROM trail_retire_range($1, $2, $3)",
            &[&tenant, &cutoff, &limit],
        )
        .await
        .map_err(db)?;
    let (lo, hi): (i64, i64) = (range.get(0), range.get(1));
    if hi <= lo {
        return Ok((lo.max(0) as u64, lo.max(0) as u64));
    }
    let stmt = tx
        .prepare_cached(
            "SELECT ts, type, status, name, duration_ms FROM records \
             WHERE tenant_id = $1 AND seq >= $2 AND seq < $3",
        )
        .await
        .map_err(db)?;
    let rows = tx.query(&stmt, &[&tenant, &lo, &hi]).await.map_err(db)?;
    if rows.len() as i64 != hi - lo {
        return Err(StoreError::Corrupt(format!(
            "retirement of tenant {tenant}: seqs [{lo}, {hi}) hold {} records",
            rows.len()
        )));
    }
    let mut deltas: Deltas<(i64, i16, i16, String)> = Deltas::default();
    for row in &rows {
        let ts: i64 = row.get(0);
        let duration = row.get::<_, Option<i64>>(4).map(|ms| ms.max(0) as u64);
        deltas.add(
            (ts.div_euclid(HOUR), row.get(1), row.get(2), row.get(3)),
            duration,
        );
    }
    let done = tx
        .query_one(
            "SELECT first_seq, end_seq FROM trail_retire($1, $2, $3)",
            &[&tenant, &cutoff, &limit],
        )
        .await
        .map_err(db)?;
    let done: (i64, i64) = (done.get(0), done.get(1));
    if done != (lo, hi) {
        return Err(StoreError::Corrupt(format!(
            "retirement of tenant {tenant}: read seqs [{lo}, {hi}), trail_retire retired [{}, {})",
            done.0, done.1
        )));
    }
    subtract_rollups(tx, tenant, deltas).await?;
    Ok((lo as u64, hi as u64))
}

/// Rollup keys (hour, type, status, name) as columns, for `unnest`.
#[derive(Default)]
struct Keys {
    hour: Vec<i64>,
    event_type: Vec<i16>,
    status: Vec<i16>,
    name: Vec<String>,
}

impl Keys {
    fn push(&mut self, (hour, event_type, status, name): (i64, i16, i16, String)) {
        self.hour.push(hour);
        self.event_type.push(event_type);
        self.status.push(status);
        self.name.push(name);
    }
}

/// Subtracts the retired records from their rollup rows: the rows are read
/// and locked (as the writer's merge locks them), subtracted here, and
/// written back with one UPDATE; rows left with no record are deleted.
async fn subtract_rollups(
    tx: &Transaction<'_>,
    tenant: i64,
    deltas: Deltas<(i64, i16, i16, String)>,
) -> Result<(), StoreError> {
    let mut keys = Keys::default();
    let mut retired = HashMap::with_capacity(deltas.len());
    for (key, row) in deltas.into_rows() {
        keys.push(key.clone());
        retired.insert(key, row);
    }
    let stored = crate::commit::lock_rollup_rows(
        tx,
        tenant,
        &keys.hour,
        &keys.event_type,
        &keys.status,
        &keys.name,
    )
    .await?;
    // Rollups are derived data: a row missing here has nothing to undo.
    let (mut left, mut counts, mut durations) = (Keys::default(), Vec::new(), Vec::new());
    let mut empty = Keys::default();
    for row in &stored {
        let key: (i64, i16, i16, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let Some((n, histogram)) = retired.get(&key) else {
            return Err(StoreError::Backend(
                "a rollup row read back does not match its key".into(),
            ));
        };
        let n = row.get::<_, i64>(4).saturating_sub(clamp(*n));
        if n > 0 {
            durations.push(subtract_encoded(row.get::<_, &[u8]>(5), histogram)?);
            counts.push(n);
            left.push(key);
        } else {
            empty.push(key);
        }
    }
    if !counts.is_empty() {
        let write = tx
            .prepare_cached(
                "UPDATE rollups r SET n = u.n, durations = u.durations \
                 FROM unnest($2::bigint[], $3::smallint[], $4::smallint[], $5::text[], \
                 $6::bigint[], $7::bytea[]) AS u(hour, type, status, name, n, durations) \
                 WHERE r.tenant_id = $1 AND r.hour = u.hour AND r.type = u.type \
                 AND r.status = u.status AND r.name = u.name",
            )
            .await
            .map_err(db)?;
        tx.execute(
            &write,
            &[
                &tenant,
                &left.hour,
                &left.event_type,
                &left.status,
                &left.name,
                &counts,
                &durations,
            ],
        )
        .await
        .map_err(db)?;
    }
    if !empty.hour.is_empty() {
        let delete = tx
            .prepare_cached(
                "DELETE FROM rollups r \
                 USING unnest($2::bigint[], $3::smallint[], $4::smallint[], $5::text[]) \
                 AS u(hour, type, status, name) \
                 WHERE r.tenant_id = $1 AND r.hour = u.hour AND r.type = u.type \
                 AND r.status = u.status AND r.name = u.name",
            )
            .await
            .map_err(db)?;
        tx.execute(
            &delete,
            &[
                &tenant,
                &empty.hour,
                &empty.event_type,
                &empty.status,
                &empty.name,
            ],
        )
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Deletes the content of every record of `user_id` in the tenant's log, in
/// batches, then vacuums `content`. Returns how many content rows went.
pub async fn erase_user(pool: &Pool, tenant: i64, user_id: &str) -> Result<u64, StoreError> {
    let dim = crate::dims::dim(tenant, DimKind::User, user_id);
    let mut client = connection(pool).await?;
    let mut erased = 0u64;
    let mut from = 0i64;
    loop {
        let tx = begin(&mut client, Some(tenant)).await?;
        let row = tx
            .query_one(
                "SELECT erased, next_from FROM trail_erase_user($1, $2, $3, $4, $5)",
                &[&tenant, &user_id, &dim, &from, &ERASE_BATCH],
            )
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        erased += row.get::<_, i64>(0).max(0) as u64;
        match row.get::<_, Option<i64>>(1) {
            Some(next) => from = next,
            None => break,
        }
    }
    if erased > 0 {
        vacuum_content(&client).await;
    }
    Ok(erased)
}

/// `VACUUM content` as the connection's own user (the owner of the tables,
/// who migrated them), outside any transaction: removes the deleted row
/// versions from the table's pages. The deletion is committed whatever
/// happens here, so a failure is logged, not returned.
async fn vacuum_content(client: &Object) {
    // A pooled connection is back to its session user after each
    // transaction (SET LOCAL ROLE); RESET ROLE makes sure of it. A user who
    // does not own the table would only get a warning from VACUUM: ask first.
    let outcome = async {
        client.batch_execute("RESET ROLE").await?;
        let owner: bool = client
            .query_one(
                "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class \
                 WHERE oid = 'public.content'::regclass",
                &[],
            )
            .await?
            .get(0);
        if owner {
            client.batch_execute("VACUUM content").await?;
        }
        Ok::<bool, tokio_postgres::Error>(owner)
    }
    .await;
    let why = match outcome {
        Ok(true) => return,
        Ok(false) => "the database user does not own the table content".to_owned(),
        Err(error) => pg_error(&error),
    };
    tracing::warn!(
        %why,
        "erasure: VACUUM content did not run; the deleted row versions stay in the table's \
         pages until the next vacuum"
    );
}
