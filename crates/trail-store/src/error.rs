//! [`StoreError`]: the one error type of every backend, with variants a
//! caller can act on. Driver errors ride along as text in `Backend`, never as
//! the public shape.

use thiserror::Error;

/// What can go wrong in a store.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An event id was reused with a different envelope (HTTP 409).
    #[error("event {id} was already recorded with different content (seq {seq})")]
    Conflict {
        /// The reused event id.
        id: String,
        /// The seq of the record that holds it.
        seq: u64,
    },
    /// The thing asked for does not exist in this tenant.
    #[error("{0} not found")]
    NotFound(String),
    /// The request is invalid for the store (bad cursor, unknown setting...).
    #[error("invalid {field}: {message}")]
    Invalid {
        /// Which parameter.
        field: String,
        /// Why.
        message: String,
    },
    /// The database was written by a newer version of trail.
    #[error("{0}")]
    Incompatible(String),
    /// The stored data does not verify (a tampered or corrupt record).
    #[error("tampered or corrupt record: {0}")]
    Corrupt(String),
    /// The store is shutting down or its writer is gone (HTTP 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database failed (I/O, constraint, driver).
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Wraps a driver error.
    pub fn backend(error: impl std::fmt::Display) -> Self {
        StoreError::Backend(error.to_string())
    }
}
