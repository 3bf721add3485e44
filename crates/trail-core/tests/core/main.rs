//! trail-core's integration tests, one target so they link once: request
//! bodies, event validation, records, and the published test vectors (JCS,
//! RFC 6962 trees and proofs, C2SP signed notes and checkpoints).

mod batch;
mod event;
mod record;
mod transparency;
mod vectors;

use std::path::PathBuf;

use serde_json::Value;

/// Loads a vector file from `testdata/`.
pub fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read test vector file");
    serde_json::from_str(&text).expect("test vector file is JSON")
}

/// A string member that must be there.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key}"))
}
