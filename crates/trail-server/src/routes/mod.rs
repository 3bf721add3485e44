//! The v1 routes, one module per resource, and the layers around them
//! (request timeout, status counting).

mod audit;
mod events;
mod export;
mod keys;
mod log;
pub use keys::key_json;
mod ops;
mod retention;
mod settings;
mod stats;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

use crate::{AppState, ServerConfig};

/// Builds the router.
pub fn router(state: AppState, config: &ServerConfig) -> Router {
    Router::new()
        .route("/v1/events", get(events::list).post(events::ingest))
        .route("/v1/events/{id}", get(events::detail))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/log", get(log::log))
        .route("/v1/checkpoint", get(log::checkpoint))
        .route("/v1/proof/inclusion", get(log::inclusion))
        .route("/v1/proof/consistency", get(log::consistency))
        .route("/v1/export", get(export::export))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{key_id}", delete(keys::revoke))
        .route("/v1/settings", get(settings::show).put(settings::update))
        .route("/v1/retention/run", post(retention::run))
        .route("/v1/erasure", post(retention::erase))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(ops::not_found)
        // Ingest reads its body itself, against trail's own limit.
        .layer(DefaultBodyLimit::disable())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), count_status))
        .with_state(state)
}

async fn count_status(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    state.metrics.record_status(response.status().as_u16());
    response
}
