//! `prepare`: redaction, content policy and envelope encoding of one
//! validated event. Hashes and sizes of the bodies were computed over the
//! raw content during validation; everything stored here is redacted.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::envelope::{Members, CONTENT_DIGEST};
use super::{Content, IndexFields, PreparedEvent};
use crate::event::Event;
use crate::hashing::{content_digest, to_hex};
use crate::jcs::{self, write_number, write_string};
use crate::limits::{MAX_STORED_BODY_BYTES, SUMMARY_POLICY_CHARS};
use crate::policy::ContentPolicy;
use crate::redact::{redact_str, redact_value};
use crate::time::format_rfc3339;

/// Splits a validated event into index fields, erasable content and
/// pre-encoded envelope members. `fallback_id` is used when the event has no
/// id; `salt` salts the content digest.
pub fn prepare(
    event: Event,
    policy: ContentPolicy,
    salt: [u8; 32],
    fallback_id: Uuid,
) -> PreparedEvent {
    let id = event.id.unwrap_or(fallback_id);
    let index = IndexFields {
        event_type: event.event_type,
        name: event.name.clone(),
        status: event.status,
        started_at: event.started_at,
        duration_ms: event.duration_ms,
        user_id: event.user_id.clone(),
        session_id: event.session_id.clone(),
        project_id: event.project_id.clone(),
        task_id: event.task_id.clone(),
        agent_id: event.agent_id.clone(),
        provider: event.provider.clone(),
        model: event.model.clone(),
        transport: event.transport,
        confirmed: event.confirmed,
        document_ids: event.document_ids.clone(),
        input_tokens: event.input_tokens,
        output_tokens: event.output_tokens,
    };

    let content_map = content_object(&event, policy);
    let content = (!content_map.is_empty()).then(|| Content {
        salt,
        // Content values are strings, booleans and parsed JSON bodies, whose
        // numbers are always finite; an error would leave `bytes` empty.
        bytes: jcs::to_vec(&Value::Object(content_map)).unwrap_or_default(),
    });

    let mut members = envelope_members(event, id);
    if let Some(c) = &content {
        let digest = content_digest(&c.salt, &c.bytes);
        members.push(CONTENT_DIGEST, |o| write_string(&to_hex(&digest), o));
    }
    members.finish();

    PreparedEvent {
        id,
        index,
        content,
        members,
    }
}

/// The erasable content the policy keeps, redacted and truncated.
fn content_object(event: &Event, policy: ContentPolicy) -> Map<String, Value> {
    let mut map = Map::new();
    if let Some(email) = &event.user_email {
        map.insert("user_email".into(), Value::String(email.clone()));
    }
    if policy == ContentPolicy::Hash {
        return map;
    }
    let summaries = [
        ("input_summary", &event.input_summary),
        ("output_summary", &event.output_summary),
    ];
    for (key, summary) in summaries {
        if let Some(s) = summary {
            let redacted = redact_str(s);
            let kept = match policy {
                ContentPolicy::Summary => truncate_chars(&redacted, SUMMARY_POLICY_CHARS),
                _ => &redacted,
            };
            map.insert(key.into(), Value::String(kept.to_owned()));
        }
    }
    if policy == ContentPolicy::Full {
        let bodies = [
            ("input", "input_truncated", &event.input),
            ("output", "output_truncated", &event.output),
        ];
        for (key, flag, body) in bodies {
            if let Some(body) = body {
                let (stored, truncated) = stored_body(body.clone());
                map.insert(key.into(), stored);
                if truncated {
                    map.insert(flag.into(), Value::Bool(true));
                }
            }
        }
    }
    map
}

/// A redacted body, cut to a string of at most `MAX_STORED_BODY_BYTES` when
/// its size (UTF-8 for strings, JCS otherwise) exceeds that.
fn stored_body(mut body: Value) -> (Value, bool) {
    redact_value(&mut body);
    match body {
        Value::String(s) if s.len() > MAX_STORED_BODY_BYTES => (
            Value::String(truncate_bytes(&s, MAX_STORED_BODY_BYTES).to_owned()),
            true,
        ),
        Value::String(s) => (Value::String(s), false),
        other => match jcs::to_vec(&other).map(String::from_utf8) {
            Ok(Ok(text)) if text.len() > MAX_STORED_BODY_BYTES => (
                Value::String(truncate_bytes(&text, MAX_STORED_BODY_BYTES).to_owned()),
                true,
            ),
            _ => (other, false),
        },
    }
}

/// The longest prefix of `s` with at most `max` characters.
fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The longest prefix of `s` with at most `max` bytes ending on a char
/// boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Encodes every envelope member of `event` (consuming it).
fn envelope_members(event: Event, id: Uuid) -> Members {
    let mut m = Members::default();
    let string = |m: &mut Members, key: &'static str, v: Option<&str>| {
        if let Some(v) = v {
            m.push(key, |o| write_string(v, o));
        }
    };
    // Integers were validated to at most 2^53 - 1, so they are exact as f64.
    let number = |m: &mut Members, key: &'static str, v: Option<f64>| {
        if let Some(v) = v {
            m.push(key, |o| {
                let _ = write_number(v, o);
            });
        }
    };
    let boolean = |m: &mut Members, key: &'static str, v: Option<bool>| {
        if let Some(v) = v {
            m.push(key, |o| {
                o.extend_from_slice(if v { b"true" } else { b"false" })
            });
        }
    };
    let time = |m: &mut Members, key: &'static str, v: Option<i64>| {
        string(m, key, v.map(format_rfc3339).as_deref());
    };
    let hash = |m: &mut Members, key: &'static str, v: Option<[u8; 32]>| {
        string(m, key, v.as_ref().map(to_hex).as_deref());
    };

    string(&mut m, "id", Some(&id.hyphenated().to_string()));
    string(&mut m, "type", Some(event.event_type.as_str()));
    string(&mut m, "name", Some(&event.name));
    string(&mut m, "status", Some(event.status.as_str()));
    let error = event.error.as_deref().map(redact_str);
    string(&mut m, "error", error.as_deref());
    time(&mut m, "started_at", event.started_at);
    time(&mut m, "ended_at", event.ended_at);
    number(&mut m, "duration_ms", event.duration_ms.map(|v| v as f64));
    string(&mut m, "user_id", event.user_id.as_deref());
    string(&mut m, "agent_id", event.agent_id.as_deref());
    string(&mut m, "project_id", event.project_id.as_deref());
    string(&mut m, "session_id", event.session_id.as_deref());
    string(&mut m, "task_id", event.task_id.as_deref());
    string(&mut m, "trace_id", event.trace_id.as_deref());
    string(&mut m, "span_id", event.span_id.as_deref());
    string(&mut m, "parent_span_id", event.parent_span_id.as_deref());
    string(&mut m, "transport", event.transport.map(|t| t.as_str()));
    string(&mut m, "provider", event.provider.as_deref());
    string(&mut m, "model", event.model.as_deref());
    number(&mut m, "input_tokens", event.input_tokens.map(|v| v as f64));
    number(
        &mut m,
        "output_tokens",
        event.output_tokens.map(|v| v as f64),
    );
    number(&mut m, "exit_code", event.exit_code.map(|v| v as f64));
    number(&mut m, "http_status", event.http_status.map(f64::from));
    boolean(&mut m, "result_truncated", event.result_truncated);
    boolean(&mut m, "confirmed", event.confirmed);
    hash(&mut m, "input_hash", event.input_hash);
    hash(&mut m, "output_hash", event.output_hash);
    number(&mut m, "input_bytes", event.input_bytes.map(|v| v as f64));
    number(&mut m, "output_bytes", event.output_bytes.map(|v| v as f64));
    if !event.document_ids.is_empty() {
        m.push("document_ids", |o| {
            o.push(b'[');
            for (i, d) in event.document_ids.iter().enumerate() {
                if i > 0 {
                    o.push(b',');
                }
                write_string(d, o);
            }
            o.push(b']');
        });
    }
    if let Some(meta) = event.metadata {
        let mut meta = Value::Object(meta);
        redact_value(&mut meta);
        // Metadata comes from parsed JSON, whose numbers are finite.
        m.push("metadata", |o| {
            let _ = jcs::write(&meta, o);
        });
    }
    m
}
