//! `GET/PUT /v1/settings`: the tenant's retention, content policy, recorded
//! types and query auditing. PUT changes only the fields it names; every bad
//! field is reported.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};
use trail_core::event::{EventType, FieldError};
use trail_core::policy::ContentPolicy;
use trail_store::TenantSettings;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::{params, AppState};

fn settings_json(settings: &TenantSettings) -> Value {
    json!({
        "retention_days": settings.retention_days,
        "content_policy": settings.content_policy.as_str(),
        "record_types": settings.record_types.as_ref().map(|types| {
            types.iter().map(|t| t.as_str()).collect::<Vec<_>>()
        }),
        "audit_queries": settings.audit_queries,
    })
}

/// `GET /v1/settings`.
pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_admin()?;
    let settings = state.settings.read(&*state.store, &caller.tenant).await?;
    Ok(Json(settings_json(&settings)))
}

/// `PUT /v1/settings`.
pub async fn update(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_admin()?;
    let fields = params::json_object(&body)?;
    let mut settings = state.settings.read(&*state.store, &caller.tenant).await?;
    let mut errors = Vec::new();
    for (name, value) in &fields {
        let problem = match name.as_str() {
            "retention_days" => match value {
                Value::Null => {
                    settings.retention_days = None;
                    None
                }
                v => match v.as_u64() {
                    Some(days) if (1..=36_500).contains(&days) => {
                        settings.retention_days = Some(days as u32);
                        None
                    }
                    _ => Some("must be null (keep forever) or an integer from 1 to 36500"),
                },
            },
            "content_policy" => {
                match value.as_str().and_then(|s| s.parse::<ContentPolicy>().ok()) {
                    Some(policy) => {
                        settings.content_policy = policy;
                        None
                    }
                    None => Some("must be one of: hash, summary, full"),
                }
            }
            "record_types" => match value {
                Value::Null => {
                    settings.record_types = None;
                    None
                }
                Value::Array(items) => {
                    let types: Option<Vec<EventType>> = items
                        .iter()
                        .map(|item| item.as_str().and_then(|s| s.parse().ok()))
                        .collect();
                    match types {
                        Some(types) => {
                            settings.record_types = Some(types);
                            None
                        }
                        None => Some("must be null or an array of event types"),
                    }
                }
                _ => Some("must be null or an array of event types"),
            },
            "audit_queries" => match value.as_bool() {
                Some(on) => {
                    settings.audit_queries = on;
                    None
                }
                None => Some("must be true or false"),
            },
            _ => Some("unknown field"),
        };
        if let Some(message) = problem {
            errors.push(FieldError {
                field: name.clone(),
                message: message.into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            "invalid settings; nothing changed",
            errors,
        ));
    }
    state.store.put_settings(&caller.tenant, &settings).await?;
    state.settings.forget(&caller.tenant);
    Ok(Json(settings_json(&settings)))
}
