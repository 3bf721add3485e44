//! SHA-256 helpers: plain hashes, the content hash clients may compute
//! themselves, the RFC 6962 leaf hash of a sealed envelope, and the salted
//! digest that binds erasable content to its envelope.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::jcs;

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Hash of an `input`/`output` body: SHA-256 of the UTF-8 bytes when the
/// value is a JSON string, otherwise of its JCS encoding.
pub fn content_hash(value: &Value) -> [u8; 32] {
    match value {
        Value::String(s) => sha256(s.as_bytes()),
        other => sha256(&content_bytes(other)),
    }
}

/// Size of an `input`/`output` body under the same rule as [`content_hash`].
pub fn content_size(value: &Value) -> u64 {
    let len = match value {
        Value::String(s) => s.len(),
        other => content_bytes(other).len(),
    };
    len as u64
}

/// RFC 6962 leaf hash: SHA-256(0x00 || leaf).
pub fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

/// Salted content digest: SHA-256(salt || content_jcs). The random salt
/// keeps low-entropy content (an e-mail address) from being guessed from the
/// digest once the content itself has been erased.
pub fn content_digest(salt: &[u8; 32], content_jcs: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(content_jcs);
    h.finalize().into()
}

/// Lowercase hex of a 32-byte hash, the form used in envelopes and views.
pub fn to_hex(hash: &[u8; 32]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for &b in hash {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// JCS bytes of a non-string body.
///
/// `jcs::to_vec` only fails on a non-finite number, which a
/// `serde_json::Value` cannot hold (its numbers are always finite); should
/// that ever change, fall back to serde_json's compact encoding rather than
/// panic, so the function stays total.
fn content_bytes(value: &Value) -> Vec<u8> {
    jcs::to_vec(value)
        .or_else(|_| serde_json::to_vec(value))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_content_hashes_raw_bytes() {
        let v = Value::String("héllo".into());
        assert_eq!(content_hash(&v), sha256("héllo".as_bytes()));
        assert_eq!(content_size(&v), 6);
        let o = serde_json::json!({"b": 1, "a": [1.0]});
        assert_eq!(content_hash(&o), sha256(br#"{"a":[1],"b":1}"#));
        assert_eq!(content_size(&o), 15);
    }

    #[test]
    fn hex_matches_hex_crate() {
        let h = sha256(b"x");
        assert_eq!(to_hex(&h), hex::encode(h));
    }

    #[test]
    fn leaf_and_digest() {
        assert_eq!(leaf_hash(b"abc"), sha256(b"\0abc"));
        let salt = [7u8; 32];
        let mut joined = salt.to_vec();
        joined.extend_from_slice(b"{}");
        assert_eq!(content_digest(&salt, b"{}"), sha256(&joined));
    }
}
