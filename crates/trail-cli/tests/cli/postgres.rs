//! The postgres backend seen from outside, on databases of their own in the
//! cluster at `TRAIL_TEST_DATABASE_URL` (these tests fail when it is unset;
//! `scripts/test` sets it): three servers on one database keep one gap-free
//! log under concurrent ingest while one of them is killed with `kill -9`;
//! the application role `trail_app` may neither update nor delete the
//! append-only tables and sees no row without the tenant setting (row-level
//! security); a superuser who disables the append-only triggers and edits or
//! deletes a record is caught by `trail verify --database-url`, which on an
//! empty database is a usage error and creates nothing; bad URLs are clear
//! errors; and `database_url` in `trail.toml` selects postgres.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{
    create_test_database, create_test_database_from, event, new_uuid, psql, random_u64, trail,
    wait_until, Client, Run, Server,
};
use crate::independent::{private_key_line, vkey_of_private_key};

/// Writes a fresh log key file (mode 0600) into `dir`; returns its path and
/// vkey.
fn log_key_file(dir: &Path) -> (String, String) {
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&random_u64().to_le_bytes());
    }
    let line = private_key_line("trail.local", &seed);
    let path = dir.join("shared-log.key");
    std::fs::write(&path, &line).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let vkey = vkey_of_private_key(&line).unwrap();
    (path.to_str().unwrap().to_owned(), vkey)
}

/// Runs `sql` as the cluster's superuser on `url`; panics on failure;
/// returns the output lines (unaligned, tuples only).
fn sql_ok(url: &str, sql: &str) -> Vec<String> {
    let (ok, out, err) = psql(url, sql);
    assert!(ok, "psql failed: {err}\n{sql}");
    out.lines().map(|l| l.trim().to_owned()).collect()
}

/// The id of tenant `name` in `tenants`.
fn tenant_id(url: &str, name: &str) -> i64 {
    let rows = sql_ok(
        url,
        &format!("SELECT id FROM tenants WHERE name = '{name}'"),
    );
    assert_eq!(rows.len(), 1, "tenant {name}: {rows:?}");
    rows[0].parse().unwrap()
}

/// `trail verify --database-url URL --data-dir DIR --json` plus `extra`;
/// returns the run and the default tenant's report (Null when none).
fn verify_database(url: &str, dir: &Path, extra: &[&str]) -> (Run, Value) {
    let mut args = vec![
        "verify",
        "--database-url",
        url,
        "--data-dir",
        dir.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let run = trail(&args);
    let report = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["tenant"] == "default")
        .unwrap_or(Value::Null);
    (run, report)
}

/// What the load threads of one server saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged (id, seq, server).
    acked: Vec<(String, u64, usize)>,
    /// Every id sent (acknowledged or not).
    sent: HashSet<String>,
}

/// Client threads posting batches of 50 to 200 events until stopped or
/// until their server is gone.
fn load(
    client: &Client,
    server: usize,
    threads: usize,
    seen: &Arc<Mutex<Seen>>,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    (0..threads)
        .map(|t| {
            let (client, seen, stop) = (client.clone(), Arc::clone(seen), Arc::clone(stop));
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let size = 50 + (random_u64() % 151) as usize;
                    let events: Vec<Value> = (0..size)
                        .map(|k| {
                            json!({
                                "id": new_uuid(),
                                "type": "tool_call",
                                "name": format!("s{server}.t{t}"),
                                "session_id": format!("s{server}-t{t}-b{n}"),
                                "duration_ms": k,
                                "input": {"n": n, "k": k},
                            })
                        })
                        .collect();
                    n += 1;
                    seen.lock()
                        .unwrap()
                        .sent
                        .extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
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
                        // Refused: nothing of it was acknowledged.
                        break;
                    }
                    let answer = response.json();
                    let accepted = answer["accepted"].as_array().expect("accepted");
                    assert_eq!(accepted.len(), size, "{answer}");
                    let mut seen = seen.lock().unwrap();
                    for (sent, a) in events.iter().zip(accepted) {
                        assert_eq!(a["id"], sent["id"]);
                        assert_eq!(a["duplicate"], json!(false), "{a}");
                        seen.acked.push((
                            a["id"].as_str().unwrap().to_owned(),
                            a["seq"].as_u64().expect("seq"),
                            server,
                        ));
                    }
                }
            })
        })
        .collect()
}

fn acked_count(seen: &Mutex<Seen>) -> usize {
    seen.lock().unwrap().acked.len()
}

#[test]
fn pg_three_servers_share_one_gap_free_log() {
    let url = create_test_database();
    let keys = TempDir::new().unwrap();
    let (key_file, vkey) = log_key_file(keys.path());
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().unwrap()).collect();
    let flags = ["--log-key-file", key_file.as_str()];
    let first = Server::start_on_database(dirs[0].path(), &url, &flags);
    let admin_key = first.admin_key();
    let made = first
        .admin()
        .post("/v1/keys", &json!({"role": "ingest", "label": "load"}))
        .expect(201);
    let ingest_key = made["key"].as_str().unwrap().to_owned();
    let mut servers = vec![first];
    for dir in &dirs[1..] {
        let server = Server::start_on_database(dir.path(), &url, &flags);
        assert!(
            server.admin_key.is_none(),
            "a second server on one database made another admin key: {}",
            server.stdout()
        );
        servers.push(server);
    }
    // The keys live in the database: every server knows both.
    for server in &servers {
        server.client(&admin_key).get("/v1/keys").expect(200);
        assert_eq!(
            server.client(&admin_key).get("/v1/log").expect(200)["vkey"],
            json!(vkey)
        );
    }

    let seen: Vec<Arc<Mutex<Seen>>> = (0..3).map(|_| Arc::default()).collect();
    let stops: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::default()).collect();
    let mut threads: Vec<Vec<JoinHandle<()>>> = servers
        .iter()
        .enumerate()
        .map(|(i, server)| load(&server.client(&ingest_key), i, 3, &seen[i], &stops[i]))
        .collect();
    let total = |seen: &[Arc<Mutex<Seen>>]| seen.iter().map(|s| acked_count(s)).sum::<usize>();
    assert!(
        wait_until(Duration::from_secs(180), || total(&seen) >= 2500
            && acked_count(&seen[1]) >= 300),
        "only {} events acknowledged",
        total(&seen)
    );
    // kill -9 the second server mid-load; its clients stop on the error.
    servers[1].kill9();
    stops[1].store(true, Ordering::Relaxed);
    for thread in threads[1].drain(..) {
        thread
            .join()
            .expect("load thread of the killed server panicked");
    }
    let at_kill = total(&seen);
    assert!(
        wait_until(Duration::from_secs(180), || total(&seen) >= at_kill + 2500),
        "the other servers stopped acknowledging after the kill: {} then {}",
        at_kill,
        total(&seen)
    );
    for (i, stop) in stops.iter().enumerate() {
        stop.store(true, Ordering::Relaxed);
        for thread in threads[i].drain(..) {
            thread.join().expect("load thread panicked");
        }
    }

    let mut acked = Vec::new();
    let mut sent = HashSet::new();
    for s in &seen {
        let s = s.lock().unwrap();
        acked.extend(s.acked.iter().cloned());
        sent.extend(s.sent.iter().cloned());
    }
    assert!(acked.len() >= 5000, "{} acknowledged", acked.len());
    let by_server: Vec<usize> = (0..3)
        .map(|i| acked.iter().filter(|a| a.2 == i).count())
        .collect();
    assert!(
        by_server.iter().all(|&n| n > 0),
        "every server acknowledged events: {by_server:?}"
    );
    let distinct: HashSet<u64> = acked.iter().map(|a| a.1).collect();
    assert_eq!(
        distinct.len(),
        acked.len(),
        "two acknowledgements with one seq"
    );

    // Read back through a surviving server: seqs 0..n-1, each stored id
    // once, every acknowledged id with its seq, nothing never sent.
    let admin = servers[2].client(&admin_key);
    let records = admin.list_all(&[], 1000, true);
    let seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let n = seqs.len() as u64;
    assert_eq!(seqs, (0..n).collect::<Vec<_>>(), "seqs gap-free");
    let mut stored: HashMap<&str, u64> = HashMap::new();
    for record in &records {
        let id = record["id"].as_str().unwrap();
        assert!(
            stored.insert(id, record["seq"].as_u64().unwrap()).is_none(),
            "{id} stored twice"
        );
        assert!(sent.contains(id), "{id} was never sent");
    }
    let mut missing = Vec::new();
    for (id, seq, server) in &acked {
        match stored.get(id.as_str()) {
            Some(s) => assert_eq!(
                s, seq,
                "{id} (server {server}): acked seq {seq}, stored {s}"
            ),
            None => missing.push((id.clone(), *server)),
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
    let first_admin = servers[0].client(&admin_key);
    assert_eq!(
        first_admin.total(&[]),
        n,
        "the servers disagree on the count"
    );

    // A checkpoint of the whole log, then the store verifies.
    let note = first_admin.get("/v1/checkpoint");
    assert_eq!(note.status, 200, "{}", note.text());
    assert!(note.text().contains(&format!("\n{n}\n")), "{}", note.text());
    let (run, report) = verify_database(&url, keys.path(), &["--vkey", &vkey]);
    assert_eq!(run.code, 0, "trail verify: {run:#?}");
    assert_eq!(report["ok"], json!(true), "{report}");
    assert_eq!(report["records"], json!(n), "{report}");
    // And through --log-key-file instead of --vkey, as text.
    let run = trail(&[
        "verify",
        "--database-url",
        &url,
        "--log-key-file",
        &key_file,
        "--data-dir",
        keys.path().to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("tenant default: verified {n} records against ")),
        "{run:#?}"
    );
}

/// A server on a fresh database, 20 events ingested under the `full`
/// content policy (so content rows exist; 16 complete a stored subtree
/// hash) and a checkpoint cut; returns the server and the database URL.
fn ingested(dir: &Path) -> (Server, String) {
    let url = create_test_database();
    let server = Server::start_on_database(dir, &url, &[]);
    let admin = server.admin();
    admin
        .put("/v1/settings", &json!({"content_policy": "full"}))
        .expect(200);
    let events: Vec<Value> = (0..20)
        .map(|i| {
            json!({"id": new_uuid(), "type": "tool_call", "name": format!("rls-{i}"),
                   "input": {"i": i}, "output": "ok"})
        })
        .collect();
    admin.ingest(&Value::Array(events));
    assert_eq!(admin.get("/v1/checkpoint").status, 200);
    (server, url)
}

#[test]
fn pg_app_role_cannot_update_or_delete_and_sees_no_rows_without_tenant() {
    let dir = TempDir::new().unwrap();
    let (server, url) = ingested(dir.path());
    let tenant = tenant_id(&url, "default");
    // The superuser sees every row of every table it then tries to change.
    for table in ["records", "content", "tree_nodes", "checkpoints"] {
        let count = sql_ok(&url, &format!("SELECT count(*) FROM {table}"));
        assert_ne!(
            count,
            ["0"],
            "{table} is empty, the test would prove little"
        );
    }

    let mut statements = vec![
        "UPDATE records SET seq = seq".to_owned(),
        "UPDATE records SET envelope = envelope WHERE seq = 3".to_owned(),
        "DELETE FROM records WHERE seq = 0".to_owned(),
    ];
    for table in ["records", "content", "tree_nodes", "checkpoints"] {
        statements.push(format!("UPDATE {table} SET tenant_id = tenant_id"));
        statements.push(format!("DELETE FROM {table}"));
    }
    for statement in &statements {
        for with_tenant in [false, true] {
            let setting = if with_tenant {
                format!("SELECT set_config('trail.tenant', '{tenant}', false); ")
            } else {
                String::new()
            };
            let sql = format!("SET ROLE trail_app; {setting}{statement}");
            let (ok, _, stderr) = psql(&url, &sql);
            assert!(!ok, "{sql}: allowed to the application role");
            assert!(
                stderr.contains("permission denied"),
                "{sql}: stderr {stderr:?}"
            );
        }
    }

    // Row-level security: no tenant set, no rows; the tenant set, its rows;
    // another tenant, none.
    let as_app = |setting: Option<&str>, table: &str| -> String {
        let set = setting
            .map(|t| format!("SELECT set_config('trail.tenant', '{t}', false); "))
            .unwrap_or_default();
        let rows = sql_ok(
            &url,
            &format!("SET ROLE trail_app; {set}SELECT count(*) FROM {table}"),
        );
        rows.last().cloned().unwrap_or_default()
    };
    let tenant_text = tenant.to_string();
    assert_eq!(as_app(None, "records"), "0", "rows without trail.tenant");
    assert_eq!(
        as_app(Some(""), "records"),
        "0",
        "rows with an empty trail.tenant"
    );
    assert_eq!(as_app(Some(&tenant_text), "records"), "20");
    assert_eq!(
        as_app(Some("987654"), "records"),
        "0",
        "another tenant's rows"
    );
    for table in ["content", "tree_nodes", "checkpoints"] {
        assert_eq!(
            as_app(None, table),
            "0",
            "{table} rows without trail.tenant"
        );
        let superuser = sql_ok(
            &url,
            &format!("SELECT count(*) FROM {table} WHERE tenant_id = {tenant}"),
        );
        assert_eq!(
            as_app(Some(&tenant_text), table),
            superuser[0],
            "{table} rows of the tenant"
        );
    }

    // Nothing changed: the log is whole and verifies.
    let admin = server.admin();
    assert_eq!(admin.total(&[]), 20);
    let (run, report) = verify_database(&url, dir.path(), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(report["records"], json!(20), "{report}");
}

/// A copy of the database at `url` (which nobody may be connected to);
/// returns the copy's URL.
fn clone_database(url: &str) -> String {
    let source = url.rsplit('/').next().unwrap().split('?').next().unwrap();
    create_test_database_from(Some(source))
}

#[test]
fn pg_superuser_edit_is_caught_by_verify() {
    // 20 events in batches of four, a checkpoint after each.
    let dir = TempDir::new().unwrap();
    let url = create_test_database();
    let mut server = Server::start_on_database(dir.path(), &url, &[]);
    let admin = server.admin();
    for batch in 0..5 {
        let events: Vec<Value> = (0..4)
            .map(|j| {
                json!({"id": new_uuid(), "type": "tool_call",
                       "name": format!("step-{}", batch * 4 + j),
                       "metadata": {"batch": batch}})
            })
            .collect();
        admin.ingest(&Value::Array(events));
        let note = admin.get("/v1/checkpoint");
        assert!(
            note.text().contains(&format!("\n{}\n", (batch + 1) * 4)),
            "{}",
            note.text()
        );
    }
    assert!(server.terminate().success(), "SIGTERM exit");
    let tenant = tenant_id(&url, "default");

    // Untouched, it verifies (the log key is DIR/log.key).
    let (run, report) = verify_database(&url, dir.path(), &[]);
    assert_eq!(run.code, 0, "untouched: {run:#?}");
    assert_eq!(report["records"], json!(20), "{report}");

    // The triggers stop even a superuser while they are enabled.
    let copy = clone_database(&url);
    for sql in [
        format!("UPDATE records SET seq = seq WHERE tenant_id = {tenant} AND seq = 7"),
        format!("DELETE FROM records WHERE tenant_id = {tenant} AND seq = 12"),
    ] {
        let (ok, _, stderr) = psql(&copy, &sql);
        assert!(!ok, "{sql}: allowed with the triggers enabled");
        assert!(stderr.contains("append-only"), "{sql}: {stderr}");
    }

    // One byte of one envelope changed.
    let edit = format!(
        "ALTER TABLE records DISABLE TRIGGER USER;\n\
         UPDATE records SET envelope = convert_to(replace(convert_from(envelope, 'UTF8'), \
         '\"name\":\"step-7\"', '\"name\":\"step-Z\"'), 'UTF8') \
         WHERE tenant_id = {tenant} AND seq = 7;\n\
         SELECT count(*) FROM records WHERE tenant_id = {tenant} \
         AND position(convert_to('\"name\":\"step-Z\"', 'UTF8') in envelope) > 0;"
    );
    assert_eq!(sql_ok(&copy, &edit).last().map(String::as_str), Some("1"));
    let (run, report) = verify_database(&copy, dir.path(), &[]);
    assert_eq!(run.code, 1, "edited envelope: {run:#?}");
    assert_eq!(report["first_bad_seq"], json!(7), "{report}");
    assert!(run.stderr.contains("first bad seq 7"), "{}", run.stderr);
    let text = trail(&[
        "verify",
        "--database-url",
        &copy,
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(text.code, 1, "{text:#?}");
    assert!(
        text.stdout.contains("tenant default: FAILED") && text.stderr.contains("first bad seq 7"),
        "{text:#?}"
    );

    // One record deleted.
    let copy = clone_database(&url);
    let delete = format!(
        "ALTER TABLE records DISABLE TRIGGER USER;\n\
         ALTER TABLE content DISABLE TRIGGER USER;\n\
         DELETE FROM content WHERE tenant_id = {tenant} AND seq = 12;\n\
         WITH gone AS (DELETE FROM records WHERE tenant_id = {tenant} AND seq = 12 RETURNING 1)\n\
         SELECT count(*) FROM gone;"
    );
    assert_eq!(sql_ok(&copy, &delete).last().map(String::as_str), Some("1"));
    let (run, report) = verify_database(&copy, dir.path(), &[]);
    assert_eq!(run.code, 1, "deleted record: {run:#?}");
    assert_eq!(report["first_bad_seq"], json!(12), "{report}");
    assert!(run.stderr.contains("first bad seq 12"), "{}", run.stderr);

    // The original still verifies.
    let (run, _) = verify_database(&url, dir.path(), &[]);
    assert_eq!(run.code, 0, "{run:#?}");
}

#[test]
fn pg_verify_of_an_empty_database_is_a_usage_error_and_creates_nothing() {
    let url = create_test_database();
    let dir = TempDir::new().unwrap();
    let vkey = "trail.local+fd9bc2fd+AVhNE+8PGTrEg5P9jMDAY76GrPEI7yzqTUhXCa1xIEyK";
    let (run, _) = verify_database(&url, dir.path(), &["--vkey", vkey]);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("no trail store"), "{}", run.stderr);
    let tables = sql_ok(
        &url,
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    );
    assert_eq!(tables, ["0"], "verify created tables");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "verify wrote into the data dir"
    );
}

#[test]
fn pg_bad_database_urls_are_clear_errors() {
    let dir = TempDir::new().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    let vkey = "trail.local+fd9bc2fd+AVhNE+8PGTrEg5P9jMDAY76GrPEI7yzqTUhXCa1xIEyK";
    for url in ["postgres://u@host:notaport/db", "not a url at all"] {
        for args in [
            vec!["serve", "--listen", "127.0.0.1:0"],
            vec!["keys", "list"],
            vec!["verify", "--vkey", vkey],
        ] {
            let mut args = args.clone();
            args.extend(["--data-dir", data_dir, "--database-url", url]);
            let run = trail(&args);
            assert_eq!(run.code, 2, "trail {args:?}: {run:#?}");
            assert!(
                run.stderr.contains("--database-url"),
                "{args:?}: {}",
                run.stderr
            );
        }
    }
    // Nobody listening: a failure naming where, never the password.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("postgres://trail:hunter2secret@127.0.0.1:{port}/trail");
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["keys", "list"],
        vec!["verify", "--vkey", vkey],
    ] {
        let mut args = args.clone();
        args.extend(["--data-dir", data_dir, "--database-url", &url]);
        let run = trail(&args);
        assert_eq!(run.code, 1, "trail {args:?}: {run:#?}");
        assert!(
            run.stderr.contains(&format!("127.0.0.1:{port}/trail")),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("hunter2secret"), "{}", run.stderr);
    }
}

#[test]
fn pg_trail_toml_database_url_selects_postgres() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let url = create_test_database();
    let cwd = TempDir::new().unwrap();
    std::fs::write(
        cwd.path().join("trail.toml"),
        format!("data_dir = \"keys-here\"\ndatabase_url = \"{url}\"\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let mut command = Command::new(crate::harness::BIN);
    command
        .arg("serve")
        .current_dir(cwd.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, _) in std::env::vars() {
        if name.starts_with("TRAIL_") {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.starts_with("admin key for tenant default"), "{first}");
    assert!(second.starts_with("trail listening on "), "{second}");
    assert!(cwd.path().join("keys-here/log.key").exists());
    assert!(!cwd.path().join("keys-here/trail.db").exists());
    assert_eq!(
        sql_ok(&url, "SELECT count(*) FROM tenants WHERE name = 'default'"),
        ["1"]
    );
}

/// Two servers on one database sweep the same tenant at the same moment:
/// one retires every old record, the other is refused (409) or finds
/// nothing left, no record is retired twice, and the log verifies with
/// the sweeps accounting for exactly the retired records.
#[test]
fn pg_two_servers_sweeping_at_once_retire_each_record_once() {
    let url = create_test_database();
    let keys = TempDir::new().unwrap();
    let (key_file, vkey) = log_key_file(keys.path());
    let dirs: Vec<TempDir> = (0..2).map(|_| TempDir::new().unwrap()).collect();
    let flags = ["--log-key-file", key_file.as_str()];
    let first = Server::start_on_database(dirs[0].path(), &url, &flags);
    let admin_key = first.admin_key();
    let second = Server::start_on_database(dirs[1].path(), &url, &flags);
    let admin = first.admin();
    // Old records in several commits, then newer ones.
    for batch in 0..4 {
        let events: Vec<Value> = (0..150)
            .map(|i| event("tool_call", &format!("old-{batch}-{i}")))
            .collect();
        admin.ingest(&Value::Array(events));
    }
    std::thread::sleep(Duration::from_millis(2_500));
    let events: Vec<Value> = (0..100)
        .map(|i| event("tool_call", &format!("new-{i}")))
        .collect();
    admin.ingest(&Value::Array(events));

    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = [&first, &second]
            .into_iter()
            .map(|server| {
                let client = server.client(&admin_key);
                scope.spawn(move || {
                    let response = client.post("/v1/retention/run", &json!({"older_than": "2s"}));
                    (response.status, response.json())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("sweep thread"))
            .collect()
    });
    let mut retired = 0;
    for (status, body) in &answers {
        match status {
            200 => retired += body["retired"].as_u64().expect("retired"),
            409 => assert!(
                body["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("running"),
                "{body}"
            ),
            other => panic!("sweep answered {other}: {body}"),
        }
    }
    assert_eq!(
        retired, 600,
        "every old record retired exactly once: {answers:?}"
    );
    assert_eq!(
        admin
            .list_all(&[("name_contains", "old-")], 1000, true)
            .len(),
        0
    );
    assert_eq!(
        admin
            .list_all(&[("name_contains", "new-")], 1000, true)
            .len(),
        100
    );
    let run = trail(&["verify", "--database-url", &url, "--vkey", &vkey, "--json"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let report: Value = serde_json::from_str(
        run.stdout
            .lines()
            .find(|l| l.contains("\"tenant\":\"default\""))
            .expect("report"),
    )
    .expect("json");
    assert_eq!(report["retired"], json!(600), "{report}");
    assert!(report["sweeps"].as_u64().unwrap_or(0) >= 1, "{report}");
}
