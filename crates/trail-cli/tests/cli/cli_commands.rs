//! The CLI itself: `trail keys create/list/revoke` on the data dir (while
//! the server runs) and through a server (`--url --key`); `trail record`
//! from flags and from stdin; `trail query` as a table and as `--json`;
//! `trail bench ingest --json`; `trail serve` configured by environment and
//! restarted without a new admin key; and exit codes: 0 ok, 1 failure, 2
//! usage error (with nothing sent to the server).

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{
    assert_key_format, event, key_id, postgres_backend, trail, trail_with_stdin, Server,
};

fn keys_json(args: &[&str]) -> Vec<Value> {
    let run = trail(args);
    let value: Value = serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    value["keys"].as_array().expect("keys array").clone()
}

fn find_key<'a>(keys: &'a [Value], id: &str) -> &'a Value {
    keys.iter()
        .find(|k| k["key_id"] == json!(id))
        .unwrap_or_else(|| panic!("key {id} not listed in {keys:?}"))
}

#[test]
fn keys_create_list_and_revoke_on_the_data_dir() {
    let server = Server::start();
    let dir = server.data_dir.to_str().unwrap().to_owned();
    let create = |role: &str, extra: &[&str]| {
        let mut args = vec![
            "keys",
            "create",
            "--data-dir",
            &dir,
            "--tenant",
            "default",
            "--role",
            role,
        ];
        args.extend_from_slice(extra);
        let run = trail(&args);
        let out = run.ok();
        assert_eq!(
            out.lines().count(),
            1,
            "create prints only the key: {out:?}"
        );
        let key = out.trim().to_owned();
        assert_key_format(&key);
        key
    };
    let ingest = create("ingest", &["--label", "ci bot"]);
    let read = create("read", &["--user", "alice", "--label", "alice's reader"]);
    let admin2 = create("admin", &[]);
    assert_ne!(ingest, read);

    // The new keys work on the running server with their roles.
    server
        .client(&ingest)
        .ingest(&event("tool_call", "by.cli.key"));
    server.client(&read).get("/v1/events").expect(200);
    server.client(&admin2).get("/v1/keys").expect(200);
    assert_eq!(
        server
            .client(&read)
            .post("/v1/events", &event("tool_call", "x"))
            .status,
        403
    );

    let keys = keys_json(&[
        "keys",
        "list",
        "--data-dir",
        &dir,
        "--tenant",
        "default",
        "--json",
    ]);
    assert_eq!(keys.len(), 4, "first admin key plus three: {keys:?}");
    let listed = find_key(&keys, &key_id(&ingest));
    assert_eq!(listed["role"], json!("ingest"));
    assert_eq!(listed["label"], json!("ci bot"));
    assert!(listed["revoked_at"].is_null());
    let listed = find_key(&keys, &key_id(&read));
    assert_eq!(listed["role"], json!("read"));
    assert_eq!(listed["user_id"], json!("alice"));
    find_key(&keys, &key_id(&server.admin_key()));

    let table = trail(&["keys", "list", "--data-dir", &dir, "--tenant", "default"]);
    let table = table.ok();
    for key in [&ingest, &read, &admin2, &server.admin_key()] {
        assert!(
            table.contains(&key_id(key)),
            "{key} not in the table:\n{table}"
        );
        let secret = key.rsplit('_').next().unwrap();
        assert!(!table.contains(secret), "a secret is listed");
    }
    let all_json = trail(&[
        "keys",
        "list",
        "--data-dir",
        &dir,
        "--tenant",
        "default",
        "--json",
    ]);
    let secret = ingest.rsplit('_').next().unwrap();
    assert!(
        !all_json.stdout.contains(secret),
        "a secret is listed as JSON"
    );

    let run = trail(&[
        "keys",
        "revoke",
        "--data-dir",
        &dir,
        "--tenant",
        "default",
        &key_id(&ingest),
    ]);
    run.ok();
    let keys = keys_json(&[
        "keys",
        "list",
        "--data-dir",
        &dir,
        "--tenant",
        "default",
        "--json",
    ]);
    assert!(
        find_key(&keys, &key_id(&ingest))["revoked_at"].is_string(),
        "revoked_at set"
    );
    assert!(find_key(&keys, &key_id(&read))["revoked_at"].is_null());
    assert_eq!(
        server
            .client(&ingest)
            .post("/v1/events", &event("tool_call", "x"))
            .status,
        401
    );

    // A tenant made by `keys create` on the fly.
    let other = trail(&[
        "keys",
        "create",
        "--data-dir",
        &dir,
        "--tenant",
        "brand-new",
        "--role",
        "admin",
    ]);
    let other = other.ok().trim().to_owned();
    assert_eq!(server.client(&other).total(&[]), 0);
    let keys = keys_json(&[
        "keys",
        "list",
        "--data-dir",
        &dir,
        "--tenant",
        "brand-new",
        "--json",
    ]);
    assert_eq!(keys.len(), 1);

    // Failures exit 1.
    let run = trail(&[
        "keys",
        "list",
        "--data-dir",
        &dir,
        "--tenant",
        "no-such-tenant",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let run = trail(&[
        "keys",
        "revoke",
        "--data-dir",
        &dir,
        "--tenant",
        "default",
        "0000000000000000",
    ]);
    assert_eq!(run.code, 1, "revoking an unknown key: {run:?}");
}

#[test]
fn keys_through_a_server() {
    let server = Server::start();
    let url = server.url.clone();
    let admin_key = server.admin_key();
    let run = trail(&[
        "keys", "create", "--url", &url, "--key", &admin_key, "--role", "read", "--label", "remote",
    ]);
    let read = run.ok().trim().to_owned();
    assert_key_format(&read);
    server.client(&read).get("/v1/events").expect(200);
    let keys = keys_json(&["keys", "list", "--url", &url, "--key", &admin_key, "--json"]);
    assert_eq!(find_key(&keys, &key_id(&read))["label"], json!("remote"));
    let run = trail(&[
        "keys",
        "revoke",
        "--url",
        &url,
        "--key",
        &admin_key,
        &key_id(&read),
    ]);
    run.ok();
    assert_eq!(server.client(&read).get("/v1/events").status, 401);
    let keys = keys_json(&["keys", "list", "--url", &url, "--key", &admin_key, "--json"]);
    assert!(find_key(&keys, &key_id(&read))["revoked_at"].is_string());

    // A non-admin key cannot manage keys: a failure, exit 1.
    let ingest = server.create_key("default", "ingest", None);
    let run = trail(&[
        "keys", "create", "--url", &url, "--key", &ingest, "--role", "admin",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.trim().is_empty(), "no key printed: {run:?}");
    let run = trail(&["keys", "list", "--url", &url, "--key", &ingest]);
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn record_from_flags_and_stdin_then_query_as_table_and_json() {
    let server = Server::start();
    let url = server.url.clone();
    let key = server.create_key("default", "ingest", None);
    let admin_key = server.admin_key();

    let run = trail(&[
        "record",
        "--url",
        &url,
        "--key",
        &key,
        "--type",
        "tool_call",
        "--name",
        "fs.read",
        "--user-id",
        "alice",
        "--session-id",
        "s-1",
        "--status",
        "error",
        "--error",
        "disk on fire",
        "--duration-ms",
        "42",
        "--model",
        "m-1",
        "--provider",
        "p-1",
        "--metadata",
        r#"{"k":"v","n":1}"#,
        "--json",
    ]);
    let answer: Value = serde_json::from_str(run.ok()).expect("record --json prints JSON");
    let accepted = &answer["accepted"][0];
    assert_eq!(accepted["seq"], json!(0));
    assert_eq!(accepted["duplicate"], json!(false));
    let id = accepted["id"].as_str().expect("id").to_owned();
    let admin = server.admin();
    let record = &admin.get(&format!("/v1/events/{id}")).expect(200)["record"];
    assert_eq!(record["type"], json!("tool_call"));
    assert_eq!(record["name"], json!("fs.read"));
    assert_eq!(record["user_id"], json!("alice"));
    assert_eq!(record["session_id"], json!("s-1"));
    assert_eq!(record["status"], json!("error"));
    assert_eq!(record["error"], json!("disk on fire"));
    assert_eq!(record["duration_ms"], json!(42));
    assert_eq!(record["model"], json!("m-1"));
    assert_eq!(record["provider"], json!("p-1"));
    assert_eq!(record["metadata"], json!({"k": "v", "n": 1}));

    let run = trail(&[
        "record", "--url", &url, "--key", &key, "--type", "llm_call", "--name", "chat",
    ]);
    let out = run.ok();
    // (seq 1 is the events.read record of the detail view above)
    assert!(out.contains("seq 2"), "plain output names the seq: {out}");

    let stdin_event = event("escalation", "ask.human");
    let stdin_id = stdin_event["id"].as_str().unwrap().to_owned();
    let run = trail_with_stdin(
        &["record", "--url", &url, "--key", &key],
        Some(&stdin_event.to_string()),
    );
    assert!(run.ok().contains(&stdin_id), "{run:?}");
    let run = trail_with_stdin(
        &["record", "--url", &url, "--key", &key, "--json"],
        Some(r#"{"type":"tool_call","name":"from.stdin","user_id":"bob"}"#),
    );
    let answer: Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(answer["accepted"][0]["seq"], json!(4));

    // A bad event is a failure naming the field; nothing stored.
    let run = trail_with_stdin(
        &["record", "--url", &url, "--key", &key],
        Some(r#"{"type":"tool_call","name":"x","foo":1}"#),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("foo"),
        "the field is named: {}",
        run.stderr
    );
    let run = trail(&[
        "record",
        "--url",
        &url,
        "--key",
        &key,
        "--type",
        "phone_call",
        "--name",
        "x",
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("type"), "{}", run.stderr);
    assert_eq!(admin.total_recorded(&[]), 4);

    // query: the table.
    let run = trail(&["query", "--url", &url, "--key", &admin_key]);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines[0].trim_start().starts_with("SEQ"),
        "header: {:?}",
        lines[0]
    );
    // Four records and the events.read record of the detail read above.
    assert_eq!(lines.len(), 6, "header and five rows:\n{out}");
    for (line, name) in
        lines[1..]
            .iter()
            .zip(["from.stdin", "ask.human", "chat", "events.read", "fs.read"])
    {
        assert!(line.contains(name), "{name} not in {line:?}");
    }
    let run = trail(&[
        "query",
        "--url",
        &url,
        "--key",
        &admin_key,
        "--type",
        "tool_call",
        "--asc",
    ]);
    let out = run.ok();
    let rows: Vec<&str> = out
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].contains("fs.read") && rows[1].contains("from.stdin"),
        "{out}"
    );
    assert!(
        rows[0].trim_start().starts_with('0'),
        "seq column first: {out}"
    );

    // query --json is the API's answer.
    let run = trail(&[
        "query",
        "--url",
        &url,
        "--key",
        &admin_key,
        "--json",
        "--user-id",
        "alice",
    ]);
    let cli: Value = serde_json::from_str(run.ok()).expect("query --json prints JSON");
    let api = admin
        .get_q("/v1/events", &[("user_id", "alice"), ("limit", "50")])
        .expect(200);
    assert_eq!(cli["events"], api["events"]);
    assert_eq!(cli["events"].as_array().unwrap().len(), 1);
    let run = trail(&[
        "query",
        "--url",
        &url,
        "--key",
        &admin_key,
        "--json",
        "--name-contains",
        "FROM",
        "--limit",
        "1",
    ]);
    let cli: Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(cli["events"][0]["name"], json!("from.stdin"));
    let run = trail(&[
        "query", "--url", &url, "--key", &admin_key, "--json", "--asc", "--limit", "2",
    ]);
    let cli: Value = serde_json::from_str(run.ok()).unwrap();
    let seqs: Vec<&Value> = cli["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["seq"])
        .collect();
    assert_eq!(seqs, vec![&json!(0), &json!(1)]);
    assert!(cli["next_cursor"].is_string());
    let cursor = cli["next_cursor"].as_str().unwrap().to_owned();
    let run = trail(&[
        "query", "--url", &url, "--key", &admin_key, "--json", "--asc", "--limit", "2", "--cursor",
        &cursor,
    ]);
    let cli: Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(cli["events"][0]["seq"], json!(2));

    // An ingest key cannot query: a failure.
    let run = trail(&["query", "--url", &url, "--key", &key]);
    assert_eq!(run.code, 1, "{run:?}");
}

#[test]
fn bench_ingest_reports_rate_and_latency_as_json() {
    let server = Server::start();
    let key = server.create_key("default", "ingest", None);
    let run = trail(&[
        "bench",
        "ingest",
        "--url",
        &server.url,
        "--key",
        &key,
        "--events",
        "2000",
        "--concurrency",
        "4",
        "--batch",
        "100",
        "--json",
    ]);
    let out = run.ok().trim().to_owned();
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let rate = report["events_per_s"].as_f64().expect("events_per_s");
    let p50 = report["p50_ms"].as_f64().expect("p50_ms");
    let p99 = report["p99_ms"].as_f64().expect("p99_ms");
    assert!(rate > 0.0, "{report}");
    assert!(p50 >= 0.0 && p50 <= p99, "{report}");
    let admin = server.admin();
    assert_eq!(
        admin.total(&[]),
        2000,
        "the benchmark's events are recorded"
    );
    let newest = admin.get_q("/v1/events", &[("limit", "1")]).expect(200);
    assert_eq!(newest["events"][0]["seq"], json!(1999));
}

#[test]
fn usage_errors_exit_2_and_send_nothing() {
    let server = Server::start();
    let url = server.url.clone();
    let key = server.admin_key();
    let dir = server.data_dir.to_str().unwrap().to_owned();
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["frobnicate"],
        vec!["serve", "--listen", "not-an-address", "--data-dir", &dir],
        vec!["keys"],
        vec!["keys", "create", "--data-dir", &dir, "--role", "superuser"],
        vec![
            "keys",
            "create",
            "--data-dir",
            &dir,
            "--role",
            "ingest",
            "--user",
            "bob",
        ],
        vec!["keys", "create", "--data-dir", &dir],
        vec!["keys", "revoke", "--data-dir", &dir],
        vec!["keys", "list", "--url", &url],
        vec![
            "record",
            "--url",
            &url,
            "--type",
            "tool_call",
            "--name",
            "x",
        ],
        vec![
            "record",
            "--url",
            &url,
            "--key",
            &key,
            "--type",
            "tool_call",
            "--name",
            "x",
            "--duration-ms",
            "-3",
        ],
        vec![
            "record",
            "--url",
            &url,
            "--key",
            &key,
            "--type",
            "tool_call",
            "--name",
            "x",
            "--metadata",
            "{oops",
        ],
        vec![
            "record",
            "--url",
            &url,
            "--key",
            &key,
            "--type",
            "tool_call",
            "--name",
            "x",
            "--bogus",
        ],
        vec!["query", "--url", &url, "--key", &key, "--limit", "many"],
        vec!["query", "--url", &url, "--key", &key, "--colour", "blue"],
        vec![
            "bench", "ingest", "--url", &url, "--key", &key, "--events", "0", "--json",
        ],
        vec![
            "bench", "ingest", "--url", &url, "--key", &key, "--events", "10", "--batch", "20000",
            "--json",
        ],
        vec![
            "bench",
            "ingest",
            "--url",
            &url,
            "--key",
            &key,
            "--events",
            "10",
            "--concurrency",
            "0",
        ],
    ];
    for args in &cases {
        let run = trail(args);
        assert_eq!(run.code, 2, "trail {args:?}: {run:?}");
        assert!(!run.stderr.trim().is_empty(), "trail {args:?}: says why");
    }
    // No event on stdin and no --type.
    let run = trail_with_stdin(&["record", "--url", &url, "--key", &key], Some("  \n"));
    assert_eq!(run.code, 2, "empty stdin: {run:?}");
    assert_eq!(server.admin().total(&[]), 0, "a usage error sent something");
    let keys = keys_json(&["keys", "list", "--data-dir", &dir, "--json"]);
    assert_eq!(keys.len(), 1, "a usage error made a key");

    let version = trail(&["--version"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.contains("trail"));

    // Failures (the command ran and something is wrong) exit 1.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let run = trail(&["query", "--url", &dead, "--key", &key]);
    assert_eq!(run.code, 1, "unreachable server: {run:?}");
    let run = trail(&[
        "record",
        "--url",
        &dead,
        "--key",
        &key,
        "--type",
        "tool_call",
        "--name",
        "x",
    ]);
    assert_eq!(run.code, 1, "unreachable server: {run:?}");
    let bad_key = format!("trail_{}_{}", "1".repeat(16), "2".repeat(64));
    let run = trail(&["query", "--url", &url, "--key", &bad_key]);
    assert_eq!(run.code, 1, "wrong key: {run:?}");
    assert!(run.stderr.contains("401"), "{}", run.stderr);
}

#[test]
fn serve_from_environment_restarts_without_a_new_admin_key() {
    let dir = TempDir::new().unwrap();
    let mut server = Server::start_in_with_env(dir.path());
    let key = server.admin_key();
    assert!(server.stdout().contains(&key));
    let accepted = server.admin().ingest(&event("tool_call", "before.restart"));
    let id = accepted[0]["id"].as_str().unwrap().to_owned();
    if postgres_backend() {
        assert!(
            !dir.path().join("trail.db").exists(),
            "TRAIL_DATABASE_URL selects postgres: no sqlite store in the data dir"
        );
    } else {
        assert!(
            dir.path().join("trail.db").exists(),
            "the database lives in the data dir"
        );
    }

    // A second server cannot take the same port: a failure.
    let addr = server.addr.to_string();
    let other = TempDir::new().unwrap();
    let run = trail(&[
        "serve",
        "--data-dir",
        other.path().to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    assert_eq!(run.code, 1, "port in use: {run:?}");

    assert_eq!(server.terminate().code(), Some(0));
    let server = Server::start_in(dir.path());
    assert!(server.admin_key.is_none());
    assert!(
        !server.stdout().contains("admin key"),
        "{}",
        server.stdout()
    );
    let admin = server.client(&key);
    let record = admin.get(&format!("/v1/events/{id}")).expect(200);
    assert_eq!(record["seq"], json!(0));
    let next = admin.ingest(&event("tool_call", "after.restart"));
    // (seq 1 is the events.read record of the detail read above)
    assert_eq!(next[0]["seq"], json!(2));
}

/// The README's two set-up commands are the ones this project runs: `cargo
/// run --release -p trail-cli -- serve` starts the `trail` binary of this
/// crate on the embedded default (`./trail-data` under the current
/// directory, `127.0.0.1:8750`), and `scripts/test` runs every test.
#[test]
fn readme_set_up_commands_are_real() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("\ncargo run --release -p trail-cli -- serve\n"),
        "README run command"
    );
    assert!(readme.contains("\nscripts/test\n"), "README test command");
    assert_eq!(env!("CARGO_PKG_NAME"), "trail-cli");
    let script = std::fs::read_to_string(root.join("scripts/test")).unwrap();
    assert!(
        script.contains("cargo test --workspace"),
        "scripts/test runs the workspace tests"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(root.join("scripts/test"))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "scripts/test is executable");
    }

    // `serve` with no flags: the documented defaults.
    let help = trail(&["serve", "--help"]);
    assert!(help.stdout.contains("127.0.0.1:8750"), "{}", help.stdout);
    assert!(help.stdout.contains("./trail-data"), "{}", help.stdout);
    let cwd = TempDir::new().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trail"))
        .arg("serve")
        .current_dir(cwd.path())
        .env_remove("TRAIL_DATA_DIR")
        .env_remove("TRAIL_DATABASE_URL")
        .env("TRAIL_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("admin key for tenant default"), "{first}");
    let second = lines.next().unwrap().unwrap();
    assert!(
        second.starts_with("trail listening on http://127.0.0.1:"),
        "{second}"
    );
    assert!(cwd.path().join("trail-data/trail.db").exists());
    child.kill().unwrap();
    child.wait().unwrap();
}
