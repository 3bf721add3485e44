//! `trail-core` is the pure heart of trail, a tamper-evident audit trail for
//! AI agents: canonical JSON (RFC 8785), hashing, event validation, secret
//! redaction, request-body splitting and the envelope/content record format.
//!
//! The crate is deliberately pure. It performs no I/O, spawns no tasks, reads
//! no clock and draws no random numbers: callers pass in salts, ids and
//! timestamps. Everything here is therefore deterministic and can be tested
//! (and re-run by an auditor) byte for byte.
//!
//! Module map:
//!
//! - [`jcs`]: RFC 8785 JSON Canonicalization Scheme.
//! - [`time`]: RFC 3339 parsing/formatting to and from Unix microseconds.
//! - [`hashing`]: SHA-256 helpers (content hash, RFC 6962 leaf hash, salted digest).
//! - [`event`]: the event a client sends and its validation.
//! - [`batch`]: splitting a request body into events.
//! - [`redact`]: removing secrets before anything is stored.
//! - [`policy`]: how much content is kept.
//! - [`record`]: the envelope/content split, sealing and the flat API view.
//! - [`limits`]: size and count limits shared by all of the above.
//! - [`merkle`]: RFC 6962 / RFC 9162 Merkle trees: compact ranges, proof
//!   generation over stored nodes, proof verification.
//! - [`note`]: C2SP signed notes with Ed25519 keys.
//! - [`checkpoint`]: C2SP transparency log checkpoints.

#![warn(missing_docs)]

pub mod batch;
pub mod checkpoint;
pub mod event;
pub mod hashing;
pub mod jcs;
pub mod limits;
pub mod merkle;
pub mod note;
pub mod policy;
pub mod record;
pub mod redact;
pub mod time;
pub mod verify;
