//! The scale-out backend of trail: PostgreSQL.
//!
//! [`PostgresStore::connect`] migrates the database (under an advisory lock,
//! so several servers may start at once), creates the application role
//! [`APP_ROLE`] and returns a [`trail_store::Store`]. Every connection then
//! does `SET ROLE` to that role, which has no UPDATE or DELETE on records,
//! content, tree nodes and checkpoints and sees only the rows of the tenant
//! named by the per-transaction setting `trail.tenant` (row-level security),
//! even when the URL names a superuser.

use trail_store::writer::WriterConfig;
use trail_store::StoreError;

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

/// A PostgreSQL-backed [`trail_store::Store`].
pub struct PostgresStore {}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL or a libpq key=value string),
    /// migrates when asked, and starts the writer.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let _ = (url, options);
        Err(StoreError::Unavailable("postgres backend under construction".into()))
    }
}

fn todo<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("postgres backend under construction".into()))
}

#[async_trait::async_trait]
impl trail_store::Store for PostgresStore {
    async fn append(&self, _: &trail_store::Tenant, _: Vec<trail_core::record::PreparedEvent>) -> Result<Vec<trail_store::Accepted>, StoreError> { todo() }
    async fn query(&self, _: &trail_store::ReadScope, _: &trail_store::EventQuery) -> Result<trail_store::Page, StoreError> { todo() }
    async fn get(&self, _: &trail_store::ReadScope, _: uuid::Uuid) -> Result<Option<trail_store::StoredRecord>, StoreError> { todo() }
    async fn stats(&self, _: &trail_store::ReadScope, _: &trail_store::StatsQuery) -> Result<trail_store::Stats, StoreError> { todo() }
    async fn log_size(&self, _: &trail_store::Tenant) -> Result<u64, StoreError> { todo() }
    async fn ensure_tenant(&self, _: &str) -> Result<trail_store::Tenant, StoreError> { todo() }
    async fn tenant(&self, _: &str) -> Result<Option<trail_store::Tenant>, StoreError> { todo() }
    async fn has_no_keys(&self) -> Result<bool, StoreError> { todo() }
    async fn create_key(&self, _: &trail_store::ApiKey) -> Result<(), StoreError> { todo() }
    async fn key(&self, _: &str) -> Result<Option<trail_store::ApiKey>, StoreError> { todo() }
    async fn list_keys(&self, _: &trail_store::Tenant) -> Result<Vec<trail_store::ApiKey>, StoreError> { todo() }
    async fn revoke_key(&self, _: &trail_store::Tenant, _: &str) -> Result<trail_store::ApiKey, StoreError> { todo() }
    async fn settings(&self, _: &trail_store::Tenant) -> Result<trail_store::TenantSettings, StoreError> { todo() }
    async fn put_settings(&self, _: &trail_store::Tenant, _: &trail_store::TenantSettings) -> Result<(), StoreError> { todo() }
    async fn tenants(&self) -> Result<Vec<trail_store::Tenant>, StoreError> { todo() }
    async fn root(&self, _: &trail_store::Tenant, _: u64) -> Result<[u8; 32], StoreError> { todo() }
    async fn inclusion_proof(&self, _: &trail_store::Tenant, _: u64, _: u64) -> Result<Vec<[u8; 32]>, StoreError> { todo() }
    async fn consistency_proof(&self, _: &trail_store::Tenant, _: u64, _: u64) -> Result<Vec<[u8; 32]>, StoreError> { todo() }
    async fn tree_nodes(&self, _: &trail_store::Tenant, _: u8, _: u64, _: u64) -> Result<Vec<(u64, [u8; 32])>, StoreError> { todo() }
    async fn add_checkpoint(&self, _: &trail_store::Tenant, _: &trail_store::StoredCheckpoint) -> Result<(), StoreError> { todo() }
    async fn latest_checkpoint(&self, _: &trail_store::Tenant) -> Result<Option<trail_store::StoredCheckpoint>, StoreError> { todo() }
    async fn checkpoint(&self, _: &trail_store::Tenant, _: u64) -> Result<Option<trail_store::StoredCheckpoint>, StoreError> { todo() }
    async fn checkpoints(&self, _: &trail_store::Tenant) -> Result<Vec<trail_store::StoredCheckpoint>, StoreError> { todo() }
    fn writer_metrics(&self) -> trail_store::writer::WriterMetrics { Default::default() }
    async fn shutdown(&self) {}
}
