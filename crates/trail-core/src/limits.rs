//! Size and count limits shared by validation, batch splitting and record
//! preparation. They are part of the API contract: clients see them in error
//! messages and the server sizes its buffers from them.

/// Largest accepted single event, in bytes of its raw JSON text (256 KiB).
pub const MAX_EVENT_BYTES: usize = 262_144;
/// Largest accepted request body, in bytes (16 MiB).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
/// Most events accepted in one batch request.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Longest `name` (and other short identifier strings), in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest `error` message, in UTF-8 bytes.
pub const MAX_ERROR_BYTES: usize = 4096;
/// Longest `input_summary` / `output_summary`, in UTF-8 bytes.
pub const MAX_SUMMARY_BYTES: usize = 4096;
/// Largest `metadata` object, in bytes of its JCS encoding.
pub const MAX_METADATA_BYTES: usize = 16_384;
/// Largest stored `input` / `output` body under the `full` content policy,
/// in bytes (JCS, or UTF-8 for strings); longer bodies are truncated.
pub const MAX_STORED_BODY_BYTES: usize = 65_536;
/// Longest summary kept under the `summary` content policy, in characters.
pub const SUMMARY_POLICY_CHARS: usize = 512;
/// Most entries in `document_ids`.
pub const MAX_DOCUMENT_IDS: usize = 1000;
/// Largest integer accepted for numeric event fields: 2^53 - 1, the largest
/// integer every JSON implementation (and JCS, which goes through `f64`)
/// represents exactly.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
