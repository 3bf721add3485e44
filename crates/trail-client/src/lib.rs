//! trail-client: the Rust recording SDK of trail.
//!
//! ```no_run
//! # async fn run() -> Result<(), std::io::Error> {
//! let trail = trail_client::Recorder::from_env();   // TRAIL_URL, TRAIL_KEY, ...
//! let rows = trail
//!     .tool_call("db.query", serde_json::json!({"sql": "select 1"}), async {
//!         Ok::<_, std::io::Error>(vec![1])
//!     })
//!     .await?;
//! # let _ = rows; Ok(()) }
//! ```
//!
//! [`Recorder::record`] never blocks and never fails: an event goes to a
//! bounded in-memory queue, from which a background thread sends batches
//! (by size and by time) to the sink, retrying with exponential backoff and
//! jitter. What cannot be delivered (server unreachable, queue full) goes to
//! a disk spool of fsync'd, append-only segments that is replayed in order,
//! also after a restart, and deleted only once acknowledged. Every event
//! carries a UUIDv7 id made here, so a resend is answered `duplicate` and
//! never stored twice.
//!
//! `TRAIL_ENABLED=false` makes the recorder a no-op: no thread, no file, no
//! socket.

mod config;
mod helpers;
mod recorder;
mod sink;
mod spool;

pub use config::{Config, SinkConfig};
pub use helpers::LlmStream;
pub use recorder::{Counters, Recorder};
