//! The storage contract of trail: the [`Store`] trait every backend implements,
//! its error enum [`StoreError`], the query and key types the server passes in,
//! the group-commit [`writer`] that turns concurrent ingest requests into one
//! durable transaction per batch, and the [`conformance`] suite that every
//! backend runs unchanged.
//!
//! Backends persist the bytes that `trail-core` produced (envelopes, leaf
//! hashes, salted content); they never compute or re-derive them, except for
//! sealing a prepared event once its sequence number is known, which is itself
//! a `trail-core` call.

pub mod checkpoint;
pub mod conformance;
pub mod dims;
mod error;
pub mod log_key;
mod model;
pub mod retention;
pub mod rollup;
pub mod tree;
pub mod varint;
pub mod writer;

pub use error::StoreError;
pub use model::*;

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use trail_core::record::PreparedEvent;
use uuid::Uuid;

/// The wall-clock time in unix microseconds (0 before 1970): the one clock
/// reading of trail's stores, server and tools.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// What [`Store::retire_then`] runs with the retired range while the
/// tenant's retirement is still held.
pub type AfterRetire<'a> = Box<
    dyn FnOnce(u64, u64) -> Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>
        + Send
        + 'a,
>;

/// A durable, append-only, multi-tenant store of audit records.
///
/// Every method is scoped to one tenant; no method can read or write across
/// tenants. Reads that take a [`ReadScope`] also honour a user binding: a
/// read key bound to one `user_id` never sees another user's records.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Appends a batch of events to the tenant's log, all or nothing, and
    /// returns once the batch is durable. Results are in request order.
    async fn append(
        &self,
        tenant: &Tenant,
        events: Vec<PreparedEvent>,
    ) -> Result<Vec<Accepted>, StoreError>;

    /// One page of records matching the query.
    async fn query(&self, scope: &ReadScope, query: &EventQuery) -> Result<Page, StoreError>;

    /// One record by its event id.
    async fn get(&self, scope: &ReadScope, id: Uuid) -> Result<Option<StoredRecord>, StoreError>;

    /// Aggregates over the records matching the filters.
    async fn stats(&self, scope: &ReadScope, query: &StatsQuery) -> Result<Stats, StoreError>;

    /// Number of records in the tenant's log (its next seq).
    async fn log_size(&self, tenant: &Tenant) -> Result<u64, StoreError>;

    /// Creates the tenant if it does not exist and returns it.
    async fn ensure_tenant(&self, name: &str) -> Result<Tenant, StoreError>;

    /// The tenant with this name, if any.
    async fn tenant(&self, name: &str) -> Result<Option<Tenant>, StoreError>;

    /// Whether no API key exists yet in any tenant (first start).
    async fn has_no_keys(&self) -> Result<bool, StoreError>;

    /// Stores a new API key (its secret only as a hash).
    async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError>;

    /// A key by its public id, revoked or not. Used by authentication.
    async fn key(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError>;

    /// Every key of the tenant, newest first.
    async fn list_keys(&self, tenant: &Tenant) -> Result<Vec<ApiKey>, StoreError>;

    /// Marks a key revoked; `NotFound` when the tenant has no such key.
    async fn revoke_key(&self, tenant: &Tenant, key_id: &str) -> Result<ApiKey, StoreError>;

    /// The tenant's settings; `None` when never set (the server's defaults
    /// apply then).
    async fn settings(&self, tenant: &Tenant) -> Result<Option<TenantSettings>, StoreError>;

    /// Replaces the tenant's settings.
    async fn put_settings(
        &self,
        tenant: &Tenant,
        settings: &TenantSettings,
    ) -> Result<(), StoreError>;

    /// Every tenant.
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;

    /// The Merkle root of the tenant's log at `size` (at most the log size).
    async fn root(&self, tenant: &Tenant, size: u64) -> Result<[u8; 32], StoreError>;

    /// RFC 9162 inclusion proof of leaf `seq` in the tree of `size`.
    async fn inclusion_proof(
        &self,
        tenant: &Tenant,
        seq: u64,
        size: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError>;

    /// RFC 9162 consistency proof between tree sizes `from` and `to`.
    async fn consistency_proof(
        &self,
        tenant: &Tenant,
        from: u64,
        to: u64,
    ) -> Result<Vec<[u8; 32]>, StoreError>;

    /// Whether the backend stores the complete-subtree hashes of `level`
    /// (>= 1); the others it computes from stored ones when asked.
    fn keeps_tree_level(&self, level: u8) -> bool {
        level > 0
    }

    /// Stored complete-subtree hashes of one level with index in
    /// `[start, end)`, in index order (level 0: the leaf hashes, of retired
    /// records too; a level the backend does not keep is empty).
    async fn tree_nodes(
        &self,
        tenant: &Tenant,
        level: u8,
        start: u64,
        end: u64,
    ) -> Result<Vec<(u64, [u8; 32])>, StoreError>;

    /// Keeps a signed checkpoint. Refused (`Conflict`) when its root is not
    /// the log's root at that size, or when it is older than the newest kept
    /// one; keeping the same checkpoint twice is a no-op.
    async fn add_checkpoint(
        &self,
        tenant: &Tenant,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError>;

    /// The newest kept checkpoint.
    async fn latest_checkpoint(
        &self,
        tenant: &Tenant,
    ) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The kept checkpoint of exactly `size`.
    async fn checkpoint(
        &self,
        tenant: &Tenant,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Every kept checkpoint, oldest first.
    async fn checkpoints(&self, tenant: &Tenant) -> Result<Vec<StoredCheckpoint>, StoreError>;

    /// Retires the oldest records of the tenant's log that were received
    /// before `cutoff` (unix µs): deletes them from the start of the log,
    /// whole commits at a time and about `batch` records per transaction,
    /// and keeps their leaf hashes (see [`Store::tree_nodes`]) so that every
    /// root and proof still computes. Stops at the first record received at
    /// or after `cutoff`, so what remains is always a suffix of the log.
    /// Adjusts the stats rollups. Only one retirement per tenant runs at a
    /// time, across every server on the database: a second one gets
    /// [`RetireOutcome::Busy`] and does nothing.
    async fn retire(
        &self,
        tenant: &Tenant,
        cutoff: i64,
        batch: u32,
    ) -> Result<RetireOutcome, StoreError> {
        self.retire_then(
            tenant,
            cutoff,
            batch,
            Box::new(|_, _| Box::pin(async { Ok(()) })),
        )
        .await
    }

    /// [`Store::retire`], then `then(first_seq, end_seq)` with the retired
    /// range (empty when nothing was old enough) while the tenant's
    /// retirement is still held, so that the sweep is recorded before any
    /// other retirement of the tenant can start. An error of `then` is
    /// returned (the records stay retired).
    async fn retire_then(
        &self,
        tenant: &Tenant,
        cutoff: i64,
        batch: u32,
        then: AfterRetire<'_>,
    ) -> Result<RetireOutcome, StoreError>;

    /// How many records were retired: seqs below this are gone (their leaf
    /// hashes are kept).
    async fn retired(&self, tenant: &Tenant) -> Result<u64, StoreError>;

    /// Deletes the content and salt of every record of the tenant whose
    /// `user_id` is `user_id`, keeping the envelopes (they then read as
    /// `content_erased`), and leaves no copy of the deleted bytes in the
    /// database's own files where the backend can ensure that. Returns how
    /// many records lost content now.
    async fn erase_user(&self, tenant: &Tenant, user_id: &str) -> Result<u64, StoreError>;

    /// Counters of the ingest writer, for `/metrics`.
    fn writer_metrics(&self) -> writer::WriterMetrics;

    /// Stops taking new appends, commits everything queued, and returns
    /// when the queue is empty.
    async fn shutdown(&self);
}
