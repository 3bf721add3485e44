//! Splitting an ingest request body into individual event values.
//!
//! A body is one JSON object, a JSON array of objects, or NDJSON (one object
//! per line, blank lines ignored). Each event's raw text is first isolated as
//! a [`RawValue`], so its size is checked before any `Value` tree is built;
//! serde_json skips over raw values without recursion, and builds `Value`s
//! with a nesting limit, so arbitrarily deep input is rejected without
//! risking the stack. Whether each element is an object is left to
//! [`crate::event::parse_event`], which reports it as a field error.

use serde_json::value::RawValue;
use serde_json::Value;

use crate::limits::{MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_REQUEST_BYTES};

/// Why a request body cannot be split into events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    /// The body is not valid UTF-8.
    #[error("request body is not valid UTF-8")]
    InvalidUtf8,
    /// The body is not valid JSON / NDJSON.
    #[error("malformed JSON at {location}: {message}")]
    Malformed {
        /// Where: `line 3`, `line 1 column 17`, `[2]`.
        location: String,
        /// What the parser expected.
        message: String,
    },
    /// Nesting deeper than the parser's limit (128 levels).
    #[error("JSON nested too deeply at {location}")]
    TooDeep {
        /// Where: `[2]`, `line 3`, `body`.
        location: String,
    },
    /// One event's raw JSON text exceeds the per-event limit.
    #[error("event {index} is {size} bytes; the limit is {limit}")]
    EventTooLarge {
        /// Zero-based position of the event in the body.
        index: usize,
        /// Its size in bytes.
        size: usize,
        /// [`MAX_EVENT_BYTES`].
        limit: usize,
    },
    /// More events than one request may carry.
    #[error("{count} events in one request; the limit is {limit}")]
    TooManyEvents {
        /// Events found (counting stops a little past the limit for NDJSON).
        count: usize,
        /// [`MAX_BATCH_EVENTS`].
        limit: usize,
    },
    /// The whole body exceeds the request limit.
    #[error("request body is {size} bytes; the limit is {limit}")]
    RequestTooLarge {
        /// Body size in bytes.
        size: usize,
        /// [`MAX_REQUEST_BYTES`].
        limit: usize,
    },
    /// No events at all (empty body, `[]`, or only blank lines).
    #[error("request contains no events")]
    Empty,
}

impl BatchError {
    /// True for the size/count limits (HTTP 413); false for malformed input
    /// (HTTP 400).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            BatchError::EventTooLarge { .. }
                | BatchError::TooManyEvents { .. }
                | BatchError::RequestTooLarge { .. }
        )
    }
}

/// Splits `body` into event values.
///
/// With `ndjson` the body is always read as NDJSON. Otherwise it is read as
/// one JSON value (an object, or an array of events); if it is not a single
/// value but its first line is a complete JSON object, it is read as NDJSON.
pub fn split_body(body: &[u8], ndjson: bool) -> Result<Vec<Value>, BatchError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(BatchError::RequestTooLarge {
            size: body.len(),
            limit: MAX_REQUEST_BYTES,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| BatchError::InvalidUtf8)?;
    if text.trim_ascii().is_empty() {
        return Err(BatchError::Empty);
    }
    if ndjson {
        return split_ndjson(text);
    }
    // An array is split straight into its raw elements: one scan fewer than
    // parsing the whole body as a value first (this is the bulk path).
    if text.trim_ascii_start().starts_with('[') {
        return split_array(text);
    }
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => split_single(raw),
        Err(_) if looks_like_ndjson(text) => split_ndjson(text),
        Err(err) => Err(body_error(&err)),
    }
}

/// A body that parsed as one JSON value: an object or an array of events.
fn split_single(raw: &RawValue) -> Result<Vec<Value>, BatchError> {
    let text = raw.get();
    if !text.starts_with('[') {
        check_size(0, text)?;
        return to_value(text, || "body".to_owned()).map(|v| vec![v]);
    }
    split_array(text)
}

/// A JSON array of events.
fn split_array(text: &str) -> Result<Vec<Value>, BatchError> {
    let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|e| body_error(&e))?;
    if items.is_empty() {
        return Err(BatchError::Empty);
    }
    if items.len() > MAX_BATCH_EVENTS {
        return Err(BatchError::TooManyEvents {
            count: items.len(),
            limit: MAX_BATCH_EVENTS,
        });
    }
    for (i, item) in items.iter().enumerate() {
        check_size(i, item.get())?;
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| to_value(item.get(), || format!("[{i}]")))
        .collect()
}

fn split_ndjson(text: &str) -> Result<Vec<Value>, BatchError> {
    let mut raws: Vec<(usize, &RawValue)> = Vec::new();
    for (n, line) in text.split('\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let raw: &RawValue = serde_json::from_str(line).map_err(|e| BatchError::Malformed {
            location: format!("line {}", n + 1),
            message: format!("{} at column {}", strip_position(&e), e.column()),
        })?;
        if raws.len() == MAX_BATCH_EVENTS {
            return Err(BatchError::TooManyEvents {
                count: MAX_BATCH_EVENTS + 1,
                limit: MAX_BATCH_EVENTS,
            });
        }
        check_size(raws.len(), raw.get())?;
        raws.push((n + 1, raw));
    }
    if raws.is_empty() {
        return Err(BatchError::Empty);
    }
    raws.into_iter()
        .map(|(line, raw)| to_value(raw.get(), || format!("line {line}")))
        .collect()
}

/// The body failed to parse as one value: is it several values, one per
/// line? True when the first non-blank line is itself a complete JSON object.
fn looks_like_ndjson(text: &str) -> bool {
    let Some(first) = text
        .split('\n')
        .map(str::trim_ascii)
        .find(|l| !l.is_empty())
    else {
        return false;
    };
    first.starts_with('{')
        && first.len() < text.trim_ascii().len()
        && serde_json::from_str::<&RawValue>(first).is_ok()
}

fn check_size(index: usize, raw: &str) -> Result<(), BatchError> {
    if raw.len() > MAX_EVENT_BYTES {
        return Err(BatchError::EventTooLarge {
            index,
            size: raw.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    Ok(())
}

/// Builds the `Value` of one already-validated raw event. Its syntax is
/// known good, so the only possible failure is the nesting limit.
fn to_value(raw: &str, location: impl Fn() -> String) -> Result<Value, BatchError> {
    serde_json::from_str(raw).map_err(|e| {
        if is_recursion_limit(&e) {
            BatchError::TooDeep {
                location: location(),
            }
        } else {
            BatchError::Malformed {
                location: location(),
                message: strip_position(&e),
            }
        }
    })
}

fn body_error(e: &serde_json::Error) -> BatchError {
    if is_recursion_limit(e) {
        return BatchError::TooDeep {
            location: "body".into(),
        };
    }
    BatchError::Malformed {
        location: format!("line {} column {}", e.line(), e.column()),
        message: strip_position(e),
    }
}

/// serde_json exposes no error code for its recursion limit, only the text.
fn is_recursion_limit(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("recursion limit exceeded")
}

/// The error message without serde_json's " at line L column C" suffix.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
