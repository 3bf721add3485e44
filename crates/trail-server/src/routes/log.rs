//! The tamper-evidence endpoints: `GET /v1/log` (origin, vkey, size),
//! `GET /v1/checkpoint` (the latest signed checkpoint, cut on demand, or a
//! kept one by `?size=`), and RFC 9162 proofs at `GET /v1/proof/inclusion`
//! and `GET /v1/proof/consistency`. Hashes in JSON are lowercase hex.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::{params, AppState};

fn hex_list(hashes: &[[u8; 32]]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

/// `GET /v1/log`.
pub async fn log(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    let size = state.store.log_size(&caller.tenant).await?;
    Ok(Json(json!({
        "origin": state.signer.origin(&caller.tenant),
        "vkey": state.signer.vkey(),
        "tree_size": size,
    })))
}

/// `GET /v1/checkpoint[?size=N]` as `text/plain`.
pub async fn checkpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_read()?;
    let numbers = params::numbers(pairs, &["size"], &[])?;
    let checkpoint = match numbers.get("size") {
        Some(size) => state
            .store
            .checkpoint(&caller.tenant, *size)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no checkpoint of size {size} is kept")))?,
        None => state.signer.cut(&*state.store, &caller.tenant).await?,
    };
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        checkpoint.note,
    ))
}

/// `GET /v1/proof/inclusion?seq=S[&size=N]`; `size` defaults to the newest
/// checkpoint (cut first when it does not cover `seq`).
pub async fn inclusion(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_read()?;
    let numbers = params::numbers(pairs, &["seq", "size"], &["seq"])?;
    let seq = numbers["seq"];
    let size = match numbers.get("size") {
        Some(size) => *size,
        None => {
            state
                .signer
                .covering(&*state.store, &caller.tenant, seq + 1)
                .await?
                .size
        }
    };
    if seq >= size {
        return Err(ApiError::bad_field(
            "seq",
            format!("must be below the tree size {size}"),
        ));
    }
    let proof = state
        .store
        .inclusion_proof(&caller.tenant, seq, size)
        .await?;
    let leaf = state
        .store
        .tree_nodes(&caller.tenant, 0, seq, seq + 1)
        .await?;
    let leaf_hash = leaf.first().map(|(_, hash)| hex::encode(hash));
    Ok(Json(json!({
        "seq": seq,
        "tree_size": size,
        "leaf_hash": leaf_hash,
        "hashes": hex_list(&proof),
    })))
}

/// `GET /v1/proof/consistency?from=A&to=B`.
pub async fn consistency(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    caller.require_read()?;
    let numbers = params::numbers(pairs, &["from", "to"], &["from", "to"])?;
    let (from, to) = (numbers["from"], numbers["to"]);
    if from == 0 || from > to {
        return Err(ApiError::bad_field("from", "must satisfy 0 < from <= to"));
    }
    let proof = state
        .store
        .consistency_proof(&caller.tenant, from, to)
        .await?;
    Ok(Json(json!({
        "from": from,
        "to": to,
        "hashes": hex_list(&proof),
    })))
}
