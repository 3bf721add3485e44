//! The recorder against servers that misbehave: one that accepts
//! connections and never answers, and one that answers 503 then 200.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use trail_client::{Config, Recorder};

/// Complete lines in the spool's segment files.
fn spooled_lines(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.split_inclusive('\n') {
            if let Some(line) = line.strip_suffix('\n') {
                out.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    out
}

/// A server that accepts every connection and never answers.
fn stalled_server() -> (String, Arc<Mutex<Vec<TcpStream>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => keep.lock().unwrap().push(stream),
                Err(_) => return,
            }
        }
    });
    (url, held)
}

#[derive(Debug, PartialEq)]
struct ToolFailed(u32);

impl std::fmt::Display for ToolFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tool failed with {}", self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_returns_with_a_stalled_server_and_a_full_queue() {
    let spool = tempfile::tempdir().unwrap();
    let (url, held) = stalled_server();
    // The server never answers: a request would hang for a minute, so
    // anything near that means record() waited on the network.
    let request_timeout = Duration::from_secs(60);
    let bound = request_timeout / 10;
    let config = Config {
        spool_dir: spool.path().join("spool"),
        queue_size: 4,
        batch_size: 2,
        flush_interval: Duration::from_millis(20),
        request_timeout,
        drop_flush_timeout: Duration::from_millis(200),
        ..Config::remote(&url, "trail_x_y")
    };
    let recorder = Recorder::new(config);
    let total = 200;
    let mut slowest = Duration::ZERO;
    for i in 0..total {
        let t = Instant::now();
        let id =
            recorder.record(json!({"type": "tool_call", "name": "step", "metadata": {"i": i}}));
        slowest = slowest.max(t.elapsed());
        assert!(id.is_some());
    }
    assert!(
        slowest < bound,
        "record() took {slowest:?} with a stalled server"
    );
    // The batcher is stuck on the stalled request, so the queue filled and
    // the rest went to the spool.
    let counters = recorder.counters();
    assert_eq!(counters.recorded, total);
    assert_eq!(counters.dropped, 0);
    assert!(
        counters.spooled >= total - 10,
        "with a full queue events go to the spool: {counters:?}"
    );
    // ... and the batcher is indeed stuck on the server.
    let waited = Instant::now();
    while held.lock().unwrap().is_empty() {
        assert!(
            waited.elapsed() < request_timeout,
            "no request reached the server"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    // A wrapped tool's error and value come back unchanged, promptly.
    let t = Instant::now();
    let failed = recorder
        .tool_call("flaky", json!({"x": 1}), async {
            Err::<u32, _>(ToolFailed(7))
        })
        .await;
    assert_eq!(failed, Err(ToolFailed(7)));
    let fine = recorder
        .tool_call("fine", json!({}), async { Ok::<_, ToolFailed>(vec![1, 2]) })
        .await;
    assert_eq!(fine, Ok(vec![1, 2]));
    assert!(t.elapsed() < bound);

    // Closing abandons the stalled request: nothing is lost, every event
    // is in the spool, once.
    let t = Instant::now();
    drop(recorder);
    assert!(t.elapsed() < bound, "closing waited {:?}", t.elapsed());
    let lines = spooled_lines(&spool.path().join("spool"));
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len() as u64, total + 2);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, total + 2, "an event was spooled twice");
}

#[test]
fn disabled_recorder_does_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let config = Config {
        enabled: false,
        spool_dir: dir.path().join("spool"),
        queue_size: 1,
        ..Config::remote(&format!("http://{}", listener.local_addr().unwrap()), "k")
    };
    let recorder = Recorder::new(config);
    assert!(!recorder.is_enabled());
    for _ in 0..100 {
        assert_eq!(
            recorder.record(json!({"type": "tool_call", "name": "x"})),
            None
        );
    }
    assert!(recorder.flush(Duration::from_secs(1)));
    assert_eq!(recorder.counters(), Default::default());
    drop(recorder);
    assert!(!dir.path().join("spool").exists());
    assert!(listener.accept().is_err(), "a disabled recorder connected");
}

/// A server that answers 503 to the first `failures` requests, then 200
/// with one accepted entry per NDJSON line; keeps every body it took.
fn flaky_server(failures: usize) -> (String, Arc<Mutex<Vec<String>>>) {
    flaky_server_with(failures, "")
}

/// [`flaky_server`] whose 503 answers carry `extra` header lines.
fn flaky_server_with(failures: usize, extra: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&bodies);
    let seen = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let keep = Arc::clone(&keep);
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || loop {
                let Some(body) = read_request(&mut stream) else {
                    return;
                };
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let (status, answer) = if n < failures {
                    ("503 Service Unavailable", "{}".to_owned())
                } else {
                    let accepted: Vec<Value> = body
                        .lines()
                        .map(|line| {
                            let event: Value = serde_json::from_str(line).unwrap();
                            json!({"id": event["id"], "seq": 0, "duplicate": false})
                        })
                        .collect();
                    keep.lock().unwrap().push(body);
                    ("200 OK", json!({ "accepted": accepted }).to_string())
                };
                let headers = if n < failures { extra } else { "" };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{headers}content-length: {}\r\n\r\n{answer}",
                    answer.len()
                );
                if stream.write_all(response.as_bytes()).is_err() {
                    return;
                }
            });
        }
    });
    (url, bodies)
}

/// Reads one HTTP/1.1 request with a content-length body.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut buffer = Vec::new();
    let mut byte = [0u8; 1];
    while !buffer.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buffer.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buffer).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(String::from_utf8(body).unwrap())
}

#[test]
fn retries_on_503_then_delivers_every_event_once_in_order() {
    let spool = tempfile::tempdir().unwrap();
    let (url, bodies) = flaky_server(5);
    let config = Config {
        spool_dir: spool.path().join("spool"),
        batch_size: 10,
        flush_interval: Duration::from_millis(10),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..Config::remote(&url, "k")
    };
    let recorder = Recorder::new(config);
    let ids: Vec<String> = (0..100)
        .map(|i| {
            recorder
                .record(json!({"type": "llm_call", "name": "chat", "metadata": {"i": i}}))
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(
        recorder.flush(Duration::from_secs(60)),
        "{:?}",
        recorder.counters()
    );
    let counters = recorder.counters();
    assert_eq!(counters.sent, 100);
    assert!(counters.retried > 0, "{counters:?}");
    let delivered: Vec<String> = delivered_events(&bodies)
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, ids, "delivered out of order or not exactly once");
    drop(recorder);
    assert!(spooled_lines(&spool.path().join("spool")).is_empty());
}

#[test]
fn allowlists_filter_by_type_and_name() {
    let spool = tempfile::tempdir().unwrap();
    let (url, bodies) = flaky_server(0);
    let config = Config {
        spool_dir: spool.path().join("spool"),
        record_types: Some(vec!["tool_call".into()]),
        record_names: Some(vec!["keep".into(), "also".into()]),
        ..Config::remote(&url, "k")
    };
    let recorder = Recorder::new(config);
    assert!(recorder
        .record(json!({"type": "tool_call", "name": "keep"}))
        .is_some());
    assert!(recorder
        .record(json!({"type": "tool_call", "name": "skip"}))
        .is_none());
    assert!(recorder
        .record(json!({"type": "llm_call", "name": "keep"}))
        .is_none());
    assert!(recorder
        .record(json!({"type": "tool_call", "name": "also"}))
        .is_some());
    assert!(recorder.flush(Duration::from_secs(30)));
    let counters = recorder.counters();
    assert_eq!((counters.sent, counters.filtered), (2, 2));
    let names: Vec<String> = delivered_events(&bodies)
        .iter()
        .map(|event| event["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["keep", "also"]);
}

fn delivered_events(bodies: &Mutex<Vec<String>>) -> Vec<Value> {
    bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b.lines().map(str::to_owned).collect::<Vec<_>>())
        .map(|line| serde_json::from_str::<Value>(&line).unwrap())
        .collect()
}

#[tokio::test]
async fn helpers_record_one_event_per_call_and_stream() {
    use futures_util::StreamExt;

    let spool = tempfile::tempdir().unwrap();
    let (url, bodies) = flaky_server(0);
    let config = Config {
        spool_dir: spool.path().join("spool"),
        ..Config::remote(&url, "k")
    };
    let recorder = Recorder::new(config).with_fields(json!({"session_id": "s-1"}));
    let answer = recorder
        .llm_call("openai", "gpt-4.1", json!({"q": 1}), async {
            Ok::<_, ToolFailed>(
                json!({"text": "hi", "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
            )
        })
        .await;
    assert_eq!(answer.unwrap()["text"], "hi");
    let failed = recorder
        .llm_call("openai", "gpt-4.1", json!({"q": 2}), async {
            Err::<Value, _>(ToolFailed(429))
        })
        .await;
    assert_eq!(failed, Err(ToolFailed(429)));
    // A stream that ends, one that fails, one dropped half way.
    let items = vec![Ok::<_, ToolFailed>("a"), Ok("b")];
    let collected: Vec<_> = recorder
        .llm_stream(
            "anthropic",
            "m",
            json!({}),
            futures_util::stream::iter(items),
        )
        .collect()
        .await;
    assert_eq!(collected, vec![Ok("a"), Ok("b")]);
    let items = vec![Ok("a"), Err(ToolFailed(500)), Ok("c")];
    let collected: Vec<_> = recorder
        .llm_stream(
            "anthropic",
            "m",
            json!({}),
            futures_util::stream::iter(items),
        )
        .collect()
        .await;
    assert_eq!(collected, vec![Ok("a"), Err(ToolFailed(500)), Ok("c")]);
    let mut stream = recorder.llm_stream(
        "anthropic",
        "m",
        json!({}),
        futures_util::stream::iter(vec![Ok::<_, ToolFailed>("a"), Ok("b")]),
    );
    assert_eq!(stream.next().await, Some(Ok("a")));
    drop(stream);
    // Large content goes as its hash and size.
    let big = "x".repeat(100_000);
    let _ = recorder
        .tool_call("big", json!({"blob": big}), async {
            Ok::<_, ToolFailed>(1)
        })
        .await;
    assert!(recorder.flush(Duration::from_secs(30)));

    let events = delivered_events(&bodies);
    assert_eq!(events.len(), 6, "{events:?}");
    for event in &events {
        assert_eq!(event["session_id"], "s-1");
        assert_eq!(event["transport"], "sdk");
        assert!(uuid::Uuid::parse_str(event["id"].as_str().unwrap()).is_ok());
        assert!(event["started_at"].is_string() && event["duration_ms"].is_u64());
    }
    assert_eq!(events[0]["type"], "llm_call");
    assert_eq!(events[0]["status"], "ok");
    assert_eq!(events[0]["input_tokens"], 3);
    assert_eq!(events[0]["output_tokens"], 2);
    assert_eq!(events[0]["input"], json!({"q": 1}));
    assert_eq!(events[1]["status"], "error");
    assert_eq!(events[1]["error"], "tool failed with 429");
    assert_eq!(events[2]["status"], "ok");
    assert_eq!(events[2]["output"], json!(["a", "b"]));
    assert_eq!(events[3]["status"], "error");
    assert_eq!(events[3]["error"], "tool failed with 500");
    assert_eq!(events[4]["status"], "error");
    assert_eq!(events[4]["output"], json!(["a"]));
    assert_eq!(events[5]["name"], "big");
    assert!(events[5].get("input").is_none());
    assert_eq!(events[5]["input_hash"].as_str().unwrap().len(), 64);
    assert!(events[5]["input_bytes"].as_u64().unwrap() > 100_000);
}

#[test]
fn a_servers_retry_after_is_waited_for() {
    let spool = tempfile::tempdir().unwrap();
    let (url, bodies) = flaky_server_with(1, "retry-after: 2\r\n");
    let config = Config {
        spool_dir: spool.path().join("spool"),
        flush_interval: Duration::from_millis(10),
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..Config::remote(&url, "k")
    };
    let recorder = Recorder::new(config);
    let start = Instant::now();
    recorder.record(json!({"type": "tool_call", "name": "x"}));
    assert!(
        recorder.flush(Duration::from_secs(60)),
        "{:?}",
        recorder.counters()
    );
    // Without the header the retry would come after a few milliseconds.
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "retried after {:?} despite Retry-After: 2",
        start.elapsed()
    );
    assert_eq!(delivered_events(&bodies).len(), 1);
    assert_eq!(recorder.counters().retried, 1);
}
