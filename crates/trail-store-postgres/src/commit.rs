//! [`PgCommitter`]: the postgres side of the group-commit writer.
//!
//! One transaction per batch, as the application role. For each tenant of
//! the batch, in tenant-id order (so two servers never deadlock), the log
//! head row is locked `FOR UPDATE`: whichever server holds it assigns the
//! next seqs, and every other server waits for it, so seqs stay gap-free and
//! unique across processes. Under the lock, one query finds which of the
//! batch's event ids the log already holds (a resend answers `duplicate`, a
//! reused id with other content fails its job alone, and nothing of that
//! job is written). Everything is decided in memory first; then each
//! tenant's records, content and tree nodes go in with one multi-row
//! `INSERT ... SELECT FROM unnest(...)` each (`COPY FROM` is not allowed on
//! tables under row-level security), the head moves, and one `COMMIT`
//! (synchronous) makes the batch durable before any job is answered.
//!
//! The writer thread is a plain thread; the committer drives its own
//! single-threaded tokio runtime and connection.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::types::ToSql;
use trail_core::merkle::CompactRange;
use trail_core::record::{idempotency_digest_of_envelope, PreparedEvent};
use trail_store::writer::{AppendJob, Committer, JobResult};
use trail_store::{tree, Accepted, StoreError};
use uuid::Uuid;

use crate::{connection, db, switch_tenant, APP_ROLE};

/// Owns the writer's connection; runs on the writer thread.
pub struct PgCommitter {
    runtime: tokio::runtime::Runtime,
    pool: Pool,
    /// Each tenant's tree edge as of the last commit of this process.
    ranges: HashMap<i64, CompactRange>,
}

impl PgCommitter {
    /// A committer writing to the database of `config`.
    pub fn start(config: tokio_postgres::Config) -> Result<PgCommitter, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::backend)?;
        // Connections are made on first use, inside the committer's runtime,
        // so the connection's task runs there.
        let pool = crate::pool(config, 1)?;
        Ok(PgCommitter {
            runtime,
            pool,
            ranges: HashMap::new(),
        })
    }
}

impl Committer for PgCommitter {
    fn commit(&mut self, jobs: &[AppendJob]) -> Result<Vec<JobResult>, StoreError> {
        let pool = self.pool.clone();
        let (results, ranges) = self
            .runtime
            .block_on(commit_batch(&pool, &self.ranges, jobs))?;
        self.ranges.extend(ranges);
        Ok(results)
    }
}

/// An id the log (or this batch) already holds.
struct Known {
    seq: u64,
    leaf_hash: [u8; 32],
    /// The idempotency digest of its envelope.
    digest: [u8; 32],
}

/// Column arrays of the rows one tenant's jobs add.
#[derive(Default)]
struct Rows {
    seq: Vec<i64>,
    id: Vec<Uuid>,
    received_at: Vec<i64>,
    ts: Vec<i64>,
    event_type: Vec<i16>,
    status: Vec<i16>,
    name: Vec<String>,
    user_id: Vec<Option<String>>,
    /// Each record's dims as a text[] literal.
    dims: Vec<String>,
    duration_ms: Vec<Option<i64>>,
    has_content: Vec<bool>,
    envelope: Vec<Vec<u8>>,
    leaf_hash: Vec<Vec<u8>>,
    content_seq: Vec<i64>,
    content_salt: Vec<Vec<u8>>,
    content_body: Vec<Vec<u8>>,
    node_level: Vec<i16>,
    node_idx: Vec<i64>,
    node_hash: Vec<Vec<u8>>,
}

/// Where a job started in its tenant's [`Head`], to undo it alone.
struct Mark {
    next_seq: u64,
    range: CompactRange,
    records: usize,
    content: usize,
    nodes: usize,
}

/// A tenant's log inside the current transaction.
struct Head {
    tenant: i64,
    next_seq: u64,
    received_at: i64,
    range: CompactRange,
    known: HashMap<Uuid, Known>,
    rows: Rows,
}

impl Head {
    fn mark(&self) -> Mark {
        Mark {
            next_seq: self.next_seq,
            range: self.range.clone(),
            records: self.rows.seq.len(),
            content: self.rows.content_seq.len(),
            nodes: self.rows.node_idx.len(),
        }
    }

    fn undo(&mut self, mark: Mark, added: &[Uuid]) {
        for id in added {
            self.known.remove(id);
        }
        self.next_seq = mark.next_seq;
        self.range = mark.range;
        let r = &mut self.rows;
        let n = mark.records;
        r.seq.truncate(n);
        r.id.truncate(n);
        r.received_at.truncate(n);
        r.ts.truncate(n);
        r.event_type.truncate(n);
        r.status.truncate(n);
        r.name.truncate(n);
        r.user_id.truncate(n);
        r.dims.truncate(n);
        r.duration_ms.truncate(n);
        r.has_content.truncate(n);
        r.envelope.truncate(n);
        r.leaf_hash.truncate(n);
        r.content_seq.truncate(mark.content);
        r.content_salt.truncate(mark.content);
        r.content_body.truncate(mark.content);
        r.node_level.truncate(mark.nodes);
        r.node_idx.truncate(mark.nodes);
        r.node_hash.truncate(mark.nodes);
    }

    /// Adds one new event at the head.
    fn push(&mut self, tenant: &str, event: &PreparedEvent) -> Accepted {
        let seq = self.next_seq;
        let sealed = event.seal(tenant, seq, self.received_at);
        let index = &event.index;
        let r = &mut self.rows;
        r.seq.push(seq as i64);
        r.id.push(event.id);
        r.received_at.push(self.received_at);
        r.ts.push(index.started_at.unwrap_or(self.received_at));
        r.event_type.push(i16::from(index.event_type.code()));
        r.status.push(i16::from(index.status.code()));
        r.name.push(index.name.clone());
        r.user_id.push(index.user_id.clone());
        r.dims.push(crate::dims::array_literal(self.tenant, index));
        r.duration_ms
            .push(index.duration_ms.map(|d| d.min(i64::MAX as u64) as i64));
        r.has_content.push(event.content.is_some());
        if let Some(content) = &event.content {
            r.content_seq.push(seq as i64);
            r.content_salt.push(content.salt.to_vec());
            r.content_body.push(content.bytes.clone());
        }
        r.leaf_hash.push(sealed.leaf_hash.to_vec());
        r.envelope.push(sealed.envelope);
        for (level, index, hash) in self.range.append(sealed.leaf_hash) {
            if tree::is_stored_level(level) {
                r.node_level.push(i16::from(level));
                r.node_idx.push(index as i64);
                r.node_hash.push(hash.to_vec());
            }
        }
        self.known.insert(
            event.id,
            Known {
                seq,
                leaf_hash: sealed.leaf_hash,
                digest: event.idempotency_digest(),
            },
        );
        self.next_seq += 1;
        Accepted {
            id: event.id,
            seq,
            leaf_hash: sealed.leaf_hash,
            duplicate: false,
        }
    }
}

/// Locks the tenant's head and loads what the batch needs to know.
async fn lock_head(
    tx: &Transaction<'_>,
    tenant: i64,
    ids: &[Uuid],
    cached: Option<&CompactRange>,
    now: i64,
) -> Result<Head, StoreError> {
    switch_tenant(tx, tenant).await?;
    let select = tx
        .prepare_cached(
            "SELECT next_seq, received_at FROM log_heads WHERE tenant_id = $1 FOR UPDATE",
        )
        .await
        .map_err(db)?;
    let mut row = tx.query_opt(&select, &[&tenant]).await.map_err(db)?;
    if row.is_none() {
        tx.execute(
            "INSERT INTO log_heads (tenant_id, next_seq, received_at) VALUES ($1, 0, 0) \
             ON CONFLICT (tenant_id) DO NOTHING",
            &[&tenant],
        )
        .await
        .map_err(db)?;
        row = tx.query_opt(&select, &[&tenant]).await.map_err(db)?;
    }
    let row = row.ok_or_else(|| StoreError::Backend(format!("tenant {tenant} has no log head")))?;
    let next_seq = row.get::<_, i64>(0) as u64;
    // received_at never goes backwards within a log, whatever the clocks
    // of the servers sharing it do.
    let received_at = row.get::<_, i64>(1).max(now);
    let stmt = tx
        .prepare_cached(
            "SELECT id, seq, envelope, leaf_hash FROM records WHERE tenant_id = $1 AND id = ANY($2)",
        )
        .await
        .map_err(db)?;
    let rows = tx.query(&stmt, &[&tenant, &ids]).await.map_err(db)?;
    let mut known = HashMap::with_capacity(rows.len());
    for row in &rows {
        let seq = row.get::<_, i64>(1) as u64;
        let envelope: Vec<u8> = row.get(2);
        let leaf: Vec<u8> = row.get(3);
        let digest = idempotency_digest_of_envelope(&envelope)
            .map_err(|error| StoreError::Corrupt(format!("seq {seq}: {error}")))?;
        known.insert(
            row.get::<_, Uuid>(0),
            Known {
                seq,
                leaf_hash: leaf.try_into().map_err(|_| {
                    StoreError::Corrupt(format!("seq {seq}: leaf hash is not 32 bytes"))
                })?,
                digest,
            },
        );
    }
    let range = match cached {
        Some(range) if range.size() == next_seq => range.clone(),
        // Another server wrote, or first use: rebuild from the stored nodes.
        _ => crate::tree::load_range(tx, tenant, next_seq).await?,
    };
    Ok(Head {
        tenant,
        next_seq,
        received_at,
        range,
        known,
        rows: Rows::default(),
    })
}

/// Writes one tenant's rows and moves its head.
async fn flush(tx: &Transaction<'_>, tenant: i64, head: &Head) -> Result<(), StoreError> {
    let r = &head.rows;
    if r.seq.is_empty() {
        return Ok(());
    }
    switch_tenant(tx, tenant).await?;
    let records = tx
        .prepare_cached(
            "INSERT INTO records (tenant_id, seq, id, received_at, ts, type, status, name, user_id, \
             dims, duration_ms, has_content, envelope, leaf_hash) \
             SELECT $1, u.seq, u.id, u.received_at, u.ts, u.type, u.status, u.name, u.user_id, \
             u.dims::text[], u.duration_ms, u.has_content, u.envelope, u.leaf_hash \
             FROM unnest($2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::smallint[], \
             $7::smallint[], $8::text[], $9::text[], $10::text[], $11::bigint[], $12::boolean[], \
             $13::bytea[], $14::bytea[]) \
             AS u(seq, id, received_at, ts, type, status, name, user_id, dims, duration_ms, \
             has_content, envelope, leaf_hash)",
        )
        .await
        .map_err(db)?;
    let params: [&(dyn ToSql + Sync); 14] = [
        &tenant,
        &r.seq,
        &r.id,
        &r.received_at,
        &r.ts,
        &r.event_type,
        &r.status,
        &r.name,
        &r.user_id,
        &r.dims,
        &r.duration_ms,
        &r.has_content,
        &r.envelope,
        &r.leaf_hash,
    ];
    tx.execute(&records, &params).await.map_err(db)?;
    if !r.content_seq.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO content (tenant_id, seq, salt, body) \
                 SELECT $1, u.seq, u.salt, u.body FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS u(seq, salt, body)",
            )
            .await
            .map_err(db)?;
        tx.execute(
            &stmt,
            &[&tenant, &r.content_seq, &r.content_salt, &r.content_body],
        )
        .await
        .map_err(db)?;
    }
    if !r.node_idx.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO tree_nodes (tenant_id, level, idx, hash) \
                 SELECT $1, u.level, u.idx, u.hash FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) AS u(level, idx, hash)",
            )
            .await
            .map_err(db)?;
        tx.execute(&stmt, &[&tenant, &r.node_level, &r.node_idx, &r.node_hash])
            .await
            .map_err(db)?;
    }
    let stmt = tx
        .prepare_cached("UPDATE log_heads SET next_seq = $2, received_at = $3 WHERE tenant_id = $1")
        .await
        .map_err(db)?;
    tx.execute(
        &stmt,
        &[&tenant, &(head.next_seq as i64), &head.received_at],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Settles one job against its tenant's head: every event new or a
/// faithful resend, or the job fails alone.
fn settle(head: &mut Head, job: &AppendJob) -> JobResult {
    let mark = head.mark();
    let mut added = Vec::new();
    let mut accepted = Vec::with_capacity(job.events.len());
    for event in &job.events {
        if let Some(known) = head.known.get(&event.id) {
            if known.digest != event.idempotency_digest() {
                let error = StoreError::Conflict {
                    id: event.id.to_string(),
                    seq: known.seq,
                };
                head.undo(mark, &added);
                return Err(error);
            }
            accepted.push(Accepted {
                id: event.id,
                seq: known.seq,
                leaf_hash: known.leaf_hash,
                duplicate: true,
            });
            continue;
        }
        added.push(event.id);
        accepted.push(head.push(&job.tenant.name, event));
    }
    Ok(accepted)
}

type Outcome = (Vec<JobResult>, HashMap<i64, CompactRange>);

async fn commit_batch(
    pool: &Pool,
    ranges: &HashMap<i64, CompactRange>,
    jobs: &[AppendJob],
) -> Result<Outcome, StoreError> {
    let now = now_micros();
    let started = std::time::Instant::now();
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(db)?;
    tx.batch_execute(&format!("SET LOCAL ROLE {APP_ROLE}"))
        .await
        .map_err(db)?;
    let mut ids: HashMap<i64, Vec<Uuid>> = HashMap::new();
    for job in jobs {
        ids.entry(job.tenant.id)
            .or_default()
            .extend(job.events.iter().map(|e| e.id));
    }
    let mut tenants: Vec<i64> = ids.keys().copied().collect();
    tenants.sort_unstable();
    let mut heads: HashMap<i64, Head> = HashMap::with_capacity(tenants.len());
    for &tenant in &tenants {
        let head = lock_head(&tx, tenant, &ids[&tenant], ranges.get(&tenant), now).await?;
        heads.insert(tenant, head);
    }
    let locked = started.elapsed();
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let head = heads
            .get_mut(&job.tenant.id)
            .ok_or_else(|| StoreError::Backend("a job's tenant has no head".into()))?;
        results.push(settle(head, job));
    }
    let settled = started.elapsed();
    for &tenant in &tenants {
        flush(&tx, tenant, &heads[&tenant]).await?;
    }
    let flushed = started.elapsed();
    tx.commit().await.map_err(db)?;
    tracing::debug!(
        jobs = jobs.len(),
        events = jobs.iter().map(|j| j.events.len()).sum::<usize>(),
        ?locked,
        ?settled,
        ?flushed,
        committed = ?started.elapsed(),
        "postgres batch"
    );
    let ranges = heads
        .into_iter()
        .map(|(tenant, head)| (tenant, head.range))
        .collect();
    Ok((results, ranges))
}

/// Wall-clock time in unix microseconds.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
