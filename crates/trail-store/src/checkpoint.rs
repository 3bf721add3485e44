//! Cutting a signed checkpoint of a tenant's log: what `trail serve`'s
//! checkpointer and the SDK's embedded sink both do.

use trail_core::checkpoint::{sign_checkpoint, Checkpoint};
use trail_core::note::SigningKey;

use crate::{Store, StoreError, StoredCheckpoint, Tenant};

/// The origin line of a tenant's log: `<key name>/<tenant>`.
pub fn origin(key: &SigningKey, tenant: &Tenant) -> String {
    format!("{}/{}", key.name(), tenant.name)
}

/// A checkpoint covering the whole log right now: the newest kept one when
/// the log has not grown since, else a new one, signed with `key` and kept.
/// When another cutter kept a newer one first, that one is returned.
pub async fn cut(
    store: &dyn Store,
    key: &SigningKey,
    tenant: &Tenant,
) -> Result<StoredCheckpoint, StoreError> {
    let size = store.log_size(tenant).await?;
    if let Some(latest) = store.latest_checkpoint(tenant).await? {
        if latest.size >= size {
            return Ok(latest);
        }
    }
    let root = store.root(tenant, size).await?;
    let checkpoint = Checkpoint {
        origin: origin(key, tenant),
        size,
        root,
        extensions: Vec::new(),
    };
    let note = sign_checkpoint(&checkpoint, key)
        .map_err(|error| StoreError::Backend(format!("signing a checkpoint: {error}")))?;
    let stored = StoredCheckpoint {
        size,
        root,
        note,
        created_at: crate::now_micros(),
    };
    match store.add_checkpoint(tenant, &stored).await {
        Ok(()) => Ok(stored),
        // Another cutter got there first with a newer one: use it.
        Err(StoreError::Conflict { .. }) => store
            .latest_checkpoint(tenant)
            .await?
            .filter(|latest| latest.size >= size)
            .ok_or_else(|| StoreError::Backend("checkpoint refused".into())),
        Err(error) => Err(error),
    }
}
