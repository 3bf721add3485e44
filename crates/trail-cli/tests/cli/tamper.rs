//! The tamper suite: an attacker with write access to a stopped server's
//! data directory. A server ingests 20 events in batches of four, cutting a
//! checkpoint after each (sizes 4, 8, 12, 16, 20), and is stopped with
//! SIGTERM; each case then works on a fresh copy of the directory (database
//! with its WAL, and `log.key`), drops the append-only triggers as an
//! attacker would, edits the database with the `sqlite3` shell, and checks
//! that `trail verify --data-dir COPY --json` exits 1 naming the first
//! affected seq: a changed envelope field, leaf hash or content body, a
//! deleted, swapped or forged record, a rewrite that also recomputes every
//! stored subtree hash (located only as far as the last checkpoint before
//! it), and a cut-off tail. An untouched copy verifies, so the copying is
//! sound; and an exported bundle verifies offline with `--bundle --vkey`
//! until a line of it is edited or dropped. The cases on the database files
//! are sqlite's (`sqlite_` names, skipped on postgres, whose counterpart is
//! `postgres.rs`); the bundle case runs on both backends.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::harness::{new_uuid, trail, wait_until, Server};
use crate::independent::{complete_subtrees, jcs, leaf_hash, parse_hash, vkey_text, Hash};

/// The default tenant's id in `tenants`.
const TENANT: u64 = 1;
/// Records in the fixture.
const RECORDS: u64 = 20;
/// Records in the store: the fixture's, plus the `events.export` event its
/// export recorded (the bundle holds only the fixture's).
const STORED: u64 = RECORDS + 1;
/// Records per batch; a checkpoint is cut after each.
const BATCH: u64 = 4;

const TRIGGER_TABLES: [&str; 5] = [
    "records",
    "postings",
    "content",
    "tree_nodes",
    "checkpoints",
];

/// A stopped server's data directory holding the fixture log.
struct Fixture {
    dir: TempDir,
    vkey: String,
    bundle: String,
}

fn rid(seq: u64) -> u64 {
    (TENANT << 40) | seq
}

fn fixture() -> Fixture {
    let dir = TempDir::new().expect("temp dir");
    let mut server = Server::start_in(dir.path());
    let admin = server.admin();
    for batch in 0..RECORDS / BATCH {
        let events: Vec<Value> = (0..BATCH)
            .map(|j| {
                let seq = batch * BATCH + j;
                json!({
                    "id": new_uuid(),
                    "type": "tool_call",
                    "name": format!("step-{seq}"),
                    "user_email": format!("user{seq}@example.com"),
                    "metadata": {"batch": batch, "ratio": 0.5},
                })
            })
            .collect();
        let accepted = admin.ingest(&Value::Array(events));
        for (j, a) in accepted.iter().enumerate() {
            assert_eq!(a["seq"], json!(batch * BATCH + j as u64), "{a}");
        }
        let note = admin.get("/v1/checkpoint");
        assert_eq!(note.status, 200, "{}", note.text());
        assert!(
            note.text()
                .contains(&format!("\n{}\n", (batch + 1) * BATCH)),
            "{}",
            note.text()
        );
    }
    let vkey = admin.get("/v1/log").expect(200)["vkey"]
        .as_str()
        .unwrap()
        .to_owned();
    let export = admin.get("/v1/export");
    assert_eq!(export.status, 200, "{}", export.text());
    let bundle = export.text();
    assert!(server.terminate().success(), "SIGTERM exit");
    Fixture { dir, vkey, bundle }
}

impl Fixture {
    /// A fresh copy of the data directory (database files and log key).
    fn copy(&self) -> TempDir {
        let copy = TempDir::new().expect("temp dir");
        let mut copied = Vec::new();
        for entry in std::fs::read_dir(self.dir.path()).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("trail.db") || name == "log.key" {
                std::fs::copy(&path, copy.path().join(&name)).expect("copy");
                copied.push(name);
            }
        }
        assert!(
            copied.iter().any(|n| n == "trail.db") && copied.iter().any(|n| n == "log.key"),
            "copied {copied:?}"
        );
        copy
    }
}

fn db(dir: &Path) -> PathBuf {
    dir.join("trail.db")
}

/// Runs a script in the `sqlite3` shell; returns (success, stdout, stderr).
fn sqlite(db: &Path, script: &str) -> (bool, String, String) {
    let mut child = Command::new("sqlite3")
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sqlite3 shell");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let output = child.wait_with_output().expect("sqlite3");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `script` after dropping the append-only triggers; returns stdout.
fn attack(dir: &Path, script: &str) -> String {
    let mut full = String::new();
    for table in TRIGGER_TABLES {
        full.push_str(&format!(
            "DROP TRIGGER IF EXISTS {table}_append_only_update;\nDROP TRIGGER IF EXISTS {table}_append_only_delete;\n"
        ));
    }
    full.push_str(script);
    let (ok, stdout, stderr) = sqlite(&db(dir), &full);
    assert!(ok, "attack failed: {stderr}\n{full}");
    stdout
}

/// The stdout lines of a script, trimmed.
fn lines(out: &str) -> Vec<String> {
    out.lines().map(|l| l.trim().to_owned()).collect()
}

/// `trail verify --data-dir DIR --json`: exit code and the default
/// tenant's report.
fn verify(dir: &Path) -> (i32, Value, String) {
    let run = trail(&["verify", "--data-dir", dir.to_str().unwrap(), "--json"]);
    let report = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["tenant"] == "default")
        .unwrap_or_else(|| panic!("no report for tenant default: {run:#?}"));
    (run.code, report, run.stderr)
}

/// Asserts verification fails naming `seq` first.
fn assert_fails_at(dir: &Path, seq: u64, case: &str) -> Value {
    let (code, report, stderr) = verify(dir);
    assert_eq!(
        code, 1,
        "{case}: exit code; report {report}; stderr {stderr}"
    );
    assert_eq!(report["ok"], json!(false), "{case}: {report}");
    assert_eq!(
        report["first_bad_seq"],
        json!(seq),
        "{case}: first bad seq; report {report}"
    );
    assert!(
        stderr.contains(&format!("first bad seq {seq}")),
        "{case}: stderr {stderr}"
    );
    report
}

/// The envelope text of record `seq`.
fn envelope_text(dir: &Path, seq: u64) -> String {
    let (ok, out, err) = sqlite(
        &db(dir),
        &format!(
            "SELECT CAST(envelope AS TEXT) FROM records WHERE rid = {};",
            rid(seq)
        ),
    );
    assert!(ok, "{err}");
    out.trim_end_matches('\n').to_owned()
}

/// A forged, well-formed envelope for position `seq`: record `seq`'s own
/// with a new id and name (it keeps the content digest, so the content
/// still matches); returns (JCS bytes, leaf hash).
fn forged_envelope(dir: &Path, seq: u64) -> (String, Hash) {
    let mut envelope: Value = serde_json::from_str(&envelope_text(dir, seq)).expect("JSON");
    assert_eq!(envelope["seq"], json!(seq));
    envelope["id"] = json!(new_uuid());
    envelope["name"] = json!("forged-transfer");
    let bytes = jcs(&envelope);
    let leaf = leaf_hash(bytes.as_bytes());
    (bytes, leaf)
}

fn replace_record_sql(seq: u64, envelope: &str, leaf: &Hash) -> String {
    format!(
        "UPDATE records SET envelope = X'{}', leaf_hash = X'{}' WHERE rid = {};\nSELECT changes();\n",
        hex::encode(envelope.as_bytes()),
        hex::encode(leaf),
        rid(seq)
    )
}

fn stored_leaves(dir: &Path) -> Vec<Hash> {
    let (ok, out, err) = sqlite(
        &db(dir),
        &format!("SELECT hex(leaf_hash) FROM records WHERE tenant_id = {TENANT} ORDER BY seq;"),
    );
    assert!(ok, "{err}");
    out.lines().map(parse_hash).collect()
}

fn stored_nodes(dir: &Path) -> BTreeMap<(u32, u64), Hash> {
    let (ok, out, err) = sqlite(
        &db(dir),
        &format!("SELECT level, idx, hex(hash) FROM tree_nodes WHERE tenant_id = {TENANT};"),
    );
    assert!(ok, "{err}");
    out.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split('|').collect();
            (
                (parts[0].parse().unwrap(), parts[1].parse().unwrap()),
                parse_hash(parts[2]),
            )
        })
        .collect()
}

/// Rewrites record `seq` with a forged envelope and its leaf hash, then
/// every stored subtree hash the change affects, recomputed independently.
/// Returns how many subtree hashes were rewritten.
fn consistent_rewrite(dir: &Path, seq: u64) -> usize {
    let (envelope, leaf) = forged_envelope(dir, seq);
    assert_eq!(
        lines(&attack(dir, &replace_record_sql(seq, &envelope, &leaf))),
        ["1"]
    );
    let leaves = stored_leaves(dir);
    assert_eq!(leaves.len() as u64, STORED);
    let computed = complete_subtrees(&leaves);
    let stored = stored_nodes(dir);
    let mut script = String::new();
    let mut rewritten = 0;
    for (&(level, idx), hash) in &stored {
        if level == 0 {
            continue;
        }
        let want = computed
            .get(&(level, idx))
            .unwrap_or_else(|| panic!("stored node ({level}, {idx}) is not a complete subtree"));
        if want != hash {
            assert!(
                idx << level <= seq && seq < (idx + 1) << level,
                "node ({level}, {idx}) changed but does not cover {seq}"
            );
            script.push_str(&format!(
                "UPDATE tree_nodes SET hash = X'{}' WHERE tenant_id = {TENANT} AND level = {level} AND idx = {idx};\n",
                hex::encode(want)
            ));
            rewritten += 1;
        }
    }
    attack(dir, &script);
    let after = stored_nodes(dir);
    for (key, hash) in &after {
        if key.0 >= 1 {
            assert_eq!(
                Some(hash),
                computed.get(key),
                "node {key:?} after the rewrite"
            );
        }
    }
    rewritten
}

#[test]
fn sqlite_untouched_copy_verifies_and_its_triggers_refuse_edits() {
    let fixture = fixture();
    let copy = fixture.copy();
    let (code, report, stderr) = verify(copy.path());
    assert_eq!(code, 0, "untouched copy: {report} {stderr}");
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["records"], json!(STORED));
    assert!(
        report["checkpoints"].as_u64().unwrap() >= RECORDS / BATCH,
        "{report}"
    );
    assert_eq!(report["with_content"], json!(RECORDS));
    let run = trail(&["verify", "--data-dir", copy.path().to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "tenant default: verified {STORED} records against "
        )),
        "{run:#?}"
    );
    // Without dropping the triggers, the append-only tables refuse edits.
    for statement in [
        format!(
            "UPDATE records SET leaf_hash = randomblob(32) WHERE rid = {};",
            rid(3)
        ),
        format!("DELETE FROM records WHERE rid = {};", rid(19)),
        format!("UPDATE content SET body = X'7B7D' WHERE rid = {};", rid(3)),
        "DELETE FROM checkpoints;".to_owned(),
        "UPDATE tree_nodes SET hash = randomblob(32);".to_owned(),
        "DELETE FROM postings;".to_owned(),
    ] {
        let (ok, _, stderr) = sqlite(&db(copy.path()), &statement);
        assert!(!ok, "{statement} was allowed");
        assert!(!stderr.is_empty(), "{statement}: no error message");
    }
    let (code, report, _) = verify(copy.path());
    assert_eq!(code, 0, "after refused edits: {report}");
}

#[test]
fn sqlite_tamper_changed_envelope_field_names_its_seq() {
    let fixture = fixture();
    let copy = fixture.copy();
    let out = attack(
        copy.path(),
        &format!(
            "UPDATE records SET envelope = CAST(replace(CAST(envelope AS TEXT), '\"name\":\"step-5\"', '\"name\":\"step-Z\"') AS BLOB) WHERE rid = {};\nSELECT changes();\n",
            rid(5)
        ),
    );
    assert_eq!(lines(&out), ["1"]);
    assert!(envelope_text(copy.path(), 5).contains("\"name\":\"step-Z\""));
    assert_fails_at(copy.path(), 5, "changed envelope");
}

#[test]
fn sqlite_tamper_changed_leaf_hash_names_its_seq() {
    let fixture = fixture();
    let copy = fixture.copy();
    let (ok, before, _) = sqlite(
        &db(copy.path()),
        &format!("SELECT hex(leaf_hash) FROM records WHERE rid = {};", rid(6)),
    );
    assert!(ok);
    let mut changed = parse_hash(before.trim());
    changed[31] ^= 0x01;
    let out = attack(
        copy.path(),
        &format!(
            "UPDATE records SET leaf_hash = X'{}' WHERE rid = {};\nSELECT changes();\n",
            hex::encode(changed),
            rid(6)
        ),
    );
    assert_eq!(lines(&out), ["1"]);
    assert_fails_at(copy.path(), 6, "changed leaf hash");
}

#[test]
fn sqlite_tamper_changed_content_names_its_seq() {
    let fixture = fixture();
    let copy = fixture.copy();
    let out = attack(
        copy.path(),
        &format!(
            "UPDATE content SET body = CAST(replace(CAST(body AS TEXT), 'user9@example.com', 'mallory@example.com') AS BLOB) WHERE rid = {};\nSELECT changes();\nSELECT CAST(body AS TEXT) FROM content WHERE rid = {};\n",
            rid(9),
            rid(9)
        ),
    );
    let out = lines(&out);
    assert_eq!(out[0], "1");
    assert!(out[1].contains("mallory@example.com"), "{out:?}");
    assert_fails_at(copy.path(), 9, "changed content");
}

#[test]
fn sqlite_tamper_deleted_record_names_its_seq() {
    let fixture = fixture();
    let copy = fixture.copy();
    let out = attack(
        copy.path(),
        &format!(
            "DELETE FROM records WHERE rid = {r};\nSELECT changes();\nDELETE FROM content WHERE rid = {r};\n",
            r = rid(10)
        ),
    );
    assert_eq!(lines(&out), ["1"]);
    assert_fails_at(copy.path(), 10, "deleted record");
}

/// Records deleted with their leaf hashes put where retention keeps those
/// of retired records: every root and checkpoint still matches, but no
/// signed `retention.sweep` event accounts for the retirement.
#[test]
fn sqlite_tamper_records_passed_off_as_retired_are_caught() {
    let fixture = fixture();
    let copy = fixture.copy();
    let out = attack(
        copy.path(),
        &format!(
            "INSERT INTO tree_nodes (tenant_id, level, idx, hash) \
             SELECT tenant_id, 0, seq, leaf_hash FROM records WHERE rid >= {lo} AND rid < {hi};\n\
             DELETE FROM content WHERE rid >= {lo} AND rid < {hi};\n\
             DELETE FROM records WHERE rid >= {lo} AND rid < {hi};\nSELECT changes();\n",
            lo = rid(0),
            hi = rid(6)
        ),
    );
    assert_eq!(lines(&out), ["6"]);
    let report = assert_fails_at(copy.path(), 0, "records passed off as retired");
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("no retention sweep")),
        "{report}"
    );
}

/// The same deletion, done the way retention does it (guard row and all),
/// in a tenant that keeps one day: the next sweep of `trail serve` (run
/// here with its clock two days ahead) retires the rest and records the
/// deleted records as `unrecorded`, so the log verifies again, but with a
/// warning naming how many were never recorded by the sweep that retired
/// them.
#[test]
fn sqlite_tamper_records_retired_without_a_sweep_are_reported_by_the_next_one() {
    let fixture = fixture();
    let copy = fixture.copy();
    let dir = copy.path().to_str().unwrap();
    let set = trail(&[
        "settings",
        "set",
        "--data-dir",
        dir,
        "--retention-days",
        "1",
    ]);
    assert_eq!(set.code, 0, "{set:#?}");
    let (ok, out, stderr) = sqlite(
        &db(copy.path()),
        &format!(
            "BEGIN;\nINSERT INTO sanction (kind) VALUES ('retire');\n\
             INSERT INTO tree_nodes (tenant_id, level, idx, hash) \
             SELECT tenant_id, 0, seq, leaf_hash FROM records WHERE rid >= {lo} AND rid < {hi};\n\
             DELETE FROM content WHERE rid >= {lo} AND rid < {hi};\n\
             DELETE FROM postings WHERE tenant_id = {TENANT} AND last_seq < 8;\n\
             DELETE FROM records WHERE rid >= {lo} AND rid < {hi};\nSELECT changes();\n\
             DELETE FROM sanction;\nCOMMIT;\n",
            lo = rid(0),
            hi = rid(8)
        ),
    );
    assert!(ok, "{stderr}");
    assert_eq!(lines(&out), ["8"]);
    assert_fails_at(copy.path(), 0, "retired without a sweep");

    let mut later = Server::start_in_future(copy.path(), "+2d");
    assert!(
        wait_until(std::time::Duration::from_secs(30), || later
            .log()
            .contains("retention sweep: retired")),
        "no sweep: {}",
        later.log()
    );
    assert!(later.terminate().success(), "SIGTERM exit");
    let (code, report, stderr) = verify(copy.path());
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["retired"], json!(STORED), "{report}");
    assert_eq!(report["retired_unrecorded"], json!(8), "{report}");
    let text = trail(&["verify", "--data-dir", dir]);
    assert!(
        text.stdout.contains("WARNING: 8 of the retired records"),
        "{text:#?}"
    );
}

#[test]
fn sqlite_tamper_swapped_records_name_the_first() {
    let fixture = fixture();
    let copy = fixture.copy();
    let (a, b) = (rid(13), rid(14));
    let before = (
        envelope_text(copy.path(), 13),
        envelope_text(copy.path(), 14),
    );
    let out = attack(
        copy.path(),
        &format!(
            "CREATE TEMP TABLE saved AS SELECT rid, envelope, leaf_hash FROM records WHERE rid IN ({a}, {b});\n\
             UPDATE records SET\n\
               envelope = (SELECT envelope FROM saved WHERE saved.rid = CASE records.rid WHEN {a} THEN {b} ELSE {a} END),\n\
               leaf_hash = (SELECT leaf_hash FROM saved WHERE saved.rid = CASE records.rid WHEN {a} THEN {b} ELSE {a} END)\n\
             WHERE rid IN ({a}, {b});\nSELECT changes();\n"
        ),
    );
    assert_eq!(lines(&out), ["2"]);
    assert_eq!(envelope_text(copy.path(), 13), before.1);
    assert_eq!(envelope_text(copy.path(), 14), before.0);
    assert_fails_at(copy.path(), 13, "swapped records");
}

#[test]
fn sqlite_tamper_forged_record_names_its_seq() {
    let fixture = fixture();
    let copy = fixture.copy();
    // Seq 8 is where a checkpoint (size 8) ends, so even a forgery that
    // passes every per-record check is located exactly.
    let (envelope, leaf) = forged_envelope(copy.path(), 8);
    let out = attack(copy.path(), &replace_record_sql(8, &envelope, &leaf));
    assert_eq!(lines(&out), ["1"]);
    assert_fails_at(copy.path(), 8, "forged record");
}

#[test]
fn sqlite_tamper_consistent_rewrite_names_the_first_unverified_seq() {
    let fixture = fixture();
    // A rewrite at a checkpoint boundary (a checkpoint of size 8 exists).
    let copy = fixture.copy();
    let rewritten = consistent_rewrite(copy.path(), 8);
    // sqlite keeps every fourth level of subtree hashes (the rest are
    // computed from them); every stored one above seq 8 was rewritten.
    assert!(rewritten >= 1, "no stored subtree hash was rewritten");
    let report = assert_fails_at(copy.path(), 8, "rewrite at 8");
    assert!(
        report["error"]
            .as_str()
            .unwrap_or_default()
            .contains("checkpoint"),
        "{report}"
    );
    // A rewrite inside a batch: located at or after the checkpoint before.
    let copy = fixture.copy();
    consistent_rewrite(copy.path(), 10);
    let (code, report, _) = verify(copy.path());
    assert_eq!(code, 1, "rewrite at 10: {report}");
    let first = report["first_bad_seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no first_bad_seq: {report}"));
    assert!((8..=10).contains(&first), "rewrite at 10: {report}");
}

#[test]
fn sqlite_tamper_truncated_tail_names_the_cut() {
    let fixture = fixture();
    let copy = fixture.copy();
    let t = 14;
    let out = attack(
        copy.path(),
        &format!(
            "DELETE FROM records WHERE tenant_id = {TENANT} AND seq >= {t};\nSELECT changes();\n\
             DELETE FROM content WHERE rid >= {} AND rid < {};\n\
             DELETE FROM tree_nodes WHERE tenant_id = {TENANT} AND ((idx + 1) << level) > {t};\n\
             DELETE FROM postings WHERE tenant_id = {TENANT} AND last_seq >= {t};\n\
             SELECT count(*) FROM checkpoints WHERE tenant_id = {TENANT} AND size > {t};\n",
            rid(t),
            (TENANT + 1) << 40
        ),
    );
    let out = lines(&out);
    assert_eq!(out[0], (STORED - t).to_string());
    assert!(
        out[1].parse::<u64>().unwrap() >= 2,
        "checkpoints kept: {out:?}"
    );
    assert_fails_at(copy.path(), t, "truncated tail");
}

fn verify_bundle_file(path: &Path, vkey: &str) -> (i32, Value, String) {
    let run = trail(&[
        "verify",
        "--bundle",
        path.to_str().unwrap(),
        "--vkey",
        vkey,
        "--json",
    ]);
    let report = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .next()
        .unwrap_or_else(|| panic!("no JSON report: {run:#?}"));
    (run.code, report, run.stderr)
}

#[test]
fn bundle_verifies_offline_until_a_line_is_edited_or_dropped() {
    let fixture = fixture();
    let work = TempDir::new().unwrap();
    let path = work.path().join("bundle.ndjson");
    std::fs::write(&path, &fixture.bundle).unwrap();
    let (code, report, stderr) = verify_bundle_file(&path, &fixture.vkey);
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["records"], json!(RECORDS));

    // One field inside one record's envelope.
    let edited = fixture
        .bundle
        .replacen("\"name\":\"step-5\"", "\"name\":\"step-Z\"", 1);
    assert_ne!(edited, fixture.bundle);
    std::fs::write(&path, &edited).unwrap();
    let (code, report, stderr) = verify_bundle_file(&path, &fixture.vkey);
    assert_eq!(code, 1, "edited line: {report} {stderr}");
    assert_eq!(report["first_bad_seq"], json!(5), "edited line: {report}");
    assert!(stderr.contains("first bad seq 5"), "{stderr}");

    // One record line dropped.
    let dropped: String = fixture
        .bundle
        .lines()
        .filter(|l| !l.contains("\"seq\":7,\"leaf_hash\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(dropped.lines().count() + 1, fixture.bundle.lines().count());
    std::fs::write(&path, &dropped).unwrap();
    let (code, report, _) = verify_bundle_file(&path, &fixture.vkey);
    assert_eq!(code, 1, "dropped line: {report}");
    assert_eq!(report["first_bad_seq"], json!(7), "dropped line: {report}");

    // The untouched bundle under a key that did not sign it.
    std::fs::write(&path, &fixture.bundle).unwrap();
    let stranger = {
        let seed = [42u8; 32];
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        vkey_text("trail.local", &public)
    };
    let (code, report, _) = verify_bundle_file(&path, &stranger);
    assert_eq!(code, 1, "another key: {report}");
    assert_eq!(report["ok"], json!(false));
}
