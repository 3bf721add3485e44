//! The recording SDK (trail-client), driven through its example agent
//! (`target/<profile>/examples/agent`, built by `cargo test --workspace
//! --all-targets` or `cargo build -p trail-client --examples`) against real
//! `trail serve` processes: started late, killed with -9 mid-stream, the
//! agent itself killed while spooling, disabled, and embedded on a data
//! directory that `trail verify` and `trail serve` then read.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{create_key, marker, trail, wait_until, Client, Server, BIN};

/// The example agent next to the `trail` binary.
fn agent_bin() -> PathBuf {
    let bin = Path::new(BIN);
    let path = bin
        .parent()
        .expect("the trail binary has a directory")
        .join("examples")
        .join("agent");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p trail-client --examples` \
         (cargo test --workspace --all-targets builds it too)",
        path.display()
    );
    path
}

/// The agent command with a clean environment.
fn agent(args: &[&str]) -> Command {
    let mut command = Command::new(agent_bin());
    for (name, _) in std::env::vars() {
        if name.starts_with("TRAIL_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .env("TRAIL_FLUSH_MS", "50")
        .env("RUST_LOG", "off")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the agent to its end (at most two minutes) and returns its JSON line.
/// The agent against a server, with its spool dir.
fn remote_agent(url: &str, key: &str, events: &str, session: &str, spool: &Path) -> Command {
    let mut command = agent(&[
        "--url",
        url,
        "--key",
        key,
        "--events",
        events,
        "--session",
        session,
    ]);
    command.arg("--spool-dir").arg(spool);
    command
}

fn run_agent(command: &mut Command) -> Value {
    let child = command.spawn().expect("spawn the agent");
    finish_agent(child)
}

fn finish_agent(mut child: Child) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent did not exit within 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output: Output = child.wait_with_output().expect("agent output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "agent failed ({}): {stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("agent printed {stdout:?}: {e}"))
}

/// A free local address (bound, then released).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A data directory with its admin key, and a fixed address to serve it
/// on: the server is started once (to make the key) and stopped.
fn prepared_dir() -> (TempDir, String, SocketAddr) {
    let dir = TempDir::new().unwrap();
    let addr = free_addr();
    let mut server = Server::start_in_at(dir.path(), addr);
    let key = server.admin_key();
    server.terminate();
    (dir, key, addr)
}

/// Every record of `session`, checked to hold each id once; returns the ids.
fn session_ids(client: &Client, session: &str) -> HashSet<String> {
    let records = client.list_all(&[("session_id", session)], 100, true);
    let mut ids = HashSet::new();
    for record in &records {
        let id = record["id"].as_str().expect("id").to_owned();
        assert!(ids.insert(id.clone()), "event {id} is stored twice");
        assert_eq!(record["transport"], "sdk");
    }
    ids
}

fn counter(out: &Value, name: &str) -> u64 {
    out["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {out}"))
}

/// The ids of the complete lines in a spool directory.
fn spooled_ids(dir: &Path) -> Vec<String> {
    let mut ids = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return ids;
    };
    for entry in entries {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for line in text.split_inclusive('\n') {
            let Some(line) = line.strip_suffix('\n') else {
                continue;
            };
            if let Ok(event) = serde_json::from_str::<Value>(line) {
                ids.push(event["id"].as_str().expect("spooled id").to_owned());
            }
        }
    }
    ids
}

#[test]
fn sdk_agent_started_before_the_server_delivers_everything_once() {
    let (dir, key, addr) = prepared_dir();
    let spool = TempDir::new().unwrap();
    let session = marker("sdk-late");
    let n = 300;
    let url = format!("http://{addr}");
    let child = remote_agent(&url, &key, &n.to_string(), &session, spool.path())
        .args(["--flush-timeout-secs", "100"])
        .spawn()
        .expect("spawn the agent");
    std::thread::sleep(Duration::from_secs(5));
    let server = Server::start_in_at(dir.path(), addr);
    let out = finish_agent(child);
    assert_eq!(out["flushed"], true, "{out}");
    assert_eq!(counter(&out, "recorded"), n);
    assert_eq!(counter(&out, "sent"), n);
    assert_eq!(counter(&out, "dropped"), 0);
    assert!(
        counter(&out, "spooled") > 0,
        "the server was down, yet nothing was spooled: {out}"
    );
    let ids = session_ids(&server.client(&key), &session);
    assert_eq!(ids.len() as u64, n);
    assert!(
        spooled_ids(spool.path()).is_empty(),
        "the spool was not emptied"
    );
}

#[test]
fn sdk_server_killed_mid_stream_loses_and_duplicates_nothing() {
    let (dir, key, addr) = prepared_dir();
    let spool = TempDir::new().unwrap();
    let session = marker("sdk-kill9");
    let n: u64 = 1500;
    let mut server = Server::start_in_at(dir.path(), addr);
    let client = server.client(&key);
    let url = format!("http://{addr}");
    let child = remote_agent(&url, &key, &n.to_string(), &session, spool.path())
        .args(["--delay-ms", "2", "--flush-timeout-secs", "100"])
        .spawn()
        .expect("spawn the agent");
    assert!(
        wait_until(Duration::from_secs(60), || client
            .total(&[("session_id", &session)])
            >= 100),
        "the agent's events never arrived"
    );
    server.kill9();
    std::thread::sleep(Duration::from_secs(1));
    let server = Server::start_in_at(dir.path(), addr);
    let out = finish_agent(child);
    assert_eq!(out["flushed"], true, "{out}");
    assert_eq!(counter(&out, "recorded"), n);
    assert_eq!(counter(&out, "sent"), n);
    assert_eq!(counter(&out, "dropped"), 0);
    assert!(
        counter(&out, "retried") + counter(&out, "spooled") > 0,
        "the server was killed after the agent finished: {out}"
    );
    let ids = session_ids(&server.client(&key), &session);
    assert_eq!(ids.len() as u64, n);
}

#[test]
fn sdk_agent_killed_while_spooling_delivers_its_spool_once_on_restart() {
    let (dir, key, addr) = prepared_dir();
    let spool = TempDir::new().unwrap();
    let session = marker("sdk-spool");
    let url = format!("http://{addr}");
    // The server is down: everything the agent records is spooled.
    let mut child = remote_agent(&url, &key, "100000", &session, spool.path())
        .args(["--delay-ms", "2"])
        .spawn()
        .expect("spawn the agent");
    assert!(
        wait_until(Duration::from_secs(60), || spooled_ids(spool.path()).len()
            >= 200),
        "the agent spooled nothing"
    );
    child.kill().expect("kill -9 the agent");
    child.wait().expect("reap the agent");
    let spooled = spooled_ids(spool.path());
    let unique: HashSet<String> = spooled.iter().cloned().collect();
    assert_eq!(unique.len(), spooled.len(), "an event was spooled twice");
    assert!(unique.len() >= 200);

    let server = Server::start_in_at(dir.path(), addr);
    let out = run_agent(
        agent(&["--url", &url, "--key", &key, "--events", "0"])
            .arg("--spool-dir")
            .arg(spool.path()),
    );
    assert_eq!(out["flushed"], true, "{out}");
    assert_eq!(counter(&out, "recorded"), 0);
    assert_eq!(counter(&out, "sent"), unique.len() as u64);
    assert_eq!(counter(&out, "dropped"), 0);
    let ids = session_ids(&server.client(&key), &session);
    assert_eq!(ids, unique);
    assert!(
        spooled_ids(spool.path()).is_empty(),
        "the spool was not emptied"
    );

    // Running again sends nothing more.
    let out = run_agent(
        agent(&["--url", &url, "--key", &key, "--events", "0"])
            .arg("--spool-dir")
            .arg(spool.path()),
    );
    assert_eq!(counter(&out, "sent"), 0);
    assert_eq!(
        session_ids(&server.client(&key), &session).len(),
        unique.len()
    );
}

#[test]
fn sdk_disabled_records_nothing_and_writes_no_spool() {
    let server = Server::start();
    let key = server.admin_key();
    let spool = TempDir::new().unwrap();
    let spool_dir = spool.path().join("spool");
    let session = marker("sdk-off");
    let out = run_agent(
        remote_agent(&server.url, &key, "50", &session, &spool_dir).env("TRAIL_ENABLED", "false"),
    );
    assert_eq!(out["enabled"], false, "{out}");
    for name in ["recorded", "sent", "spooled", "dropped", "retried"] {
        assert_eq!(counter(&out, name), 0, "{name}: {out}");
    }
    assert_eq!(server.admin().total(&[("session_id", &session)]), 0);
    assert!(!spool_dir.exists(), "a disabled recorder made its spool");

    // The same run enabled does record (so the check above can fail).
    let out = run_agent(&mut remote_agent(
        &server.url,
        &key,
        "50",
        &session,
        &spool_dir,
    ));
    assert_eq!(counter(&out, "sent"), 50, "{out}");
    assert_eq!(server.admin().total(&[("session_id", &session)]), 50);
}

#[test]
fn sdk_embedded_sqlite_records_verify_and_are_served() {
    let dir = TempDir::new().unwrap();
    let data = dir.path().join("data");
    let session = marker("sdk-embedded");
    let n = 120;
    let out = run_agent(
        agent(&[
            "--tenant",
            "acme",
            "--events",
            &n.to_string(),
            "--session",
            &session,
        ])
        .arg("--data-dir")
        .arg(&data),
    );
    assert_eq!(out["flushed"], true, "{out}");
    assert_eq!(counter(&out, "sent"), n);
    assert_eq!(counter(&out, "dropped"), 0);
    assert!(data.join("log.key").exists());
    assert!(!data.join("spool").exists(), "nothing needed spooling");

    // A second run appends to the same log.
    let out = run_agent(
        agent(&["--tenant", "acme", "--events", "5", "--session", &session])
            .arg("--data-dir")
            .arg(&data),
    );
    assert_eq!(counter(&out, "sent"), 5);

    let data_arg = data.to_str().unwrap();
    let verify = trail(&["verify", "--data-dir", data_arg, "--json"]);
    let report: Value = serde_json::from_str(verify.ok().lines().next().unwrap()).unwrap();
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["ok"], true);
    assert_eq!(report["records"], n + 5);
    assert!(report["checkpoints"].as_u64().unwrap() >= 1, "{report}");

    let key = create_key(&data, "acme", "read", None);
    let server = Server::start_in(&data);
    let client = server.client(&key);
    let ids = session_ids(&client, &session);
    assert_eq!(ids.len() as u64, n + 5);
    // Records are what the server makes: hashed content under the default
    // policy, errors kept, the signed log covers them.
    let records = client.list_all(&[("session_id", &session), ("status", "error")], 100, true);
    assert!(!records.is_empty());
    for record in &records {
        assert_eq!(record["name"], "fs.read");
        assert_eq!(record["error"], "no such file: /etc/missing");
        assert!(record["input_hash"].as_str().is_some());
        assert!(record.get("input").is_none());
    }
    // The checkpoint the agent signed is the one the server serves.
    let checkpoint = client.get("/v1/checkpoint");
    assert_eq!(checkpoint.status, 200);
    let expected = format!("trail.local/acme\n{}\n", n + 5);
    assert!(
        checkpoint.text().starts_with(&expected),
        "{}",
        checkpoint.text()
    );
}
