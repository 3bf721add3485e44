//! [`SqliteCommitter`]: the sqlite side of the group-commit writer. One
//! `BEGIN IMMEDIATE` transaction per batch; one savepoint per job so a job
//! whose id conflicts rolls back alone; sequencing, sealing and inserting
//! with cached prepared statements; then one `COMMIT` (WAL, synchronous=FULL)
//! before any job is acknowledged.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use trail_core::merkle::CompactRange;
use trail_core::record::{idempotency_digest_of_envelope, PreparedEvent};
use trail_store::writer::{AppendJob, Committer, JobResult};
use trail_store::{Accepted, StoreError, Tenant};

use crate::dims::{dims_of, DimKind, FastHash};
use crate::schema::{rid, rid_range};
use crate::{postings, rollup};

/// A kind's slice of the dims cache is dropped when it grows past this many entries.
const DIM_CACHE_LIMIT: usize = 200_000;

/// Owns the write connection; runs on the writer thread.
pub struct SqliteCommitter {
    conn: Connection,
    dim_cache: HashMap<(i64, DimKind), HashMap<String, i64, FastHash>>,
    /// Each tenant's tree edge as of the last commit.
    ranges: HashMap<i64, CompactRange>,
    /// The tree edges of the batch being committed; they become `ranges`
    /// only once the commit succeeded.
    pending_ranges: HashMap<i64, CompactRange>,
    /// Held for each commit; retirement and erasure batches take it too.
    gate: WriteGate,
}

/// Turns between this process's writers of the database: the committer
/// and the retirement and erasure batches. Without it, a committer blocked
/// by a batch waits in sqlite's busy handler, which sleeps in growing steps
/// (up to 100 ms) and can miss the moment between two batches; a mutex
/// wakes it as soon as the batch ends.
pub type WriteGate = std::sync::Arc<std::sync::Mutex<()>>;

/// What one job derives from its records besides the records themselves,
/// kept apart until the job is known to commit.
#[derive(Default)]
struct Derived {
    /// (dim, seq) for the posting blocks.
    postings: Vec<(i64, i64)>,
    /// Rollup key and duration per record.
    rollups: Vec<(rollup::RollupKey, Option<u64>)>,
}

/// Where a tenant's log stands inside the current transaction.
#[derive(Clone)]
struct Head {
    next_seq: u64,
    received_at: i64,
    /// The right edge of the tenant's Merkle tree at `next_seq` leaves.
    range: CompactRange,
}

impl SqliteCommitter {
    /// Wraps an open, migrated connection.
    pub fn new(conn: Connection, gate: WriteGate) -> Self {
        SqliteCommitter {
            conn,
            dim_cache: HashMap::new(),
            ranges: HashMap::new(),
            pending_ranges: HashMap::new(),
            gate,
        }
    }

    fn head(&mut self, tenant: &Tenant, now: i64) -> Result<Head, StoreError> {
        let last: Option<(i64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT seq, received_at FROM records WHERE rid >= ?1 AND rid < ?2 ORDER BY rid DESC LIMIT 1",
            )
            .and_then(|mut stmt| {
                let (start, end) = rid_range(tenant.id);
                stmt.query_row([start, end], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(StoreError::backend)?;
        let (next_seq, received_at) = match last {
            // received_at never goes backwards within a log, whatever the clock does.
            Some((seq, received_at)) => (seq as u64 + 1, received_at.max(now)),
            // Empty, or every record retired: the log goes on after them.
            None => (crate::retention::retired(&self.conn, tenant.id)?, now),
        };
        let range = match self.ranges.get(&tenant.id) {
            Some(range) if range.size() == next_seq => range.clone(),
            // Another process wrote, or first use: rebuild from the stored nodes.
            _ => crate::tree::load_range(&self.conn, tenant.id, next_seq)?,
        };
        Ok(Head {
            next_seq,
            received_at,
            range,
        })
    }

    fn dim_id(&mut self, tenant: i64, kind: DimKind, value: &str) -> Result<i64, StoreError> {
        if let Some(id) = self
            .dim_cache
            .get(&(tenant, kind))
            .and_then(|values| values.get(value))
        {
            return Ok(*id);
        }
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO dims (tenant_id, kind, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (tenant_id, kind, value) DO UPDATE SET value = excluded.value RETURNING id",
            )
            .and_then(|mut stmt| stmt.query_row(params![tenant, kind as u8, value], |row| row.get(0)))
            .map_err(StoreError::backend)?;
        let values = self.dim_cache.entry((tenant, kind)).or_default();
        if values.len() >= DIM_CACHE_LIMIT {
            values.clear();
        }
        values.insert(value.to_owned(), id);
        Ok(id)
    }

    /// Writes one job inside the open transaction, adding its (dim, seq)
    /// pairs to `postings`; `Ok(Err(..))` when the job must be rolled back
    /// alone.
    fn write_job(
        &mut self,
        job: &AppendJob,
        head: &mut Head,
        derived: &mut Derived,
    ) -> Result<JobResult, StoreError> {
        let tenant = &job.tenant;
        let mut accepted = Vec::with_capacity(job.events.len());
        for event in &job.events {
            let seq = head.next_seq;
            let sealed = event.seal(&tenant.name, seq, head.received_at);
            let index = &event.index;
            let name_dim = self.dim_id(tenant.id, DimKind::Name, &index.name)?;
            let inserted = self
                .conn
                .prepare_cached(
                    "INSERT INTO records (rid, tenant_id, seq, id, received_at, ts, type, status, name_dim, \
                     duration_ms, has_content, envelope, leaf_hash) \
                     VALUES (?13, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![
                        tenant.id,
                        seq as i64,
                        event.id.as_bytes().as_slice(),
                        head.received_at,
                        index.started_at.unwrap_or(head.received_at),
                        index.event_type.code(),
                        index.status.code(),
                        name_dim,
                        index.duration_ms.map(|d| d.min(i64::MAX as u64) as i64),
                        event.content.is_some(),
                        sealed.envelope,
                        sealed.leaf_hash.as_slice(),
                        rid(tenant.id, seq as i64),
                    ])
                });
            match inserted {
                Ok(_) => {}
                Err(rusqlite::Error::SqliteFailure(error, Some(message)))
                    if error.code == ErrorCode::ConstraintViolation
                        && message.contains("records.id") =>
                {
                    match self.duplicate(tenant, event)? {
                        Ok(original) => {
                            accepted.push(original);
                            continue;
                        }
                        Err(conflict) => return Ok(Err(conflict)),
                    }
                }
                Err(error) => return Err(StoreError::backend(error)),
            }
            let rid = rid(tenant.id, seq as i64);
            for (level, index, hash) in head.range.append(sealed.leaf_hash) {
                if crate::tree::is_stored_level(level) {
                    crate::tree::insert_node(&self.conn, tenant.id, level, index, &hash)?;
                }
            }
            if let Some(content) = &event.content {
                self.conn
                    .prepare_cached("INSERT INTO content (rid, salt, body) VALUES (?1, ?2, ?3)")
                    .and_then(|mut stmt| {
                        stmt.execute(params![rid, content.salt.as_slice(), content.bytes])
                    })
                    .map_err(StoreError::backend)?;
            }
            for (kind, value) in dims_of(index) {
                let dim = if kind == DimKind::Name {
                    name_dim
                } else {
                    self.dim_id(tenant.id, kind, value)?
                };
                derived.postings.push((dim, seq as i64));
            }
            let ts = index.started_at.unwrap_or(head.received_at);
            let hour = ts.div_euclid(rollup::HOUR);
            let hour_dim = self.dim_id(tenant.id, DimKind::Hour, &hour.to_string())?;
            derived.postings.push((hour_dim, seq as i64));
            derived.rollups.push((
                (
                    tenant.id,
                    hour,
                    index.event_type.code(),
                    index.status.code(),
                    name_dim,
                ),
                index.duration_ms,
            ));
            accepted.push(Accepted {
                id: event.id,
                seq,
                leaf_hash: sealed.leaf_hash,
                duplicate: false,
            });
            head.next_seq += 1;
        }
        Ok(Ok(accepted))
    }

    /// The id is taken: same event (idempotent resend) or a conflict.
    fn duplicate(
        &self,
        tenant: &Tenant,
        event: &PreparedEvent,
    ) -> Result<Result<Accepted, StoreError>, StoreError> {
        let (seq, envelope, leaf_hash): (i64, Vec<u8>, Vec<u8>) = self
            .conn
            .prepare_cached(
                "SELECT seq, envelope, leaf_hash FROM records WHERE tenant_id = ?1 AND id = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![tenant.id, event.id.as_bytes().as_slice()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
            })
            .map_err(StoreError::backend)?;
        let stored = idempotency_digest_of_envelope(&envelope)
            .map_err(|error| StoreError::Corrupt(format!("seq {seq}: {error}")))?;
        if stored != event.idempotency_digest() {
            return Ok(Err(StoreError::Conflict {
                id: event.id.to_string(),
                seq: seq as u64,
            }));
        }
        let leaf_hash: [u8; 32] = leaf_hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("seq {seq}: leaf hash is not 32 bytes")))?;
        Ok(Ok(Accepted {
            id: event.id,
            seq: seq as u64,
            leaf_hash,
            duplicate: true,
        }))
    }

    fn commit_all(&mut self, jobs: &[AppendJob]) -> Result<Vec<JobResult>, StoreError> {
        let now = trail_store::now_micros();
        let mut heads: HashMap<i64, Head> = HashMap::new();
        let mut results = Vec::with_capacity(jobs.len());
        // Seqs per (tenant, dim) of the jobs that succeeded: one posting
        // block each, written once every job is settled.
        let mut blocks: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
        let mut rollups = rollup::Pending::default();
        let mut derived = Derived::default();
        for job in jobs {
            let head = match heads.get(&job.tenant.id) {
                Some(head) => head.clone(),
                None => self.head(&job.tenant, now)?,
            };
            let mut job_head = head.clone();
            self.conn
                .execute_batch("SAVEPOINT job")
                .map_err(StoreError::backend)?;
            derived.postings.clear();
            derived.rollups.clear();
            match self.write_job(job, &mut job_head, &mut derived)? {
                Ok(accepted) => {
                    for &(dim, seq) in &derived.postings {
                        blocks.entry((job.tenant.id, dim)).or_default().push(seq);
                    }
                    for &(key, duration) in &derived.rollups {
                        rollups.add(key, duration);
                    }
                    self.conn
                        .execute_batch("RELEASE job")
                        .map_err(StoreError::backend)?;
                    heads.insert(job.tenant.id, job_head);
                    results.push(Ok(accepted));
                }
                Err(error) => {
                    self.conn
                        .execute_batch("ROLLBACK TO job; RELEASE job")
                        .map_err(StoreError::backend)?;
                    // Dims created inside the savepoint are gone again.
                    self.dim_cache.clear();
                    heads.insert(job.tenant.id, head);
                    results.push(Err(error));
                }
            }
        }
        for ((tenant, dim), seqs) in blocks {
            postings::insert(&self.conn, tenant, dim, &seqs)?;
        }
        rollups.flush(&self.conn)?;
        self.pending_ranges = heads.into_iter().map(|(t, h)| (t, h.range)).collect();
        Ok(results)
    }
}

impl Committer for SqliteCommitter {
    fn commit(&mut self, jobs: &[AppendJob]) -> Result<Vec<JobResult>, StoreError> {
        let gate = std::sync::Arc::clone(&self.gate);
        let _turn = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(StoreError::backend)?;
        let outcome = self.commit_all(jobs).and_then(|results| {
            self.conn
                .execute_batch("COMMIT")
                .map_err(StoreError::backend)?;
            let committed = std::mem::take(&mut self.pending_ranges);
            self.ranges.extend(committed);
            Ok(results)
        });
        if outcome.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.dim_cache.clear();
        }
        outcome
    }
}
