//! `GET /v1/stats`: counts per time bucket, per type, top names, error rate
//! and duration percentiles over the filtered records.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::{params, AppState};

/// Answers the stats of the caller's records.
pub async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    let scope = caller.require_read()?;
    let query = params::stats_query(pairs.clone())?;
    let stats = state.store.stats(&scope, &query).await?;
    super::audit::record_query(&state, &caller, "GET /v1/stats", &pairs).await?;
    let buckets: Vec<Value> = stats
        .buckets
        .iter()
        .map(|b| {
            json!({
                "start": trail_core::time::format_rfc3339(b.start),
                "count": b.count,
                "errors": b.errors,
            })
        })
        .collect();
    let by_type: Map<String, Value> = stats
        .by_type
        .iter()
        .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
        .collect();
    let top_names: Vec<Value> = stats
        .top_names
        .iter()
        .map(|(name, count)| json!({"name": name, "count": count}))
        .collect();
    let error_rate = if stats.total == 0 {
        0.0
    } else {
        stats.errors as f64 / stats.total as f64
    };
    Ok(Json(json!({
        "buckets": buckets,
        "by_type": by_type,
        "top_names": top_names,
        "total": stats.total,
        "errors": stats.errors,
        "error_rate": error_rate,
        "duration_ms": {"p50": stats.p50_duration_ms, "p95": stats.p95_duration_ms},
    })))
}
