//! Retention, erasure and read auditing, end to end: a sweep retires the
//! old records (their leaf hashes stay, so proofs of the rest verify against
//! checkpoints cut before and after, and `trail verify` passes online, from
//! the store and from a bundle, reporting the retired count); erasure drops
//! a user's content and keeps envelopes and proofs; detail reads, exports
//! and (with `audit_queries`) list and stats queries are recorded with the
//! reader's key id; bad input is problem+json naming the field; the new
//! endpoints are admin only; `trail settings`, `trail retention run` and
//! `trail erase` work through a server and straight on the store; `trail
//! serve` takes the defaults of tenants without settings from the
//! environment.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{
    assert_plain_problem, assert_problem, event, key_id, marker, trail, wait_until, Client, Server,
    BIN,
};
use crate::independent::{
    check_consistency, fetch_checkpoint, hashes, open_note, parse_hash, trusted_vkey,
    verify_inclusion, Checkpoint,
};

fn batch(n: usize, tag: &str) -> Value {
    Value::Array(
        (0..n)
            .map(|i| event("tool_call", &format!("{tag}-{i}")))
            .collect(),
    )
}

/// Every record named `name`, oldest first.
fn named(client: &Client, name: &str) -> Vec<Value> {
    client.list_all(&[("name", name)], 100, true)
}

/// The one record named `name`.
fn only(client: &Client, name: &str) -> Value {
    let records = named(client, name);
    assert_eq!(records.len(), 1, "one {name} record: {records:#?}");
    records[0].clone()
}

fn vkey_text(client: &Client) -> String {
    client.get("/v1/log").expect(200)["vkey"]
        .as_str()
        .expect("vkey")
        .to_owned()
}

/// Checks the inclusion proof of `seq` (leaf `leaf`) in checkpoint `at`.
fn check_inclusion(client: &Client, seq: u64, leaf: &str, at: &Checkpoint) {
    let path = format!("/v1/proof/inclusion?seq={seq}&size={}", at.size);
    let answer = client.get(&path).expect(200);
    assert_eq!(answer["leaf_hash"], json!(leaf), "{path}: {answer}");
    assert!(
        verify_inclusion(
            seq,
            at.size,
            &parse_hash(leaf),
            &hashes(&answer["hashes"]),
            &at.root
        ),
        "{path}: the proof does not verify: {answer}"
    );
}

/// The JSON line of `trail verify ... --json` for tenant default.
fn verify_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let run = trail(&all);
    assert_eq!(run.code, 0, "{run:#?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("\"tenant\":\"default\""))
        .unwrap_or_else(|| panic!("no line for tenant default: {run:#?}"));
    let report: Value = serde_json::from_str(line).expect("JSON report");
    assert_eq!(report["ok"], json!(true), "{report}");
    report
}

#[test]
fn a_sweep_retires_old_records_and_every_way_of_verifying_still_passes() {
    let server = Server::start();
    let admin = server.admin();
    let vkey = trusted_vkey(&server);
    let old = admin.ingest(&batch(5, "old"));
    std::thread::sleep(Duration::from_secs(3));
    let new = admin.ingest(&batch(3, "new"));
    let (before, _) = fetch_checkpoint(&admin, None, &vkey);
    assert_eq!(before.size, 8);

    let answer = admin
        .post("/v1/retention/run", &json!({"older_than": "2s"}))
        .expect(200);
    assert_eq!(answer["retired"], json!(5), "{answer}");
    assert_eq!(answer["first_seq"], json!(0), "{answer}");
    assert_eq!(answer["last_seq"], json!(4), "{answer}");
    assert_eq!(answer["event"]["seq"], json!(8), "{answer}");
    assert!(answer["event"]["id"].is_string() && answer["event"]["leaf_hash"].is_string());

    // Old records are gone from every read; new ones remain.
    let names: Vec<String> = admin
        .list_all(&[], 100, true)
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!names.iter().any(|n| n.starts_with("old-")), "{names:?}");
    for i in 0..3 {
        assert!(names.contains(&format!("new-{i}")), "{names:?}");
    }
    for accepted in &old {
        let id = accepted["id"].as_str().unwrap();
        assert_plain_problem(
            &admin.get(&format!("/v1/events/{id}")),
            404,
            "a retired record",
        );
    }
    assert_eq!(admin.total(&[("type", "tool_call")]), 3);

    // The sweep is itself in the log.
    let sweep = only(&admin, "retention.sweep");
    assert_eq!(sweep["type"], "api_request");
    assert_eq!(sweep["transport"], "system");
    assert_eq!(sweep["seq"], json!(8));
    let metadata = &sweep["metadata"];
    assert_eq!(metadata["first_seq"], json!(0), "{sweep}");
    assert_eq!(metadata["last_seq"], json!(4), "{sweep}");
    assert_eq!(metadata["count"], json!(5), "{sweep}");
    assert_eq!(
        metadata["key_id"],
        json!(key_id(&server.admin_key())),
        "{sweep}"
    );

    // Proofs of the remaining records verify against a checkpoint cut
    // before the sweep and one cut after it.
    let (after, _) = fetch_checkpoint(&admin, None, &vkey);
    assert!(after.size > before.size, "{after:?}");
    for accepted in &new {
        let seq = accepted["seq"].as_u64().unwrap();
        let leaf = accepted["leaf_hash"].as_str().unwrap();
        check_inclusion(&admin, seq, leaf, &before);
        check_inclusion(&admin, seq, leaf, &after);
    }
    check_consistency(&admin, &before, &after);
    let detail = admin
        .get(&format!("/v1/events/{}", new[0]["id"].as_str().unwrap()))
        .expect(200);
    let note = detail["proof"]["checkpoint"].as_str().expect("note");
    let signed = open_note(note, &vkey).expect("the detail's checkpoint");
    assert!(verify_inclusion(
        new[0]["seq"].as_u64().unwrap(),
        signed.size,
        &parse_hash(new[0]["leaf_hash"].as_str().unwrap()),
        &hashes(&detail["proof"]["hashes"]),
        &signed.root
    ));

    // trail verify: online, from the store, from a bundle.
    let vkey = vkey_text(&admin);
    let key = server.admin_key();
    let run = trail(&[
        "verify",
        "--url",
        &server.url,
        "--key",
        &key,
        "--vkey",
        &vkey,
    ]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("5 retired records"), "{run:#?}");
    let dir = server.data_dir.to_str().unwrap();
    let report = verify_json(&["verify", "--data-dir", dir]);
    assert_eq!(report["retired"], json!(5), "{report}");
    let bundle_text = admin.get("/v1/export").text();
    let retired_lines: Vec<Value> = bundle_text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["kind"] == "retired")
        .collect();
    assert_eq!(retired_lines.len(), 1, "{bundle_text}");
    assert_eq!(retired_lines[0]["first_seq"], json!(0));
    let old_leaves: Vec<Value> = old.iter().map(|a| a["leaf_hash"].clone()).collect();
    assert_eq!(retired_lines[0]["leaf_hashes"], Value::Array(old_leaves));
    let work = TempDir::new().unwrap();
    let bundle = work.path().join("bundle.ndjson");
    std::fs::write(&bundle, &bundle_text).unwrap();
    let report = verify_json(&[
        "verify",
        "--bundle",
        bundle.to_str().unwrap(),
        "--vkey",
        &vkey,
    ]);
    assert_eq!(report["retired"], json!(5), "{report}");
    assert!(report["records"].as_u64().unwrap() >= 4, "{report}");

    // A second sweep finds nothing older.
    let answer = admin
        .post("/v1/retention/run", &json!({"older_than": "1h"}))
        .expect(200);
    assert_eq!(answer, json!({"retired": 0}));
}

#[test]
fn erasure_drops_a_users_content_and_keeps_envelopes_and_proofs() {
    let server = Server::start();
    let admin = server.admin();
    let vkey = trusted_vkey(&server);
    admin
        .put("/v1/settings", &json!({"content_policy": "full"}))
        .expect(200);
    let email = format!("{}@example.com", marker("u1"));
    let mut events = Vec::new();
    for i in 0..2 {
        let mut e = event("llm_call", &format!("u1-call-{i}"));
        e["user_id"] = json!("u1");
        e["user_email"] = json!(email);
        e["input"] = json!(format!("what u1 asked {i}"));
        e["output"] = json!("the answer");
        events.push(e);
    }
    let mut other = event("llm_call", "u2-call");
    other["user_id"] = json!("u2");
    other["user_email"] = json!("u2@example.com");
    other["input"] = json!("what u2 asked");
    events.push(other);
    let accepted = admin.ingest(&Value::Array(events));

    let answer = admin
        .post("/v1/erasure", &json!({"user_id": "u1"}))
        .expect(200);
    assert_eq!(answer["erased"], json!(2), "{answer}");
    assert_eq!(answer["event"]["seq"], json!(3), "{answer}");

    for a in &accepted[..2] {
        let detail = admin
            .get(&format!("/v1/events/{}", a["id"].as_str().unwrap()))
            .expect(200);
        assert_eq!(detail["content"], Value::Null, "{detail}");
        assert_eq!(detail["content_salt"], Value::Null, "{detail}");
        assert_eq!(detail["content_erased"], json!(true), "{detail}");
        assert_eq!(detail["leaf_hash"], a["leaf_hash"], "{detail}");
        assert!(detail["envelope"]["content_digest"].is_string(), "{detail}");
        assert!(!detail.to_string().contains(&email), "{detail}");
        let signed =
            open_note(detail["proof"]["checkpoint"].as_str().unwrap(), &vkey).expect("checkpoint");
        assert!(verify_inclusion(
            a["seq"].as_u64().unwrap(),
            signed.size,
            &parse_hash(a["leaf_hash"].as_str().unwrap()),
            &hashes(&detail["proof"]["hashes"]),
            &signed.root
        ));
    }
    let kept = admin
        .get(&format!(
            "/v1/events/{}",
            accepted[2]["id"].as_str().unwrap()
        ))
        .expect(200);
    assert_eq!(kept["content"]["user_email"], "u2@example.com", "{kept}");
    assert_eq!(kept["content_erased"], json!(false));

    let erasure = only(&admin, "erasure");
    assert_eq!(erasure["metadata"]["user_id"], "u1", "{erasure}");
    assert_eq!(erasure["metadata"]["records"], json!(2), "{erasure}");
    assert_eq!(
        erasure["metadata"]["key_id"],
        json!(key_id(&server.admin_key()))
    );
    // On sqlite, the erased bytes are nowhere in the data dir's files
    // (database, WAL, shared memory), while the server still runs; the
    // other user's content is.
    if !crate::harness::postgres_backend() {
        let files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&server.data_dir)
            .expect("data dir")
            .map(|entry| {
                let entry = entry.expect("entry");
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read(entry.path()).unwrap_or_default(),
                )
            })
            .collect();
        assert!(
            files.iter().any(|(name, _)| name == "trail.db"),
            "{files:?}"
        );
        let holding = |needle: &str| -> Vec<&str> {
            files
                .iter()
                .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .map(|(name, _)| name.as_str())
                .collect()
        };
        for gone in [email.as_str(), "what u1 asked"] {
            assert_eq!(holding(gone), Vec::<&str>::new(), "{gone} lingers");
        }
        assert!(!holding("what u2 asked").is_empty(), "u2's content stays");
    }
    // Erasing again finds nothing left, and is recorded again.
    let again = admin
        .post("/v1/erasure", &json!({"user_id": "u1"}))
        .expect(200);
    assert_eq!(again["erased"], json!(0), "{again}");

    let dir = server.data_dir.to_str().unwrap();
    let report = verify_json(&["verify", "--data-dir", dir]);
    assert_eq!(report["content_absent"], json!(2), "{report}");
    let run = trail(&[
        "verify",
        "--url",
        &server.url,
        "--key",
        &server.admin_key(),
        "--vkey",
        &vkey_text(&admin),
    ]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("2 whose content is erased"), "{run:#?}");
}

#[test]
fn reads_are_recorded_with_the_readers_key_id() {
    let server = Server::start();
    let admin = server.admin();
    let read_key = server.create_key("default", "read", None);
    let reader = server.client(&read_key);
    let reader_id = json!(key_id(&read_key));
    let accepted = admin.ingest(&batch(2, "r"));
    let id = accepted[0]["id"].as_str().unwrap();

    reader.get(&format!("/v1/events/{id}")).expect(200);
    let read = only(&admin, "events.read");
    assert_eq!(read["metadata"]["key_id"], reader_id, "{read}");
    assert_eq!(read["metadata"]["event_id"], json!(id), "{read}");
    assert_eq!(read["transport"], "system");

    // Queries are not recorded while audit_queries is off.
    reader.get_q("/v1/events", &[("name", "r-0")]).expect(200);
    reader.get("/v1/stats").expect(200);
    assert_eq!(admin.total(&[("name", "events.query")]), 0);

    let export = reader.get("/v1/export");
    assert_eq!(export.status, 200, "{}", export.text());
    let exported = only(&admin, "events.export");
    assert_eq!(exported["metadata"]["key_id"], reader_id, "{exported}");
    assert!(exported["metadata"]["tree_size"].is_u64(), "{exported}");

    admin
        .put("/v1/settings", &json!({"audit_queries": true}))
        .expect(200);
    reader
        .get_q("/v1/events", &[("name", "r-1"), ("limit", "5")])
        .expect(200);
    reader
        .get_q("/v1/stats", &[("type", "tool_call")])
        .expect(200);
    let queries = named(&admin, "events.query");
    let by_reader: Vec<&Value> = queries
        .iter()
        .filter(|q| q["metadata"]["key_id"] == reader_id)
        .collect();
    assert!(
        by_reader
            .iter()
            .any(|q| q["metadata"]["endpoint"] == "GET /v1/events"
                && q["metadata"]["filters"]["name"] == "r-1"
                && q["metadata"]["filters"]["limit"] == "5"),
        "{queries:#?}"
    );
    assert!(
        by_reader
            .iter()
            .any(|q| q["metadata"]["endpoint"] == "GET /v1/stats"
                && q["metadata"]["filters"]["type"] == "tool_call"),
        "{queries:#?}"
    );
    // A rejected query read nothing and records nothing.
    let before = named(&admin, "events.query").len();
    assert_problem(&reader.get_q("/v1/events", &[("limit", "0")]), 400, "limit");
    // (the admin's own listing just above was recorded: one more)
    assert_eq!(named(&admin, "events.query").len(), before + 1);
}

#[test]
fn retention_and_erasure_reject_bad_input_and_non_admin_keys() {
    let server = Server::start();
    let admin = server.admin();
    admin.ingest(&batch(2, "x"));

    for body in [&b""[..], b"{}", b"{\"older_than\": null}"] {
        let problem = assert_plain_problem(
            &admin.post_raw("/v1/retention/run", body),
            409,
            "no retention configured",
        );
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("retention is not configured"),
            "{problem}"
        );
    }
    for body in [
        json!({"older_than": "soon"}),
        json!({"older_than": 90}),
        json!({"older_than": "0d"}),
        json!({"older_than": "90w"}),
        json!({"older_than": ""}),
    ] {
        assert_problem(&admin.post("/v1/retention/run", &body), 400, "older_than");
    }
    assert_problem(
        &admin.post("/v1/retention/run", &json!({"olderthan": "1d"})),
        400,
        "olderthan",
    );
    assert_problem(&admin.post_raw("/v1/retention/run", b"{nope"), 400, "body");

    for body in [
        json!({}),
        json!({"user_id": ""}),
        json!({"user_id": 7}),
        json!({"user_id": null}),
        json!({"user_id": "u".repeat(257)}),
    ] {
        assert_problem(&admin.post("/v1/erasure", &body), 400, "user_id");
    }
    assert_problem(&admin.post_raw("/v1/erasure", b""), 400, "user_id");
    assert_problem(
        &admin.post("/v1/erasure", &json!({"user_id": "u1", "user": "u1"})),
        400,
        "user",
    );
    assert_problem(&admin.post_raw("/v1/erasure", b"[1]"), 400, "body");

    let read = server.client(&server.create_key("default", "read", None));
    let ingest = server.client(&server.create_key("default", "ingest", None));
    for client in [&read, &ingest] {
        assert_plain_problem(
            &client.post("/v1/retention/run", &json!({"older_than": "1d"})),
            403,
            "retention by a non-admin key",
        );
        assert_plain_problem(
            &client.post("/v1/erasure", &json!({"user_id": "u1"})),
            403,
            "erasure by a non-admin key",
        );
    }
    assert_plain_problem(
        &server.anonymous().post_raw("/v1/erasure", b"{}"),
        401,
        "no key",
    );
    // Nothing was recorded by any of those.
    assert_eq!(admin.total(&[("name", "erasure")]), 0);
    assert_eq!(admin.total(&[("name", "retention.sweep")]), 0);

    // With retention_days set, a run without a body uses it.
    admin
        .put("/v1/settings", &json!({"retention_days": 1}))
        .expect(200);
    let answer = admin.post_raw("/v1/retention/run", b"").expect(200);
    assert_eq!(answer, json!({"retired": 0}));
}

#[test]
fn settings_retention_and_erase_commands_work_through_the_server_and_the_store() {
    let server = Server::start();
    let admin = server.admin();
    let key = server.admin_key();
    let url = server.url.clone();
    let dir = server.data_dir.to_str().unwrap().to_owned();
    let json_of = |args: &[&str]| -> Value {
        let run = trail(args);
        serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {run:#?}"))
    };

    let set = json_of(&[
        "settings",
        "set",
        "--url",
        &url,
        "--key",
        &key,
        "--retention-days",
        "90",
        "--content-policy",
        "full",
        "--audit-queries",
        "on",
        "--json",
    ]);
    let expected = json!({"retention_days": 90, "content_policy": "full",
        "record_types": null, "audit_queries": true});
    assert_eq!(set, expected);
    assert_eq!(admin.get("/v1/settings").expect(200), expected);
    assert_eq!(
        json_of(&["settings", "show", "--url", &url, "--key", &key, "--json"]),
        expected
    );
    assert_eq!(
        json_of(&["settings", "show", "--data-dir", &dir, "--json"]),
        expected
    );
    let text = trail(&["settings", "show", "--data-dir", &dir]);
    assert!(text.ok().contains("retention_days: 90"), "{text:#?}");

    let set = json_of(&[
        "settings",
        "set",
        "--data-dir",
        &dir,
        "--audit-queries",
        "off",
        "--record-types",
        "llm_call,api_request",
        "--json",
    ]);
    assert_eq!(set["audit_queries"], json!(false), "{set}");
    assert_eq!(set["retention_days"], json!(90), "{set}");
    assert_eq!(set["record_types"], json!(["llm_call", "api_request"]));
    assert!(
        wait_until(Duration::from_secs(10), || {
            admin.get("/v1/settings").expect(200)["audit_queries"] == json!(false)
        }),
        "the server never saw the store's change"
    );
    let bad = trail(&[
        "settings",
        "set",
        "--data-dir",
        &dir,
        "--content-policy",
        "most",
    ]);
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert!(bad.stderr.contains("--content-policy"), "{bad:#?}");
    let bad = trail(&[
        "settings",
        "set",
        "--url",
        &url,
        "--key",
        &key,
        "--retention-days",
        "0",
    ]);
    assert_eq!(bad.code, 1, "{bad:#?}");
    assert!(bad.stderr.contains("retention_days"), "{bad:#?}");
    let nothing = trail(&["settings", "set", "--data-dir", &dir]);
    assert_eq!(nothing.code, 2, "{nothing:#?}");
    let missing = trail(&["settings", "show", "--data-dir", &dir, "--tenant", "nobody"]);
    assert_eq!(missing.code, 1, "{missing:#?}");

    // Erasure, through the server and on the store.
    let mut events = Vec::new();
    for user in ["u1", "u2"] {
        let mut e = event("llm_call", &format!("{user}-call"));
        e["user_id"] = json!(user);
        e["user_email"] = json!(format!("{user}@example.com"));
        e["input"] = json!("asked");
        events.push(e);
    }
    let accepted = admin.ingest(&Value::Array(events));
    let run = trail(&["erase", "--user", "u1", "--url", &url, "--key", &key]);
    assert!(
        run.ok()
            .contains("erased the content of 1 records of user u1"),
        "{run:#?}"
    );
    let erased = json_of(&["erase", "--user", "u2", "--data-dir", &dir, "--json"]);
    assert_eq!(erased["erased"], json!(1), "{erased}");
    assert!(erased["event"]["seq"].is_u64(), "{erased}");
    for a in &accepted {
        let detail = admin
            .get(&format!("/v1/events/{}", a["id"].as_str().unwrap()))
            .expect(200);
        assert_eq!(detail["content_erased"], json!(true), "{detail}");
    }
    assert_eq!(admin.total(&[("name", "erasure")]), 2);
    let bad = trail(&["erase", "--user", "", "--data-dir", &dir]);
    assert_eq!(bad.code, 2, "{bad:#?}");

    // Retention, through the server and on the store.
    admin.ingest(&json!([
        event("llm_call", "old-0"),
        event("llm_call", "old-1")
    ]));
    std::thread::sleep(Duration::from_secs(3));
    let swept = json_of(&[
        "retention",
        "run",
        "--url",
        &url,
        "--key",
        &key,
        "--older-than",
        "2s",
        "--json",
    ]);
    let retired = swept["retired"].as_u64().expect("retired");
    assert!(retired >= 4, "{swept}");
    assert_eq!(swept["first_seq"], json!(0), "{swept}");
    assert_eq!(admin.total(&[("name", "old-0")]), 0);
    admin.ingest(&json!([event("llm_call", "later-0")]));
    std::thread::sleep(Duration::from_secs(3));
    let run = trail(&["retention", "run", "--data-dir", &dir, "--older-than", "2s"]);
    assert!(run.ok().starts_with("retired "), "{run:#?}");
    assert_eq!(admin.total(&[("name", "later-0")]), 0);
    let run = trail(&["retention", "run", "--data-dir", &dir]);
    assert!(run.ok().contains("nothing to retire"), "{run:#?}");
    let bad = trail(&[
        "retention",
        "run",
        "--data-dir",
        &dir,
        "--older-than",
        "soon",
    ]);
    assert_eq!(bad.code, 2, "{bad:#?}");
    assert!(bad.stderr.contains("--older-than"), "{bad:#?}");
    // The first sweep's own event was old enough for the second sweep; the
    // second one's (from the store: no key id) remains.
    let sweeps = named(&admin, "retention.sweep");
    assert_eq!(sweeps.len(), 1, "{sweeps:#?}");
    assert!(sweeps[0]["metadata"]["key_id"].is_null(), "{sweeps:#?}");

    let report = verify_json(&["verify", "--data-dir", &dir]);
    assert!(report["retired"].as_u64().unwrap() > retired, "{report}");
    let report = verify_json(&[
        "verify",
        "--url",
        &url,
        "--key",
        &key,
        "--vkey",
        &vkey_text(&admin),
    ]);
    assert!(report["retired"].as_u64().unwrap() > retired, "{report}");
}

#[test]
fn serve_applies_its_defaults_to_tenants_without_settings() {
    let server = Server::start_with(&[
        "--default-retention-days",
        "30",
        "--default-content-policy",
        "full",
        "--default-record-types",
        "tool_call,api_request",
    ]);
    let admin = server.admin();
    assert_eq!(
        admin.get("/v1/settings").expect(200),
        json!({"retention_days": 30, "content_policy": "full",
            "record_types": ["tool_call", "api_request"], "audit_queries": false})
    );
    let accepted = admin.ingest(&json!([event("llm_call", "skipped")]));
    assert_eq!(accepted[0]["skipped"], json!(true), "{accepted:?}");
    let mut kept = event("tool_call", "kept");
    kept["input"] = json!("the full input");
    let accepted = admin.ingest(&kept);
    let detail = admin
        .get(&format!(
            "/v1/events/{}",
            accepted[0]["id"].as_str().unwrap()
        ))
        .expect(200);
    assert_eq!(detail["content"]["input"], "the full input", "{detail}");
    let answer = admin.post_raw("/v1/retention/run", b"").expect(200);
    assert_eq!(answer, json!({"retired": 0}));
}

#[test]
fn bad_serve_defaults_are_usage_errors_naming_the_variable() {
    for (variable, value) in [
        ("TRAIL_RETENTION_DAYS", "ninety"),
        ("TRAIL_RETENTION_DAYS", "0"),
        ("TRAIL_CONTENT_POLICY", "most"),
        ("TRAIL_RECORD_TYPES", "llm_call,nope"),
    ] {
        let dir = TempDir::new().unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path());
        for var in [
            "TRAIL_RETENTION_DAYS",
            "TRAIL_CONTENT_POLICY",
            "TRAIL_RECORD_TYPES",
            "TRAIL_DATABASE_URL",
            "TRAIL_CONFIG",
        ] {
            command.env_remove(var);
        }
        let output = command
            .env(variable, value)
            .stdin(Stdio::null())
            .output()
            .expect("run trail serve");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}={value}: {stderr}"
        );
        assert!(stderr.contains(variable), "{variable}={value}: {stderr}");
        assert!(
            !dir.path().join("trail.db").exists(),
            "{variable}={value}: a store was made"
        );
    }
}

/// `trail serve` sweeps by each tenant's `retention_days` on its own (at
/// start, then hourly): a server restarted with its clock two days ahead
/// retires the records of a tenant that keeps one day, records the sweep
/// without a key id, and the log still verifies from the store.
#[test]
fn serve_sweeps_by_retention_days_on_its_own() {
    let dir = TempDir::new().expect("temp dir");
    let mut server = Server::start_in(dir.path());
    let key = server.admin_key();
    let admin = server.admin();
    admin
        .put("/v1/settings", &json!({"retention_days": 1}))
        .expect(200);
    admin.ingest(&batch(20, "first"));
    admin.ingest(&batch(10, "second"));
    assert_eq!(named(&admin, "retention.sweep").len(), 0);
    assert!(server.terminate().success(), "SIGTERM exit");

    let later = Server::start_in_future(dir.path(), "+2d");
    let admin = later.client(&key);
    assert!(
        wait_until(Duration::from_secs(30), || named(&admin, "retention.sweep")
            .len()
            == 1),
        "no sweep at start: {}",
        later.log()
    );
    let sweep = only(&admin, "retention.sweep");
    assert_eq!(sweep["metadata"]["first_seq"], json!(0), "{sweep}");
    assert_eq!(sweep["metadata"]["last_seq"], json!(29), "{sweep}");
    assert_eq!(sweep["metadata"]["count"], json!(30), "{sweep}");
    assert_eq!(sweep["metadata"].get("key_id"), None, "{sweep}");
    assert_eq!(sweep["transport"], "system", "{sweep}");
    assert_eq!(admin.total_recorded(&[]), 0, "every record was a day old");
    drop(later);

    let dir_arg = dir.path().to_str().expect("utf-8 path");
    let report = verify_json(&["verify", "--data-dir", dir_arg]);
    assert_eq!(report["retired"], json!(30), "{report}");
    assert_eq!(report["sweeps"], json!(1), "{report}");
}
