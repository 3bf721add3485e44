//! `POST/GET /v1/keys` and `DELETE /v1/keys/{key_id}`: admin management of
//! the tenant's API keys. A new key's text is answered once and never again.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use trail_core::event::FieldError;
use trail_store::{ApiKey, Role};

use crate::auth::{authenticate, new_key};
use crate::error::ApiError;
use crate::{params, AppState};

/// The public view of a key (never its secret or hash).
pub fn key_json(key: &ApiKey) -> Value {
    json!({
        "key_id": key.key_id,
        "tenant": key.tenant.name,
        "role": key.role.as_str(),
        "user_id": key.user_id,
        "label": key.label,
        "created_at": trail_core::time::format_rfc3339(key.created_at),
        "revoked_at": key.revoked_at.map(trail_core::time::format_rfc3339),
    })
}

/// `POST /v1/keys` with `{"role": "ingest"|"read"|"admin", "user_id"?, "label"?}`.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_admin()?;
    let fields = params::json_object(&body)?;
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: &str| {
        errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        })
    };
    let mut role = None;
    let mut user_id = None;
    let mut label = None;
    for (name, value) in &fields {
        match (name.as_str(), value) {
            ("role", Value::String(s)) => match Role::parse(s) {
                Some(r) => role = Some(r),
                None => bad("role", "must be one of: ingest, read, admin"),
            },
            ("role", _) => bad("role", "must be one of: ingest, read, admin"),
            ("user_id", Value::String(s)) if !s.is_empty() && s.chars().count() <= 256 => {
                user_id = Some(s.clone())
            }
            ("user_id", Value::Null) => {}
            ("user_id", _) => bad("user_id", "must be a string of 1 to 256 characters"),
            ("label", Value::String(s)) if s.chars().count() <= 256 => label = Some(s.clone()),
            ("label", Value::Null) => {}
            ("label", _) => bad("label", "must be a string of at most 256 characters"),
            (other, _) => bad(other, "unknown field"),
        }
    }
    if role.is_none() && !fields.contains_key("role") {
        bad("role", "is required");
    }
    if user_id.is_some() && role.is_some_and(|r| r != Role::Read) {
        bad("user_id", "only read keys can be bound to a user");
    }
    let role = match role {
        Some(role) if errors.is_empty() => role,
        _ => return Err(ApiError::invalid("invalid key request", errors)),
    };
    let key = new_key(
        &caller.tenant,
        role,
        user_id,
        label,
        trail_store::now_micros(),
    )?;
    state.store.create_key(&key.record).await?;
    let mut body = key_json(&key.record);
    body["key"] = json!(key.text);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /v1/keys`.
pub async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_admin()?;
    let keys = state.store.list_keys(&caller.tenant).await?;
    let keys: Vec<Value> = keys.iter().map(key_json).collect();
    Ok(Json(json!({ "keys": keys })))
}

/// `DELETE /v1/keys/{key_id}`: revokes.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(key_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_admin()?;
    let key = state.store.revoke_key(&caller.tenant, &key_id).await?;
    Ok(Json(key_json(&key)))
}
