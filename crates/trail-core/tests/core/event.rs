//! Event validation: a complete valid event normalizes as documented, and
//! every invalid field is reported (all at once, never just the first).

use serde_json::{json, Value};
use trail_core::event::{parse_event, parse_events, EventType, FieldError, Status, Transport};
use trail_core::hashing::{content_hash, sha256};

fn errors(v: Value) -> Vec<FieldError> {
    parse_event(v).expect_err("must be rejected")
}

fn fields(errs: &[FieldError]) -> Vec<&str> {
    errs.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn full_event_normalizes() {
    let ev = parse_event(json!({
        "id": "0190A0B1-C2D3-7E4F-8A9B-0C1D2E3F4A5B",
        "type": "llm_call",
        "name": "chat.completions",
        "status": "error",
        "error": "rate limited",
        "started_at": "2026-11-23T14:34:04.123456Z",
        "ended_at": "2026-11-23T15:34:05.223456+01:00",
        "user_id": "u1", "user_email": "a@example.com", "agent_id": "ag",
        "project_id": "p", "session_id": "s", "task_id": "t",
        "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
        "span_id": "00f067aa0ba902b7", "parent_span_id": null,
        "transport": "sdk", "provider": "openai", "model": "gpt-x",
        "input_tokens": 10, "output_tokens": 20.0, "exit_code": -1, "http_status": 429,
        "result_truncated": false, "confirmed": true,
        "input": "hello", "output": {"b": 1, "a": 2},
        "input_bytes": 5,
        "input_summary": "greeting", "output_summary": "numbers",
        "document_ids": ["d1", "d2"],
        "metadata": {"k": [1, 2]}
    }))
    .expect("valid");
    assert_eq!(
        ev.id.map(|u| u.to_string()).as_deref(),
        Some("0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b")
    );
    assert_eq!(ev.event_type, EventType::LlmCall);
    assert_eq!(ev.status, Status::Error);
    assert_eq!(ev.transport, Some(Transport::Sdk));
    assert_eq!(ev.duration_ms, Some(1100));
    assert_eq!(
        ev.ended_at.zip(ev.started_at).map(|(e, s)| e - s),
        Some(1_100_000)
    );
    assert_eq!(
        ev.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(ev.parent_span_id, None);
    assert_eq!(ev.output_tokens, Some(20));
    assert_eq!(ev.exit_code, Some(-1));
    assert_eq!(ev.http_status, Some(429));
    assert_eq!(ev.input_hash, Some(sha256(b"hello")));
    assert_eq!(ev.input_bytes, Some(5));
    assert_eq!(ev.output_hash, Some(sha256(br#"{"a":2,"b":1}"#)));
    assert_eq!(ev.output_bytes, Some(13));
    assert_eq!(ev.document_ids, vec!["d1", "d2"]);
    assert_eq!(ev.metadata.map(|m| m.len()), Some(1));
}

#[test]
fn minimal_event_defaults() {
    let ev =
        parse_event(json!({"type": "tool_call", "name": "ls", "status": null})).expect("valid");
    assert_eq!(ev.status, Status::Ok);
    assert_eq!(ev.id, None);
    assert!(ev.document_ids.is_empty());
    assert_eq!(ev.duration_ms, None);
}

#[test]
fn not_an_object() {
    for v in [json!([]), json!("x"), json!(null), json!(1)] {
        let errs = errors(v);
        assert_eq!(
            errs,
            vec![FieldError {
                field: String::new(),
                message: "event must be a JSON object".into()
            }]
        );
    }
}

#[test]
fn every_bad_field_is_reported() {
    let long = "x".repeat(257);
    let errs = errors(json!({
        "bogus": 1,
        "type": "llm",
        "name": "",
        "id": "not-a-uuid",
        "status": "fine",
        "transport": 3,
        "error": "e".repeat(4097),
        "input_summary": "s".repeat(4097),
        "user_id": long,
        "user_email": "",
        "model": 5,
        "trace_id": "00000000000000000000000000000000",
        "span_id": "xyz",
        "parent_span_id": "0123456789abcdef0",
        "started_at": "2026-11-23T14:34:04Z",
        "ended_at": "2026-11-23T14:34:03Z",
        "duration_ms": -5,
        "input_tokens": 1.5,
        "output_tokens": "7",
        "exit_code": 9007199254740993u64,
        "http_status": 600,
        "result_truncated": "yes",
        "confirmed": 1,
        "input_hash": "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "output_hash": "abc",
        "input_bytes": -1,
        "document_ids": ["ok", "", 3],
        "metadata": [1]
    }));
    let got = fields(&errs);
    for want in [
        "bogus",
        "type",
        "name",
        "id",
        "status",
        "transport",
        "error",
        "input_summary",
        "user_id",
        "user_email",
        "model",
        "trace_id",
        "span_id",
        "parent_span_id",
        "ended_at",
        "duration_ms",
        "input_tokens",
        "output_tokens",
        "exit_code",
        "http_status",
        "result_truncated",
        "confirmed",
        "input_hash",
        "output_hash",
        "input_bytes",
        "document_ids[1]",
        "document_ids[2]",
        "metadata",
    ] {
        assert!(got.contains(&want), "missing error for {want}: {errs:#?}");
    }
    let msg = |f: &str| {
        errs.iter()
            .find(|e| e.field == f)
            .map(|e| e.message.clone())
            .unwrap_or_default()
    };
    assert_eq!(msg("bogus"), "unknown field");
    assert!(msg("type").contains("llm_call") && msg("type").contains("api_request"));
    assert!(msg("duration_ms").starts_with("must be a non-negative integer"));
    assert_eq!(msg("metadata"), "must be a JSON object");
    assert_eq!(msg("trace_id"), "must not be all zeros");
}

#[test]
fn required_fields() {
    let errs = errors(json!({"name": null}));
    assert_eq!(fields(&errs), vec!["type", "name"]);
}

#[test]
fn duration_consistency() {
    let base = |d: Value| {
        json!({"type": "tool_call", "name": "x",
        "started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:00:01.0019Z", "duration_ms": d})
    };
    // Derived 1001 ms; ±1 is tolerated and the derived value wins.
    assert_eq!(
        parse_event(base(json!(1002)))
            .ok()
            .and_then(|e| e.duration_ms),
        Some(1001)
    );
    assert_eq!(
        parse_event(base(json!(1000)))
            .ok()
            .and_then(|e| e.duration_ms),
        Some(1001)
    );
    assert_eq!(fields(&errors(base(json!(1003)))), vec!["duration_ms"]);
    // Without both times the sent value stands.
    let ev =
        parse_event(json!({"type": "tool_call", "name": "x", "duration_ms": 7})).expect("valid");
    assert_eq!(ev.duration_ms, Some(7));
}

#[test]
fn hashes_and_sizes_are_checked_against_content() {
    let input = json!({"q": "hi"});
    let good = hex::encode(content_hash(&input));
    let ok = parse_event(
        json!({"type": "llm_call", "name": "x", "input": input, "input_hash": good, "input_bytes": 10}),
    );
    assert!(ok.is_ok(), "{ok:?}");
    let errs = errors(
        json!({"type": "llm_call", "name": "x", "input": {"q": "hi"},
        "input_hash": "0".repeat(64), "input_bytes": 11, "output": "o", "output_hash": hex::encode(sha256(b"p"))}),
    );
    assert_eq!(
        fields(&errs),
        vec!["input_hash", "input_bytes", "output_hash"]
    );
    assert_eq!(errs[0].message, "does not match input");
    // Hash without content is kept as sent.
    let h = "ab".repeat(32);
    let ev =
        parse_event(json!({"type": "llm_call", "name": "x", "output_hash": h, "output_bytes": 3}))
            .expect("valid");
    assert_eq!(ev.output_hash.map(hex::encode), Some(h));
    assert_eq!(ev.output_bytes, Some(3));
}

#[test]
fn limits() {
    let name256: String = "é".repeat(256);
    assert!(parse_event(json!({"type": "escalation", "name": name256})).is_ok());
    let ids: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    assert_eq!(
        fields(&errors(
            json!({"type": "escalation", "name": "n", "document_ids": ids})
        )),
        vec!["document_ids"]
    );
    let big = "x".repeat(16_400);
    assert_eq!(
        fields(&errors(
            json!({"type": "escalation", "name": "n", "metadata": {"a": big}})
        )),
        vec!["metadata"]
    );
    let fits = "x".repeat(16_384 - 8); // {"a":"…"} adds 8 bytes
    assert!(
        parse_event(json!({"type": "escalation", "name": "n", "metadata": {"a": fits}})).is_ok()
    );
    let over = "x".repeat(16_384 - 7);
    assert!(
        parse_event(json!({"type": "escalation", "name": "n", "metadata": {"a": over}})).is_err()
    );
}

#[test]
fn batch_errors_are_prefixed_and_all_or_nothing() {
    let errs = parse_events(vec![
        json!({"type": "llm_call", "name": "ok"}),
        json!({"type": "nope", "name": "x"}),
        json!(5),
        json!({"type": "llm_call"}),
    ])
    .expect_err("batch has bad events");
    assert_eq!(fields(&errs), vec!["[1].type", "[2]", "[3].name"]);
    let ok = parse_events(vec![
        json!({"type": "llm_call", "name": "a"}),
        json!({"type": "api_request", "name": "b"}),
    ]);
    assert_eq!(ok.map(|v| v.len()), Ok(2));
}

#[test]
fn trails_own_event_names_are_reserved_with_transport_system() {
    for name in trail_core::event::RESERVED_NAMES {
        let errs = errors(json!({"type": "api_request", "name": name, "transport": "system"}));
        assert_eq!(fields(&errs), vec!["name"], "{name}");
        assert!(errs[0].message.contains("reserved"), "{name}");
        // The same name over another transport, or another name, is fine.
        parse_event(json!({"type": "api_request", "name": name, "transport": "http"}))
            .expect("other transport");
    }
    parse_event(json!({"type": "api_request", "name": "nightly.job", "transport": "system"}))
        .expect("other name");
}
