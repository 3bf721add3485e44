//! Record preparation and sealing: the envelope/content split under each
//! content policy, redaction before storage, and the byte-level seal, which
//! must equal `jcs::to_vec` of the same object for any event.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use trail_core::event::parse_event;
use trail_core::hashing::{content_digest, content_hash, leaf_hash, sha256};
use trail_core::jcs;
use trail_core::policy::ContentPolicy;
use trail_core::record::{flat_view, idempotency_digest_of_envelope, prepare, PreparedEvent};
use uuid::Uuid;

const SALT: [u8; 32] = [9; 32];
const FALLBACK: Uuid = Uuid::from_u128(0x0190_a0b1_c2d3_7e4f_8a9b_0c1d_2e3f_4a5b);

fn prep(v: Value, policy: ContentPolicy) -> PreparedEvent {
    prepare(parse_event(v).expect("valid event"), policy, SALT, FALLBACK)
}

fn object(bytes: &[u8]) -> Map<String, Value> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => m,
        other => panic!("not an object: {other:?}"),
    }
}

fn rich_event() -> Value {
    json!({
        "type": "llm_call", "name": "chat", "started_at": "2026-11-23T14:34:04.5Z",
        "ended_at": "2026-11-23T14:34:05Z",
        "user_id": "u1", "user_email": "a@example.com",
        "error": "upstream said password=hunter2",
        "input": {"messages": [{"role": "user", "content": "my key is sk-abcdefghij1234567890ABCDEFGHIJ"}]},
        "output": "fine",
        "input_summary": format!("{}{}", "é".repeat(600), " Bearer abc123def456ghi789"),
        "output_summary": "api_key=abc",
        "metadata": {"client_secret": "s", "env": "prod"},
        "document_ids": []
    })
}

/// The envelope must be canonical: re-encoding its parsed form gives the
/// same bytes.
fn assert_canonical(envelope: &[u8]) {
    let v: Value = serde_json::from_slice(envelope).expect("envelope is JSON");
    assert_eq!(
        jcs::to_vec(&v).expect("jcs"),
        envelope,
        "{}",
        String::from_utf8_lossy(envelope)
    );
}

#[test]
fn hash_policy_keeps_only_email() {
    let p = prep(rich_event(), ContentPolicy::Hash);
    assert_eq!(p.id, FALLBACK);
    let content = p.content.as_ref().expect("email is content");
    assert_eq!(content.bytes, br#"{"user_email":"a@example.com"}"#);
    let sealed = p.seal("tenant-1", 42, 1_700_000_000_000_000);
    assert_canonical(&sealed.envelope);
    assert_eq!(sealed.leaf_hash, leaf_hash(&sealed.envelope));
    let env = object(&sealed.envelope);
    assert_eq!(env["id"], FALLBACK.hyphenated().to_string());
    assert_eq!(env["type"], "llm_call");
    assert_eq!(env["status"], "ok");
    assert_eq!(env["tenant_id"], "tenant-1");
    assert_eq!(env["seq"], 42);
    assert_eq!(env["received_at"], "2023-11-14T22:13:20.000000Z");
    assert_eq!(env["started_at"], "2026-11-23T14:34:04.500000Z");
    assert_eq!(env["duration_ms"], 500);
    assert_eq!(env["error"], "upstream said password=[REDACTED:password]");
    assert_eq!(
        env["metadata"],
        json!({"client_secret": "[REDACTED:secret]", "env": "prod"})
    );
    assert_eq!(
        env["content_digest"],
        hex::encode(content_digest(&SALT, &content.bytes))
    );
    // Hashes are over the raw content.
    let raw_input = &rich_event()["input"];
    assert_eq!(env["input_hash"], hex::encode(content_hash(raw_input)));
    assert_eq!(env["output_hash"], hex::encode(sha256(b"fine")));
    for absent in [
        "user_email",
        "input",
        "output",
        "input_summary",
        "document_ids",
        "ended_at_",
        "agent_id",
    ] {
        assert!(!env.contains_key(absent), "{absent} in envelope");
    }
    assert_eq!(p.index.user_id.as_deref(), Some("u1"));
    assert_eq!(p.index.duration_ms, Some(500));
}

#[test]
fn no_content_means_no_digest() {
    let p = prep(
        json!({"type": "tool_call", "name": "ls", "input": "x"}),
        ContentPolicy::Hash,
    );
    assert!(p.content.is_none());
    let env = object(&p.seal("t", 1, 0).envelope);
    assert!(!env.contains_key("content_digest"));
    assert_eq!(env["input_bytes"], 1);
}

#[test]
fn summary_policy_redacts_and_truncates() {
    let p = prep(rich_event(), ContentPolicy::Summary);
    let content = object(&p.content.expect("content").bytes);
    let summary = content["input_summary"].as_str().expect("summary");
    assert_eq!(summary.chars().count(), 512);
    assert!(summary.chars().all(|c| c == 'é'));
    assert_eq!(content["output_summary"], "api_key=[REDACTED:api_key]");
    assert!(!content.contains_key("input"));
}

#[test]
fn full_policy_stores_redacted_bodies() {
    let p = prep(rich_event(), ContentPolicy::Full);
    let content = object(&p.content.expect("content").bytes);
    assert_eq!(
        content["input"],
        json!({"messages": [{"role": "user", "content": "my key is [REDACTED:openai_key]"}]})
    );
    assert_eq!(content["output"], "fine");
    assert!(content["input_summary"]
        .as_str()
        .is_some_and(|s| s.ends_with("Bearer [REDACTED:bearer_token]")));
    assert!(!content.contains_key("input_truncated"));
}

#[test]
fn full_policy_truncates_large_bodies() {
    let big_string = "ü".repeat(40_000); // 80,000 bytes
    let big_array: Vec<String> = (0..10_000).map(|i| format!("item-{i}")).collect();
    let p = prep(
        json!({"type": "tool_call", "name": "x", "input": big_string, "output": big_array}),
        ContentPolicy::Full,
    );
    let content = object(&p.content.expect("content").bytes);
    let input = content["input"].as_str().expect("string");
    assert_eq!(input.len(), 65_536);
    assert_eq!(content["input_truncated"], true);
    let output = content["output"].as_str().expect("cut JCS text");
    assert!(output.len() <= 65_536 && output.starts_with(r#"["item-0","item-1""#));
    assert_eq!(content["output_truncated"], true);
}

#[test]
fn idempotency_digest_ignores_tenant_seq_time_and_salt() {
    let ev = parse_event(rich_event()).expect("valid");
    let a = prepare(ev.clone(), ContentPolicy::Full, SALT, FALLBACK);
    let b = prepare(ev, ContentPolicy::Full, [1; 32], FALLBACK);
    assert_eq!(a.idempotency_digest(), b.idempotency_digest());
    let sa = a.seal("t1", 1, 10);
    let sb = b.seal("t2", 99, 20);
    assert_ne!(sa.envelope, sb.envelope);
    assert_eq!(
        idempotency_digest_of_envelope(&sa.envelope),
        Ok(a.idempotency_digest())
    );
    assert_eq!(
        idempotency_digest_of_envelope(&sb.envelope),
        Ok(a.idempotency_digest())
    );
    let changed = prep(
        json!({"type": "llm_call", "name": "other"}),
        ContentPolicy::Full,
    );
    assert_ne!(changed.idempotency_digest(), a.idempotency_digest());
    assert!(idempotency_digest_of_envelope(b"[1]").is_err());
    assert!(idempotency_digest_of_envelope(b"{").is_err());
}

#[test]
fn flat_view_merges_content() {
    let p = prep(rich_event(), ContentPolicy::Summary);
    let sealed = p.seal("t", 7, 0);
    let content = p.content.as_ref().map(|c| c.bytes.as_slice());
    let view = flat_view(&sealed.envelope, content, &sealed.leaf_hash, false).expect("view");
    assert_eq!(view["user_email"], "a@example.com");
    assert_eq!(view["seq"], 7);
    assert_eq!(view["leaf_hash"], hex::encode(sealed.leaf_hash));
    assert_eq!(view["content_erased"], false);
    let erased = flat_view(&sealed.envelope, None, &sealed.leaf_hash, true).expect("view");
    assert!(!erased.contains_key("user_email"));
    assert_eq!(erased["content_erased"], true);
    assert!(flat_view(&sealed.envelope, Some(b"1"), &sealed.leaf_hash, false).is_err());
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::of(s).boxed()
}

fn text() -> BoxedStrategy<String> {
    "[a-zA-Z0-9 _\\-\\u{e9}\\u{1f600}\\u{fb33}\"\\\\\\n]{1,40}".boxed()
}

prop_compose! {
    fn arb_event()(
        ty in prop::sample::select(vec!["llm_call", "tool_call", "escalation", "connector_fetch", "document_upload", "document_download", "api_request"]),
        name in text(),
        status in opt(prop::sample::select(vec!["ok", "error"])),
        id in opt(any::<u128>()),
        error in opt(text()),
        start in opt(0i64..4_000_000_000_000_000),
        dur in opt(0i64..100_000_000_000),
        strings in prop::collection::vec(opt(text()), 9),
        trace in opt(1u128..),
        transport in opt(prop::sample::select(vec!["http", "mcp", "otlp", "proxy", "system", "sdk"])),
        nums in prop::collection::vec(opt(0u64..(1 << 53)), 2),
        exit in opt(-1000i64..1000),
        http in opt(100u16..600),
        bools in prop::collection::vec(opt(any::<bool>()), 2),
        input in opt(text()),
        output in opt(prop::collection::btree_map(text(), any::<i32>(), 0..4)),
        docs in prop::collection::vec(text(), 0..4),
        meta in opt(prop::collection::btree_map(text(), any::<f64>().prop_filter("finite", |f| f.is_finite()), 0..4)),
    ) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!(ty));
        m.insert("name".into(), json!(name));
        let mut put = |k: &str, v: Option<Value>| { if let Some(v) = v { m.insert(k.into(), v); } };
        put("status", status.map(Value::from));
        put("id", id.map(|u| json!(Uuid::from_u128(u).to_string())));
        put("error", error.map(Value::from));
        put("started_at", start.map(|s| json!(trail_core::time::format_rfc3339(s))));
        put("ended_at", start.zip(dur).map(|(s, d)| json!(trail_core::time::format_rfc3339(s + d))));
        for (k, v) in ["user_id", "user_email", "agent_id", "project_id", "session_id", "task_id", "provider", "model", "input_summary"].iter().zip(strings) {
            put(k, v.map(Value::from));
        }
        put("trace_id", trace.map(|t| json!(format!("{t:032x}"))));
        put("transport", transport.map(Value::from));
        put("input_tokens", nums[0].map(Value::from));
        put("output_tokens", nums[1].map(Value::from));
        put("exit_code", exit.map(Value::from));
        put("http_status", http.map(Value::from));
        put("result_truncated", bools[0].map(Value::from));
        put("confirmed", bools[1].map(Value::from));
        put("input", input.map(Value::from));
        put("output", output.map(|o| json!(o)));
        put("document_ids", Some(json!(docs)));
        put("metadata", meta.map(|m| json!(m)));
        Value::Object(m)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn seal_equals_jcs_of_the_same_object(
        ev in arb_event(),
        policy in prop::sample::select(ContentPolicy::ALL.to_vec()),
        tenant in text(),
        seq in 0u64..(1 << 53),
        received in -1_000_000_000_000i64..4_000_000_000_000_000,
        salt in any::<[u8; 32]>(),
    ) {
        let event = parse_event(ev).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let p = prepare(event, policy, salt, FALLBACK);
        let sealed = p.seal(&tenant, seq, received);
        let reparsed: Value = serde_json::from_slice(&sealed.envelope).expect("JSON");
        prop_assert_eq!(jcs::to_vec(&reparsed).expect("jcs"), sealed.envelope.clone());
        prop_assert_eq!(&reparsed["tenant_id"], &json!(tenant));
        prop_assert_eq!(&reparsed["seq"], &json!(seq));
        prop_assert_eq!(sealed.leaf_hash, leaf_hash(&sealed.envelope));
        prop_assert_eq!(idempotency_digest_of_envelope(&sealed.envelope), Ok(p.idempotency_digest()));
        if let Some(c) = &p.content {
            prop_assert_eq!(&reparsed["content_digest"], &json!(hex::encode(content_digest(&c.salt, &c.bytes))));
            let content: Value = serde_json::from_slice(&c.bytes).expect("content JSON");
            prop_assert_eq!(jcs::to_vec(&content).expect("jcs"), c.bytes.clone());
        } else {
            prop_assert!(reparsed.get("content_digest").is_none());
        }
    }
}
