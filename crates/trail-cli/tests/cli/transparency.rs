//! Transparency-log behaviour seen from outside: checkpoints of a growing
//! log never regress and every kept one is consistent with every later one
//! (checked by the independent verifier); a checkpoint is cut on its own
//! soon after the log grows; the log key lives in `DIR/log.key` with mode
//! 0600, `trail keys log-key` and `GET /v1/log` agree on its vkey, and
//! `--log-key-file` makes the server sign with a given key; `trail verify
//! --url` checks a running server; usage errors exit 2; bad proof
//! parameters are 400 problem+json naming the parameter.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{
    assert_problem, event, random_u64, request, trail, wait_until, Client, Server,
};
use crate::independent::{
    check_consistency, fetch_checkpoint, open_note, parse_vkey, private_key_line, root,
    trusted_vkey, verify_bundle, Checkpoint,
};

fn batch(n: usize, tag: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| event("tool_call", &format!("{tag}-{i}")))
            .collect(),
    )
}

#[test]
fn checkpoints_never_regress_and_stay_consistent() {
    let server = Server::start();
    let admin = server.admin();
    let vkey = trusted_vkey(&server);
    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(0));
    let poller = {
        let client = admin.clone();
        let stop = Arc::clone(&stop);
        let latest = Arc::clone(&latest);
        let vkey = vkey.clone();
        std::thread::spawn(move || {
            let mut seen: Vec<Checkpoint> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (checkpoint, _) = fetch_checkpoint(&client, None, &vkey);
                latest.store(checkpoint.size, Ordering::Relaxed);
                seen.push(checkpoint);
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        })
    };
    let mut total = 0;
    for round in 0..6 {
        let n = 2 + round % 3;
        admin.ingest(&batch(n, &format!("round{round}")));
        total += n as u64;
        // Let the poller see this size (and poll a few times meanwhile)
        // before the log grows again, so every round leaves its size.
        let seen_it = wait_until(Duration::from_secs(30), || {
            latest.load(Ordering::Relaxed) >= total || poller.is_finished()
        });
        assert!(seen_it && !poller.is_finished(), "the poller stopped early");
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = poller.join().expect("poller");
    let (last, _) = fetch_checkpoint(&admin, None, &vkey);
    assert_eq!(last.size, total);
    seen.push(last);
    for pair in seen.windows(2) {
        assert!(
            pair[0].size <= pair[1].size,
            "a checkpoint regressed: size {} after {}",
            pair[1].size,
            pair[0].size
        );
        if pair[0].size == pair[1].size {
            assert_eq!(
                pair[0].root, pair[1].root,
                "two roots for size {}",
                pair[0].size
            );
        }
    }
    // Every size seen is kept, with the same root; and each is consistent
    // with every later one.
    let mut kept: Vec<Checkpoint> = Vec::new();
    for checkpoint in &seen {
        if checkpoint.size == 0 || kept.iter().any(|k| k.size == checkpoint.size) {
            continue;
        }
        let (fetched, _) = fetch_checkpoint(&admin, Some(checkpoint.size), &vkey);
        assert_eq!(
            &fetched, checkpoint,
            "kept checkpoint of size {}",
            checkpoint.size
        );
        kept.push(fetched);
    }
    assert!(
        kept.len() >= 6,
        "too few distinct sizes seen: {}",
        kept.len()
    );
    for (i, a) in kept.iter().enumerate() {
        for b in &kept[i + 1..] {
            check_consistency(&admin, a, b);
        }
    }
    // And the export agrees: every one of them has the root of its leaves.
    let bundle = verify_bundle(&admin.get("/v1/export").text(), &vkey)
        .unwrap_or_else(|e| panic!("export: {e}"));
    for k in &kept {
        assert_eq!(k.root, root(&bundle.leaves[..k.size as usize]));
    }
}

/// Polls `GET /v1/checkpoint?size=N` (which never cuts one) until it is
/// kept; generous deadline, not a timing assertion.
fn wait_for_kept(client: &Client, size: u64) -> bool {
    wait_until(Duration::from_secs(10), || {
        client.get(&format!("/v1/checkpoint?size={size}")).status == 200
    })
}

#[test]
fn a_checkpoint_is_cut_on_its_own_after_growth() {
    let server = Server::start();
    let admin = server.admin();
    let vkey = trusted_vkey(&server);
    admin.ingest(&batch(3, "auto"));
    assert!(
        wait_for_kept(&admin, 3),
        "no checkpoint of size 3 within 10 s without asking"
    );
    admin.ingest(&batch(2, "auto-more"));
    assert!(
        wait_for_kept(&admin, 5),
        "no checkpoint of size 5 within 10 s without asking"
    );
    let (three, _) = fetch_checkpoint(&admin, Some(3), &vkey);
    let (five, _) = fetch_checkpoint(&admin, Some(5), &vkey);
    assert_eq!(five.origin, "trail.local/default");
    check_consistency(&admin, &three, &five);
    assert_eq!(admin.get("/v1/log").expect(200)["tree_size"], json!(5));
}

#[test]
fn the_log_key_file_and_keys_command_agree_with_the_server() {
    let server = Server::start();
    let admin = server.admin();
    let key_path = server.data_dir.join("log.key");
    let text = std::fs::read_to_string(&key_path).expect("DIR/log.key");
    assert!(
        text.starts_with("PRIVATE+KEY+trail.local+") && text.trim_end().lines().count() == 1,
        "log.key: {text:?}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "log.key mode {mode:o}");
    }
    let served = admin.get("/v1/log").expect(200);
    assert_eq!(served["origin"], json!("trail.local/default"));
    // trusted_vkey also checks it against log.key, independently derived.
    let vkey = trusted_vkey(&server);
    let run = trail(&[
        "keys",
        "log-key",
        "--data-dir",
        server.data_dir.to_str().unwrap(),
        "--json",
    ]);
    let printed: Value = serde_json::from_str(run.ok().trim())
        .unwrap_or_else(|e| panic!("keys log-key --json: {e}: {run:#?}"));
    assert_eq!(printed["vkey"], served["vkey"], "{printed}");
    assert_eq!(vkey.name, "trail.local");
    admin.ingest(&batch(2, "k"));
    let (checkpoint, _) = fetch_checkpoint(&admin, None, &vkey);
    assert_eq!(checkpoint.size, 2);
}

/// A `trail serve` started with `--log-key-file`; killed on drop.
struct KeyedServer {
    child: Child,
    addr: SocketAddr,
    admin_key: String,
}

impl Drop for KeyedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_with_key_file(dir: &Path, key_file: &Path) -> KeyedServer {
    let mut command = Command::new(crate::harness::BIN);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--log-key-file")
        .arg(key_file);
    if let Some(url) = crate::harness::server_database_url(dir) {
        command.arg("--database-url").arg(url);
    }
    for (name, _) in std::env::vars() {
        if name.starts_with("TRAIL_") {
            command.env_remove(name);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("spawn trail serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Nobody listens any more; keep draining.
                continue;
            }
        }
    });
    let mut admin_key = None;
    let mut server = KeyedServer {
        child,
        addr: "127.0.0.1:1".parse().unwrap(),
        admin_key: String::new(),
    };
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve --log-key-file printed no address");
        if let Some(key) = line.strip_prefix("admin key for tenant default (shown once, keep it): ")
        {
            admin_key = Some(key.trim().to_owned());
        } else if let Some(url) = line.strip_prefix("trail listening on http://") {
            server.addr = url.trim().parse().expect("address");
            break;
        }
    }
    server.admin_key = admin_key.expect("an admin key on a fresh data dir");
    assert!(
        wait_until(Duration::from_secs(60), || {
            request(server.addr, "GET", "/readyz", &[], None).is_ok_and(|r| r.status == 200)
        }),
        "never ready"
    );
    server
}

#[test]
fn a_given_log_key_file_signs_the_checkpoints() {
    let dir = TempDir::new().unwrap();
    let keys = TempDir::new().unwrap();
    let mut seed = [0u8; 32];
    for (i, chunk) in seed.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(random_u64() ^ i as u64).to_le_bytes());
    }
    let line = private_key_line("audit.example", &seed);
    let key_file = keys.path().join("signing.key");
    std::fs::write(&key_file, &line).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let expected = crate::independent::vkey_of_private_key(&line).unwrap();
    let vkey = parse_vkey(&expected).unwrap();

    let server = serve_with_key_file(dir.path(), &key_file);
    let admin = Client {
        addr: server.addr,
        key: Some(server.admin_key.clone()),
    };
    let log = admin.get("/v1/log").expect(200);
    assert_eq!(log["vkey"], json!(expected), "{log}");
    assert_eq!(log["origin"], json!("audit.example/default"), "{log}");
    admin.ingest(&batch(4, "keyed"));
    let (checkpoint, note) = fetch_checkpoint(&admin, None, &vkey);
    assert_eq!(checkpoint.origin, "audit.example/default");
    assert_eq!(checkpoint.size, 4);
    assert!(note.contains("\n\u{2014} audit.example "), "{note}");
    let bundle = verify_bundle(&admin.get("/v1/export").text(), &vkey)
        .unwrap_or_else(|e| panic!("export under the given key: {e}"));
    assert_eq!(bundle.leaves.len(), 4);
    // The data dir's own key (if any) did not sign it.
    if let Ok(own) = std::fs::read_to_string(dir.path().join("log.key")) {
        let own = parse_vkey(&crate::independent::vkey_of_private_key(&own).unwrap()).unwrap();
        assert!(
            open_note(&note, &own).is_err(),
            "signed by the data dir key"
        );
    }
    // trail verify with the same key file agrees.
    let run = trail(&[
        "verify",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--log-key-file",
        key_file.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:#?}");
}

#[test]
fn verify_url_passes_and_usage_errors_exit_2() {
    let server = Server::start();
    let admin = server.admin();
    admin.ingest(&batch(3, "u1"));
    fetch_checkpoint(&admin, None, &trusted_vkey(&server));
    admin.ingest(&batch(2, "u2"));
    let vkey = admin.get("/v1/log").expect(200)["vkey"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = server.admin_key();
    let run = trail(&["verify", "--url", &server.url, "--key", &key]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout
            .contains("tenant default: verified 5 records against "),
        "{run:#?}"
    );
    let run = trail(&[
        "verify",
        "--url",
        &server.url,
        "--key",
        &key,
        "--vkey",
        &vkey,
    ]);
    assert_eq!(run.code, 0, "with a pinned vkey: {run:#?}");

    let work = TempDir::new().unwrap();
    let bundle = work.path().join("b.ndjson");
    std::fs::write(&bundle, admin.get("/v1/export").text()).unwrap();
    let path = bundle.to_str().unwrap();
    let run = trail(&["verify", "--bundle", path]);
    assert_eq!(run.code, 2, "--bundle without --vkey: {run:#?}");
    let run = trail(&["verify", "--bundle", path, "--vkey", "not-a-vkey"]);
    assert_eq!(run.code, 2, "a malformed --vkey: {run:#?}");
    let run = trail(&["verify", "--bundle", path, "--vkey", &vkey]);
    assert_eq!(run.code, 0, "{run:#?}");
}

#[test]
fn bad_proof_parameters_are_problems_naming_the_parameter() {
    let server = Server::start();
    let admin = server.admin();
    admin.ingest(&batch(4, "p"));
    let vkey = trusted_vkey(&server);
    fetch_checkpoint(&admin, None, &vkey);
    let cases: &[(&str, &str)] = &[
        ("/v1/proof/inclusion", "seq"),
        ("/v1/proof/inclusion?size=2", "seq"),
        ("/v1/proof/inclusion?seq=abc", "seq"),
        ("/v1/proof/inclusion?seq=1&size=99", "size"),
        ("/v1/proof/inclusion?seq=3&size=2", "seq"),
        ("/v1/proof/inclusion?seq=9", "seq"),
        ("/v1/proof/consistency?from=0&to=2", "from"),
        ("/v1/proof/consistency?from=3&to=2", "from"),
        ("/v1/proof/consistency?to=2", "from"),
        ("/v1/proof/consistency?from=1", "to"),
        ("/v1/checkpoint?size=x", "size"),
    ];
    for (path, field) in cases {
        assert_problem(&admin.get(path), 400, field);
    }
    // A size never kept is not found, and nothing was cut for it.
    let response = admin.get("/v1/checkpoint?size=3");
    assert_eq!(response.status, 404, "{}", response.text());
}

#[test]
fn a_consistency_proof_beyond_the_log_names_to() {
    let server = Server::start();
    let admin = server.admin();
    admin.ingest(&batch(2, "c"));
    assert_problem(&admin.get("/v1/proof/consistency?from=1&to=99"), 400, "to");
}

/// `trail verify --data-dir` never makes a store or a log key: a directory
/// without them is a usage error and stays empty.
#[test]
fn verify_of_a_directory_without_a_store_is_a_usage_error_and_writes_nothing() {
    let dir = tempfile::TempDir::new().unwrap();
    let run = crate::harness::trail(&["verify", "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no log key"), "{}", run.stderr);
    let vkey = "trail.local+fd9bc2fd+AVhNE+8PGTrEg5P9jMDAY76GrPEI7yzqTUhXCa1xIEyK";
    let run = crate::harness::trail(&[
        "verify",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--vkey",
        vkey,
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no trail store"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was created"
    );
}
