//! `TRAIL_ENABLED=false` is a true no-op: no thread, no file, no socket.
//! Alone in its test binary so that the process's thread count is its own.

use std::net::TcpListener;
use std::time::Duration;

use serde_json::json;
use trail_client::{Config, Recorder};

/// Threads of this process (Linux).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn disabled_recorder_starts_no_thread_opens_no_file_and_no_socket() {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let spool_dir = dir.path().join("spool");
    let env = |name: &str| match name {
        "TRAIL_ENABLED" => Some("false".to_owned()),
        "TRAIL_URL" => Some(url.clone()),
        "TRAIL_KEY" => Some("k".to_owned()),
        "TRAIL_SPOOL_DIR" => Some(spool_dir.to_str().unwrap().to_owned()),
        "TRAIL_QUEUE_SIZE" => Some("1".to_owned()),
        _ => None,
    };
    let before = threads();
    let recorder = Recorder::new(Config::default().with_env(env));
    assert!(!recorder.is_enabled());
    for _ in 0..1000 {
        assert!(recorder
            .record(json!({"type": "tool_call", "name": "x"}))
            .is_none());
    }
    assert!(recorder.flush(Duration::from_secs(1)));
    assert_eq!(threads(), before, "a disabled recorder started a thread");
    assert_eq!(recorder.counters(), Default::default());
    drop(recorder);
    assert!(!spool_dir.exists(), "a disabled recorder made its spool");
    assert!(
        listener.accept().is_err(),
        "a disabled recorder connected to the server"
    );

    // The same configuration enabled does start its thread (so the checks
    // above can fail).
    let enabled = Recorder::new(
        Config::default().with_env(|name| env(name).filter(|_| name != "TRAIL_ENABLED")),
    );
    assert!(enabled.is_enabled());
    assert!(threads() > before);
    drop(enabled);
}
