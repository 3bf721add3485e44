//! The stored record: an event split into a sealed **envelope** (everything
//! needed to audit what happened, hashed into the Merkle log) and erasable
//! **content** (personal or sensitive data, bound to the envelope only by a
//! salted digest so it can be deleted without breaking the log).
//!
//! [`prepare`] does all the per-event work that needs no log state
//! (redaction, content policy, encoding); [`PreparedEvent::seal`] is the
//! cheap step the single log writer performs once it has assigned a `seq`.

mod envelope;
mod prepare;
mod view;

use uuid::Uuid;

use crate::event::{EventType, Status, Transport};

pub use prepare::prepare;
pub use view::{flat_view, idempotency_digest_of_envelope};

/// An event ready to be sealed: index columns, erasable content, and the
/// envelope members pre-encoded in canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedEvent {
    /// The event id (client-sent, or the caller's fallback).
    pub id: Uuid,
    /// Values the store indexes in columns.
    pub index: IndexFields,
    /// Erasable content, if the policy kept any.
    pub content: Option<Content>,
    /// Envelope members (without `tenant_id`, `seq`, `received_at`).
    members: envelope::Members,
}

/// Erasable content of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Per-event random salt of the content digest (supplied by the caller).
    pub salt: [u8; 32],
    /// JCS encoding of the content object.
    pub bytes: Vec<u8>,
}

/// Event fields the store keeps in indexed columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFields {
    /// Event type.
    pub event_type: EventType,
    /// Event name.
    pub name: String,
    /// Outcome.
    pub status: Status,
    /// Start time, Unix microseconds.
    pub started_at: Option<i64>,
    /// Duration in milliseconds.
    pub duration_ms: Option<u64>,
    /// Acting end user.
    pub user_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Project.
    pub project_id: Option<String>,
    /// Task.
    pub task_id: Option<String>,
    /// Agent.
    pub agent_id: Option<String>,
    /// Model provider.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// Transport.
    pub transport: Option<Transport>,
    /// Human confirmation.
    pub confirmed: Option<bool>,
    /// Documents touched.
    pub document_ids: Vec<String>,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    pub output_tokens: Option<u64>,
}

/// A sealed envelope and its Merkle leaf hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// JCS bytes of the complete envelope.
    pub envelope: Vec<u8>,
    /// RFC 6962 leaf hash of `envelope`.
    pub leaf_hash: [u8; 32],
}

/// A stored envelope or content blob that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not valid JSON.
    #[error("{what} is not valid JSON: {message}")]
    InvalidJson {
        /// `"envelope"` or `"content"`.
        what: &'static str,
        /// Parser message.
        message: String,
    },
    /// Valid JSON, but not an object.
    #[error("{what} is not a JSON object")]
    NotAnObject {
        /// `"envelope"` or `"content"`.
        what: &'static str,
    },
    /// Could not be canonicalized.
    #[error("envelope cannot be canonicalized: {0}")]
    Jcs(#[from] crate::jcs::JcsError),
}

impl PreparedEvent {
    /// Called by the single writer once it has assigned `seq`: merges
    /// `tenant_id`, `seq` and `received_at` into the pre-sorted members (pure
    /// byte concatenation, no re-encoding) and returns the JCS envelope and
    /// its leaf hash. The bytes equal `jcs::to_vec` of the same object.
    ///
    /// `seq` is written as a JCS number, exact up to 2^53.
    pub fn seal(&self, tenant_id: &str, seq: u64, received_at_us: i64) -> Sealed {
        let envelope = self.members.seal(tenant_id, seq, received_at_us);
        let leaf_hash = crate::hashing::leaf_hash(&envelope);
        Sealed {
            envelope,
            leaf_hash,
        }
    }

    /// SHA-256 of the JCS envelope without `tenant_id`, `seq`, `received_at`
    /// and `content_digest`: what an idempotent resend must reproduce.
    pub fn idempotency_digest(&self) -> [u8; 32] {
        self.members.idempotency_digest()
    }
}
