//! The embedded default backend of trail: one sqlite file in WAL mode with
//! `synchronous=FULL`, written by the group-commit writer thread and read
//! through a small pool of read connections.
//!
//! [`SqliteStore::open`] creates or migrates the database, starts the writer
//! and returns a [`trail_store::Store`]. Several processes may open the same
//! file: every batch re-reads the tenant's log head under `BEGIN IMMEDIATE`,
//! so seqs stay gap-free whoever writes.

mod admin;
mod commit;
mod dims;
mod postings;
mod read;
mod retention;
mod rollup;
mod schema;
mod tree;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use trail_core::record::PreparedEvent;
use trail_store::writer::{Writer, WriterConfig, WriterMetrics};
use trail_store::{
    Accepted, AfterRetire, ApiKey, EventQuery, Page, ReadScope, RetireOutcome, Stats, StatsQuery,
    Store, StoreError, StoredCheckpoint, StoredRecord, Tenant, TenantSettings,
};
use uuid::Uuid;

pub use schema::SCHEMA_VERSION;

/// Tuning of the sqlite backend.
#[derive(Debug, Clone, Copy)]
pub struct SqliteOptions {
    /// Page cache of the write connection, in KiB.
    pub writer_cache_kib: u32,
    /// Page cache of each read connection, in KiB.
    pub reader_cache_kib: u32,
    /// How often the background thread copies WAL frames into the
    /// database file.
    pub checkpoint_interval: std::time::Duration,
    /// WAL size (pages) at which the writer completes a checkpoint itself.
    pub wal_autocheckpoint_pages: u32,
    /// The writer's queue and batch sizes.
    pub writer: WriterConfig,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            writer_cache_kib: 16 * 1024,
            reader_cache_kib: 8 * 1024,
            checkpoint_interval: std::time::Duration::from_millis(250),
            wal_autocheckpoint_pages: 16_384,
            writer: WriterConfig::default(),
        }
    }
}

/// A sqlite-backed [`Store`].
pub struct SqliteStore {
    path: PathBuf,
    options: SqliteOptions,
    writer: Writer,
    readers: Arc<Mutex<Vec<Connection>>>,
    checkpointer: Checkpointer,
    /// Tenants whose retirement runs now.
    retiring: Arc<Mutex<HashSet<i64>>>,
    /// Turns between the committer and retirement or erasure batches.
    gate: commit::WriteGate,
}

/// A tenant's claim on running its retirement, released on drop.
struct Running {
    set: Arc<Mutex<HashSet<i64>>>,
    tenant: i64,
}

impl Running {
    fn claim(set: &Arc<Mutex<HashSet<i64>>>, tenant: i64) -> Option<Running> {
        let claimed = set.lock().ok()?.insert(tenant);
        claimed.then(|| Running {
            set: Arc::clone(set),
            tenant,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut set) = self.set.lock() {
            set.remove(&self.tenant);
        }
    }
}

impl SqliteStore {
    /// Opens (creating and migrating when needed) the database at `path`.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|error| {
                    StoreError::Backend(format!("cannot create {}: {error}", parent.display()))
                })?;
            }
        }
        let mut conn = connect(path, options.writer_cache_kib)?;
        // A background thread copies WAL frames into the database file
        // (PASSIVE: it never blocks the writer). That alone cannot reset a
        // WAL that is written continuously, so the writer keeps a large
        // autocheckpoint: run right after a commit, with no other writer,
        // it completes, finds most frames already copied, and lets the next
        // commit start the WAL over.
        conn.pragma_update(None, "wal_autocheckpoint", options.wal_autocheckpoint_pages)
            .map_err(StoreError::backend)?;
        schema::migrate(&mut conn)?;
        let checkpointer = Checkpointer::start(connect(path, 1024)?, options.checkpoint_interval);
        let gate = commit::WriteGate::default();
        let writer = Writer::start(
            commit::SqliteCommitter::new(conn, std::sync::Arc::clone(&gate)),
            options.writer,
        );
        Ok(SqliteStore {
            path: path.to_owned(),
            options,
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            checkpointer,
            retiring: Arc::default(),
            gate,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a pooled read connection on the blocking pool.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        let path = self.path.clone();
        let cache = self.options.reader_cache_kib;
        tokio::task::spawn_blocking(move || {
            let pooled = readers.lock().ok().and_then(|mut pool| pool.pop());
            let conn = match pooled {
                Some(conn) => conn,
                None => connect(&path, cache)?,
            };
            let result = work(&conn);
            if let Ok(mut pool) = readers.lock() {
                if pool.len() < 8 {
                    pool.push(conn);
                }
            }
            result
        })
        .await
        .map_err(|error| StoreError::Backend(format!("reader task failed: {error}")))?
    }
}

/// Runs a checkpoint.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<()> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
}

/// The background WAL checkpointer: a passive checkpoint at every interval
/// (it never blocks the writer), and a final truncating one at shutdown.
struct Checkpointer {
    stop: Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    fn start(conn: Connection, interval: std::time::Duration) -> Checkpointer {
        let stop = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let signal = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("trail-checkpoint".into())
            .spawn(move || {
                let (lock, condvar) = &*signal;
                loop {
                    let Ok(guard) = lock.lock() else { return };
                    let Ok((guard, _)) = condvar.wait_timeout_while(guard, interval, |stop| !*stop)
                    else {
                        return;
                    };
                    let stopping = *guard;
                    drop(guard);
                    let mode = if stopping { "TRUNCATE" } else { "PASSIVE" };
                    if let Err(error) = checkpoint(&conn, mode) {
                        tracing::warn!(%error, "WAL checkpoint failed");
                    }
                    if stopping {
                        return;
                    }
                }
            })
            .ok();
        Checkpointer {
            stop,
            thread: Mutex::new(thread),
        }
    }

    async fn stop(&self) {
        if let Ok(mut stop) = self.stop.0.lock() {
            *stop = true;
        }
        self.stop.1.notify_all();
        let thread = self.thread.lock().ok().and_then(|mut guard| guard.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Opens a connection with trail's pragmas.
fn connect(path: &Path, cache_kib: u32) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| StoreError::Backend(format!("cannot open {}: {error}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(StoreError::backend)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(StoreError::backend)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(StoreError::backend)?;
    conn.pragma_update(None, "cache_size", -i64::from(cache_kib))
        .map_err(StoreError::backend)?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(StoreError::backend)?;
    // Deleted content (retention, erasure) is overwritten, not just freed.
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(StoreError::backend)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(
        &self,
        tenant: &Tenant,
        events: Vec<PreparedEvent>,
    ) -> Result<Vec<Accepted>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.writer.append(tenant.clone(), events).await
    }

    async fn query(&self, scope: &ReadScope, query: &EventQuery) -> Result<Page, StoreError> {
        let (scope, query) = (scope.clone(), query.clone());
        self.read(move |conn| read::query(conn, &scope, &query))
            .await
    }

    async fn get(&self, scope: &ReadScope, id: Uuid) -> Result<Option<StoredRecord>, StoreError> {
        let scope = scope.clone();
        self.read(move |conn| read::get(conn, &scope, id)).await
    }

    async fn stats(&self, scope: &ReadScope, query: &StatsQuery) -> Result<Stats, StoreError> {
        let (scope, query) = (scope.clone(), query.clone());
        self.read(move |conn| read::stats(conn, &scope, &query))
            .await
    }

    async fn log_size(&self, tenant: &Tenant) -> Result<u64, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| read::log_size(conn, tenant)).await
    }

    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| admin::ensure_tenant(conn, &name))
            .await
    }

    async fn tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        let name = name.to_owned();
        self.read(move |conn| admin::tenant(conn, &name)).await
    }

    async fn has_no_keys(&self) -> Result<bool, StoreError> {
        self.read(admin::has_no_keys).await
    }

    async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.read(move |conn| admin::create_key(conn, &key)).await
    }

    async fn key(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        let key_id = key_id.to_owned();
        self.read(move |conn| admin::key(conn, &key_id)).await
    }

    async fn list_keys(&self, tenant: &Tenant) -> Result<Vec<ApiKey>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |conn| admin::list_keys(conn, &tenant)).await
    }

    async fn revoke_key(&self, tenant: &Tenant, key_id: &str) -> Result<ApiKey, StoreError> {
        let (tenant, key_id) = (tenant.clone(), key_id.to_owned());
        self.read(move |conn| admin::revoke_key(conn, &tenant, &key_id))
            .await
    }

    async fn settings(&self, tenant: &Tenant) -> Result<Option<TenantSettings>, StoreError> {
        let tenant = tenant.clone();
        self.read(move |conn| admin::settings(conn, &tenant)).await
    }

    async fn put_settings(
        &self,
        tenant: &Tenant,
        settings: &TenantSettings,
    ) -> Result<(), StoreError> {
        let (tenant, settings) = (tenant.clone(), settings.clone());
        self.read(move |conn| admin::put_settings(conn, &tenant, &settings))
            .await
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.read(admin::tenants).await
    }

    async fn root(&self, tenant: &Tenant, size: u64) -> Result<[u8; 32], StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| tree::root(conn, tenant, size)).await
    }

    async fn inclusion_proof(
        &self,
        tenant: &Tenant,
        seq: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| tree::inclusion_proof(conn, tenant, seq, size))
            .await
    }

    async fn consistency_proof(
        &self,
        tenant: &Tenant,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| tree::consistency_proof(conn, tenant, from, to))
            .await
    }

    async fn tree_nodes(
        &self,
        tenant: &Tenant,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| tree::nodes(conn, tenant, level, start, end))
            .await
    }

    async fn add_checkpoint(
        &self,
        tenant: &Tenant,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let (tenant, checkpoint) = (tenant.id, checkpoint.clone());
        self.read(move |conn| tree::add_checkpoint(conn, tenant, &checkpoint))
            .await
    }

    async fn latest_checkpoint(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| tree::checkpoint(conn, tenant, None))
            .await
    }

    async fn checkpoint(
        &self,
        tenant: &Tenant,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| tree::checkpoint(conn, tenant, Some(size)))
            .await
    }

    async fn checkpoints(&self, tenant: &Tenant) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| tree::checkpoints(conn, tenant)).await
    }

    fn keeps_tree_level(&self, level: u8) -> bool {
        tree::is_stored_level(level)
    }

    async fn retire_then(
        &self,
        tenant: &Tenant,
        cutoff: i64,
        batch: u32,
        then: AfterRetire<'_>,
    ) -> Result<RetireOutcome, StoreError> {
        // One retirement per tenant in this process; other processes on
        // the same file are serialized per batch by BEGIN IMMEDIATE, and
        // each batch starts from what is retired by then.
        let Some(_running) = Running::claim(&self.retiring, tenant.id) else {
            return Ok(RetireOutcome::Busy);
        };
        let tenant = tenant.id;
        let first = self
            .read(move |conn| retention::retired(conn, tenant))
            .await?;
        let mut end = first;
        // Small batches, each in its turn with the committer, so ingest
        // waits for one batch at most, and a pause as long as the batch
        // after each, so retirement takes at most half of the write time.
        let batch = batch.clamp(1, retention::MAX_BATCH);
        loop {
            let started = std::time::Instant::now();
            let gate = Arc::clone(&self.gate);
            let (from, to) = self
                .read(move |conn| {
                    let _turn = gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    retention::retire_batch(conn, tenant, cutoff, batch)
                })
                .await?;
            if from == to {
                break;
            }
            end = to;
            tokio::time::sleep(started.elapsed()).await;
        }
        then(first, end).await?;
        Ok(RetireOutcome::Retired {
            first_seq: first,
            end_seq: end,
        })
    }

    async fn retired(&self, tenant: &Tenant) -> Result<u64, StoreError> {
        let tenant = tenant.id;
        self.read(move |conn| retention::retired(conn, tenant))
            .await
    }

    async fn erase_user(&self, tenant: &Tenant, user_id: &str) -> Result<u64, StoreError> {
        let (tenant, user_id) = (tenant.id, user_id.to_owned());
        let gate = Arc::clone(&self.gate);
        self.read(move |conn| retention::erase_user(conn, tenant, &user_id, &gate))
            .await
    }

    fn writer_metrics(&self) -> WriterMetrics {
        self.writer.metrics()
    }

    async fn shutdown(&self) {
        self.writer.shutdown().await;
        self.checkpointer.stop().await;
    }
}
