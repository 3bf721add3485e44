//! Reading stored records back: the idempotency digest of a stored envelope
//! and the flat JSON view the API serves.

use serde_json::{Map, Value};

use super::envelope::{CONTENT_DIGEST, SEAL_KEYS};
use super::RecordError;
use crate::hashing::{sha256, to_hex};
use crate::jcs;

fn parse_object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, RecordError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RecordError::NotAnObject { what }),
        Err(e) => Err(RecordError::InvalidJson {
            what,
            message: e.to_string(),
        }),
    }
}

/// The idempotency digest computed from a stored envelope: parse, drop
/// `tenant_id`, `seq`, `received_at` and `content_digest`, JCS, SHA-256.
/// Equals [`super::PreparedEvent::idempotency_digest`] of the event sealed
/// into it.
pub fn idempotency_digest_of_envelope(envelope: &[u8]) -> Result<[u8; 32], RecordError> {
    let mut map = parse_object(envelope, "envelope")?;
    for key in SEAL_KEYS.iter().chain([&CONTENT_DIGEST]) {
        map.remove(*key);
    }
    Ok(sha256(&jcs::to_vec(&Value::Object(map))?))
}

/// The flat view served by the API: envelope members (including
/// `tenant_id`, `seq`, `received_at`), content members when `content` is
/// given, `leaf_hash` (hex) and `content_erased`.
pub fn flat_view(
    envelope: &[u8],
    content: Option<&[u8]>,
    leaf_hash: &[u8; 32],
    content_erased: bool,
) -> Result<Map<String, Value>, RecordError> {
    let mut map = parse_object(envelope, "envelope")?;
    if let Some(bytes) = content {
        map.extend(parse_object(bytes, "content")?);
    }
    map.insert("leaf_hash".into(), Value::String(to_hex(leaf_hash)));
    map.insert("content_erased".into(), Value::Bool(content_erased));
    Ok(map)
}
