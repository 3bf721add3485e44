//! Bad input on `POST /v1/events`: every invalid field (unknown member,
//! wrong enum, bad time, negative duration, bad hash, non-object metadata,
//! ...), one bad event in a batch, malformed JSON, invalid UTF-8, 100,000
//! levels of nesting, an event over 256 KiB, more than 10,000 events and a
//! body over 16 MiB are each answered 400 or 413 problem+json whose `errors`
//! names the field or the limit; afterwards the server still answers
//! `/healthz`, the log size (`count=true` total) is unchanged, and the next
//! good event gets the next seq. The limits themselves are accepted.

use serde_json::{json, Value};

use crate::harness::{assert_problem_where, event, exchange, Client, Failures, Response, Server};

/// Sends `body`, expects a problem with `status` and an error entry whose
/// field satisfies `field_ok`; then checks the server is healthy and stored
/// nothing.
fn rejected(
    admin: &Client,
    what: &str,
    send: impl FnOnce() -> Response,
    status: u16,
    field_ok: impl Fn(&str) -> bool,
) -> Value {
    let before = admin.total(&[]);
    let response = send();
    let problem = assert_problem_where(&response, status, what, field_ok);
    admin.assert_healthy();
    assert_eq!(admin.total(&[]), before, "{what}: something was stored");
    problem
}

fn seed(admin: &Client) {
    let accepted = admin.ingest(&json!([
        event("tool_call", "seed.a"),
        event("llm_call", "seed.b"),
        event("api_request", "seed.c"),
    ]));
    assert_eq!(accepted.len(), 3);
}

/// The next good event gets seq == the current log size.
fn still_ingests(admin: &Client) {
    let size = admin.total(&[]);
    let accepted = admin.ingest(&event("tool_call", "after.rejections"));
    assert_eq!(
        accepted[0]["seq"],
        json!(size),
        "the log continues gap-free"
    );
}

fn base() -> Value {
    json!({"type": "tool_call", "name": "fs.read"})
}

fn with(field: &str, value: Value) -> Value {
    let mut e = base();
    e[field] = value;
    e
}

/// One invalid event per case, and the field its error must name.
fn field_cases() -> Vec<(Value, &'static str)> {
    let mut missing_type = base();
    missing_type.as_object_mut().unwrap().remove("type");
    let mut missing_name = base();
    missing_name.as_object_mut().unwrap().remove("name");
    let mut unordered_times = base();
    unordered_times["started_at"] = json!("2024-05-01T10:00:00Z");
    unordered_times["ended_at"] = json!("2024-05-01T09:00:00Z");
    vec![
        (with("foo", json!(1)), "foo"),
        (with("Type", json!("tool_call")), "Type"),
        (with("type", json!("tool-call")), "type"),
        (with("type", json!(7)), "type"),
        (missing_type, "type"),
        (missing_name, "name"),
        (with("name", json!("")), "name"),
        (with("name", json!("n".repeat(257))), "name"),
        (with("status", json!("maybe")), "status"),
        (with("transport", json!("smtp")), "transport"),
        (with("id", json!("not-a-uuid")), "id"),
        (with("started_at", json!("yesterday")), "started_at"),
        (
            with("started_at", json!("2024-13-01T00:00:00Z")),
            "started_at",
        ),
        (
            with("started_at", json!("2024-05-01 10:00:00")),
            "started_at",
        ),
        (with("ended_at", json!("2023-02-30T00:00:00Z")), "ended_at"),
        (unordered_times, "ended_at"),
        (with("duration_ms", json!(-5)), "duration_ms"),
        (with("duration_ms", json!(1.5)), "duration_ms"),
        (with("duration_ms", json!("12")), "duration_ms"),
        (with("input_hash", json!("abc")), "input_hash"),
        (with("output_hash", json!("g".repeat(64))), "output_hash"),
        (with("input_hash", json!("A".repeat(64))), "input_hash"),
        (
            json!({"type": "tool_call", "name": "x", "input": "hello", "input_hash": "0".repeat(64)}),
            "input_hash",
        ),
        (
            json!({"type": "api_request", "name": "retention.sweep", "transport": "system",
                "metadata": {"first_seq": 0, "last_seq": 99}}),
            "name",
        ),
        (
            json!({"type": "api_request", "name": "events.read", "transport": "system"}),
            "name",
        ),
        (with("metadata", json!([1, 2])), "metadata"),
        (with("metadata", json!("key=value")), "metadata"),
        (
            with("metadata", json!({"blob": "m".repeat(17_000)})),
            "metadata",
        ),
        (with("trace_id", json!("a".repeat(31))), "trace_id"),
        (with("span_id", json!("xyz")), "span_id"),
        (
            with("parent_span_id", json!("0123456789abcdef0")),
            "parent_span_id",
        ),
        (with("document_ids", json!("doc-1")), "document_ids"),
        (with("confirmed", json!("yes")), "confirmed"),
        (with("result_truncated", json!(1)), "result_truncated"),
        (with("http_status", json!(700)), "http_status"),
        (with("user_id", json!(42)), "user_id"),
        (with("input_tokens", json!(-1)), "input_tokens"),
        (with("error", json!("e".repeat(5000))), "error"),
    ]
}

#[test]
fn each_invalid_field_is_rejected_named_and_nothing_is_stored() {
    let server = Server::start();
    let admin = server.admin();
    seed(&admin);
    for (bad, field) in field_cases() {
        let shown = truncate(&bad.to_string());
        // Inside a batch, after a good event: the field is named with the
        // event's index.
        let batch = json!([event("tool_call", "good"), bad]);
        let indexed = format!("[1].{field}");
        let what = format!("{indexed} in a batch with {shown}");
        rejected(
            &admin,
            &what,
            || admin.post("/v1/events", &batch),
            400,
            |f| f == indexed,
        );
        // Alone (the exact spelling of a single object's field names is
        // checked by `a_single_event_names_its_fields_without_an_index`).
        let what = format!("{field} in {shown}");
        rejected(
            &admin,
            &what,
            || admin.post("/v1/events", &bad),
            400,
            |f| f == field || f == format!("[0].{field}"),
        );
    }

    // Every bad field of one event is reported at once.
    let body = json!([{"type": "bad", "name": "", "foo": 1, "status": "meh"}]);
    let problem = rejected(
        &admin,
        "several",
        || admin.post("/v1/events", &body),
        400,
        |f| f == "[0].type",
    );
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for field in ["[0].type", "[0].name", "[0].foo", "[0].status"] {
        assert!(fields.contains(&field), "{field} not reported: {problem}");
    }
    still_ingests(&admin);
}

#[test]
fn a_single_event_names_its_fields_without_an_index() {
    let server = Server::start();
    let admin = server.admin();
    let mut failures = Failures::default();
    for (bad, field) in field_cases() {
        let response = admin.post("/v1/events", &bad);
        let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        let fields: Vec<&str> = body["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        failures.check(
            response.status == 400 && fields.contains(&field),
            format!(
                "POST {} -> expected 400 naming field {field:?}, got {} with fields {fields:?}",
                truncate(&bad.to_string()),
                response.status
            ),
        );
    }
    let body = json!({"type": "bad", "name": "", "foo": 1, "status": "meh"});
    let response = admin.post("/v1/events", &body);
    let text = response.text();
    for field in ["type", "name", "foo", "status"] {
        failures.check(
            text.contains(&format!(r#""field":"{field}""#)),
            format!("several bad fields: {field:?} not named plainly in {text}"),
        );
    }
    assert_eq!(admin.total(&[]), 0, "nothing stored");
    failures.finish("single-object field names");
}

fn truncate(text: &str) -> String {
    text.chars().take(120).collect()
}

#[test]
fn one_bad_event_rejects_the_whole_batch() {
    let server = Server::start();
    let admin = server.admin();
    seed(&admin);
    let good: Vec<Value> = (0..4)
        .map(|i| event("tool_call", &format!("ok.{i}")))
        .collect();

    let mut batch = good.clone();
    batch.push(with("type", json!("tool-call")));
    let problem = rejected(
        &admin,
        "[4].type",
        || admin.post("/v1/events", &json!(batch)),
        400,
        |f| f == "[4].type",
    );
    assert_eq!(problem["errors"].as_array().unwrap().len(), 1, "{problem}");

    let mut batch = good.clone();
    batch.insert(1, with("foo", json!(true)));
    batch.insert(3, with("duration_ms", json!(-1)));
    let problem = rejected(
        &admin,
        "two bad",
        || admin.post("/v1/events", &json!(batch)),
        400,
        |f| f == "[1].foo",
    );
    assert!(
        problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == json!("[3].duration_ms")),
        "both bad events named: {problem}"
    );

    let mut batch = good.clone();
    batch.push(json!(5));
    rejected(
        &admin,
        "non-object element",
        || admin.post("/v1/events", &json!(batch)),
        400,
        |f| f.starts_with("[4]"),
    );

    let mut ndjson = String::new();
    for e in &good {
        ndjson.push_str(&e.to_string());
        ndjson.push('\n');
    }
    ndjson.push_str(&with("status", json!("meh")).to_string());
    ndjson.push('\n');
    rejected(
        &admin,
        "ndjson bad event",
        || {
            admin.send(
                "POST",
                "/v1/events",
                Some("application/x-ndjson"),
                Some(ndjson.as_bytes()),
            )
        },
        400,
        |f| f.contains("status"),
    );
    for e in &good {
        let id = e["id"].as_str().unwrap();
        assert_eq!(
            admin.get(&format!("/v1/events/{id}")).status,
            404,
            "good event of a bad batch stored"
        );
    }
    still_ingests(&admin);
}

#[test]
fn malformed_bodies_are_rejected() {
    let server = Server::start();
    let admin = server.admin();
    seed(&admin);
    let any = |_: &str| true;
    let raw_cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", br#"{"type":"tool_call","name":"x""#.to_vec()),
        ("unquoted", b"{type: tool_call, name: x}".to_vec()),
        (
            "trailing comma",
            br#"[{"type":"tool_call","name":"a"},]"#.to_vec(),
        ),
        (
            "two values",
            br#"{"type":"tool_call","name":"a"} garbage"#.to_vec(),
        ),
        ("empty", Vec::new()),
        ("blank", b"  \n ".to_vec()),
        ("empty array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("number", b"42".to_vec()),
        ("string", br#""tool_call""#.to_vec()),
        (
            "invalid utf-8 in a string",
            b"{\"type\":\"tool_call\",\"name\":\"caf\xc3\x28\"}".to_vec(),
        ),
        (
            "invalid utf-8 byte",
            b"{\"type\":\"tool_call\",\"name\":\"\xff\xfe\"}".to_vec(),
        ),
        ("invalid utf-8 in an array", b"[\x80]".to_vec()),
    ];
    for (what, body) in raw_cases {
        rejected(
            &admin,
            what,
            || admin.post_raw("/v1/events", &body),
            400,
            any,
        );
    }

    let depth = 100_000;
    let mut deep = String::from(r#"{"type":"tool_call","name":"deep","metadata":{"a":"#);
    deep.push_str(&"[".repeat(depth));
    deep.push_str(&"]".repeat(depth));
    deep.push_str("}}");
    rejected(
        &admin,
        "deep metadata",
        || admin.post_raw("/v1/events", deep.as_bytes()),
        400,
        any,
    );
    let deep_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    rejected(
        &admin,
        "deep array",
        || admin.post_raw("/v1/events", deep_array.as_bytes()),
        400,
        any,
    );
    let deep_input = format!(
        r#"[{{"type":"tool_call","name":"ok"}},{{"type":"tool_call","name":"deep","input":{}{}}}]"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    rejected(
        &admin,
        "deep input",
        || admin.post_raw("/v1/events", deep_input.as_bytes()),
        400,
        any,
    );
    let deep_ndjson = format!("{}\n{}\n", base(), deep);
    rejected(
        &admin,
        "deep ndjson line",
        || {
            admin.send(
                "POST",
                "/v1/events",
                Some("application/x-ndjson"),
                Some(deep_ndjson.as_bytes()),
            )
        },
        400,
        any,
    );
    let bad_line = format!("{}\n{{\"type\":\n{}\n", base(), base());
    rejected(
        &admin,
        "malformed ndjson line",
        || {
            admin.send(
                "POST",
                "/v1/events",
                Some("application/x-ndjson"),
                Some(bad_line.as_bytes()),
            )
        },
        400,
        any,
    );
    let bad_utf8_ndjson = b"{\"type\":\"tool_call\",\"name\":\"a\"}\n{\"type\":\"tool_call\",\"name\":\"\xc0\xaf\"}\n";
    rejected(
        &admin,
        "invalid utf-8 ndjson",
        || {
            admin.send(
                "POST",
                "/v1/events",
                Some("application/x-ndjson"),
                Some(bad_utf8_ndjson),
            )
        },
        400,
        any,
    );
    still_ingests(&admin);
}

/// An event whose JSON text is exactly `size` bytes.
fn event_of_size(size: usize) -> String {
    let head = r#"{"type":"tool_call","name":"edge","input":""#;
    let tail = r#""}"#;
    let fill = size - head.len() - tail.len();
    format!("{head}{}{tail}", "x".repeat(fill))
}

#[test]
fn size_and_count_limits_answer_413_naming_the_limit() {
    let server = Server::start();
    let admin = server.admin();
    seed(&admin);
    let small = base().to_string();

    let big = event_of_size(300 * 1024);
    rejected(
        &admin,
        "one big event",
        || admin.post_raw("/v1/events", big.as_bytes()),
        413,
        |f| f.contains("max_event_bytes"),
    );
    let batch = format!("[{small},{small},{small},{big}]");
    rejected(
        &admin,
        "big event at [3]",
        || admin.post_raw("/v1/events", batch.as_bytes()),
        413,
        |f| f == "[3] max_event_bytes",
    );
    let just_over = format!("[{small},{}]", event_of_size(262_145));
    rejected(
        &admin,
        "262145 bytes",
        || admin.post_raw("/v1/events", just_over.as_bytes()),
        413,
        |f| f == "[1] max_event_bytes",
    );

    let many = format!("[{}]", vec![small.as_str(); 10_001].join(","));
    rejected(
        &admin,
        "10001 events",
        || admin.post_raw("/v1/events", many.as_bytes()),
        413,
        |f| f == "max_batch_events",
    );
    let many_ndjson = vec![small.as_str(); 10_001].join("\n");
    rejected(
        &admin,
        "10001 ndjson events",
        || {
            admin.send(
                "POST",
                "/v1/events",
                Some("application/x-ndjson"),
                Some(many_ndjson.as_bytes()),
            )
        },
        413,
        |f| f == "max_batch_events",
    );

    // 70 events of 240 KiB each: every event and the count are fine, the
    // body (about 16.4 MiB) is not.
    let piece = event_of_size(240 * 1024);
    let huge = format!("[{}]", vec![piece.as_str(); 70].join(","));
    assert!(huge.len() > 16 * 1024 * 1024);
    rejected(
        &admin,
        "body over 16 MiB",
        || admin.post_raw("/v1/events", huge.as_bytes()),
        413,
        |f| f == "max_request_bytes",
    );
    // The same body without a Content-Length (chunked).
    let key = admin.key.clone().unwrap();
    rejected(
        &admin,
        "chunked body over 16 MiB",
        || {
            let mut data = format!(
                "POST /v1/events HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
                 Authorization: Bearer {key}\r\nContent-Type: application/json\r\n\
                 Transfer-Encoding: chunked\r\n\r\n",
                admin.addr
            )
            .into_bytes();
            for chunk in huge.as_bytes().chunks(1 << 20) {
                data.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                data.extend_from_slice(chunk);
                data.extend_from_slice(b"\r\n");
            }
            data.extend_from_slice(b"0\r\n\r\n");
            exchange(admin.addr, data).expect("chunked request")
        },
        413,
        |f| f == "max_request_bytes",
    );
    still_ingests(&admin);
}

#[test]
fn limits_themselves_are_accepted() {
    let server = Server::start();
    let admin = server.admin();
    let edge = event_of_size(262_144);
    let small = base().to_string();
    let body = format!("[{small},{edge}]");
    let answer = admin.post_raw("/v1/events", body.as_bytes()).expect(200);
    assert_eq!(answer["accepted"].as_array().unwrap().len(), 2);
    assert_eq!(admin.total(&[]), 2);

    let events: Vec<Value> = (0..10_000)
        .map(|i| event("tool_call", &format!("bulk.{}", i % 10)))
        .collect();
    let accepted = admin.ingest(&Value::Array(events.clone()));
    assert_eq!(accepted.len(), 10_000);
    for (k, (answer, sent)) in accepted.iter().zip(&events).enumerate() {
        assert_eq!(answer["id"], sent["id"]);
        assert_eq!(answer["seq"], json!(k + 2));
    }
    assert_eq!(admin.total(&[]), 10_002);
    let metadata = json!({"blob": "m".repeat(16_000)});
    admin.ingest(&with("metadata", metadata));
    admin.ingest(&with("name", json!("n".repeat(256))));
    assert_eq!(admin.total(&[]), 10_004);
}

/// A body that stops arriving is answered 408 after the body timeout (10 s)
/// instead of holding an ingest slot; nothing is stored and the server
/// goes on taking events.
#[test]
fn a_stalled_body_is_a_408_and_stores_nothing() {
    use std::io::Write;
    let server = crate::harness::Server::start();
    let key = server.admin_key();
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: trail\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(b"{\"type\":").unwrap();
    let response = crate::harness::read_response(&mut stream).unwrap();
    assert_eq!(
        response.status,
        408,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(body["status"], serde_json::json!(408));
    let admin = server.admin();
    let accepted = admin.ingest(&crate::harness::event("tool_call", "after.stall"));
    assert_eq!(
        accepted[0]["seq"],
        serde_json::json!(0),
        "nothing of the stalled request was stored"
    );
}
