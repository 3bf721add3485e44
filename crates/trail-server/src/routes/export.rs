//! `GET /v1/export`: the tenant's whole log as a verifiable NDJSON bundle,
//! streamed page by page.
//!
//! Line 1: `{"kind":"log","origin","vkey","tenant_id","tree_size"}`. Then,
//! when the start of the log was retired, the leaf hashes of the retired
//! records as `{"kind":"retired","first_seq","leaf_hashes":[hex, ...]}`
//! (up to 1000 per line, in seq order). Then one
//! `{"kind":"record","seq","leaf_hash","envelope","content","content_salt",
//! "content_erased"}` per record in seq order, where `envelope` and
//! `content` are the stored JCS bytes verbatim. Last, every kept checkpoint
//! up to the bundle's size as `{"kind":"checkpoint","note"}`; the newest
//! covers every record of the bundle (it is cut when the export starts).
//! A user-bound read key cannot export: a bundle is the whole log. Every
//! export is recorded as an `events.export` event before it starts.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::stream;
use serde_json::{json, Map};
use trail_store::{EventQuery, Order, ReadScope, Store, StoredCheckpoint, StoredRecord};

use crate::auth::authenticate;
use crate::error::ApiError;
use crate::AppState;

/// Records per store read while streaming.
const PAGE: u32 = 1000;

/// Retired leaf hashes per `retired` line.
const RETIRED_PER_LINE: u64 = 1000;

/// `GET /v1/export`.
pub async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = authenticate(&*state.store, &headers).await?;
    let scope = caller.require_read()?;
    if scope.bound_user.is_some() {
        return Err(ApiError::forbidden(
            "a user-bound key cannot export: a bundle holds the whole log",
        ));
    }
    let latest = state.signer.cut(&*state.store, &caller.tenant).await?;
    let checkpoints: Vec<StoredCheckpoint> = state
        .store
        .checkpoints(&caller.tenant)
        .await?
        .into_iter()
        .filter(|c| c.size <= latest.size)
        .collect();
    let retired = state.store.retired(&caller.tenant).await?.min(latest.size);
    let mut read = Map::new();
    read.insert("tree_size".into(), latest.size.into());
    read.insert("retired".into(), retired.into());
    super::audit::record_read(&state, &caller, "events.export", read).await?;
    let header_line = json!({
        "kind": "log",
        "origin": state.signer.origin(&caller.tenant),
        "vkey": state.signer.vkey(),
        "tenant_id": caller.tenant.name,
        "tree_size": latest.size,
    })
    .to_string()
        + "\n";
    let exporter = Exporter {
        store: state.store.clone(),
        scope,
        size: latest.size,
        retired,
        next: 0,
        checkpoints,
        header: Some(header_line),
    };
    let body = stream::unfold(exporter, |mut exporter| async move {
        match exporter.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), exporter)),
            Ok(None) => None,
            Err(error) => {
                tracing::error!(%error, "export failed midway");
                Some((
                    Err(std::io::Error::other(error.to_string())),
                    exporter.finished(),
                ))
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response())
}

struct Exporter {
    store: std::sync::Arc<dyn Store>,
    scope: ReadScope,
    size: u64,
    /// Seqs below this were retired: only their leaf hashes are sent.
    retired: u64,
    /// The next seq to send.
    next: u64,
    checkpoints: Vec<StoredCheckpoint>,
    header: Option<String>,
}

impl Exporter {
    fn finished(mut self) -> Self {
        self.retired = 0;
        self.next = self.size;
        self.checkpoints.clear();
        self.header = None;
        self
    }

    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, trail_store::StoreError> {
        if let Some(header) = self.header.take() {
            return Ok(Some(header.into_bytes()));
        }
        if self.next < self.retired {
            let first = self.next;
            let end = self.retired.min(first + RETIRED_PER_LINE);
            let leaves = trail_store::retention::retired_leaves(
                &*self.store,
                &self.scope.tenant,
                first,
                end,
            )
            .await?;
            if leaves.len() as u64 != end - first {
                return Err(trail_store::StoreError::Corrupt(format!(
                    "the leaf hash of retired seq {} is missing",
                    first + leaves.len() as u64
                )));
            }
            let hashes: Vec<String> = leaves.iter().map(hex::encode).collect();
            let line = json!({"kind": "retired", "first_seq": first, "leaf_hashes": hashes});
            self.next = end;
            return Ok(Some((line.to_string() + "\n").into_bytes()));
        }
        if self.next < self.size {
            let page = self
                .store
                .query(
                    &self.scope,
                    &EventQuery {
                        order: Order::Asc,
                        limit: PAGE,
                        after_seq: self.next.checked_sub(1),
                        ..EventQuery::default()
                    },
                )
                .await?;
            if page.records.first().is_some_and(|r| r.seq != self.next) {
                return Err(trail_store::StoreError::Corrupt(format!(
                    "records from seq {} are missing (retired while exporting?)",
                    self.next
                )));
            }
            let mut chunk = Vec::with_capacity(page.records.len() * 1200);
            for record in page.records.iter().take_while(|r| r.seq < self.size) {
                write_record(&mut chunk, record);
                self.next = record.seq + 1;
            }
            if page.records.is_empty() {
                return Err(trail_store::StoreError::Corrupt(format!(
                    "records from seq {} are missing",
                    self.next
                )));
            }
            return Ok(Some(chunk));
        }
        if self.checkpoints.is_empty() {
            return Ok(None);
        }
        let mut chunk = Vec::new();
        for checkpoint in self.checkpoints.drain(..) {
            chunk.extend_from_slice(
                json!({"kind": "checkpoint", "note": checkpoint.note})
                    .to_string()
                    .as_bytes(),
            );
            chunk.push(b'\n');
        }
        Ok(Some(chunk))
    }
}

/// One record line; envelope and content are the stored JCS bytes.
fn write_record(out: &mut Vec<u8>, record: &StoredRecord) {
    out.extend_from_slice(b"{\"kind\":\"record\",\"seq\":");
    out.extend_from_slice(record.seq.to_string().as_bytes());
    out.extend_from_slice(b",\"leaf_hash\":\"");
    out.extend_from_slice(hex::encode(record.leaf_hash).as_bytes());
    out.extend_from_slice(b"\",\"envelope\":");
    out.extend_from_slice(&record.envelope);
    out.extend_from_slice(b",\"content\":");
    match (&record.content, &record.content_salt) {
        (Some(content), Some(salt)) => {
            out.extend_from_slice(content);
            out.extend_from_slice(b",\"content_salt\":\"");
            out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(salt)
                    .as_bytes(),
            );
            out.push(b'"');
        }
        _ => out.extend_from_slice(b"null,\"content_salt\":null"),
    }
    out.extend_from_slice(b",\"content_erased\":");
    out.extend_from_slice(if record.content_erased {
        b"true"
    } else {
        b"false"
    });
    out.extend_from_slice(b"}\n");
}
