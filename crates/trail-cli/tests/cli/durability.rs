//! Durability: `kill -9` in the middle of sustained concurrent ingest (four
//! threads posting batches and recording every acknowledged id and seq),
//! twice, and a SIGTERM under the same load (exit code 0): after each
//! restart on the same data dir every acknowledged event is there with its
//! seq, seqs are gap-free 0..n-1, and the log goes on from n. A request
//! whose body is still arriving when SIGTERM comes is finished. And the
//! records table is append-only even to someone with the `sqlite3` shell:
//! UPDATE and DELETE fail mentioning append-only, and nothing changes.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{event, read_response, wait_until, Client, Server};

/// Threads posting batches until stopped or until the server goes away.
struct Load {
    threads: Vec<JoinHandle<()>>,
    acked: Arc<Mutex<Vec<(String, u64)>>>,
    stop: Arc<AtomicBool>,
}

impl Load {
    fn start(client: &Client, threads: usize, batch: usize, tag: &str) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|t| {
                let client = client.clone();
                let acked = Arc::clone(&acked);
                let stop = Arc::clone(&stop);
                let tag = tag.to_owned();
                std::thread::spawn(move || {
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let events: Vec<Value> = (0..batch)
                            .map(|k| {
                                let mut e = event("tool_call", &format!("{tag}.{t}"));
                                e["session_id"] = json!(format!("{tag}-{t}-{n}"));
                                e["duration_ms"] = json!(k);
                                e["input"] = json!({"n": n, "k": k});
                                e
                            })
                            .collect();
                        n += 1;
                        let body = serde_json::to_vec(&events).unwrap();
                        let response = match client.try_send(
                            "POST",
                            "/v1/events",
                            Some("application/json"),
                            Some(&body),
                        ) {
                            Ok(response) => response,
                            Err(_) => break,
                        };
                        if response.status != 200 {
                            // Refusals while shutting down are fine; nothing
                            // was acknowledged.
                            break;
                        }
                        let answer = response.json();
                        let accepted = answer["accepted"].as_array().expect("accepted");
                        assert_eq!(accepted.len(), batch);
                        let mut acked = acked.lock().unwrap();
                        for (sent, a) in events.iter().zip(accepted) {
                            assert_eq!(a["id"], sent["id"]);
                            acked.push((
                                a["id"].as_str().unwrap().to_owned(),
                                a["seq"].as_u64().expect("seq"),
                            ));
                        }
                    }
                })
            })
            .collect();
        Load {
            threads,
            acked,
            stop,
        }
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    fn wait_for(&self, n: usize) {
        assert!(
            wait_until(Duration::from_secs(120), || self.acked_count() >= n),
            "only {} events acknowledged",
            self.acked_count()
        );
    }

    /// Joins the threads (they end when the server is gone) and returns
    /// every acknowledged (id, seq).
    fn finish(self) -> Vec<(String, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("load thread panicked");
        }
        Arc::try_unwrap(self.acked).unwrap().into_inner().unwrap()
    }
}

/// Restarts on `dir` and checks that every acknowledged event is there with
/// its seq and that seqs are 0..n-1; returns the server and n.
fn restart_and_check(dir: &Path, admin_key: &str, acked: &[(String, u64)]) -> (Server, u64) {
    let server = Server::start_in(dir);
    assert!(
        server.admin_key.is_none(),
        "a restart must not make a new admin key: {}",
        server.stdout()
    );
    let admin = server.client(admin_key);
    let records = admin.list_all(&[], 1000, true);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let n = seqs.len() as u64;
    assert_eq!(
        seqs,
        (0..n).collect::<Vec<_>>(),
        "seqs gap-free after restart"
    );
    let stored: HashMap<&str, u64> = records
        .iter()
        .map(|r| (r["id"].as_str().unwrap(), r["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(stored.len() as u64, n, "ids unique");
    let mut missing = Vec::new();
    for (id, seq) in acked {
        match stored.get(id.as_str()) {
            Some(s) => assert_eq!(s, seq, "{id}: acknowledged seq {seq}, stored {s}"),
            None => missing.push(id.clone()),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(admin.total(&[]), n);
    // By id too, for a sample.
    for (id, seq) in acked.iter().step_by(97) {
        let record = admin.get(&format!("/v1/events/{id}")).expect(200);
        assert_eq!(record["seq"], json!(seq));
    }
    // Those reads were recorded (events.read): the log goes on after them.
    let n = admin.total(&[]);
    (server, n)
}

#[test]
fn kill_9_during_concurrent_ingest_loses_no_acknowledged_event() {
    let dir = TempDir::new().unwrap();
    let mut server = Server::start_in(dir.path());
    let admin_key = server.admin_key();
    let ingest_key = server.create_key("default", "ingest", None);
    let mut all_acked = Vec::new();
    for round in 0..2 {
        let load = Load::start(&server.client(&ingest_key), 4, 25, &format!("round{round}"));
        load.wait_for(1500);
        server.kill9();
        let acked = load.finish();
        assert!(acked.len() >= 1500);
        let distinct: BTreeSet<u64> = acked.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            distinct.len(),
            acked.len(),
            "two acknowledgements with one seq"
        );
        all_acked.extend(acked);
        let (restarted, n) = restart_and_check(dir.path(), &admin_key, &all_acked);
        assert!(n >= all_acked.len() as u64);
        // The log goes on from n.
        let next = restarted
            .client(&ingest_key)
            .ingest(&event("tool_call", "after.crash"));
        assert_eq!(next[0]["seq"], json!(n));
        all_acked.push((next[0]["id"].as_str().unwrap().to_owned(), n));
        server = restarted;
    }
}

#[test]
fn sigterm_while_ingesting_exits_0_and_keeps_every_acknowledged_event() {
    let dir = TempDir::new().unwrap();
    let mut server = Server::start_in(dir.path());
    let admin_key = server.admin_key();
    let load = Load::start(&server.admin(), 4, 50, "term");
    load.wait_for(1000);
    let status = server.terminate();
    let acked = load.finish();
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM: {status:?}\n{}",
        server.log()
    );
    assert!(acked.len() >= 1000);
    let (restarted, n) = restart_and_check(dir.path(), &admin_key, &acked);
    let next = restarted
        .client(&admin_key)
        .ingest(&event("tool_call", "after.term"));
    assert_eq!(next[0]["seq"], json!(n));

    // An idle server stops with 0 too, and keeps everything.
    let mut restarted = restarted;
    let status = restarted.terminate();
    assert_eq!(status.code(), Some(0), "idle SIGTERM: {status:?}");
    let mut acked = acked;
    acked.push((next[0]["id"].as_str().unwrap().to_owned(), n));
    restart_and_check(dir.path(), &admin_key, &acked);
}

#[test]
fn sigterm_finishes_a_request_whose_body_is_still_arriving() {
    let dir = TempDir::new().unwrap();
    let mut server = Server::start_in(dir.path());
    let admin_key = server.admin_key();
    server.admin().ingest(&event("tool_call", "before"));
    let events: Vec<Value> = (0..3000)
        .map(|i| {
            let mut e = event("api_request", &format!("inflight.{}", i % 7));
            e["input"] = json!({"i": i, "pad": "p".repeat(200)});
            e
        })
        .collect();
    let body = serde_json::to_vec(&events).unwrap();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {admin_key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).unwrap();
    stream.flush().unwrap();
    // The server has accepted the connection and is reading the body.
    std::thread::sleep(Duration::from_millis(300));
    server.signal_term();
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[half..]).unwrap();
    let response = read_response(&mut stream).expect("an answer to the in-flight request");
    let answer = response.expect(200);
    let accepted = answer["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), events.len());
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "exit after SIGTERM: {status:?}");
    let acked: Vec<(String, u64)> = accepted
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_owned(),
                a["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let (server, _) = restart_and_check(dir.path(), &admin_key, &acked);
    assert_eq!(
        server.client(&admin_key).total_recorded(&[]),
        events.len() as u64 + 1
    );
}

fn sqlite(db: &Path, sql: &str) -> (i32, String, String) {
    let output = Command::new("sqlite3")
        .arg("-cmd")
        .arg(".timeout 10000")
        .arg(db)
        .arg(sql)
        .output()
        .expect("run sqlite3");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn sqlite_records_table_is_append_only_from_the_shell() {
    let dir = TempDir::new().unwrap();
    let mut server = Server::start_in(dir.path());
    let admin = server.admin();
    let admin_key = server.admin_key();
    let events: Vec<Value> = (0..20)
        .map(|i| {
            let mut e = event("tool_call", &format!("tamper.{i}"));
            e["user_id"] = json!(format!("u{}", i % 3));
            e["input"] = json!({"i": i});
            e
        })
        .collect();
    admin.ingest(&Value::Array(events));
    let before = admin.list_all(&[], 100, true);
    assert_eq!(before.len(), 20);
    let db = dir.path().join("trail.db");

    let attempts = [
        "UPDATE records SET seq = seq",
        "UPDATE records SET seq = seq + 100 WHERE seq = 3",
        "UPDATE records SET envelope = x'00', leaf_hash = x'00' WHERE seq = 1",
        "DELETE FROM records WHERE seq = 0",
        "DELETE FROM records",
    ];
    for sql in attempts {
        let (code, _, stderr) = sqlite(&db, sql);
        assert_ne!(code, 0, "{sql}: succeeded");
        assert!(stderr.contains("append-only"), "{sql}: stderr {stderr:?}");
    }
    let (code, mode, stderr) = sqlite(&db, "PRAGMA journal_mode");
    assert_eq!(
        (code, mode.as_str()),
        (0, "wal"),
        "the database is in WAL mode: {stderr}"
    );
    let (code, count, stderr) = sqlite(&db, "SELECT count(*), min(seq), max(seq) FROM records");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(count, "20|0|19");

    let after = admin.list_all(&[], 100, true);
    assert_eq!(after, before, "records changed");

    // And after a restart (nothing half-applied is committed).
    server.kill9();
    let server = Server::start_in(dir.path());
    let admin = server.client(&admin_key);
    assert_eq!(admin.list_all(&[], 100, true), before);
    let next = admin.ingest(&event("tool_call", "after.tamper"));
    assert_eq!(next[0]["seq"], json!(20));
}
