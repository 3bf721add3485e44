//! `GET/PUT /v1/settings`: the tenant's retention, content policy, recorded
//! types and query auditing. PUT changes only the fields it names; every bad
//! field is reported (the validation is [`crate::tenant_settings`]'s).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::tenant_settings::{apply_fields, settings_json};
use crate::{params, AppState};

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
    apply_fields(&mut settings, &fields)
        .map_err(|errors| ApiError::invalid("invalid settings; nothing changed", errors))?;
    state.store.put_settings(&caller.tenant, &settings).await?;
    state.settings.forget(&caller.tenant);
    Ok(Json(settings_json(&settings)))
}
