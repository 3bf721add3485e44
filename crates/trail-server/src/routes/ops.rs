//! Operations endpoints: liveness, readiness, Prometheus metrics, and the
//! problem+json 404 for unknown paths.

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::error::ApiError;
use crate::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers.
pub async fn readyz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state
        .store
        .has_no_keys()
        .await
        .map_err(|error| ApiError::unavailable(format!("store not ready: {error}")))?;
    Ok((StatusCode::OK, Json(json!({"status": "ready"}))))
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let text = state.metrics.render(&state.store.writer_metrics());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Any other path.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}
