//! Retention and erasure on the server side: the hourly sweep of every
//! tenant that has `retention_days`, and the JSON answers of
//! `POST /v1/retention/run` and `POST /v1/erasure` (which `trail retention
//! run` and `trail erase` print too, whether they went through a server or
//! a store). The work itself is `trail_store::retention`'s.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use trail_store::retention::{self, Swept};
use trail_store::{Accepted, Store, StoreError, Tenant, TenantSettings};

use crate::settings_cache::SettingsCache;

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// How often `trail serve` sweeps.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// `{"id", "seq", "leaf_hash"}` of one of trail's own events.
pub fn event_json(event: &Accepted) -> Value {
    json!({"id": event.id, "seq": event.seq, "leaf_hash": hex::encode(event.leaf_hash)})
}

/// The answer of a sweep: `{"retired": 0}`, or `{"retired": N,
/// "first_seq", "last_seq", "event"}`. `None` for [`Swept::Busy`].
pub fn swept_json(swept: &Swept) -> Option<Value> {
    match swept {
        Swept::Busy => None,
        Swept::Nothing => Some(json!({"retired": 0})),
        Swept::Retired {
            first_seq,
            end_seq,
            event,
        } => Some(json!({
            "retired": end_seq - first_seq,
            "first_seq": first_seq,
            "last_seq": end_seq - 1,
            "event": event_json(event),
        })),
    }
}

/// The answer of an erasure: `{"erased": N, "event"}`.
pub fn erased_json(erased: u64, event: &Accepted) -> Value {
    json!({"erased": erased, "event": event_json(event)})
}

/// The cutoff (unix µs) of a tenant's own retention, when it has one.
pub fn retention_cutoff(settings: &TenantSettings, now_micros: i64) -> Option<i64> {
    settings
        .retention_days
        .map(|days| now_micros.saturating_sub(i64::from(days).saturating_mul(DAY_MICROS)))
}

/// Sweeps one tenant by its own `retention_days` (nothing when unset).
async fn sweep_tenant(
    store: &dyn Store,
    settings: &SettingsCache,
    tenant: &Tenant,
) -> Result<Option<Swept>, StoreError> {
    let settings = settings.read(store, tenant).await?;
    let Some(cutoff) = retention_cutoff(&settings, trail_store::now_micros()) else {
        return Ok(None);
    };
    retention::sweep(store, tenant, cutoff, settings.content_policy, None)
        .await
        .map(Some)
}

/// One pass over every tenant; a failing tenant is logged and skipped.
pub(crate) async fn sweep_all(store: &dyn Store, settings: &SettingsCache) {
    let tenants = match store.tenants().await {
        Ok(tenants) => tenants,
        Err(error) => {
            tracing::warn!(%error, "retention sweep: listing tenants failed");
            return;
        }
    };
    for tenant in tenants {
        match sweep_tenant(store, settings, &tenant).await {
            Ok(None | Some(Swept::Nothing)) => {}
            Ok(Some(Swept::Busy)) => {
                tracing::info!(tenant = %tenant.name, "retention sweep: another sweep is running")
            }
            Ok(Some(Swept::Retired {
                first_seq, end_seq, ..
            })) => tracing::info!(
                tenant = %tenant.name,
                first_seq,
                last_seq = end_seq - 1,
                "retention sweep: retired {} records",
                end_seq - first_seq
            ),
            Err(error) => {
                tracing::warn!(tenant = %tenant.name, %error, "retention sweep failed")
            }
        }
    }
}

/// Sweeps every tenant with `retention_days` every `interval` (the first
/// pass at once), until the task is aborted. The sweep's own event grows
/// the log, so the checkpointer cuts a checkpoint within a second.
pub(crate) async fn run_sweeper(
    store: Arc<dyn Store>,
    settings: Arc<SettingsCache>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        sweep_all(&*store, &settings).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_is_days_before_now() {
        let mut settings = TenantSettings::default();
        assert_eq!(retention_cutoff(&settings, 10 * DAY_MICROS), None);
        settings.retention_days = Some(3);
        assert_eq!(
            retention_cutoff(&settings, 10 * DAY_MICROS),
            Some(7 * DAY_MICROS)
        );
    }

    #[test]
    fn answers() {
        assert_eq!(swept_json(&Swept::Busy), None);
        assert_eq!(swept_json(&Swept::Nothing), Some(json!({"retired": 0})));
        let event = Accepted {
            id: uuid::Uuid::nil(),
            seq: 9,
            leaf_hash: [1; 32],
            duplicate: false,
        };
        let answer = swept_json(&Swept::Retired {
            first_seq: 0,
            end_seq: 4,
            event: event.clone(),
        })
        .expect("answer");
        assert_eq!(answer["retired"], 4);
        assert_eq!(answer["last_seq"], 3);
        assert_eq!(answer["event"]["seq"], 9);
        assert_eq!(answer["event"]["leaf_hash"], "01".repeat(32));
        assert_eq!(erased_json(2, &event)["erased"], 2);
    }
}
