//! [`LogSigner`]: the server's log key and the cutting of signed
//! checkpoints (C2SP tlog-checkpoint notes signed with Ed25519).
//!
//! Every tenant has its own log, whose origin is `<origin prefix>/<tenant>`;
//! one key, named by the origin prefix, signs them all, so one vkey verifies
//! every tenant's checkpoints. A checkpoint is cut when asked for and by the
//! background [`run_checkpointer`] within a second of a log growing; the
//! store refuses any checkpoint that is not the log's root at its size or
//! that is older than the newest kept one, so kept checkpoints never
//! regress and are always consistent.

use std::sync::Arc;
use std::time::Duration;

use trail_core::note::SigningKey;
use trail_store::{Store, StoreError, StoredCheckpoint, Tenant};

/// The log key and origin prefix.
pub struct LogSigner {
    key: SigningKey,
}

impl LogSigner {
    /// A signer whose key's own name is the origin prefix of every log.
    pub fn new(key: SigningKey) -> LogSigner {
        LogSigner { key }
    }

    /// The origin line of a tenant's log.
    pub fn origin(&self, tenant: &Tenant) -> String {
        trail_store::checkpoint::origin(&self.key, tenant)
    }

    /// The C2SP verifier key of the log key.
    pub fn vkey(&self) -> String {
        self.key.verifier().to_vkey()
    }

    /// A checkpoint covering the whole log right now: the newest kept one
    /// when the log has not grown since, else a new one, signed and kept.
    pub async fn cut(
        &self,
        store: &dyn Store,
        tenant: &Tenant,
    ) -> Result<StoredCheckpoint, StoreError> {
        trail_store::checkpoint::cut(store, &self.key, tenant).await
    }

    /// The newest kept checkpoint when it covers at least `size` records,
    /// else a newly cut one (so proofs of new records do not wait for the
    /// background cutter, and old records do not cause new checkpoints).
    pub async fn covering(
        &self,
        store: &dyn Store,
        tenant: &Tenant,
        size: u64,
    ) -> Result<StoredCheckpoint, StoreError> {
        match store.latest_checkpoint(tenant).await? {
            Some(latest) if latest.size >= size => Ok(latest),
            _ => self.cut(store, tenant).await,
        }
    }

    /// Cuts a checkpoint for every tenant whose log grew.
    pub async fn cut_all(&self, store: &dyn Store) -> Result<(), StoreError> {
        for tenant in store.tenants().await? {
            let size = store.log_size(&tenant).await?;
            let latest = store.latest_checkpoint(&tenant).await?.map(|c| c.size);
            if size > 0 && latest.is_none_or(|latest| latest < size) {
                self.cut(store, &tenant).await?;
            }
        }
        Ok(())
    }
}

/// Cuts checkpoints once a second while logs grow, until the task is
/// aborted.
pub async fn run_checkpointer(signer: Arc<LogSigner>, store: Arc<dyn Store>) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(error) = signer.cut_all(&*store).await {
            tracing::warn!(%error, "cutting checkpoints failed");
        }
    }
}
