//! Ingest and query at volume: 2,000 varied events posted as 20 batches of
//! 100 from 4 concurrent threads get gap-free seqs 0..1999; cursor paging in
//! both orders and at both page sizes returns every record exactly once;
//! every list filter returns exactly the records the test computes from what
//! it sent; `count=true` totals, `/v1/stats` (totals, by type, errors, top
//! names, hour and day buckets, nearest-rank p50/p95) and `/metrics` agree
//! with the data; `limit`/`offset`/`order` behave; and idempotent resends
//! (duplicate with the original seq; changed content under the same id is a
//! 409 that stores nothing).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::harness::{
    assert_plain_problem, assert_problem, days_from_civil_secs, event, metric, nearest_rank,
    new_uuid, parse_rfc3339, rfc3339, rfc3339_us, Client, Server,
};

const TYPES: [&str; 7] = [
    "llm_call",
    "tool_call",
    "escalation",
    "connector_fetch",
    "document_upload",
    "document_download",
    "api_request",
];
const TRANSPORTS: [&str; 6] = ["http", "mcp", "otlp", "proxy", "system", "sdk"];
/// Names with distinct counts (summing to 2,000), so top names are ordered.
const NAMES: [(&str, usize); 8] = [
    ("fs.Read", 500),
    ("fs.readdir", 400),
    ("http.GET", 300),
    ("llm.Chat", 250),
    ("db.query", 200),
    ("search.Web", 150),
    ("mail.send", 120),
    ("doc.Upload", 80),
];
const EVENTS: usize = 2000;

/// What the test sent for one event, and what the server should make of it.
#[derive(Debug, Clone)]
pub struct Spec {
    pub id: String,
    pub event_type: &'static str,
    pub name: &'static str,
    pub error: bool,
    pub user_id: Option<String>,
    pub session_id: String,
    pub project_id: String,
    pub task_id: Option<String>,
    pub agent_id: String,
    /// The effective transport (the default `http` when none was sent).
    pub transport: &'static str,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub confirmed: Option<bool>,
    pub document_ids: Vec<String>,
    /// started_at, Unix microseconds.
    pub ts: i64,
    pub duration_ms: Option<u64>,
    /// The JSON sent.
    pub json: Value,
}

fn base_secs() -> i64 {
    days_from_civil_secs(2024, 3, 1)
}

fn name_of(i: usize) -> &'static str {
    let mut p = (i * 7919) % EVENTS;
    for (name, count) in NAMES {
        if p < count {
            return name;
        }
        p -= count;
    }
    unreachable!()
}

/// The 2,000 events of the volume tests.
pub fn dataset() -> Vec<Spec> {
    (0..EVENTS).map(spec).collect()
}

fn spec(i: usize) -> Spec {
    let event_type = TYPES[i % 7];
    let name = name_of(i);
    let error = i.is_multiple_of(9);
    let user_id = (!i.is_multiple_of(13)).then(|| format!("user-{}", i % 5));
    let session_id = format!("sess-{}", i % 17);
    let project_id = format!("proj-{}", i % 3);
    let task_id = i.is_multiple_of(4).then(|| format!("task-{}", i % 11));
    let agent_id = format!("agent-{}", i % 6);
    let sent_transport = (i % 7 != 3).then(|| TRANSPORTS[i % 6]);
    let (model, provider) = if event_type == "llm_call" {
        (
            Some(format!("model-{}", i % 4)),
            Some(format!("prov-{}", i % 2)),
        )
    } else {
        (None, None)
    };
    let confirmed = match i % 5 {
        0 => Some(true),
        1 => Some(false),
        _ => None,
    };
    let document_ids = match i % 8 {
        0 => vec![format!("doc-{}", i % 3), "doc-shared".to_owned()],
        1 => vec![format!("doc-{}", i % 3)],
        _ => Vec::new(),
    };
    let secs = base_secs() + i as i64 * 97;
    let frac_us = if i % 3 == 1 { 250_000 } else { 0 };
    let ts = secs * 1_000_000 + frac_us;
    let offset = match i % 10 {
        0 => 120,
        5 => -330,
        _ => 0,
    };
    let mut started_at = rfc3339(secs, offset);
    if frac_us != 0 {
        let cut = if offset == 0 {
            started_at.len() - 1
        } else {
            started_at.len() - 6
        };
        started_at.insert_str(cut, ".25");
    }
    let duration_ms = (i % 6 != 5).then_some((i as u64 * 37) % 1000);

    let id = new_uuid();
    let mut json = json!({
        "id": id,
        "type": event_type,
        "name": name,
        "session_id": session_id,
        "project_id": project_id,
        "agent_id": agent_id,
        "started_at": started_at,
    });
    let o = json.as_object_mut().unwrap();
    if error {
        o.insert("status".into(), json!("error"));
        o.insert("error".into(), json!(format!("boom {i}")));
    } else if i.is_multiple_of(2) {
        o.insert("status".into(), json!("ok"));
    }
    if let Some(user) = &user_id {
        o.insert("user_id".into(), json!(user));
    }
    if let Some(task) = &task_id {
        o.insert("task_id".into(), json!(task));
    }
    if let Some(transport) = sent_transport {
        o.insert("transport".into(), json!(transport));
    }
    if let Some(model) = &model {
        o.insert("model".into(), json!(model));
        o.insert("input_tokens".into(), json!(i * 3));
        o.insert("output_tokens".into(), json!(i * 2));
    }
    if let Some(provider) = &provider {
        o.insert("provider".into(), json!(provider));
    }
    if let Some(confirmed) = confirmed {
        o.insert("confirmed".into(), json!(confirmed));
    }
    if !document_ids.is_empty() {
        o.insert("document_ids".into(), json!(document_ids));
    }
    if let Some(duration) = duration_ms {
        o.insert("duration_ms".into(), json!(duration));
    }
    if i.is_multiple_of(2) {
        o.insert("metadata".into(), json!({"i": i, "even": true}));
    }
    if i.is_multiple_of(11) {
        o.insert(
            "trace_id".into(),
            json!(format!("{:032x}", 0xabc0_0000_u128 + i as u128)),
        );
        o.insert("span_id".into(), json!(format!("{:016x}", 0x1000 + i)));
    }
    Spec {
        id,
        event_type,
        name,
        error,
        user_id,
        session_id,
        project_id,
        task_id,
        agent_id,
        transport: sent_transport.unwrap_or("http"),
        model,
        provider,
        confirmed,
        document_ids,
        ts,
        duration_ms,
        json,
    }
}

/// Posts the dataset as 20 batches of 100 from 4 threads; checks each
/// answer lists the batch's ids in request order, none a duplicate. Returns
/// id -> seq.
pub fn ingest_concurrently(client: &Client, specs: &[Spec]) -> HashMap<String, u64> {
    let seqs = Arc::new(Mutex::new(HashMap::new()));
    let batches: Vec<Vec<Spec>> = specs.chunks(100).map(|c| c.to_vec()).collect();
    let batches = Arc::new(batches);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let client = client.clone();
            let batches = Arc::clone(&batches);
            let seqs = Arc::clone(&seqs);
            std::thread::spawn(move || {
                for batch in batches.iter().skip(t).step_by(4) {
                    let body = Value::Array(batch.iter().map(|s| s.json.clone()).collect());
                    let accepted = client.ingest(&body);
                    assert_eq!(accepted.len(), batch.len(), "one answer per event");
                    for (spec, answer) in batch.iter().zip(&accepted) {
                        assert_eq!(answer["id"], json!(spec.id), "answers in request order");
                        assert_eq!(answer["duplicate"], json!(false), "{answer}");
                        let leaf = answer["leaf_hash"].as_str().expect("leaf_hash");
                        assert!(is_hex(leaf, 64), "leaf_hash {leaf}");
                        let seq = answer["seq"].as_u64().expect("seq");
                        let old = seqs.lock().unwrap().insert(spec.id.clone(), seq);
                        assert!(old.is_none(), "id answered twice");
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("ingest thread");
    }
    Arc::try_unwrap(seqs).unwrap().into_inner().unwrap()
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().expect("record id").to_owned())
        .collect()
}

fn set(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter().collect()
}

/// A string member: None when absent or null.
fn text<'a>(record: &'a Value, field: &str) -> Option<&'a str> {
    match &record[field] {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => panic!("{field} is not a string: {other}"),
    }
}

/// Checks a flat record against what was sent.
fn check_record(record: &Value, spec: &Spec, seq: u64) {
    let what = &spec.id;
    assert_eq!(record["seq"], json!(seq), "{what}: seq");
    assert_eq!(text(record, "type"), Some(spec.event_type), "{what}: type");
    assert_eq!(text(record, "name"), Some(spec.name), "{what}: name");
    let status = if spec.error { "error" } else { "ok" };
    assert_eq!(text(record, "status"), Some(status), "{what}: status");
    assert_eq!(
        text(record, "user_id"),
        spec.user_id.as_deref(),
        "{what}: user_id"
    );
    assert_eq!(
        text(record, "session_id"),
        Some(spec.session_id.as_str()),
        "{what}"
    );
    assert_eq!(
        text(record, "project_id"),
        Some(spec.project_id.as_str()),
        "{what}"
    );
    assert_eq!(
        text(record, "task_id"),
        spec.task_id.as_deref(),
        "{what}: task_id"
    );
    assert_eq!(
        text(record, "agent_id"),
        Some(spec.agent_id.as_str()),
        "{what}"
    );
    assert_eq!(
        text(record, "transport"),
        Some(spec.transport),
        "{what}: transport"
    );
    assert_eq!(
        text(record, "model"),
        spec.model.as_deref(),
        "{what}: model"
    );
    assert_eq!(text(record, "provider"), spec.provider.as_deref(), "{what}");
    match spec.confirmed {
        Some(c) => assert_eq!(record["confirmed"], json!(c), "{what}: confirmed"),
        None => assert!(record["confirmed"].is_null(), "{what}: confirmed"),
    }
    let docs: Vec<String> = match &record["document_ids"] {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect(),
        other => panic!("{what}: document_ids {other}"),
    };
    assert_eq!(docs, spec.document_ids, "{what}: document_ids");
    match spec.duration_ms {
        Some(d) => assert_eq!(record["duration_ms"], json!(d), "{what}: duration_ms"),
        None => assert!(record["duration_ms"].is_null(), "{what}: duration_ms"),
    }
    let started = text(record, "started_at").expect("started_at");
    assert_eq!(
        parse_rfc3339(started),
        spec.ts,
        "{what}: started_at {started}"
    );
    if spec.error {
        assert_eq!(
            text(record, "error").map(|e| e.starts_with("boom ")),
            Some(true)
        );
    }
    if spec.json.get("metadata").is_some() {
        assert_eq!(
            record["metadata"], spec.json["metadata"],
            "{what}: metadata"
        );
    }
    if let Some(trace) = spec.json.get("trace_id") {
        assert_eq!(&record["trace_id"], trace, "{what}: trace_id");
    }
    assert!(
        is_hex(text(record, "leaf_hash").unwrap(), 64),
        "{what}: leaf_hash"
    );
    assert!(record["tenant_id"].is_string() || record["tenant_id"].is_number());
    parse_rfc3339(text(record, "received_at").expect("received_at"));
    assert_eq!(
        record["content_erased"],
        json!(false),
        "{what}: content_erased"
    );
}

fn fresh_dataset_server() -> (Server, Client, Vec<Spec>, HashMap<String, u64>) {
    let server = Server::start();
    let ingest_key = server.create_key("default", "ingest", None);
    let specs = dataset();
    let seqs = ingest_concurrently(&server.client(&ingest_key), &specs);
    let admin = server.admin();
    (server, admin, specs, seqs)
}

#[test]
fn two_thousand_concurrent_events_get_gap_free_seqs_and_page_completely() {
    let (server, admin, specs, seqs) = fresh_dataset_server();
    let mut all: Vec<u64> = seqs.values().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..EVENTS as u64).collect::<Vec<_>>(), "seqs 0..1999");

    let by_id: HashMap<&str, &Spec> = specs.iter().map(|s| (s.id.as_str(), s)).collect();
    for (limit, asc) in [(100, false), (100, true), (1000, false), (1000, true)] {
        let records = admin.list_all(&[], limit, asc);
        assert_eq!(records.len(), EVENTS, "limit {limit} asc {asc}: count");
        let listed = ids(&records);
        assert_eq!(set(listed.clone()).len(), EVENTS, "each record once");
        let page_seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        let mut expected: Vec<u64> = (0..EVENTS as u64).collect();
        if !asc {
            expected.reverse();
        }
        assert_eq!(page_seqs, expected, "limit {limit} asc {asc}: order");
        if limit == 1000 && !asc {
            for record in &records {
                let id = record["id"].as_str().unwrap();
                let spec = by_id.get(id).unwrap_or_else(|| panic!("unknown id {id}"));
                check_record(record, spec, seqs[id]);
            }
        }
    }

    // By id: the full answer for a sample.
    for spec in specs.iter().step_by(97) {
        let answer = admin.get(&format!("/v1/events/{}", spec.id)).expect(200);
        assert_eq!(answer["seq"], json!(seqs[&spec.id]));
        assert!(answer["envelope"].is_object(), "{answer}");
        assert!(is_hex(answer["leaf_hash"].as_str().unwrap(), 64));
        assert_eq!(answer["record"]["leaf_hash"], answer["leaf_hash"]);
        check_record(&answer["record"], spec, seqs[&spec.id]);
    }
    let unknown = admin.get(&format!("/v1/events/{}", new_uuid()));
    assert_plain_problem(&unknown, 404, "unknown id");

    let metrics = server.anonymous().get("/metrics");
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metric(&metrics.text(), "trail_events_accepted_total"),
        EVENTS as f64,
        "accepted counter"
    );
}

/// A list filter: query parameters and the predicate they select.
type Filter = (Vec<(&'static str, String)>, Box<dyn Fn(&Spec) -> bool>);

fn filters(specs: &[Spec]) -> Vec<Filter> {
    let from_ts = specs[501].ts;
    let to_ts = specs[1500].ts;
    let mut filters: Vec<Filter> = Vec::new();
    let mut add = |params: Vec<(&'static str, String)>, pred: Box<dyn Fn(&Spec) -> bool>| {
        filters.push((params, pred));
    };
    for t in TYPES {
        add(
            vec![("type", t.into())],
            Box::new(move |s| s.event_type == t),
        );
    }
    for (name, _) in NAMES {
        add(
            vec![("name", name.into())],
            Box::new(move |s| s.name == name),
        );
    }
    for needle in ["READ", "rEaD", "CH.w", "q", "."] {
        let lower = needle.to_lowercase();
        add(
            vec![("name_contains", needle.into())],
            Box::new(move |s| s.name.to_lowercase().contains(&lower)),
        );
    }
    add(vec![("name_contains", "zzz".into())], Box::new(|_| false));
    add(
        vec![("user_id", "user-2".into())],
        Box::new(|s| s.user_id.as_deref() == Some("user-2")),
    );
    add(vec![("user_id", "nobody".into())], Box::new(|_| false));
    add(
        vec![("session_id", "sess-5".into())],
        Box::new(|s| s.session_id == "sess-5"),
    );
    add(
        vec![("project_id", "proj-1".into())],
        Box::new(|s| s.project_id == "proj-1"),
    );
    add(
        vec![("task_id", "task-3".into())],
        Box::new(|s| s.task_id.as_deref() == Some("task-3")),
    );
    add(
        vec![("agent_id", "agent-4".into())],
        Box::new(|s| s.agent_id == "agent-4"),
    );
    for t in TRANSPORTS {
        add(
            vec![("transport", t.into())],
            Box::new(move |s| s.transport == t),
        );
    }
    add(vec![("status", "error".into())], Box::new(|s| s.error));
    add(vec![("status", "ok".into())], Box::new(|s| !s.error));
    add(
        vec![("model", "model-1".into())],
        Box::new(|s| s.model.as_deref() == Some("model-1")),
    );
    add(
        vec![("provider", "prov-0".into())],
        Box::new(|s| s.provider.as_deref() == Some("prov-0")),
    );
    add(
        vec![("confirmed", "true".into())],
        Box::new(|s| s.confirmed == Some(true)),
    );
    add(
        vec![("confirmed", "false".into())],
        Box::new(|s| s.confirmed == Some(false)),
    );
    for doc in ["doc-shared", "doc-1"] {
        add(
            vec![("document_id", doc.into())],
            Box::new(move |s| s.document_ids.iter().any(|d| d == doc)),
        );
    }
    add(
        vec![("from", rfc3339_us(from_ts))],
        Box::new(move |s| s.ts >= from_ts),
    );
    add(
        vec![("to", rfc3339_us(to_ts))],
        Box::new(move |s| s.ts < to_ts),
    );
    add(
        vec![("from", rfc3339_us(from_ts)), ("to", rfc3339_us(to_ts))],
        Box::new(move |s| s.ts >= from_ts && s.ts < to_ts),
    );
    // The same instant written with an offset: 14:00+02:00 is 12:00Z.
    let noon = (base_secs() + 12 * 3600) * 1_000_000;
    add(
        vec![("from", "2024-03-01T14:00:00+02:00".into())],
        Box::new(move |s| s.ts >= noon),
    );
    add(
        vec![
            ("type", "llm_call".into()),
            ("status", "error".into()),
            ("user_id", "user-1".into()),
        ],
        Box::new(|s| {
            s.event_type == "llm_call" && s.error && s.user_id.as_deref() == Some("user-1")
        }),
    );
    add(
        vec![
            ("name_contains", "read".into()),
            ("project_id", "proj-2".into()),
            ("confirmed", "true".into()),
        ],
        Box::new(|s| {
            s.name.to_lowercase().contains("read")
                && s.project_id == "proj-2"
                && s.confirmed == Some(true)
        }),
    );
    add(
        vec![
            ("document_id", "doc-shared".into()),
            ("transport", "http".into()),
            ("from", rfc3339_us(from_ts)),
        ],
        Box::new(move |s| {
            s.document_ids.iter().any(|d| d == "doc-shared")
                && s.transport == "http"
                && s.ts >= from_ts
        }),
    );
    add(
        vec![
            ("agent_id", "agent-1".into()),
            ("session_id", "sess-3".into()),
        ],
        Box::new(|s| s.agent_id == "agent-1" && s.session_id == "sess-3"),
    );
    filters
}

#[test]
fn every_filter_returns_exactly_the_matching_records() {
    let (_server, admin, specs, _seqs) = fresh_dataset_server();
    for (params, predicate) in filters(&specs) {
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let expected = set(specs.iter().filter(|s| predicate(s)).map(|s| s.id.clone()));
        for (limit, asc) in [(1000, false), (100, true)] {
            let records = admin.list_all(&pairs, limit, asc);
            let got = ids(&records);
            assert_eq!(
                got.len(),
                set(got.clone()).len(),
                "{pairs:?}: a record listed twice"
            );
            assert_eq!(
                set(got),
                expected,
                "{pairs:?} (limit {limit}, asc {asc}): {} expected",
                expected.len()
            );
        }
        assert_eq!(
            admin.total(&pairs),
            expected.len() as u64,
            "{pairs:?}: count total"
        );
    }
}

/// Expected stats of the records `predicate` selects.
fn check_stats(
    admin: &Client,
    specs: &[Spec],
    pairs: &[(&str, &str)],
    predicate: &dyn Fn(&Spec) -> bool,
) {
    let chosen: Vec<&Spec> = specs.iter().filter(|s| predicate(s)).collect();
    let total = chosen.len() as u64;
    let errors = chosen.iter().filter(|s| s.error).count() as u64;
    let mut by_type: BTreeMap<String, u64> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &chosen {
        *by_type.entry(s.event_type.to_owned()).or_default() += 1;
        *by_name.entry(s.name).or_default() += 1;
    }
    let mut durations: Vec<u64> = chosen.iter().filter_map(|s| s.duration_ms).collect();
    durations.sort_unstable();

    for (bucket, width) in [("hour", 3_600_000_000i64), ("day", 86_400_000_000)] {
        let mut params = pairs.to_vec();
        params.push(("bucket", bucket));
        let stats = admin.get_q("/v1/stats", &params).expect(200);
        let what = format!("stats {params:?}");
        assert_eq!(stats["total"], json!(total), "{what}: total");
        assert_eq!(stats["errors"], json!(errors), "{what}: errors");
        let rate = stats["error_rate"].as_f64().expect("error_rate");
        let expected_rate = if total == 0 {
            0.0
        } else {
            errors as f64 / total as f64
        };
        assert!(
            (rate - expected_rate).abs() < 1e-9,
            "{what}: error_rate {rate}"
        );
        let got_types: BTreeMap<String, u64> = stats["by_type"]
            .as_object()
            .expect("by_type")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .filter(|(_, n)| *n > 0)
            .collect();
        assert_eq!(got_types, by_type, "{what}: by_type");

        let mut expected_top: Vec<(&str, u64)> = by_name.iter().map(|(n, c)| (*n, *c)).collect();
        expected_top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let got_top: Vec<(String, u64)> = stats["top_names"]
            .as_array()
            .expect("top_names")
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert!(!got_top.is_empty() || total == 0, "{what}: no top names");
        assert!(
            got_top.len() <= expected_top.len(),
            "{what}: too many top names"
        );
        for (k, (name, count)) in got_top.iter().enumerate() {
            assert_eq!(
                (name.as_str(), *count),
                expected_top[k],
                "{what}: top_names[{k}] (expected {expected_top:?})"
            );
        }
        assert_eq!(
            got_top.len(),
            expected_top.len().min(10),
            "{what}: top names shown"
        );

        let mut expected_buckets: BTreeMap<i64, (u64, u64)> = BTreeMap::new();
        for s in &chosen {
            let b = expected_buckets
                .entry(s.ts.div_euclid(width) * width)
                .or_default();
            b.0 += 1;
            if s.error {
                b.1 += 1;
            }
        }
        let got_buckets: BTreeMap<i64, (u64, u64)> = stats["buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| {
                (
                    parse_rfc3339(b["start"].as_str().expect("bucket start")),
                    (b["count"].as_u64().unwrap(), b["errors"].as_u64().unwrap()),
                )
            })
            .filter(|(_, (count, _))| *count > 0)
            .collect();
        assert_eq!(got_buckets, expected_buckets, "{what}: buckets");

        let p50 = nearest_rank(&durations, 50);
        let p95 = nearest_rank(&durations, 95);
        assert_eq!(stats["duration_ms"]["p50"], json!(p50), "{what}: p50");
        assert_eq!(stats["duration_ms"]["p95"], json!(p95), "{what}: p95");
    }
}

#[test]
fn counts_and_stats_agree_with_the_data() {
    let (_server, admin, specs, _seqs) = fresh_dataset_server();
    assert_eq!(admin.total(&[]), EVENTS as u64);

    // count=true on a full page too, with next_cursor and total together.
    let answer = admin
        .get_q("/v1/events", &[("count", "true"), ("type", "tool_call")])
        .expect(200);
    let tool_calls = specs.iter().filter(|s| s.event_type == "tool_call").count();
    assert_eq!(answer["total"], json!(tool_calls));
    assert_eq!(answer["events"].as_array().unwrap().len(), 100);
    assert!(answer["next_cursor"].is_string());
    let plain = admin.get_q("/v1/events", &[("limit", "5")]).expect(200);
    assert!(
        plain.get("total").is_none(),
        "total only with count=true: {plain}"
    );

    check_stats(&admin, &specs, &[], &|_| true);
    check_stats(&admin, &specs, &[("type", "llm_call")], &|s| {
        s.event_type == "llm_call"
    });
    check_stats(
        &admin,
        &specs,
        &[("user_id", "user-3"), ("status", "error")],
        &|s| s.user_id.as_deref() == Some("user-3") && s.error,
    );
    let from_ts = specs[300].ts;
    let to_ts = specs[1200].ts;
    let (from, to) = (rfc3339_us(from_ts), rfc3339_us(to_ts));
    check_stats(&admin, &specs, &[("from", &from), ("to", &to)], &|s| {
        s.ts >= from_ts && s.ts < to_ts
    });
    check_stats(&admin, &specs, &[("name_contains", "READ")], &|s| {
        s.name.to_lowercase().contains("read")
    });
    check_stats(&admin, &specs, &[("user_id", "nobody")], &|_| false);
}

#[test]
fn limit_defaults_to_100_allows_1000_and_rejects_out_of_range() {
    let (_server, admin, _specs, _seqs) = fresh_dataset_server();
    let page = admin.get("/v1/events").expect(200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 100, "default limit");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1900..2000).rev().collect::<Vec<u64>>(),
        "newest first by default"
    );
    assert!(
        page["next_cursor"].is_string(),
        "more pages: {}",
        page["next_cursor"]
    );

    let page = admin.get_q("/v1/events", &[("limit", "1000")]).expect(200);
    assert_eq!(page["events"].as_array().unwrap().len(), 1000);

    let page = admin
        .get_q("/v1/events", &[("limit", "5"), ("order", "asc")])
        .expect(200);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);

    let page = admin
        .get_q("/v1/events", &[("limit", "5"), ("offset", "10")])
        .expect(200);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        vec![1989, 1988, 1987, 1986, 1985],
        "offset skips newest 10"
    );

    // The last page of an exact multiple ends with an empty page or a null cursor.
    let last = admin.list_all(&[("type", "escalation")], 1000, true);
    assert_eq!(last.len(), EVENTS / 7 + usize::from(EVENTS % 7 > 2));

    for bad in ["0", "1001", "-1", "ten", ""] {
        let response = admin.get_q("/v1/events", &[("limit", bad)]);
        assert_problem(&response, 400, "limit");
    }
    let response = admin.get_q("/v1/events", &[("order", "sideways")]);
    assert_problem(&response, 400, "order");
    let response = admin.get_q("/v1/events", &[("colour", "blue")]);
    assert_problem(&response, 400, "colour");
    let response = admin.get_q("/v1/events", &[("from", "last tuesday")]);
    assert_problem(&response, 400, "from");
    let response = admin.get_q("/v1/events", &[("type", "phone_call")]);
    assert_problem(&response, 400, "type");
    let response = admin.get_q("/v1/events", &[("confirmed", "maybe")]);
    assert_problem(&response, 400, "confirmed");
    let response = admin.get_q("/v1/events", &[("cursor", "not-a-cursor")]);
    assert_problem(&response, 400, "cursor");
    let response = admin.get_q("/v1/stats", &[("bucket", "week")]);
    assert_problem(&response, 400, "bucket");
    let response = admin.get_q("/v1/stats", &[("limit", "10")]);
    assert_problem(&response, 400, "limit");
}

#[test]
fn resend_is_a_duplicate_and_a_changed_resend_is_a_conflict_that_stores_nothing() {
    let server = Server::start();
    let admin = server.admin();
    let mut first = event("tool_call", "fs.read");
    first["user_id"] = json!("alice");
    first["duration_ms"] = json!(12);
    first["input"] = json!({"path": "/etc/hosts"});
    first["metadata"] = json!({"attempt": 1});
    let id = first["id"].as_str().unwrap().to_owned();
    let original = admin.ingest(&first);
    assert_eq!(original.len(), 1);
    assert_eq!(original[0]["duplicate"], json!(false));
    let seq = original[0]["seq"].as_u64().unwrap();
    let leaf = original[0]["leaf_hash"].clone();
    let other = admin.ingest(&event("llm_call", "chat"));
    assert_eq!(other[0]["seq"], json!(seq + 1));

    // The same event again, alone, in a batch, and with members reordered.
    let again = admin.ingest(&first);
    assert_eq!(again[0]["duplicate"], json!(true), "{again:?}");
    assert_eq!(again[0]["seq"], json!(seq));
    assert_eq!(again[0]["leaf_hash"], leaf);
    assert_eq!(again[0]["id"], json!(id));
    let newcomer = event("escalation", "ask.human");
    let batch = admin.ingest(&json!([newcomer, first]));
    assert_eq!(batch[0]["duplicate"], json!(false));
    assert_eq!(batch[0]["seq"], json!(seq + 2));
    assert_eq!(batch[1]["duplicate"], json!(true));
    assert_eq!(batch[1]["seq"], json!(seq));
    let reordered = format!(
        r#"{{"metadata":{{"attempt":1}},"input":{{"path":"/etc/hosts"}},"duration_ms":12,"user_id":"alice","name":"fs.read","type":"tool_call","id":"{id}"}}"#
    );
    let response = admin
        .post_raw("/v1/events", reordered.as_bytes())
        .expect(200);
    assert_eq!(
        response["accepted"][0]["duplicate"],
        json!(true),
        "{response}"
    );
    assert_eq!(response["accepted"][0]["seq"], json!(seq));
    assert_eq!(admin.total(&[]), 3);

    // Changed content under the same id: 409, alone or inside a batch.
    let mut changed = first.clone();
    changed["name"] = json!("fs.write");
    let response = admin.post("/v1/events", &changed);
    assert_plain_problem(&response, 409, "changed resend");
    let mut changed_input = first.clone();
    changed_input["input"] = json!({"path": "/etc/passwd"});
    let response = admin.post("/v1/events", &changed_input);
    assert_plain_problem(&response, 409, "changed input");
    let innocent = event("tool_call", "innocent");
    let response = admin.post("/v1/events", &json!([innocent, changed]));
    assert_plain_problem(&response, 409, "conflict inside a batch");
    assert_eq!(
        admin.total(&[]),
        3,
        "nothing of a conflicting request is stored"
    );
    let innocent_id = innocent["id"].as_str().unwrap();
    assert_plain_problem(
        &admin.get(&format!("/v1/events/{innocent_id}")),
        404,
        "the batch's other event",
    );
    let stored = admin.get(&format!("/v1/events/{id}")).expect(200);
    assert_eq!(stored["record"]["name"], json!("fs.read"), "original kept");
    assert_eq!(stored["seq"], json!(seq));

    // The log goes on gap-free after the conflicts (and the events.read
    // records of the detail reads that found their record).
    let next = admin.ingest(&event("api_request", "GET /x"));
    assert_eq!(next[0]["seq"], json!(seq + 4));
    let seqs: Vec<u64> = admin
        .list_all(&[], 100, true)
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (seq..=seq + 4).collect::<Vec<_>>());

    let metrics = server.anonymous().get("/metrics").text();
    assert_eq!(metric(&metrics, "trail_events_accepted_total"), 4.0);
    assert_eq!(metric(&metrics, "trail_events_duplicate_total"), 3.0);
}

#[test]
fn ndjson_array_and_single_object_bodies_are_accepted_in_order() {
    let server = Server::start();
    let admin = server.admin();
    let events: Vec<Value> = (0..5)
        .map(|i| event("tool_call", &format!("nd.{i}")))
        .collect();
    let mut body = String::new();
    for e in &events {
        body.push_str(&serde_json::to_string(e).unwrap());
        body.push('\n');
    }
    body.push('\n');
    let response = admin
        .send(
            "POST",
            "/v1/events",
            Some("application/x-ndjson"),
            Some(body.as_bytes()),
        )
        .expect(200);
    let accepted = response["accepted"].as_array().unwrap();
    assert_eq!(accepted.len(), 5);
    for (k, (answer, sent)) in accepted.iter().zip(&events).enumerate() {
        assert_eq!(answer["id"], sent["id"]);
        assert_eq!(answer["seq"], json!(k));
    }
    let single = admin.ingest(&event("llm_call", "single"));
    assert_eq!(single[0]["seq"], json!(5));
    let array = admin.ingest(&json!([event("llm_call", "a"), event("llm_call", "b")]));
    assert_eq!(array[0]["seq"], json!(6));
    assert_eq!(array[1]["seq"], json!(7));
    // An event without an id gets one from the server.
    let anonymous = admin.ingest(&json!({"type": "tool_call", "name": "no.id"}));
    let id = anonymous[0]["id"].as_str().expect("server-made id");
    assert_eq!(id.len(), 36);
    admin.get(&format!("/v1/events/{id}")).expect(200);
    assert_eq!(admin.total_recorded(&[]), 9);
    let names: Vec<String> = admin
        .list_all(&[("transport", "http")], 100, true)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names,
        vec!["nd.0", "nd.1", "nd.2", "nd.3", "nd.4", "single", "a", "b", "no.id"]
    );
}

#[test]
fn time_filters_use_started_at_else_received_at() {
    let server = Server::start();
    let admin = server.admin();
    let mut old = event("tool_call", "old.started");
    old["started_at"] = json!("2020-06-01T12:00:00Z");
    admin.ingest(&old);
    for i in 0..6 {
        admin.ingest(&event("tool_call", &format!("live.{i}")));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let records = admin.list_all(&[], 100, true);
    assert_eq!(records.len(), 7);
    let received: Vec<i64> = records[1..]
        .iter()
        .map(|r| parse_rfc3339(r["received_at"].as_str().expect("received_at")))
        .collect();
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "received_at increases: {received:?}"
    );
    let names = |filters: &[(&str, &str)]| -> Vec<String> {
        admin
            .list_all(filters, 100, true)
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let pivot = rfc3339_us(received[3]);
    assert_eq!(
        names(&[("from", &pivot)]),
        vec!["live.3", "live.4", "live.5"]
    );
    assert_eq!(
        names(&[("to", &pivot)]),
        vec!["old.started", "live.0", "live.1", "live.2"]
    );
    assert_eq!(
        names(&[
            ("from", "2020-01-01T00:00:00Z"),
            ("to", "2021-01-01T00:00:00Z")
        ]),
        vec!["old.started"]
    );
    assert_eq!(
        names(&[("from", "2021-01-01T00:00:00Z"), ("to", &pivot)]).len(),
        3
    );
    let stats = admin
        .get_q(
            "/v1/stats",
            &[
                ("from", "2020-06-01T00:00:00Z"),
                ("to", "2020-06-02T00:00:00Z"),
                ("bucket", "day"),
            ],
        )
        .expect(200);
    assert_eq!(stats["total"], json!(1));
    assert_eq!(
        stats["buckets"][0]["start"].as_str().map(parse_rfc3339),
        Some(parse_rfc3339("2020-06-01T00:00:00Z"))
    );
}
