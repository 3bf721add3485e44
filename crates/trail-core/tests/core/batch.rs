//! Request body splitting: single object, array, NDJSON (explicit and
//! detected), and every error, including hostile nesting depth.

use std::time::{Duration, Instant};

use trail_core::batch::{split_body, BatchError};
use trail_core::limits::{MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_REQUEST_BYTES};

#[test]
fn single_object_array_and_ndjson() {
    let one = split_body(br#" {"type":"llm_call","name":"a"} "#, false).expect("object");
    assert_eq!(one.len(), 1);
    let arr = split_body(br#"[{"name":"a"},{"name":"b"},{"name":"c"}]"#, false).expect("array");
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[2]["name"], "c");
    let nd = b"{\"name\":\"a\"}\n\n{\"name\":\"b\"}\r\n  \n{\"name\":\"c\"}\n";
    assert_eq!(split_body(nd, true).map(|v| v.len()), Ok(3));
    // Detected without the flag.
    assert_eq!(split_body(nd, false).map(|v| v.len()), Ok(3));
    // A pretty-printed object is one event, not NDJSON.
    let pretty = b"{\n  \"name\": \"a\",\n  \"type\": \"llm_call\"\n}\n";
    assert_eq!(split_body(pretty, false).map(|v| v.len()), Ok(1));
    // Non-object elements pass through for validation to report.
    assert_eq!(split_body(b"[1, \"x\"]", false).map(|v| v.len()), Ok(2));
}

#[test]
fn empty_bodies() {
    for body in [&b""[..], b"  \n ", b"[]", b" [ ] "] {
        assert_eq!(split_body(body, false), Err(BatchError::Empty), "{body:?}");
    }
    assert_eq!(split_body(b"\n\n\n", true), Err(BatchError::Empty));
}

#[test]
fn malformed_and_utf8() {
    assert_eq!(
        split_body(b"{\"a\":\xff}", false),
        Err(BatchError::InvalidUtf8)
    );
    match split_body(b"{\"a\": }", false) {
        Err(BatchError::Malformed { location, .. }) => assert_eq!(location, "line 1 column 7"),
        other => panic!("unexpected {other:?}"),
    }
    match split_body(b"{\"a\":1}\n{\"b\":2}\n{\"c\":\n", false) {
        Err(BatchError::Malformed { location, message }) => {
            assert_eq!(location, "line 3");
            assert!(message.contains("column"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    match split_body(b"[{\"a\":1},]", false) {
        Err(e @ BatchError::Malformed { .. }) => assert!(!e.is_limit()),
        other => panic!("unexpected {other:?}"),
    }
    // Two objects on one line are not NDJSON.
    assert!(matches!(
        split_body(b"{} {}", false),
        Err(BatchError::Malformed { .. })
    ));
}

#[test]
fn limits() {
    let pad = "x".repeat(MAX_EVENT_BYTES);
    let big = format!(r#"[{{"name":"a"}},{{"name":"{pad}"}}]"#);
    match split_body(big.as_bytes(), false) {
        Err(
            e @ BatchError::EventTooLarge {
                index: 1,
                limit: MAX_EVENT_BYTES,
                ..
            },
        ) => assert!(e.is_limit()),
        other => panic!("unexpected {other:?}"),
    }
    let exact = format!(r#"{{"n":"{}"}}"#, "x".repeat(MAX_EVENT_BYTES - 8));
    assert_eq!(exact.len(), MAX_EVENT_BYTES);
    assert_eq!(split_body(exact.as_bytes(), false).map(|v| v.len()), Ok(1));

    let many = format!("[{}]", vec!["{}"; MAX_BATCH_EVENTS + 1].join(","));
    match split_body(many.as_bytes(), false) {
        Err(
            e @ BatchError::TooManyEvents {
                count,
                limit: MAX_BATCH_EVENTS,
            },
        ) => {
            assert_eq!(count, MAX_BATCH_EVENTS + 1);
            assert!(e.is_limit());
        }
        other => panic!("unexpected {other:?}"),
    }
    let many_nd = vec!["{}"; MAX_BATCH_EVENTS + 1].join("\n");
    assert!(matches!(
        split_body(many_nd.as_bytes(), true),
        Err(BatchError::TooManyEvents { .. })
    ));
    let max = format!("[{}]", vec!["{}"; MAX_BATCH_EVENTS].join(","));
    assert_eq!(
        split_body(max.as_bytes(), false).map(|v| v.len()),
        Ok(MAX_BATCH_EVENTS)
    );

    let huge = vec![b' '; MAX_REQUEST_BYTES + 1];
    assert!(matches!(
        split_body(&huge, false),
        Err(BatchError::RequestTooLarge { .. })
    ));
}

/// Runs `f` on a thread with a deliberately small stack, so an accidental
/// recursive descent over the input would overflow instead of passing.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no stack overflow")
}

#[test]
fn hostile_depth_is_rejected_quickly() {
    let depth = 100_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let in_object = format!(
        r#"{{"metadata":{}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    // 5 bytes per level: stay under the per-event size limit.
    let objects = format!("{}1{}", r#"{"a":"#.repeat(40_000), "}".repeat(40_000));
    let unclosed = "[".repeat(depth);
    let cases: Vec<(String, bool)> = vec![
        (arrays.clone(), false),
        (in_object.clone(), false),
        (objects.clone(), false),
        (format!("[{in_object}]"), false),
        (format!("{{}}\n{in_object}"), false),
        (in_object, true),
        (unclosed, false),
    ];
    let start = Instant::now();
    let results = on_small_stack(move || {
        cases
            .into_iter()
            .map(|(body, nd)| split_body(body.as_bytes(), nd))
            .collect::<Vec<_>>()
    });
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
    let locations: Vec<String> = results
        .into_iter()
        .map(|r| match r {
            Err(BatchError::TooDeep { location }) => location,
            Err(BatchError::Malformed { location, .. }) => format!("malformed {location}"),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        locations[..6],
        ["[0]", "body", "body", "[0]", "line 2", "line 1"]
    );
    assert!(locations[6].starts_with("malformed"), "{}", locations[6]);
}
