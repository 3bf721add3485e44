//! The sanctioned deletions and trail's own audit events, shared by the
//! server (hourly sweep, `POST /v1/retention/run`, `POST /v1/erasure`, read
//! auditing) and the CLI (`trail retention run`, `trail erase`).
//!
//! Every deletion is itself recorded in the tenant's log as an
//! `api_request` event (transport `system`): `retention.sweep` with the seq
//! range retired, `erasure` with the user and the number of records. These
//! events bypass the tenant's `record_types` allowlist: trail's own audit
//! trail is not optional.

use serde_json::{json, Map, Value};
use trail_core::event::{parse_event, Event, EventType, Transport};
use trail_core::policy::ContentPolicy;
use trail_core::verify::sweep_range;
use uuid::Uuid;

use crate::{
    Accepted, AfterRetire, EventQuery, Filters, Order, ReadScope, RetireOutcome, Store, StoreError,
    Tenant,
};

/// The most records a sweep asks a backend to retire per transaction
/// (whole commits are kept together, so one may hold a few more); the
/// backends take fewer to keep ingest moving (sqlite 1,000, postgres
/// 2,000).
pub const BATCH: u32 = 10_000;

/// The longest retention or age: a hundred years, in days.
pub const MAX_DAYS: u32 = 36_500;

/// Microseconds in one unit of an age (`s`, `m`, `h`, `d`).
fn unit_micros(unit: char) -> Option<i64> {
    Some(match unit {
        's' => 1_000_000,
        'm' => 60_000_000,
        'h' => 3_600_000_000,
        'd' => 86_400_000_000,
        _ => return None,
    })
}

/// Parses an age such as `90d`, `12h`, `30m` or `45s` into microseconds.
pub fn parse_age(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not an age: a positive integer followed by s, m, h or d (for example 90d)"
        )
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let micros = unit_micros(unit).ok_or_else(bad)?;
    let number: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    if number <= 0 {
        return Err(bad());
    }
    number
        .checked_mul(micros)
        .filter(|age| *age <= i64::from(MAX_DAYS) * 86_400_000_000)
        .ok_or_else(|| format!("{text:?} is longer than 100 years"))
}

/// One of trail's own events: an `api_request` named `name`, status ok,
/// with `metadata`; `key_id` (the API key that caused it) goes into the
/// metadata as `key_id`. Fails only when the metadata breaks an event limit.
pub fn trail_event(
    name: &str,
    key_id: Option<&str>,
    mut metadata: Map<String, Value>,
) -> Result<Event, StoreError> {
    if let Some(key_id) = key_id {
        metadata.insert("key_id".into(), Value::from(key_id));
    }
    let value = json!({
        "type": "api_request",
        "name": name,
        "status": "ok",
        "metadata": metadata,
    });
    // Transport `system` with these names is refused from outside (see
    // `trail_core::event::RESERVED_NAMES`); only here is it set.
    let mut event = parse_event(value).map_err(|errors| {
        let first = errors.into_iter().next();
        StoreError::Invalid {
            field: first.as_ref().map_or_else(String::new, |e| e.field.clone()),
            message: first.map_or_else(String::new, |e| e.message),
        }
    })?;
    event.transport = Some(Transport::System);
    Ok(event)
}

/// Appends one of trail's own events to the tenant's log under its content
/// policy; returns once it is durable.
pub async fn record(
    store: &dyn Store,
    tenant: &Tenant,
    policy: ContentPolicy,
    event: Event,
) -> Result<Accepted, StoreError> {
    let mut salt = [0u8; 32];
    getrandom::fill(&mut salt).map_err(StoreError::backend)?;
    let prepared = trail_core::record::prepare(event, policy, salt, Uuid::now_v7());
    store
        .append(tenant, vec![prepared])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Backend("the store accepted no event".into()))
}

/// The kept leaf hashes of retired seqs `[start, end)`, in seq order, up to
/// the first one missing: fewer than `end - start` means the leaf hash of
/// seq `start + len` is gone (export and verification both refuse that).
pub async fn retired_leaves(
    store: &dyn Store,
    tenant: &Tenant,
    start: u64,
    end: u64,
) -> Result<Vec<[u8; 32]>, StoreError> {
    let nodes = store.tree_nodes(tenant, 0, start, end).await?;
    Ok(nodes
        .into_iter()
        .zip(start..end)
        .take_while(|((index, _), seq)| index == seq)
        .map(|((_, hash), _)| hash)
        .collect())
}

/// What a sweep did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swept {
    /// Another sweep of this tenant was running.
    Busy,
    /// Nothing was old enough.
    Nothing,
    /// Records `[first_seq, end_seq)` were retired and `event` records it.
    Retired {
        /// First retired seq.
        first_seq: u64,
        /// One past the last retired seq.
        end_seq: u64,
        /// The `retention.sweep` event.
        event: Accepted,
    },
}

/// Where the newest `retention.sweep` event left in the log says retirement
/// ended (0 when there is none).
async fn recorded_end(store: &dyn Store, tenant: &Tenant) -> Result<u64, StoreError> {
    let page = store
        .query(
            &ReadScope {
                tenant: tenant.clone(),
                bound_user: None,
            },
            &EventQuery {
                filters: Filters {
                    event_type: Some(EventType::ApiRequest),
                    name: Some("retention.sweep".into()),
                    transport: Some(Transport::System),
                    ..Filters::default()
                },
                order: Order::Desc,
                limit: 1,
                ..EventQuery::default()
            },
        )
        .await?;
    let Some(record) = page.records.first() else {
        return Ok(0);
    };
    let text = String::from_utf8_lossy(&record.envelope);
    match sweep_range(&text) {
        Ok(Some(range)) => Ok(range.end),
        Ok(None) => Ok(0),
        Err(error) => Err(StoreError::Corrupt(format!("seq {}: {error}", record.seq))),
    }
}

/// Retires the tenant's records received before `cutoff` (unix µs) and,
/// when any were, records one `retention.sweep` event naming the range.
///
/// The range starts where the last recorded sweep ended, so the sweeps in
/// the log cover the retired leaves without a gap, which `trail verify`
/// checks. Records found retired without an event (a sweep that
/// stopped between retiring and recording) are included and counted in
/// `unrecorded`, so the log says so instead of hiding it.
pub async fn sweep(
    store: &dyn Store,
    tenant: &Tenant,
    cutoff: i64,
    policy: ContentPolicy,
    key_id: Option<&str>,
) -> Result<Swept, StoreError> {
    let swept = std::sync::Mutex::new(Swept::Nothing);
    let slot = &swept;
    let then: AfterRetire<'_> = Box::new(move |retired_from, end_seq| {
        Box::pin(async move {
            // Still under the tenant's retirement: every earlier sweep has
            // recorded itself (or stopped before it could).
            let recorded = recorded_end(store, tenant).await?;
            let first_seq = recorded.min(retired_from);
            if first_seq >= end_seq {
                return Ok(());
            }
            let mut metadata = Map::new();
            metadata.insert("first_seq".into(), first_seq.into());
            metadata.insert("last_seq".into(), (end_seq - 1).into());
            metadata.insert("count".into(), (end_seq - first_seq).into());
            if retired_from > first_seq {
                metadata.insert("unrecorded".into(), (retired_from - first_seq).into());
                tracing::warn!(
                    tenant = %tenant.name,
                    from = first_seq,
                    to = retired_from,
                    "records were retired without a recorded sweep; recording them now"
                );
            }
            metadata.insert(
                "received_before".into(),
                trail_core::time::format_rfc3339(cutoff).into(),
            );
            let event = record(
                store,
                tenant,
                policy,
                trail_event("retention.sweep", key_id, metadata)?,
            )
            .await?;
            if let Ok(mut slot) = slot.lock() {
                *slot = Swept::Retired {
                    first_seq,
                    end_seq,
                    event,
                };
            }
            Ok(())
        })
    });
    match store.retire_then(tenant, cutoff, BATCH, then).await? {
        RetireOutcome::Busy => Ok(Swept::Busy),
        RetireOutcome::Retired { .. } => Ok(swept
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())),
    }
}

/// Erases the content of every record of `user_id` and records one
/// `erasure` event (naming the user and how many records lost content).
pub async fn erase(
    store: &dyn Store,
    tenant: &Tenant,
    user_id: &str,
    policy: ContentPolicy,
    key_id: Option<&str>,
) -> Result<(u64, Accepted), StoreError> {
    let erased = store.erase_user(tenant, user_id).await?;
    let mut metadata = Map::new();
    metadata.insert("user_id".into(), user_id.into());
    metadata.insert("records".into(), erased.into());
    let event = record(
        store,
        tenant,
        policy,
        trail_event("erasure", key_id, metadata)?,
    )
    .await?;
    Ok((erased, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("90d"), Ok(90 * 86_400_000_000));
        assert_eq!(parse_age("12h"), Ok(12 * 3_600_000_000));
        assert_eq!(parse_age("30m"), Ok(30 * 60_000_000));
        assert_eq!(parse_age("45s"), Ok(45_000_000));
        for bad in ["", "d", "0d", "-1d", "90", "90w", "1.5d", "99999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_events_parse() {
        let mut metadata = Map::new();
        metadata.insert("count".into(), 3.into());
        let event = trail_event("retention.sweep", Some("k1"), metadata).expect("valid");
        assert_eq!(event.name, "retention.sweep");
        assert_eq!(event.transport, Some(Transport::System));
        let metadata = event.metadata.expect("metadata");
        assert_eq!(metadata["key_id"], "k1");
        assert_eq!(metadata["count"], 3);
    }
}
