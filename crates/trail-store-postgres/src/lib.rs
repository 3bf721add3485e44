//! The scale-out backend of trail: PostgreSQL.
//!
//! [`PostgresStore::connect`] migrates the database (under an advisory lock,
//! so several servers may start at once), creates the application role
//! [`APP_ROLE`] and returns a [`trail_store::Store`]. Every connection then
//! does `SET ROLE` to that role, which has no UPDATE or DELETE on records,
//! content, tree nodes and checkpoints and sees only the rows of the tenant
//! named by the per-transaction setting `trail.tenant` (row-level security),
//! even when the URL names a superuser. Retention and erasure delete only
//! through narrow SECURITY DEFINER functions (`retention.rs`).

mod admin;
mod commit;
mod dims;
mod read;
mod retention;
mod schema;
mod stats;
mod tree;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    ClientWrapper, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Transaction,
};
use tokio_postgres::NoTls;
use trail_core::record::PreparedEvent;
use trail_store::writer::{Writer, WriterConfig, WriterMetrics};
use trail_store::{
    Accepted, ApiKey, EventQuery, Page, ReadScope, RetireOutcome, Stats, StatsQuery, Store,
    StoreError, StoredCheckpoint, StoredRecord, Tenant, TenantSettings,
};
use uuid::Uuid;

pub use schema::SCHEMA_VERSION;

/// The role trail works as; created by the first migration.
pub const APP_ROLE: &str = "trail_app";

/// Tuning of the postgres backend.
#[derive(Debug, Clone, Copy)]
pub struct PostgresOptions {
    /// Read connections in the pool.
    pub pool_size: usize,
    /// Whether to create or migrate the schema (false: refuse a database
    /// that holds no trail store, as `trail verify` must).
    pub migrate: bool,
    /// The writer's queue and batch sizes.
    pub writer: WriterConfig,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            migrate: true,
            writer: WriterConfig::default(),
        }
    }
}

/// A PostgreSQL-backed [`Store`].
pub struct PostgresStore {
    pool: Pool,
    writer: Writer,
    maintenance: tokio::task::JoinHandle<()>,
}

/// The text of a driver error: the server's message and detail when there
/// is one (tokio-postgres's own `Display` says only "db error").
pub(crate) fn pg_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("{}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(" (");
                text.push_str(detail);
                text.push(')');
            }
            text
        }
        None => error.to_string(),
    }
}

/// Maps a driver error: a lost connection is `Unavailable` (503, retry),
/// anything else `Backend`.
pub(crate) fn db(error: tokio_postgres::Error) -> StoreError {
    if error.is_closed() {
        StoreError::Unavailable(format!("database connection lost: {error}"))
    } else {
        StoreError::Backend(pg_error(&error))
    }
}

/// A seq, size or count as PostgreSQL's bigint (saturating).
pub(crate) fn clamp(value: u64) -> i64 {
    value.min(i64::MAX as u64) as i64
}

/// Parses a URL or key=value connection string.
fn parse_config(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    url.parse::<tokio_postgres::Config>()
        .map_err(|error| StoreError::Invalid {
            field: "database_url".into(),
            message: format!("not a PostgreSQL connection URL: {error}"),
        })
}

/// A pool of connections to `config`.
pub(crate) fn pool(config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(StoreError::backend)
}

/// A pooled connection.
pub(crate) async fn connection(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(|error| match error {
        deadpool_postgres::PoolError::Backend(error) => db(error),
        other => StoreError::Unavailable(format!("database: {other}")),
    })
}

/// The statements that open every transaction: work as the application
/// role, scoped to one tenant (or to none, which sees no tenant rows).
pub(crate) fn scope_sql(tenant: Option<i64>) -> String {
    let tenant = tenant.map(|id| id.to_string()).unwrap_or_default();
    // Parallel workers and JIT compilation cost more to start (tens to
    // hundreds of ms here) than the short queries trail runs gain from them.
    format!(
        "SET LOCAL ROLE {APP_ROLE}; SET LOCAL max_parallel_workers_per_gather = 0; \
         SET LOCAL jit = off; SELECT set_config('trail.tenant', '{tenant}', true)"
    )
}

/// Opens a transaction as the application role, scoped to `tenant`.
pub(crate) async fn begin(
    client: &mut ClientWrapper,
    tenant: Option<i64>,
) -> Result<Transaction<'_>, StoreError> {
    let tx = client.transaction().await.map_err(db)?;
    tx.batch_execute(&scope_sql(tenant)).await.map_err(db)?;
    Ok(tx)
}

/// Switches an open transaction to another tenant.
pub(crate) async fn switch_tenant(tx: &Transaction<'_>, tenant: i64) -> Result<(), StoreError> {
    tx.batch_execute(&format!(
        "SELECT set_config('trail.tenant', '{tenant}', true)"
    ))
    .await
    .map_err(db)
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL or a libpq key=value string),
    /// migrates when asked, and starts the writer.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let config = parse_config(url)?;
        let pool = pool(config.clone(), options.pool_size)?;
        {
            let mut client = connection(&pool).await?;
            if options.migrate {
                schema::migrate(&mut client).await?;
            } else {
                schema::check(&client).await?;
            }
        }
        let committer = commit::PgCommitter::start(config)?;
        let writer = Writer::start(committer, options.writer);
        let maintenance = tokio::spawn(fold_pending_dims(pool.clone()));
        Ok(PostgresStore {
            pool,
            writer,
            maintenance,
        })
    }
}

/// Every second, folds the GIN pending list of the dims index into the
/// index, on a pooled connection of its own, so the writer's transactions
/// only ever append to the list (the fold is the expensive part of keeping
/// a GIN index, and here it runs beside the writer instead of inside it).
async fn fold_pending_dims(pool: Pool) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let outcome = async {
            let client = connection(&pool).await?;
            client
                .batch_execute(&format!(
                    "SET ROLE {APP_ROLE}; SELECT trail_clean_dims(); RESET ROLE"
                ))
                .await
                .map_err(db)
        }
        .await;
        if let Err(error) = outcome {
            tracing::debug!(%error, "folding the dims pending list failed");
        }
    }
}

/// Runs `$body` (a future using `$tx`) in a transaction scoped to
/// `$tenant`, as the application role, and commits it.
macro_rules! in_tx {
    ($store:expr, $tenant:expr, |$tx:ident| $body:expr) => {{
        let mut client = connection(&$store.pool).await?;
        let transaction = begin(&mut client, $tenant).await?;
        let value = {
            let $tx = &transaction;
            $body.await?
        };
        transaction.commit().await.map_err(db)?;
        Ok(value)
    }};
}

#[async_trait]
impl Store for PostgresStore {
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
        in_tx!(self, Some(scope.tenant.id), |tx| read::query(
            tx, scope, query
        ))
    }

    async fn get(&self, scope: &ReadScope, id: Uuid) -> Result<Option<StoredRecord>, StoreError> {
        in_tx!(self, Some(scope.tenant.id), |tx| read::get(tx, scope, id))
    }

    async fn stats(&self, scope: &ReadScope, query: &StatsQuery) -> Result<Stats, StoreError> {
        in_tx!(self, Some(scope.tenant.id), |tx| stats::stats(
            tx, scope, query
        ))
    }

    async fn log_size(&self, tenant: &Tenant) -> Result<u64, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| read::log_size(tx, id))
    }

    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError> {
        let mut client = connection(&self.pool).await?;
        admin::ensure_tenant(&mut client, name).await
    }

    async fn tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError> {
        in_tx!(self, None, |tx| admin::tenant(tx, name))
    }

    async fn has_no_keys(&self) -> Result<bool, StoreError> {
        in_tx!(self, None, |tx| admin::has_no_keys(tx))
    }

    async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        in_tx!(self, Some(key.tenant.id), |tx| admin::create_key(tx, key))
    }

    async fn key(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        in_tx!(self, None, |tx| admin::key(tx, key_id))
    }

    async fn list_keys(&self, tenant: &Tenant) -> Result<Vec<ApiKey>, StoreError> {
        in_tx!(self, Some(tenant.id), |tx| admin::list_keys(tx, tenant))
    }

    async fn revoke_key(&self, tenant: &Tenant, key_id: &str) -> Result<ApiKey, StoreError> {
        in_tx!(self, Some(tenant.id), |tx| admin::revoke_key(
            tx, tenant, key_id
        ))
    }

    async fn settings(&self, tenant: &Tenant) -> Result<Option<TenantSettings>, StoreError> {
        in_tx!(self, Some(tenant.id), |tx| admin::settings(tx, tenant))
    }

    async fn put_settings(
        &self,
        tenant: &Tenant,
        settings: &TenantSettings,
    ) -> Result<(), StoreError> {
        in_tx!(self, Some(tenant.id), |tx| admin::put_settings(
            tx, tenant, settings
        ))
    }

    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        in_tx!(self, None, |tx| admin::tenants(tx))
    }

    async fn root(&self, tenant: &Tenant, size: u64) -> Result<[u8; 32], StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::root(tx, id, size))
    }

    async fn inclusion_proof(
        &self,
        tenant: &Tenant,
        seq: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::inclusion_proof(
            tx, id, seq, size
        ))
    }

    async fn consistency_proof(
        &self,
        tenant: &Tenant,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::consistency_proof(
            tx, id, from, to
        ))
    }

    async fn tree_nodes(
        &self,
        tenant: &Tenant,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, [u8; 32])>, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::nodes(tx, id, level, start, end))
    }

    async fn add_checkpoint(
        &self,
        tenant: &Tenant,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::add_checkpoint(
            tx, id, checkpoint
        ))
    }

    async fn latest_checkpoint(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::checkpoint(tx, id, None))
    }

    async fn checkpoint(
        &self,
        tenant: &Tenant,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::checkpoint(tx, id, Some(size)))
    }

    async fn checkpoints(&self, tenant: &Tenant) -> Result<Vec<StoredCheckpoint>, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| tree::checkpoints(tx, id))
    }

    fn keeps_tree_level(&self, level: u8) -> bool {
        trail_store::tree::is_stored_level(level)
    }

    async fn retire_then(
        &self,
        tenant: &Tenant,
        cutoff: i64,
        batch: u32,
        then: trail_store::AfterRetire<'_>,
    ) -> Result<RetireOutcome, StoreError> {
        retention::retire(&self.pool, tenant.id, cutoff, batch, then).await
    }

    async fn retired(&self, tenant: &Tenant) -> Result<u64, StoreError> {
        let id = tenant.id;
        in_tx!(self, Some(id), |tx| retention::retired(tx, id))
    }

    async fn erase_user(&self, tenant: &Tenant, user_id: &str) -> Result<u64, StoreError> {
        retention::erase_user(&self.pool, tenant.id, user_id).await
    }

    fn writer_metrics(&self) -> WriterMetrics {
        self.writer.metrics()
    }

    async fn shutdown(&self) {
        self.writer.shutdown().await;
        self.maintenance.abort();
        self.pool.close();
    }
}
