//! [`PgCommitter`]: the postgres side of the group-commit writer.
//!
//! One transaction per batch, as the application role. For each tenant of
//! the batch, in tenant-id order (so two servers never deadlock), the log
//! head row is locked `FOR UPDATE`: whichever server holds it assigns the
//! next seqs, and every other server waits for it, so seqs stay gap-free and
//! unique across processes.
//!
//! Then two things run side by side: a scoped thread *settles* the jobs in
//! order (assigns seqs, seals envelopes, extends the Merkle edge, decides
//! resends and conflicts; a conflicting job drops out alone and nothing of
//! it is written) and hands finished rows over in chunks, while this thread
//! inserts each chunk with one multi-row `INSERT ... SELECT FROM unnest(...)`
//! per table (`COPY FROM` is not allowed on tables under row-level
//! security), so sealing overlaps the database's work.
//!
//! Resends are rare, so the first pass is optimistic: it does not look the
//! batch's ids up, and relies on the unique (tenant, id) index. When that
//! index refuses a row, the pass is rolled back to a savepoint, the ids the
//! log already holds are read (one `id = ANY(...)` query per tenant) and the
//! batch is settled again knowing them.
//!
//! Each head also gathers the hourly rollup deltas of the events its jobs
//! added (not resends, not the jobs undone for a conflict). Once every row is
//! in, they are merged into `rollups`: the touched rows are read `FOR
//! UPDATE`, merged here and written back with one upsert per tenant (the
//! head's lock already serialises this across servers). Finally the heads
//! move and one synchronous `COMMIT` makes the batch durable before any job
//! is answered.
//!
//! The writer thread is a plain thread; the committer drives its own
//! single-threaded tokio runtime and connection.

use std::collections::HashMap;

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::types::ToSql;
use trail_core::merkle::CompactRange;
use trail_core::record::{idempotency_digest_of_envelope, PreparedEvent};
use trail_store::rollup::{encode, merge_encoded, Deltas, HOUR};
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
        let started = std::time::Instant::now();
        let now = trail_store::now_micros();
        let runtime = &self.runtime;
        let mut client = runtime.block_on(connection(&self.pool))?;
        let mut tenants: Vec<i64> = jobs.iter().map(|job| job.tenant.id).collect();
        tenants.sort_unstable();
        tenants.dedup();
        let tx = runtime.block_on(async { client.transaction().await.map_err(db) })?;
        let locked = runtime.block_on(async {
            // One round trip: the role and settings, then each tenant's head
            // (made if missing) locked in id order. Tenant ids are integers
            // of our own, so the text is safe.
            let mut sql = format!(
                "SET LOCAL ROLE {APP_ROLE}; SET LOCAL jit = off; \
                 SET LOCAL max_parallel_workers_per_gather = 0;"
            );
            for tenant in &tenants {
                sql.push_str(&format!(
                    " SELECT set_config('trail.tenant', '{tenant}', true); \
                     INSERT INTO log_heads (tenant_id, next_seq, received_at) VALUES ({tenant}, 0, 0) \
                     ON CONFLICT (tenant_id) DO NOTHING; \
                     SELECT next_seq, received_at FROM log_heads WHERE tenant_id = {tenant} FOR UPDATE;"
                ));
            }
            let messages = tx.simple_query(&sql).await.map_err(db)?;
            // Exactly one two-column row per tenant, in tenant order.
            let rows: Vec<(u64, i64)> = messages
                .iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) if row.len() == 2 => {
                        let parse = |i: usize| row.get(i).and_then(|v| v.parse::<i64>().ok());
                        Some((parse(0)? as u64, parse(1)?))
                    }
                    _ => None,
                })
                .collect();
            if rows.len() != tenants.len() {
                return Err(StoreError::Backend(format!(
                    "locked {} log heads for {} tenants",
                    rows.len(),
                    tenants.len()
                )));
            }
            let mut heads = HashMap::with_capacity(tenants.len());
            for (&tenant, &(next_seq, received_at)) in tenants.iter().zip(&rows) {
                let cached = self.ranges.get(&tenant);
                let head = head_at(&tx, tenant, next_seq, received_at, cached, now).await?;
                heads.insert(tenant, head);
            }
            tx.batch_execute("SAVEPOINT optimistic").await.map_err(db)?;
            Ok::<_, StoreError>(heads)
        })?;
        let locked_at = started.elapsed();
        let (results, heads) = match write(runtime, &tx, locked.clone(), jobs)? {
            Written::Done(results, heads) => (results, heads),
            Written::Resent => {
                // Some id is already in the log: start over knowing which.
                let heads = runtime.block_on(async {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT optimistic")
                        .await
                        .map_err(db)?;
                    let mut heads = locked;
                    for &tenant in &tenants {
                        let ids: Vec<Uuid> = jobs
                            .iter()
                            .filter(|job| job.tenant.id == tenant)
                            .flat_map(|job| job.events.iter().map(|e| e.id))
                            .collect();
                        let known = known_ids(&tx, tenant, &ids).await?;
                        if let Some(head) = heads.get_mut(&tenant) {
                            head.known = known;
                        }
                    }
                    Ok::<_, StoreError>(heads)
                })?;
                match write(runtime, &tx, heads, jobs)? {
                    Written::Done(results, heads) => (results, heads),
                    Written::Resent => return Err(StoreError::Backend(
                        "an event id was refused as a duplicate although the log does not hold it"
                            .into(),
                    )),
                }
            }
        };
        let written_at = started.elapsed();
        let rolled_at = runtime.block_on(async {
            for &tenant in &tenants {
                merge_rollups(&tx, &heads[&tenant]).await?;
            }
            let rolled_at = started.elapsed();
            for &tenant in &tenants {
                move_head(&tx, &heads[&tenant]).await?;
            }
            tx.commit().await.map_err(db)?;
            Ok::<_, StoreError>(rolled_at)
        })?;
        tracing::debug!(
            jobs = jobs.len(),
            events = jobs.iter().map(|j| j.events.len()).sum::<usize>(),
            locked = ?locked_at,
            written = ?written_at,
            rolled = ?rolled_at,
            committed = ?started.elapsed(),
            "postgres batch"
        );
        self.ranges
            .extend(heads.into_iter().map(|(tenant, head)| (tenant, head.range)));
        Ok(results)
    }
}

/// Rows per insert statement (a chunk ends at a job boundary).
const CHUNK_ROWS: usize = 512;

/// One tenant's rows, ready to insert.
struct Chunk {
    tenant: i64,
    rows: Rows,
}

/// The outcome of one settle-and-insert pass.
enum Written {
    /// Every job settled and every row inserted.
    Done(Vec<JobResult>, HashMap<i64, Head>),
    /// The unique (tenant, id) index refused a row: some id is in the log.
    Resent,
}

/// Settles the jobs on a scoped thread while this thread inserts the rows
/// it hands over.
fn write(
    runtime: &tokio::runtime::Runtime,
    tx: &Transaction<'_>,
    mut heads: HashMap<i64, Head>,
    jobs: &[AppendJob],
) -> Result<Written, StoreError> {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Chunk>(4);
    std::thread::scope(|scope| {
        let settler = scope.spawn(move || {
            let mut results = Vec::with_capacity(jobs.len());
            let mut rows = Rows::default();
            let mut current: Option<i64> = None;
            for job in jobs {
                let tenant = job.tenant.id;
                if current.is_some_and(|t| t != tenant) || rows.seq.len() >= CHUNK_ROWS {
                    let chunk = Chunk {
                        tenant: current.unwrap_or(tenant),
                        rows: std::mem::take(&mut rows),
                    };
                    if chunk.rows.seq.is_empty() {
                        // Nothing to send (only resends so far).
                    } else if sender.blocking_send(chunk).is_err() {
                        // The inserter stopped (an error): stop too.
                        return (results, heads);
                    }
                }
                current = Some(tenant);
                let result = match heads.get_mut(&tenant) {
                    Some(head) => settle(head, &mut rows, job),
                    None => Err(StoreError::Backend("a job's tenant has no head".into())),
                };
                results.push(result);
            }
            if let Some(tenant) = current {
                if !rows.seq.is_empty() {
                    let _ = sender.blocking_send(Chunk { tenant, rows });
                }
            }
            (results, heads)
        });
        let inserted = runtime.block_on(async {
            let mut scoped_to = None;
            while let Some(chunk) = receiver.recv().await {
                if scoped_to != Some(chunk.tenant) {
                    switch_tenant(tx, chunk.tenant).await?;
                    scoped_to = Some(chunk.tenant);
                }
                match insert(tx, chunk.tenant, &chunk.rows).await {
                    Ok(()) => {}
                    Err(Refused::DuplicateId) => return Ok(false),
                    Err(Refused::Other(error)) => return Err(error),
                }
            }
            Ok(true)
        });
        // Closing the channel stops a settler that is still going.
        drop(receiver);
        let (results, heads) = settler
            .join()
            .map_err(|_| StoreError::Backend("the settling thread panicked".into()))?;
        Ok(match inserted? {
            true => Written::Done(results, heads),
            false => Written::Resent,
        })
    })
}

/// An id the log (or this batch) already holds.
#[derive(Clone)]
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
    model: Vec<Option<String>>,
    provider: Vec<Option<String>>,
    transport: Vec<Option<i16>>,
    confirmed: Vec<Option<bool>>,
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
    rollups: usize,
}

/// What one added event contributes to the rollups: (hour, type, status,
/// name, duration in ms).
type RollupEntry = (i64, i16, i16, String, Option<u64>);

/// A tenant's log inside the current transaction.
#[derive(Clone)]
struct Head {
    tenant: i64,
    next_seq: u64,
    received_at: i64,
    range: CompactRange,
    known: HashMap<Uuid, Known>,
    /// The rollup entries of the events added so far in this pass.
    rollups: Vec<RollupEntry>,
}

impl Head {
    fn mark(&self, rows: &Rows) -> Mark {
        Mark {
            next_seq: self.next_seq,
            range: self.range.clone(),
            records: rows.seq.len(),
            content: rows.content_seq.len(),
            nodes: rows.node_idx.len(),
            rollups: self.rollups.len(),
        }
    }

    fn undo(&mut self, rows: &mut Rows, mark: Mark, added: &[Uuid]) {
        for id in added {
            self.known.remove(id);
        }
        self.next_seq = mark.next_seq;
        self.range = mark.range;
        self.rollups.truncate(mark.rollups);
        let r = rows;
        let n = mark.records;
        r.seq.truncate(n);
        r.id.truncate(n);
        r.received_at.truncate(n);
        r.ts.truncate(n);
        r.event_type.truncate(n);
        r.status.truncate(n);
        r.name.truncate(n);
        r.user_id.truncate(n);
        r.model.truncate(n);
        r.provider.truncate(n);
        r.transport.truncate(n);
        r.confirmed.truncate(n);
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
    fn push(&mut self, rows: &mut Rows, tenant: &str, event: &PreparedEvent) -> Accepted {
        let seq = self.next_seq;
        let sealed = event.seal(tenant, seq, self.received_at);
        let index = &event.index;
        let r = rows;
        let ts = index.started_at.unwrap_or(self.received_at);
        let (event_type, status) = (
            i16::from(index.event_type.code()),
            i16::from(index.status.code()),
        );
        self.rollups.push((
            ts.div_euclid(HOUR),
            event_type,
            status,
            index.name.clone(),
            index.duration_ms,
        ));
        r.seq.push(seq as i64);
        r.id.push(event.id);
        r.received_at.push(self.received_at);
        r.ts.push(ts);
        r.event_type.push(event_type);
        r.status.push(status);
        r.name.push(index.name.clone());
        r.user_id.push(index.user_id.clone());
        r.model.push(index.model.clone());
        r.provider.push(index.provider.clone());
        r.transport
            .push(index.transport.map(|t| i16::from(t.code())));
        r.confirmed.push(index.confirmed);
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

/// The head of a locked log at `next_seq`, with its tree edge.
async fn head_at(
    tx: &Transaction<'_>,
    tenant: i64,
    next_seq: u64,
    received_at: i64,
    cached: Option<&CompactRange>,
    now: i64,
) -> Result<Head, StoreError> {
    // received_at never goes backwards within a log, whatever the clocks
    // of the servers sharing it do.
    let received_at = received_at.max(now);
    let range = match cached {
        Some(range) if range.size() == next_seq => range.clone(),
        // Another server wrote, or first use: rebuild from the stored nodes.
        _ => {
            switch_tenant(tx, tenant).await?;
            crate::tree::load_range(tx, tenant, next_seq).await?
        }
    };
    Ok(Head {
        tenant,
        next_seq,
        received_at,
        range,
        known: HashMap::new(),
        rollups: Vec::new(),
    })
}

/// Which of `ids` the tenant's log already holds.
async fn known_ids(
    tx: &Transaction<'_>,
    tenant: i64,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Known>, StoreError> {
    switch_tenant(tx, tenant).await?;
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
    Ok(known)
}

/// Why an insert failed.
enum Refused {
    /// The unique (tenant, id) index: an id the log already holds.
    DuplicateId,
    /// Anything else.
    Other(StoreError),
}

fn refused(error: tokio_postgres::Error) -> Refused {
    let duplicate = error.as_db_error().is_some_and(|db| {
        db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION
            && db.constraint() == Some("records_tenant_id_id_key")
    });
    if duplicate {
        Refused::DuplicateId
    } else {
        Refused::Other(db(error))
    }
}

/// Inserts one chunk of a tenant's rows (the transaction is scoped to that
/// tenant).
async fn insert(tx: &Transaction<'_>, tenant: i64, r: &Rows) -> Result<(), Refused> {
    let records = tx
        .prepare_cached(
            "INSERT INTO records (tenant_id, seq, id, received_at, ts, type, status, name, user_id, \
             model, provider, transport, confirmed, dims, duration_ms, has_content, envelope, leaf_hash) \
             SELECT $1, u.seq, u.id, u.received_at, u.ts, u.type, u.status, u.name, u.user_id, \
             u.model, u.provider, u.transport, u.confirmed, u.dims::text[], u.duration_ms, \
             u.has_content, u.envelope, u.leaf_hash \
             FROM unnest($2::bigint[], $3::uuid[], $4::bigint[], $5::bigint[], $6::smallint[], \
             $7::smallint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::smallint[], \
             $13::boolean[], $14::text[], $15::bigint[], $16::boolean[], $17::bytea[], $18::bytea[]) \
             AS u(seq, id, received_at, ts, type, status, name, user_id, model, provider, transport, \
             confirmed, dims, duration_ms, has_content, envelope, leaf_hash)",
        )
        .await
        .map_err(refused)?;
    let params: [&(dyn ToSql + Sync); 18] = [
        &tenant,
        &r.seq,
        &r.id,
        &r.received_at,
        &r.ts,
        &r.event_type,
        &r.status,
        &r.name,
        &r.user_id,
        &r.model,
        &r.provider,
        &r.transport,
        &r.confirmed,
        &r.dims,
        &r.duration_ms,
        &r.has_content,
        &r.envelope,
        &r.leaf_hash,
    ];
    tx.execute(&records, &params).await.map_err(refused)?;
    if !r.content_seq.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO content (tenant_id, seq, salt, body) \
                 SELECT $1, u.seq, u.salt, u.body FROM unnest($2::bigint[], $3::bytea[], $4::bytea[]) AS u(seq, salt, body)",
            )
            .await
            .map_err(refused)?;
        tx.execute(
            &stmt,
            &[&tenant, &r.content_seq, &r.content_salt, &r.content_body],
        )
        .await
        .map_err(refused)?;
    }
    if !r.node_idx.is_empty() {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO tree_nodes (tenant_id, level, idx, hash) \
                 SELECT $1, u.level, u.idx, u.hash FROM unnest($2::smallint[], $3::bigint[], $4::bytea[]) AS u(level, idx, hash)",
            )
            .await
            .map_err(refused)?;
        tx.execute(&stmt, &[&tenant, &r.node_level, &r.node_idx, &r.node_hash])
            .await
            .map_err(refused)?;
    }
    Ok(())
}

/// Reads and locks the tenant's rollup rows of these keys (hour, type,
/// status, name, as parallel columns), as (hour, type, status, name, n,
/// durations) rows; keys without a row are left out.
pub(crate) async fn lock_rollup_rows(
    tx: &Transaction<'_>,
    tenant: i64,
    hours: &[i64],
    types: &[i16],
    statuses: &[i16],
    names: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Vec<tokio_postgres::Row>, StoreError> {
    let first_hour = hours.iter().copied().min().unwrap_or(0);
    let last_hour = hours.iter().copied().max().unwrap_or(-1);
    // The hour bounds keep the lookup on the key's (tenant, hour) prefix
    // whatever join the planner picks.
    let read = tx
        .prepare_cached(
            "SELECT r.hour, r.type, r.status, r.name, r.n, r.durations \
             FROM unnest($2::bigint[], $3::smallint[], $4::smallint[], $5::text[]) \
             AS u(hour, type, status, name) \
             JOIN rollups r ON r.tenant_id = $1 AND r.hour >= $6 AND r.hour <= $7 \
             AND r.hour = u.hour AND r.type = u.type AND r.status = u.status AND r.name = u.name \
             FOR UPDATE OF r",
        )
        .await
        .map_err(db)?;
    tx.query(
        &read,
        &[
            &tenant,
            &hours,
            &types,
            &statuses,
            names,
            &first_hour,
            &last_hour,
        ],
    )
    .await
    .map_err(db)
}

/// Merges the rollup entries of a tenant's head into `rollups`: the touched
/// rows are read and locked, merged here, and written back in one upsert.
/// The head's row lock is held, so no other server merges this tenant's
/// rollups meanwhile.
async fn merge_rollups(tx: &Transaction<'_>, head: &Head) -> Result<(), StoreError> {
    if head.rollups.is_empty() {
        return Ok(());
    }
    let mut deltas: Deltas<(i64, i16, i16, &str)> = Deltas::default();
    for (hour, event_type, status, name, duration) in &head.rollups {
        deltas.add((*hour, *event_type, *status, name.as_str()), *duration);
    }
    let mut keys = (
        Vec::with_capacity(deltas.len()),
        Vec::with_capacity(deltas.len()),
        Vec::with_capacity(deltas.len()),
        Vec::with_capacity(deltas.len()),
    );
    let mut added = Vec::with_capacity(deltas.len());
    for ((hour, event_type, status, name), row) in deltas.into_rows() {
        keys.0.push(hour);
        keys.1.push(event_type);
        keys.2.push(status);
        keys.3.push(name);
        added.push(row);
    }
    switch_tenant(tx, head.tenant).await?;
    let stored = lock_rollup_rows(tx, head.tenant, &keys.0, &keys.1, &keys.2, &keys.3).await?;
    let mut counts: Vec<i64> = added.iter().map(|(n, _)| *n as i64).collect();
    let mut durations: Vec<Option<Vec<u8>>> = vec![None; added.len()];
    if !stored.is_empty() {
        let mut position: HashMap<(i64, i16, i16, &str), usize> =
            HashMap::with_capacity(added.len());
        for i in 0..added.len() {
            position.insert((keys.0[i], keys.1[i], keys.2[i], keys.3[i]), i);
        }
        for row in &stored {
            let name: &str = row.get(3);
            let key = (row.get::<_, i64>(0), row.get(1), row.get(2), name);
            let Some(&i) = position.get(&key) else {
                return Err(StoreError::Backend(
                    "a rollup row read back does not match its key".into(),
                ));
            };
            counts[i] += row.get::<_, i64>(4).max(0);
            durations[i] = Some(merge_encoded(row.get::<_, &[u8]>(5), &added[i].1)?);
        }
    }
    let durations: Vec<Vec<u8>> = durations
        .into_iter()
        .zip(&added)
        .map(|(merged, (_, histogram))| merged.unwrap_or_else(|| encode(histogram)))
        .collect();
    let write = tx
        .prepare_cached(
            "INSERT INTO rollups (tenant_id, hour, type, status, name, n, durations) \
             SELECT $1, u.hour, u.type, u.status, u.name, u.n, u.durations \
             FROM unnest($2::bigint[], $3::smallint[], $4::smallint[], $5::text[], $6::bigint[], \
             $7::bytea[]) AS u(hour, type, status, name, n, durations) \
             ON CONFLICT (tenant_id, hour, type, status, name) \
             DO UPDATE SET n = EXCLUDED.n, durations = EXCLUDED.durations",
        )
        .await
        .map_err(db)?;
    tx.execute(
        &write,
        &[
            &head.tenant,
            &keys.0,
            &keys.1,
            &keys.2,
            &keys.3,
            &counts,
            &durations,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Moves a tenant's head past the rows written.
async fn move_head(tx: &Transaction<'_>, head: &Head) -> Result<(), StoreError> {
    switch_tenant(tx, head.tenant).await?;
    let stmt = tx
        .prepare_cached("UPDATE log_heads SET next_seq = $2, received_at = $3 WHERE tenant_id = $1")
        .await
        .map_err(db)?;
    tx.execute(
        &stmt,
        &[&head.tenant, &(head.next_seq as i64), &head.received_at],
    )
    .await
    .map_err(db)?;
    Ok(())
}

/// Settles one job against its tenant's head: every event new or a
/// faithful resend, or the job fails alone and leaves no row behind.
fn settle(head: &mut Head, rows: &mut Rows, job: &AppendJob) -> JobResult {
    let mark = head.mark(rows);
    let mut added = Vec::new();
    let mut accepted = Vec::with_capacity(job.events.len());
    for event in &job.events {
        if let Some(known) = head.known.get(&event.id) {
            if known.digest != event.idempotency_digest() {
                let error = StoreError::Conflict {
                    id: event.id.to_string(),
                    seq: known.seq,
                };
                head.undo(rows, mark, &added);
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
        accepted.push(head.push(rows, &job.tenant.name, event));
    }
    Ok(accepted)
}
