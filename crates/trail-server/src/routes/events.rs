//! `POST /v1/events` (one object, a JSON array, or NDJSON), `GET /v1/events`
//! (filtered pages) and `GET /v1/events/{id}` (one record). A detail read
//! is recorded as `events.read`, and a list as `events.query` when the
//! tenant audits queries (`routes::audit`).
//!
//! Ingest is all-or-nothing per request: the body is split and every event
//! validated (each bad field named) before anything reaches the store; the
//! CPU work (parse, validate, redact, encode) runs on the blocking pool so
//! large batches never stall the async workers.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};
use trail_core::batch::{split_body, BatchError};
use trail_core::event::{parse_event, parse_events, Transport};
use trail_core::limits::MAX_REQUEST_BYTES;
use trail_core::record::{flat_view, PreparedEvent};
use trail_store::{StoredRecord, TenantSettings};
use uuid::Uuid;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::{params, AppState};

/// How long an ingest request may take to deliver its body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the blocking stage hands back: prepared events to store, and which
/// request positions were skipped by the tenant's `record_types`.
struct Prepared {
    events: Vec<PreparedEvent>,
    /// Per request position: `Some(id)` when skipped, `None` when stored.
    skipped: Vec<Option<Uuid>>,
}

/// `POST /v1/events`.
pub async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_ingest()?;
    let ndjson = body_is_ndjson(&headers);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_REQUEST_BYTES as u64) {
        return Err(request_too_large());
    }
    // Held from reading the body until the events are committed (or the
    // request fails); a sender gets BODY_TIMEOUT to deliver its body, so a
    // slow one cannot hold a slot for long.
    let _in_memory = Arc::clone(&state.ingest_slots)
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    let bytes = tokio::time::timeout(BODY_TIMEOUT, to_bytes(body, MAX_REQUEST_BYTES))
        .await
        .map_err(|_| {
            ApiError::timeout(format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|_| request_too_large())?;
    let settings = state.settings.get(&*state.store, &caller.tenant).await?;
    let slot = Arc::clone(&state.prepare_slots)
        .acquire_owned()
        .await
        .map_err(ApiError::internal)?;
    let prepared = tokio::task::spawn_blocking(move || {
        let prepared = prepare_body(&bytes, ndjson, &settings);
        drop(slot);
        prepared
    })
    .await
    .map_err(ApiError::internal)?;
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            state.metrics.record_rejected();
            return Err(error);
        }
    };
    let accepted = state.store.append(&caller.tenant, prepared.events).await?;
    let duplicates = accepted.iter().filter(|a| a.duplicate).count() as u64;
    state
        .metrics
        .record_ingest(accepted.len() as u64 - duplicates, duplicates);
    let mut accepted = accepted.into_iter();
    let mut out = Vec::with_capacity(prepared.skipped.len());
    for skipped in prepared.skipped {
        match skipped {
            Some(id) => out.push(json!({
                "id": id, "seq": null, "leaf_hash": null, "duplicate": false, "skipped": true,
            })),
            None => {
                let a = accepted
                    .next()
                    .ok_or_else(|| ApiError::internal("store returned too few results"))?;
                out.push(json!({
                    "id": a.id, "seq": a.seq, "leaf_hash": hex::encode(a.leaf_hash),
                    "duplicate": a.duplicate,
                }));
            }
        }
    }
    Ok(Json(json!({ "accepted": out })))
}

fn request_too_large() -> ApiError {
    ApiError::too_large(
        "max_request_bytes",
        format!("a request body may be at most {MAX_REQUEST_BYTES} bytes"),
    )
}

/// NDJSON when the Content-Type says so; anything else is read as JSON (one
/// object or an array; several newline-separated objects are taken as
/// NDJSON too), so that `curl -d` works without a header.
fn body_is_ndjson(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let media = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    matches!(
        media.as_str(),
        "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
    )
}

/// Split, validate, redact, apply the content policy and encode: everything
/// up to the point where only the writer can go on (seq, seal, commit).
fn prepare_body(
    bytes: &[u8],
    ndjson: bool,
    settings: &TenantSettings,
) -> Result<Prepared, ApiError> {
    let values = split_body(bytes, ndjson).map_err(batch_error)?;
    // A body that is one object names its fields plainly ("foo"); arrays
    // and NDJSON name them by position ("[3].foo").
    let single_object =
        !ndjson && bytes.trim_ascii_start().first() == Some(&b'{') && values.len() == 1;
    let parsed = if single_object {
        values
            .into_iter()
            .map(parse_event)
            .collect::<Result<Vec<_>, _>>()
    } else {
        parse_events(values)
    };
    let events = parsed.map_err(|errors| {
        let detail = if errors.len() == 1 {
            format!("{}: {}", errors[0].field, errors[0].message)
        } else {
            format!("{} invalid fields; nothing was recorded", errors.len())
        };
        ApiError::invalid(detail, errors)
    })?;
    let mut salts = vec![0u8; 32 * events.len()];
    getrandom::fill(&mut salts).map_err(ApiError::internal)?;
    let mut prepared = Prepared {
        events: Vec::with_capacity(events.len()),
        skipped: Vec::with_capacity(events.len()),
    };
    for (event, salt) in events.into_iter().zip(salts.chunks_exact(32)) {
        let id = event.id;
        let mut salt_bytes = [0u8; 32];
        salt_bytes.copy_from_slice(salt);
        match settings.prepare(event, Transport::Http, salt_bytes) {
            Some(event) => {
                prepared.events.push(event);
                prepared.skipped.push(None);
            }
            None => prepared.skipped.push(Some(id.unwrap_or_else(Uuid::now_v7))),
        }
    }
    Ok(prepared)
}

fn batch_error(error: BatchError) -> ApiError {
    let detail = error.to_string();
    match &error {
        BatchError::EventTooLarge { index, .. } => {
            ApiError::too_large(format!("[{index}] max_event_bytes"), detail)
        }
        BatchError::TooManyEvents { .. } => ApiError::too_large("max_batch_events", detail),
        BatchError::TooDeep { location } => ApiError::bad_field(location.clone(), detail),
        BatchError::Malformed { location, .. } => ApiError::bad_field(location.clone(), detail),
        _ => ApiError::bad_field("body", detail),
    }
}

/// The flat view of a record.
fn flat(record: &StoredRecord) -> Result<Map<String, Value>, ApiError> {
    flat_view(
        &record.envelope,
        record.content.as_deref(),
        &record.leaf_hash,
        record.content_erased,
    )
    .map_err(ApiError::internal)
}

/// `GET /v1/events`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    let scope = caller.require_read()?;
    let query = params::event_query(pairs.clone())?;
    let page = state.store.query(&scope, &query).await?;
    super::audit::record_query(&state, &caller, "GET /v1/events", &pairs).await?;
    let events = page
        .records
        .iter()
        .map(|record| flat(record).map(Value::Object))
        .collect::<Result<Vec<_>, _>>()?;
    let mut body = json!({
        "events": events,
        "next_cursor": page.next_cursor.map(|seq| seq.to_string()),
    });
    if let Some(total) = page.total {
        body["total"] = json!(total);
    }
    Ok(Json(body))
}

/// `GET /v1/events/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    let scope = caller.require_read()?;
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::bad_field("id", "must be a UUID"))?;
    let record = state
        .store
        .get(&scope, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("event {id} not found")))?;
    let mut read = Map::new();
    read.insert("event_id".into(), id.to_string().into());
    read.insert("seq".into(), record.seq.into());
    super::audit::record_read(&state, &caller, "events.read", read).await?;
    let envelope: Value = serde_json::from_slice(&record.envelope).map_err(ApiError::internal)?;
    let content: Value = match &record.content {
        Some(bytes) => serde_json::from_slice(bytes).map_err(ApiError::internal)?,
        None => Value::Null,
    };
    let salt = record
        .content_salt
        .filter(|_| record.content.is_some())
        .map(|salt| base64::engine::general_purpose::STANDARD.encode(salt));
    // An inclusion proof to the newest checkpoint (cut now if the record is
    // newer than every kept one).
    let checkpoint = state
        .signer
        .covering(&*state.store, &caller.tenant, record.seq + 1)
        .await?;
    let proof = state
        .store
        .inclusion_proof(&caller.tenant, record.seq, checkpoint.size)
        .await?;
    Ok(Json(json!({
        "proof": {
            "tree_size": checkpoint.size,
            "hashes": proof.iter().map(hex::encode).collect::<Vec<_>>(),
            "checkpoint": checkpoint.note,
        },
        "seq": record.seq,
        "leaf_hash": hex::encode(record.leaf_hash),
        "envelope": envelope,
        "content": content,
        "content_salt": salt,
        "content_erased": record.content_erased,
        "record": flat(&record)?,
    })))
}
