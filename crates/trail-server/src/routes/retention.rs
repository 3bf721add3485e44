//! `POST /v1/retention/run` (retire the records older than an age, or than
//! the tenant's `retention_days`) and `POST /v1/erasure` (erase a user's
//! content). Admin only; each is recorded in the log by
//! `trail_store::retention` with the caller's key id.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Map, Value};
use trail_store::retention::{self, parse_age};
use trail_store::StoreError;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::retention::{erased_json, retention_cutoff, swept_json};
use crate::{params, AppState};

/// The body's fields: none for an empty body, else one JSON object with
/// only `allowed` fields.
fn fields(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    let fields = params::json_object(body)?;
    if let Some(unknown) = fields.keys().find(|name| !allowed.contains(&name.as_str())) {
        return Err(ApiError::bad_field(unknown.clone(), "unknown field"));
    }
    Ok(fields)
}

/// `POST /v1/retention/run`, body optional: `{"older_than": "90d"}`.
pub async fn run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_admin()?;
    let fields = fields(&body, &["older_than"])?;
    let older_than =
        match fields.get("older_than") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(
                parse_age(text).map_err(|message| ApiError::bad_field("older_than", message))?,
            ),
            Some(_) => return Err(ApiError::bad_field(
                "older_than",
                "must be an age: a positive integer followed by s, m, h or d (for example \"90d\")",
            )),
        };
    let settings = state.settings.read(&*state.store, &caller.tenant).await?;
    let now = trail_store::now_micros();
    let cutoff = match older_than {
        Some(age) => now.saturating_sub(age),
        None => retention_cutoff(&settings, now).ok_or_else(|| {
            ApiError::conflict(
                "retention is not configured for this tenant: set retention_days \
                 (PUT /v1/settings) or send {\"older_than\": \"90d\"}",
            )
        })?,
    };
    let (store, tenant, key_id) = (
        Arc::clone(&state.store),
        caller.tenant.clone(),
        caller.key_id.clone(),
    );
    let swept = in_background(async move {
        retention::sweep(
            &*store,
            &tenant,
            cutoff,
            settings.content_policy,
            Some(&key_id),
        )
        .await
    })
    .await?;
    match swept {
        None => Ok(still_running("retention.sweep")),
        Some(swept) => swept_json(&swept)
            .map(|value| (StatusCode::OK, Json(value)))
            .ok_or_else(|| {
                ApiError::conflict("a sweep of this tenant is running; try again later")
            }),
    }
}

/// How long a retention or erasure request waits for its work; longer work
/// goes on in the background and is answered 202.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// Runs `work` on its own task, so that it finishes and records its event
/// even when the request ends first (a timeout, a client that hangs up);
/// `None` when it is still running after [`ANSWER_WITHIN`].
async fn in_background<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<Option<T>, ApiError> {
    let task = tokio::spawn(work);
    match tokio::time::timeout(ANSWER_WITHIN, task).await {
        Err(_) => Ok(None),
        Ok(Err(error)) => Err(ApiError::internal(format!("the task failed: {error}"))),
        Ok(Ok(result)) => Ok(Some(result?)),
    }
}

/// 202: the work goes on and will be recorded as a `name` event.
fn still_running(name: &str) -> (StatusCode, Json<Value>) {
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "running",
            "detail": format!("still running after {} s; it goes on and is recorded as a {name} event in the log when done", ANSWER_WITHIN.as_secs()),
        })),
    )
}

/// `POST /v1/erasure` `{"user_id": "..."}`.
pub async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_admin()?;
    let fields = fields(&body, &["user_id"])?;
    let user_id = match fields.get("user_id") {
        Some(Value::String(user)) if !user.is_empty() && user.chars().count() <= 256 => user,
        _ => {
            return Err(ApiError::bad_field(
                "user_id",
                "is required: the user_id (1 to 256 characters) whose content to erase",
            ))
        }
    };
    let settings = state.settings.read(&*state.store, &caller.tenant).await?;
    let (store, tenant, key_id, user_id) = (
        Arc::clone(&state.store),
        caller.tenant.clone(),
        caller.key_id.clone(),
        user_id.clone(),
    );
    let erased = in_background(async move {
        retention::erase(
            &*store,
            &tenant,
            &user_id,
            settings.content_policy,
            Some(&key_id),
        )
        .await
    })
    .await?;
    Ok(match erased {
        None => still_running("erasure"),
        Some((erased, event)) => (StatusCode::OK, Json(erased_json(erased, &event))),
    })
}
