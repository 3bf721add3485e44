//! Read auditing: the read endpoints record who read what (`events.read`,
//! `events.export`, and with the tenant's `audit_queries` on,
//! `events.query`) before they answer. When the record cannot be made the
//! read fails: no read goes unaudited.

use serde_json::{Map, Value};
use trail_store::retention::{record, trail_event};
use trail_store::StoreError;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// Records one read by `caller` (its key id joins `metadata`).
pub(crate) async fn record_read(
    state: &AppState,
    caller: &Caller,
    name: &str,
    metadata: Map<String, Value>,
) -> Result<(), ApiError> {
    let failed = |error: StoreError| match error {
        StoreError::Unavailable(_) => ApiError::from(error),
        other => ApiError::internal(format!("recording the read ({name}) failed: {other}")),
    };
    let settings = state.settings.get(&*state.store, &caller.tenant).await?;
    let event = trail_event(name, Some(&caller.key_id), metadata).map_err(failed)?;
    record(
        &*state.store,
        &caller.tenant,
        settings.content_policy,
        event,
    )
    .await
    .map_err(failed)?;
    Ok(())
}

/// Records `events.query` when the tenant audits queries; `endpoint` and
/// the query's parameters (as given, already validated) go into metadata.
pub(crate) async fn record_query(
    state: &AppState,
    caller: &Caller,
    endpoint: &str,
    pairs: &[(String, String)],
) -> Result<(), ApiError> {
    let settings = state.settings.get(&*state.store, &caller.tenant).await?;
    if !settings.audit_queries {
        return Ok(());
    }
    let filters: Map<String, Value> = pairs
        .iter()
        .map(|(name, value)| (name.clone(), Value::from(value.as_str())))
        .collect();
    let mut metadata = Map::new();
    metadata.insert("endpoint".into(), endpoint.into());
    metadata.insert("filters".into(), Value::Object(filters));
    record_read(state, caller, "events.query", metadata).await
}
