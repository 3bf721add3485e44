//! The event a client sends, and its validation into a normalized [`Event`].
//!
//! Validation never stops at the first problem: [`parse_event`] checks every
//! field and returns every [`FieldError`], so a client can fix a request in
//! one round trip. Content hashes and sizes of `input`/`output` are computed
//! here, over the raw (unredacted) content the client sent.

mod fields;
mod kinds;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::hashing::{content_hash, content_size};
use crate::limits::{
    MAX_DOCUMENT_IDS, MAX_ERROR_BYTES, MAX_METADATA_BYTES, MAX_NAME_CHARS, MAX_SUMMARY_BYTES,
};
use fields::Errors;
pub use kinds::{EventType, Status, Transport, UnknownVariant};

/// One problem with one field of a submitted event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The offending member name (`""` for the event itself; `"[3].name"`
    /// inside a batch; `"document_ids[2]"` for an array item).
    pub field: String,
    /// What is wrong, in plain English.
    pub message: String,
}

/// A validated, normalized event.
///
/// Times are Unix microseconds (UTC); ids are lowercase; hashes are raw
/// bytes. `duration_ms` is derived from the two times when both are given.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Client-chosen event id (any UUID version), if sent.
    pub id: Option<Uuid>,
    /// What kind of action this is.
    pub event_type: EventType,
    /// Short name of the action (model, tool, endpoint...), 1..=256 chars.
    pub name: String,
    /// Outcome; `ok` unless the client says otherwise.
    pub status: Status,
    /// Error message (at most 4096 bytes).
    pub error: Option<String>,
    /// Start time, Unix microseconds.
    pub started_at: Option<i64>,
    /// End time, Unix microseconds; never before `started_at`.
    pub ended_at: Option<i64>,
    /// Duration in milliseconds (sent, or derived from the times).
    pub duration_ms: Option<u64>,
    /// Acting end user.
    pub user_id: Option<String>,
    /// End user's e-mail address (erasable content).
    pub user_email: Option<String>,
    /// Agent that acted.
    pub agent_id: Option<String>,
    /// Project the action belongs to.
    pub project_id: Option<String>,
    /// Conversation or session.
    pub session_id: Option<String>,
    /// Task within the session.
    pub task_id: Option<String>,
    /// W3C trace id, 32 lowercase hex digits.
    pub trace_id: Option<String>,
    /// Span id, 16 lowercase hex digits.
    pub span_id: Option<String>,
    /// Parent span id, 16 lowercase hex digits.
    pub parent_span_id: Option<String>,
    /// How the event reached trail.
    pub transport: Option<Transport>,
    /// Model provider.
    pub provider: Option<String>,
    /// Model name.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: Option<u64>,
    /// Completion tokens.
    pub output_tokens: Option<u64>,
    /// Process exit code of a tool.
    pub exit_code: Option<i64>,
    /// HTTP status of a request (100..=599).
    pub http_status: Option<u16>,
    /// Whether a tool result was truncated by the client.
    pub result_truncated: Option<bool>,
    /// Whether a human confirmed the action.
    pub confirmed: Option<bool>,
    /// Request body / prompt, as sent (unredacted).
    pub input: Option<Value>,
    /// Response body / completion, as sent (unredacted).
    pub output: Option<Value>,
    /// SHA-256 of the input (see [`crate::hashing::content_hash`]).
    pub input_hash: Option<[u8; 32]>,
    /// SHA-256 of the output.
    pub output_hash: Option<[u8; 32]>,
    /// Size of the input (see [`crate::hashing::content_size`]).
    pub input_bytes: Option<u64>,
    /// Size of the output.
    pub output_bytes: Option<u64>,
    /// Human-readable input summary (at most 4096 bytes).
    pub input_summary: Option<String>,
    /// Human-readable output summary (at most 4096 bytes).
    pub output_summary: Option<String>,
    /// Documents touched by the action.
    pub document_ids: Vec<String>,
    /// Free-form client metadata (a JSON object, JCS size at most 16 KiB).
    pub metadata: Option<Map<String, Value>>,
}

/// The raw members of an event object, null already mapped to `None`.
#[derive(Default)]
struct Raw {
    id: Option<Value>,
    event_type: Option<Value>,
    name: Option<Value>,
    status: Option<Value>,
    error: Option<Value>,
    started_at: Option<Value>,
    ended_at: Option<Value>,
    duration_ms: Option<Value>,
    user_id: Option<Value>,
    user_email: Option<Value>,
    agent_id: Option<Value>,
    project_id: Option<Value>,
    session_id: Option<Value>,
    task_id: Option<Value>,
    trace_id: Option<Value>,
    span_id: Option<Value>,
    parent_span_id: Option<Value>,
    transport: Option<Value>,
    provider: Option<Value>,
    model: Option<Value>,
    input_tokens: Option<Value>,
    output_tokens: Option<Value>,
    exit_code: Option<Value>,
    http_status: Option<Value>,
    result_truncated: Option<Value>,
    confirmed: Option<Value>,
    input: Option<Value>,
    output: Option<Value>,
    input_hash: Option<Value>,
    output_hash: Option<Value>,
    input_bytes: Option<Value>,
    output_bytes: Option<Value>,
    input_summary: Option<Value>,
    output_summary: Option<Value>,
    document_ids: Option<Value>,
    metadata: Option<Value>,
}

impl Raw {
    /// Sorts the members of `map` into slots; unknown names are errors.
    fn from_map(map: Map<String, Value>, errs: &mut Errors) -> Raw {
        let mut raw = Raw::default();
        for (key, value) in map {
            let slot = match key.as_str() {
                "id" => &mut raw.id,
                "type" => &mut raw.event_type,
                "name" => &mut raw.name,
                "status" => &mut raw.status,
                "error" => &mut raw.error,
                "started_at" => &mut raw.started_at,
                "ended_at" => &mut raw.ended_at,
                "duration_ms" => &mut raw.duration_ms,
                "user_id" => &mut raw.user_id,
                "user_email" => &mut raw.user_email,
                "agent_id" => &mut raw.agent_id,
                "project_id" => &mut raw.project_id,
                "session_id" => &mut raw.session_id,
                "task_id" => &mut raw.task_id,
                "trace_id" => &mut raw.trace_id,
                "span_id" => &mut raw.span_id,
                "parent_span_id" => &mut raw.parent_span_id,
                "transport" => &mut raw.transport,
                "provider" => &mut raw.provider,
                "model" => &mut raw.model,
                "input_tokens" => &mut raw.input_tokens,
                "output_tokens" => &mut raw.output_tokens,
                "exit_code" => &mut raw.exit_code,
                "http_status" => &mut raw.http_status,
                "result_truncated" => &mut raw.result_truncated,
                "confirmed" => &mut raw.confirmed,
                "input" => &mut raw.input,
                "output" => &mut raw.output,
                "input_hash" => &mut raw.input_hash,
                "output_hash" => &mut raw.output_hash,
                "input_bytes" => &mut raw.input_bytes,
                "output_bytes" => &mut raw.output_bytes,
                "input_summary" => &mut raw.input_summary,
                "output_summary" => &mut raw.output_summary,
                "document_ids" => &mut raw.document_ids,
                "metadata" => &mut raw.metadata,
                _ => {
                    errs.push(&key, "unknown field");
                    continue;
                }
            };
            if !value.is_null() {
                *slot = Some(value);
            }
        }
        raw
    }
}

/// Names of trail's own events (`api_request`, transport `system`): the
/// records of retention sweeps, erasures and audited reads. No event that
/// arrives from outside may carry one of them with transport `system`, so
/// that these records can be told apart from anything a client sends (the
/// verifier relies on the sweeps).
pub const RESERVED_NAMES: [&str; 5] = [
    "retention.sweep",
    "erasure",
    "events.read",
    "events.export",
    "events.query",
];

/// Validates and normalizes one event, reporting every bad field.
pub fn parse_event(value: Value) -> Result<Event, Vec<FieldError>> {
    let Value::Object(map) = value else {
        return Err(vec![FieldError {
            field: String::new(),
            message: "event must be a JSON object".into(),
        }]);
    };
    let mut e = Errors::default();
    let raw = Raw::from_map(map, &mut e);

    let id = e
        .string("id", raw.id)
        .and_then(|s| match Uuid::parse_str(&s) {
            Ok(u) => Some(u),
            Err(_) => {
                e.push("id", "must be a UUID");
                None
            }
        });
    let event_type = match raw.event_type {
        None => {
            e.push(
                "type",
                format!("is required; one of: {}", EventType::allowed()),
            );
            None
        }
        v => e.variant("type", v, EventType::parse, EventType::allowed),
    };
    let name = match raw.name {
        None => {
            e.push("name", "is required");
            None
        }
        v => e.short_string("name", v),
    };
    let status = e
        .variant("status", raw.status, Status::parse, Status::allowed)
        .unwrap_or_default();
    let transport = e.variant(
        "transport",
        raw.transport,
        Transport::parse,
        Transport::allowed,
    );
    if transport == Some(Transport::System) {
        if let Some(name) = name.as_deref().filter(|n| RESERVED_NAMES.contains(n)) {
            e.push(
                "name",
                format!("{name:?} with transport \"system\" is reserved for trail's own events"),
            );
        }
    }
    let error = e.bounded_string("error", raw.error, MAX_ERROR_BYTES);
    let input_summary = e.bounded_string("input_summary", raw.input_summary, MAX_SUMMARY_BYTES);
    let output_summary = e.bounded_string("output_summary", raw.output_summary, MAX_SUMMARY_BYTES);
    let user_id = e.short_string("user_id", raw.user_id);
    let user_email = e.short_string("user_email", raw.user_email);
    let agent_id = e.short_string("agent_id", raw.agent_id);
    let project_id = e.short_string("project_id", raw.project_id);
    let session_id = e.short_string("session_id", raw.session_id);
    let task_id = e.short_string("task_id", raw.task_id);
    let provider = e.short_string("provider", raw.provider);
    let model = e.short_string("model", raw.model);
    let trace_id = e.hex_id("trace_id", raw.trace_id, 32);
    let span_id = e.hex_id("span_id", raw.span_id, 16);
    let parent_span_id = e.hex_id("parent_span_id", raw.parent_span_id, 16);

    let started_at = e.timestamp("started_at", raw.started_at);
    let ended_at = e.timestamp("ended_at", raw.ended_at);
    let sent_duration = e.uint("duration_ms", raw.duration_ms);
    let duration_ms = derive_duration(&mut e, started_at, ended_at, sent_duration);

    let input_tokens = e.uint("input_tokens", raw.input_tokens);
    let output_tokens = e.uint("output_tokens", raw.output_tokens);
    let exit_code = e.int("exit_code", raw.exit_code);
    let http_status = raw.http_status.and_then(|v| match v.as_u64() {
        Some(n @ 100..=599) => u16::try_from(n).ok(),
        _ => {
            e.push("http_status", "must be an integer between 100 and 599");
            None
        }
    });
    let result_truncated = e.boolean("result_truncated", raw.result_truncated);
    let confirmed = e.boolean("confirmed", raw.confirmed);

    let (input_hash, input_bytes) = body_facts(
        &mut e,
        ("input", "input_hash", "input_bytes"),
        raw.input.as_ref(),
        raw.input_hash,
        raw.input_bytes,
    );
    let (output_hash, output_bytes) = body_facts(
        &mut e,
        ("output", "output_hash", "output_bytes"),
        raw.output.as_ref(),
        raw.output_hash,
        raw.output_bytes,
    );
    let document_ids = document_ids(&mut e, raw.document_ids);
    let metadata = metadata(&mut e, raw.metadata);

    if !e.0.is_empty() {
        return Err(e.0);
    }
    // Both required fields produced an error above when missing or invalid,
    // and the error list is empty here, so both are present.
    let (Some(event_type), Some(name)) = (event_type, name) else {
        return Err(vec![FieldError {
            field: "type".into(),
            message: "is required".into(),
        }]);
    };
    Ok(Event {
        id,
        event_type,
        name,
        status,
        error,
        started_at,
        ended_at,
        duration_ms,
        user_id,
        user_email,
        agent_id,
        project_id,
        session_id,
        task_id,
        trace_id,
        span_id,
        parent_span_id,
        transport,
        provider,
        model,
        input_tokens,
        output_tokens,
        exit_code,
        http_status,
        result_truncated,
        confirmed,
        input: raw.input,
        output: raw.output,
        input_hash,
        output_hash,
        input_bytes,
        output_bytes,
        input_summary,
        output_summary,
        document_ids,
        metadata,
    })
}

/// Validates a batch, all or nothing; error fields are prefixed with the
/// event's index (`[3].name`, or `[3]` for the event itself).
pub fn parse_events(values: Vec<Value>) -> Result<Vec<Event>, Vec<FieldError>> {
    let mut events = Vec::with_capacity(values.len());
    let mut errors = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        match parse_event(v) {
            Ok(ev) => events.push(ev),
            Err(errs) => errors.extend(errs.into_iter().map(|fe| FieldError {
                field: if fe.field.is_empty() {
                    format!("[{i}]")
                } else {
                    format!("[{i}].{}", fe.field)
                },
                message: fe.message,
            })),
        }
    }
    if errors.is_empty() {
        Ok(events)
    } else {
        Err(errors)
    }
}

/// Checks the two times against each other and derives `duration_ms`.
fn derive_duration(
    e: &mut Errors,
    started: Option<i64>,
    ended: Option<i64>,
    sent: Option<u64>,
) -> Option<u64> {
    let (Some(s), Some(t)) = (started, ended) else {
        return sent;
    };
    if t < s {
        e.push("ended_at", "must not be before started_at");
        return None;
    }
    // i128 so a span across the whole i64 range cannot overflow.
    let derived = u64::try_from((i128::from(t) - i128::from(s)) / 1000).unwrap_or(u64::MAX);
    if let Some(d) = sent {
        if d.abs_diff(derived) > 1 {
            e.push(
                "duration_ms",
                format!("does not match ended_at - started_at ({derived} ms)"),
            );
            return None;
        }
    }
    Some(derived)
}

/// Computes (or checks) the hash and size of an `input`/`output` body.
fn body_facts(
    e: &mut Errors,
    (body_field, hash_field, bytes_field): (&str, &str, &str),
    body: Option<&Value>,
    sent_hash: Option<Value>,
    sent_bytes: Option<Value>,
) -> (Option<[u8; 32]>, Option<u64>) {
    let sent_hash = e.sha256_hex(hash_field, sent_hash);
    let sent_bytes = e.uint(bytes_field, sent_bytes);
    let Some(body) = body else {
        return (sent_hash, sent_bytes);
    };
    let hash = content_hash(body);
    let bytes = content_size(body);
    if sent_hash.is_some_and(|h| h != hash) {
        e.push(hash_field, format!("does not match {body_field}"));
    }
    if sent_bytes.is_some_and(|b| b != bytes) {
        e.push(
            bytes_field,
            format!("does not match the size of {body_field} ({bytes} bytes)"),
        );
    }
    (Some(hash), Some(bytes))
}

fn document_ids(e: &mut Errors, v: Option<Value>) -> Vec<String> {
    let Some(v) = v else { return Vec::new() };
    let Value::Array(items) = v else {
        e.push("document_ids", "must be an array of strings");
        return Vec::new();
    };
    if items.len() > MAX_DOCUMENT_IDS {
        e.push(
            "document_ids",
            format!("must have at most {MAX_DOCUMENT_IDS} items"),
        );
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let field = format!("document_ids[{i}]");
        match item {
            Value::String(s) if !s.is_empty() && s.chars().count() <= MAX_NAME_CHARS => out.push(s),
            _ => e.push(
                &field,
                format!("must be a string of 1 to {MAX_NAME_CHARS} characters"),
            ),
        }
    }
    out
}

fn metadata(e: &mut Errors, v: Option<Value>) -> Option<Map<String, Value>> {
    let Value::Object(map) = v? else {
        e.push("metadata", "must be a JSON object");
        return None;
    };
    let mut buf = Vec::new();
    for (key, value) in &map {
        // Measure member by member so an oversized object fails fast.
        crate::jcs::write_string(key, &mut buf);
        if crate::jcs::write(value, &mut buf).is_err() || buf.len() > MAX_METADATA_BYTES {
            e.push(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes when canonicalized"),
            );
            return None;
        }
    }
    // Braces, colons and commas of the object itself.
    let total = buf.len() + 2 + map.len() * 2 - usize::from(!map.is_empty());
    if total > MAX_METADATA_BYTES {
        e.push(
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes when canonicalized"),
        );
        return None;
    }
    Some(map)
}
