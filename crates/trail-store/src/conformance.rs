//! The backend conformance suite: every behaviour the [`Store`] contract
//! promises, written once and run unchanged against every backend.
//!
//! A backend's test file calls [`conformance_tests!`](crate::conformance_tests)
//! with an async expression that makes a fresh, empty store; the macro
//! expands to one `#[tokio::test]` per case below, so each case reports on
//! its own. Cases panic with a message on failure.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{json, Value};
use trail_core::event::{parse_event, EventType, Status};
use trail_core::hashing::leaf_hash;
use trail_core::policy::ContentPolicy;
use trail_core::record::{prepare, PreparedEvent};
use uuid::Uuid;

use crate::{
    ApiKey, BucketWidth, EventQuery, Filters, Order, ReadScope, Role, StatsQuery, Store,
    StoreError, Tenant, TenantSettings,
};

/// Expands to one test per conformance case; `$make` is an async
/// expression evaluating to `Arc<dyn Store>` (a fresh, empty store).
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            seqs_are_gap_free_under_concurrency,
            envelopes_commit_to_their_position,
            resend_is_idempotent,
            reused_id_with_other_content_conflicts_and_stores_nothing,
            tenants_are_isolated,
            every_filter_matches_exactly,
            cursor_pages_cover_every_record_once,
            offset_and_count,
            many_small_commits_page_and_filter_correctly,
            user_bound_scope_sees_only_its_user,
            stats_agree_with_the_data,
            content_policy_decides_what_is_kept,
            keys_round_trip_and_revoke,
            settings_round_trip,
            tree_roots_proofs_and_checkpoints_match_the_records,
            retirement_keeps_every_proof,
            a_retirement_is_held_until_it_is_recorded,
            erasure_removes_content_and_keeps_envelopes,
        );
    };
    (@cases $make:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store: std::sync::Arc<dyn $crate::Store> = $make;
                $crate::conformance::$case(std::sync::Arc::clone(&store)).await;
                store.shutdown().await;
            }
        )+
    };
}

/// Builds a prepared event from JSON, as the server would.
pub fn event(value: Value, policy: ContentPolicy) -> PreparedEvent {
    let event = parse_event(value.clone())
        .unwrap_or_else(|errors| panic!("test event {value} is invalid: {errors:?}"));
    let salt = *Uuid::new_v4().as_bytes();
    let mut salt32 = [0u8; 32];
    salt32[..16].copy_from_slice(&salt);
    salt32[16..].copy_from_slice(&salt);
    prepare(event, policy, salt32, Uuid::now_v7())
}

fn events(values: &[Value]) -> Vec<PreparedEvent> {
    values
        .iter()
        .map(|v| event(v.clone(), ContentPolicy::Hash))
        .collect()
}

fn scope(tenant: &Tenant) -> ReadScope {
    ReadScope {
        tenant: tenant.clone(),
        bound_user: None,
    }
}

/// All records of the scope matching the filters, oldest first, by paging.
async fn all(store: &dyn Store, scope: &ReadScope, filters: Filters) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .query(
                scope,
                &EventQuery {
                    filters: filters.clone(),
                    order: Order::Asc,
                    limit: 1000,
                    after_seq: after,
                    offset: 0,
                    count: false,
                },
            )
            .await
            .expect("query");
        for record in &page.records {
            out.push(serde_json::from_slice::<Value>(&record.envelope).expect("envelope is JSON"));
        }
        match page.next_cursor {
            Some(seq) => after = Some(seq),
            None => return out,
        }
    }
}

/// The `total` of a count query.
async fn count(store: &dyn Store, scope: &ReadScope, filters: &Filters) -> u64 {
    let page = store
        .query(
            scope,
            &EventQuery {
                filters: filters.clone(),
                limit: 1,
                count: true,
                ..EventQuery::default()
            },
        )
        .await
        .expect("count");
    page.total.expect("count=true answers a total")
}

/// Every seq a cursor walk returns, page by page, checking page sizes.
async fn walk(
    store: &dyn Store,
    scope: &ReadScope,
    filters: &Filters,
    order: Order,
    limit: u32,
    start: Option<u64>,
) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut after = start;
    loop {
        let page = store
            .query(
                scope,
                &EventQuery {
                    filters: filters.clone(),
                    order,
                    limit,
                    after_seq: after,
                    ..EventQuery::default()
                },
            )
            .await
            .expect("page");
        assert!(page.records.len() <= limit as usize);
        seen.extend(page.records.iter().map(|r| r.seq));
        match page.next_cursor {
            Some(seq) => after = Some(seq),
            None => return seen,
        }
    }
}

/// A varied dataset of `n` events; deterministic.
fn dataset(n: usize) -> Vec<Value> {
    let types = EventType::ALL;
    const NAMES: [&str; 4] = ["fs.read", "Web.Search", "chat", "bank.create"];
    const TRANSPORTS: [&str; 3] = ["http", "mcp", "sdk"];
    const MODELS: [&str; 2] = ["m1", "m2"];
    const PROVIDERS: [&str; 3] = ["openai", "anthropic", "google"];
    (0..n)
        .map(|i| {
            let mut event = json!({
                "type": types[i % types.len()].as_str(),
                "name": NAMES[i % 4],
                "user_id": format!("u{}", i % 5),
                "session_id": format!("s{}", i % 7),
                "project_id": format!("p{}", i % 3),
                "task_id": format!("t{}", i % 11),
                "agent_id": format!("a{}", i % 2),
                "status": if i % 9 == 0 { "error" } else { "ok" },
                "transport": TRANSPORTS[i % 3],
                "model": MODELS[i % 2],
                "provider": PROVIDERS[i % 3],
                "confirmed": i % 4 == 0,
                "document_ids": [format!("d{}", i % 13)],
                "started_at": trail_core::time::format_rfc3339(1_700_000_000_000_000 + i as i64 * 600_000_000),
                "duration_ms": (i * 37) % 1000,
            });
            if i % 9 == 0 {
                event["error"] = json!("boom");
            }
            event
        })
        .collect()
}

/// Concurrent appends from many tasks give seqs 0..n-1, each once.
pub async fn seqs_are_gap_free_under_concurrency(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let mut tasks = Vec::new();
    for task in 0..8 {
        let store = Arc::clone(&store);
        let tenant = tenant.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for batch in 0..5 {
                let values: Vec<Value> = (0..20)
                    .map(|i| json!({"type": "tool_call", "name": format!("x{task}.{batch}.{i}")}))
                    .collect();
                let accepted = store
                    .append(&tenant, events(&values))
                    .await
                    .expect("append");
                assert_eq!(accepted.len(), 20);
                seqs.extend(accepted.iter().map(|a| a.seq));
            }
            seqs
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.extend(task.await.expect("task"));
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..800).collect::<Vec<u64>>(),
        "seqs must be 0..n-1, each once"
    );
    assert_eq!(store.log_size(&tenant).await.expect("size"), 800);
}

/// Each stored envelope carries its tenant, seq and received_at, and the
/// leaf hash is SHA-256(0x00 || envelope).
pub async fn envelopes_commit_to_their_position(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let accepted = store
        .append(&tenant, events(&dataset(30)))
        .await
        .expect("append");
    let records = all(&*store, &scope(&tenant), Filters::default()).await;
    assert_eq!(records.len(), 30);
    let mut last_received = String::new();
    for (i, envelope) in records.iter().enumerate() {
        assert_eq!(envelope["seq"], json!(i));
        assert_eq!(envelope["tenant_id"], json!("t"));
        let received = envelope["received_at"]
            .as_str()
            .expect("received_at")
            .to_owned();
        assert!(received >= last_received, "received_at never goes back");
        last_received = received;
    }
    for a in &accepted {
        let record = store
            .get(&scope(&tenant), a.id)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(record.seq, a.seq);
        assert_eq!(leaf_hash(&record.envelope), record.leaf_hash);
        assert_eq!(record.leaf_hash, a.leaf_hash);
    }
}

/// The same event sent twice is acknowledged with its original seq.
pub async fn resend_is_idempotent(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let id = Uuid::now_v7();
    let value =
        json!({"id": id, "type": "llm_call", "name": "chat", "input": "hi", "user_email": "a@b.c"});
    let first = store
        .append(&tenant, events(std::slice::from_ref(&value)))
        .await
        .expect("first");
    store
        .append(
            &tenant,
            events(&[json!({"type": "tool_call", "name": "other"})]),
        )
        .await
        .expect("other");
    // A new salt, same event: still the same record.
    let again = store
        .append(&tenant, events(&[value.clone(), value]))
        .await
        .expect("again");
    assert!(!first[0].duplicate);
    for a in &again {
        assert!(a.duplicate, "resend must be marked duplicate");
        assert_eq!(a.seq, first[0].seq);
        assert_eq!(a.leaf_hash, first[0].leaf_hash);
    }
    assert_eq!(store.log_size(&tenant).await.expect("size"), 2);
}

/// An id reused with other content is a conflict, and nothing of that
/// request is stored.
pub async fn reused_id_with_other_content_conflicts_and_stores_nothing(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let id = Uuid::now_v7();
    store
        .append(
            &tenant,
            events(&[json!({"id": id, "type": "tool_call", "name": "a"})]),
        )
        .await
        .expect("first");
    let batch = events(&[
        json!({"type": "tool_call", "name": "fresh"}),
        json!({"id": id, "type": "tool_call", "name": "b"}),
    ]);
    let error = store.append(&tenant, batch).await.expect_err("conflict");
    assert!(
        matches!(error, StoreError::Conflict { seq: 0, .. }),
        "expected a conflict naming seq 0, got {error:?}"
    );
    assert_eq!(store.log_size(&tenant).await.expect("size"), 1);
    let names: Vec<Value> = all(&*store, &scope(&tenant), Filters::default())
        .await
        .iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("a")]);
    // The log goes on without a gap.
    let next = store
        .append(
            &tenant,
            events(&[json!({"type": "tool_call", "name": "c"})]),
        )
        .await
        .expect("next");
    assert_eq!(next[0].seq, 1);
}

/// Two tenants have separate logs and never see each other's records.
pub async fn tenants_are_isolated(store: Arc<dyn Store>) {
    let one = store.ensure_tenant("one").await.expect("tenant");
    let two = store.ensure_tenant("two").await.expect("tenant");
    let a = store
        .append(
            &one,
            events(&[json!({"type": "tool_call", "name": "x", "user_id": "u"})]),
        )
        .await
        .expect("append");
    let b = store
        .append(
            &two,
            events(&[json!({"type": "tool_call", "name": "x", "user_id": "u"})]),
        )
        .await
        .expect("append");
    assert_eq!(a[0].seq, 0);
    assert_eq!(b[0].seq, 0, "each tenant has its own log");
    assert!(store
        .get(&scope(&two), a[0].id)
        .await
        .expect("get")
        .is_none());
    assert!(store
        .get(&scope(&one), b[0].id)
        .await
        .expect("get")
        .is_none());
    let filters = Filters {
        user_id: Some("u".into()),
        ..Filters::default()
    };
    let seen = all(&*store, &scope(&one), filters).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["tenant_id"], json!("one"));
}

fn matches(filters: &Filters, e: &Value) -> bool {
    let text = |field: &str, want: &Option<String>| {
        want.as_ref()
            .is_none_or(|w| e[field].as_str() == Some(w.as_str()))
    };
    let time = e["started_at"]
        .as_str()
        .or(e["received_at"].as_str())
        .and_then(|t| trail_core::time::parse_rfc3339(t).ok())
        .unwrap_or(0);
    text("name", &filters.name)
        && text("user_id", &filters.user_id)
        && text("session_id", &filters.session_id)
        && text("project_id", &filters.project_id)
        && text("task_id", &filters.task_id)
        && text("agent_id", &filters.agent_id)
        && text("model", &filters.model)
        && text("provider", &filters.provider)
        && filters
            .event_type
            .is_none_or(|t| e["type"] == json!(t.as_str()))
        && filters
            .status
            .is_none_or(|s| e["status"] == json!(s.as_str()))
        && filters
            .transport
            .is_none_or(|t| e["transport"] == json!(t.as_str()))
        && filters.confirmed.is_none_or(|c| e["confirmed"] == json!(c))
        && filters.document_id.as_ref().is_none_or(|d| {
            e["document_ids"]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(d)))
        })
        && filters.name_contains.as_ref().is_none_or(|n| {
            e["name"]
                .as_str()
                .is_some_and(|name| name.to_lowercase().contains(&n.to_lowercase()))
        })
        && filters.from.is_none_or(|from| time >= from)
        && filters.to.is_none_or(|to| time < to)
}

/// Every filter, alone and combined, returns exactly the matching records.
pub async fn every_filter_matches_exactly(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    store
        .append(&tenant, events(&dataset(300)))
        .await
        .expect("append");
    let everything = all(&*store, &scope(&tenant), Filters::default()).await;
    assert_eq!(everything.len(), 300);
    let t0 = 1_700_000_000_000_000i64;
    let cases = vec![
        Filters {
            event_type: Some(EventType::LlmCall),
            ..Filters::default()
        },
        Filters {
            name: Some("fs.read".into()),
            ..Filters::default()
        },
        Filters {
            name_contains: Some("SEARCH".into()),
            ..Filters::default()
        },
        Filters {
            name_contains: Some(".".into()),
            user_id: Some("u1".into()),
            ..Filters::default()
        },
        Filters {
            user_id: Some("u3".into()),
            ..Filters::default()
        },
        Filters {
            session_id: Some("s6".into()),
            ..Filters::default()
        },
        Filters {
            project_id: Some("p0".into()),
            ..Filters::default()
        },
        Filters {
            task_id: Some("t10".into()),
            ..Filters::default()
        },
        Filters {
            agent_id: Some("a1".into()),
            ..Filters::default()
        },
        Filters {
            transport: Some(trail_core::event::Transport::Mcp),
            ..Filters::default()
        },
        Filters {
            status: Some(Status::Error),
            ..Filters::default()
        },
        Filters {
            status: Some(Status::Ok),
            ..Filters::default()
        },
        Filters {
            model: Some("m2".into()),
            ..Filters::default()
        },
        Filters {
            provider: Some("google".into()),
            ..Filters::default()
        },
        Filters {
            confirmed: Some(true),
            ..Filters::default()
        },
        Filters {
            document_id: Some("d4".into()),
            ..Filters::default()
        },
        Filters {
            from: Some(t0 + 100 * 600_000_000),
            ..Filters::default()
        },
        Filters {
            to: Some(t0 + 50 * 600_000_000),
            ..Filters::default()
        },
        Filters {
            from: Some(t0 + 3 * 600_000_000),
            to: Some(t0 + 9 * 600_000_000 + 7),
            ..Filters::default()
        },
        Filters {
            from: Some(t0 + 10 * 600_000_000),
            to: Some(t0 + 200 * 600_000_000),
            user_id: Some("u2".into()),
            status: Some(Status::Ok),
            ..Filters::default()
        },
        Filters {
            user_id: Some("u1".into()),
            session_id: Some("s2".into()),
            ..Filters::default()
        },
        Filters {
            user_id: Some("nobody".into()),
            ..Filters::default()
        },
        Filters {
            name_contains: Some("zzz".into()),
            ..Filters::default()
        },
    ];
    for filters in cases {
        let want: Vec<Value> = everything
            .iter()
            .filter(|e| matches(&filters, e))
            .cloned()
            .collect();
        let got = all(&*store, &scope(&tenant), filters.clone()).await;
        assert_eq!(got, want, "filter {filters:?}");
        assert_eq!(
            count(&*store, &scope(&tenant), &filters).await,
            want.len() as u64,
            "count of {filters:?}"
        );
    }
}

/// Cursor pagination in both orders returns every record exactly once.
pub async fn cursor_pages_cover_every_record_once(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    store
        .append(&tenant, events(&dataset(257)))
        .await
        .expect("append");
    for order in [Order::Desc, Order::Asc] {
        for (limit, filters) in [
            (10, Filters::default()),
            (1000, Filters::default()),
            (
                7,
                Filters {
                    user_id: Some("u1".into()),
                    ..Filters::default()
                },
            ),
        ] {
            let seen = walk(&*store, &scope(&tenant), &filters, order, limit, None).await;
            let expected: Vec<u64> = (0..257u64)
                .filter(|seq| filters.user_id.is_none() || seq % 5 == 1)
                .collect();
            let mut sorted = seen.clone();
            match order {
                Order::Asc => assert!(seen.windows(2).all(|w| w[0] < w[1])),
                Order::Desc => assert!(seen.windows(2).all(|w| w[0] > w[1])),
            }
            sorted.sort_unstable();
            assert_eq!(sorted, expected, "{order:?} limit {limit} {filters:?}");
        }
    }
}

/// Hundreds of small commits (many index blocks per value): filtered pages,
/// in both orders, from any cursor, and counts still see every match once.
pub async fn many_small_commits_page_and_filter_correctly(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let data = dataset(450);
    for chunk in data.chunks(3) {
        store.append(&tenant, events(chunk)).await.expect("append");
    }
    let everything = all(&*store, &scope(&tenant), Filters::default()).await;
    assert_eq!(everything.len(), 450);
    for filters in [
        Filters {
            agent_id: Some("a1".into()),
            ..Filters::default()
        },
        Filters {
            user_id: Some("u3".into()),
            model: Some("m2".into()),
            ..Filters::default()
        },
        Filters {
            name_contains: Some("a".into()),
            status: Some(Status::Ok),
            ..Filters::default()
        },
        Filters {
            event_type: Some(EventType::ToolCall),
            from: Some(1_700_000_000_000_000 + 100 * 600_000_000),
            ..Filters::default()
        },
    ] {
        let want: Vec<u64> = everything
            .iter()
            .filter(|e| matches(&filters, e))
            .map(|e| e["seq"].as_u64().expect("seq"))
            .collect();
        for order in [Order::Asc, Order::Desc] {
            for start in [None, Some(0u64), Some(137), Some(449)] {
                let seen = walk(&*store, &scope(&tenant), &filters, order, 17, start).await;
                let expected: Vec<u64> = match (order, start) {
                    (Order::Asc, Some(s)) => want.iter().copied().filter(|q| *q > s).collect(),
                    (Order::Asc, None) => want.clone(),
                    (Order::Desc, Some(s)) => {
                        want.iter().rev().copied().filter(|q| *q < s).collect()
                    }
                    (Order::Desc, None) => want.iter().rev().copied().collect(),
                };
                assert_eq!(seen, expected, "{filters:?} {order:?} from {start:?}");
            }
        }
        assert_eq!(
            count(&*store, &scope(&tenant), &filters).await,
            want.len() as u64,
            "count of {filters:?}"
        );
    }
    // Rollups merged over 150 commits still agree with the records.
    let stats = store
        .stats(
            &scope(&tenant),
            &StatsQuery {
                top: 10,
                ..StatsQuery::default()
            },
        )
        .await
        .expect("stats");
    assert_eq!(stats.total, 450);
    let mut durations: Vec<u64> = everything
        .iter()
        .map(|e| e["duration_ms"].as_u64().expect("duration"))
        .collect();
    durations.sort_unstable();
    assert_eq!(stats.p50_duration_ms, Some(durations[224]));
    assert_eq!(stats.p95_duration_ms, Some(durations[427]));
    let errors = everything
        .iter()
        .filter(|e| e["status"] == json!("error"))
        .count() as u64;
    assert_eq!(stats.errors, errors);
    assert_eq!(stats.buckets.iter().map(|b| b.count).sum::<u64>(), 450);
}

/// Offset skips matches; count reports all of them.
pub async fn offset_and_count(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    store
        .append(&tenant, events(&dataset(50)))
        .await
        .expect("append");
    let page = store
        .query(
            &scope(&tenant),
            &EventQuery {
                limit: 10,
                offset: 45,
                count: true,
                ..EventQuery::default()
            },
        )
        .await
        .expect("page");
    assert_eq!(page.total, Some(50));
    let seqs: Vec<u64> = page.records.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![4, 3, 2, 1, 0]);
    assert_eq!(page.next_cursor, None);
}

/// A scope bound to a user sees only that user's records, whatever the
/// filters say.
pub async fn user_bound_scope_sees_only_its_user(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let accepted = store
        .append(&tenant, events(&dataset(40)))
        .await
        .expect("append");
    let bound = ReadScope {
        tenant: tenant.clone(),
        bound_user: Some("u2".into()),
    };
    for filters in [
        Filters::default(),
        Filters {
            user_id: Some("u3".into()),
            ..Filters::default()
        },
        Filters {
            user_id: Some("u2".into()),
            ..Filters::default()
        },
        Filters {
            name_contains: Some("a".into()),
            ..Filters::default()
        },
    ] {
        for e in all(&*store, &bound, filters.clone()).await {
            assert_eq!(e["user_id"], json!("u2"), "{filters:?}");
        }
    }
    for (i, a) in accepted.iter().enumerate() {
        let visible = store.get(&bound, a.id).await.expect("get").is_some();
        assert_eq!(visible, i % 5 == 2);
    }
    let stats = store
        .stats(
            &bound,
            &StatsQuery {
                top: 10,
                ..StatsQuery::default()
            },
        )
        .await
        .expect("stats");
    assert_eq!(stats.total, 8);
    let nobody = ReadScope {
        tenant,
        bound_user: Some("never-seen".into()),
    };
    assert!(all(&*store, &nobody, Filters::default()).await.is_empty());
}

/// Stats totals, buckets, types, names, errors and percentiles agree with
/// the records.
pub async fn stats_agree_with_the_data(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    store
        .append(&tenant, events(&dataset(200)))
        .await
        .expect("append");
    let everything = all(&*store, &scope(&tenant), Filters::default()).await;
    let t0 = 1_700_000_000_000_000i64;
    let minute = 60_000_000i64;
    for (bucket, filters) in [
        (BucketWidth::Hour, Filters::default()),
        (
            BucketWidth::Day,
            Filters {
                user_id: Some("u4".into()),
                ..Filters::default()
            },
        ),
        (
            BucketWidth::Hour,
            Filters {
                event_type: Some(EventType::ToolCall),
                from: Some(t0 + 95 * minute + 17),
                to: Some(t0 + 1500 * minute + 5),
                ..Filters::default()
            },
        ),
        (
            BucketWidth::Day,
            Filters {
                name_contains: Some("A".into()),
                status: Some(Status::Ok),
                ..Filters::default()
            },
        ),
        (
            BucketWidth::Hour,
            Filters {
                name: Some("chat".into()),
                to: Some(t0 + 700 * minute),
                ..Filters::default()
            },
        ),
        (
            BucketWidth::Hour,
            Filters {
                from: Some(t0 + 61 * minute),
                to: Some(t0 + 62 * minute + 1),
                ..Filters::default()
            },
        ),
        (
            BucketWidth::Day,
            Filters {
                name: Some("never".into()),
                ..Filters::default()
            },
        ),
        // Two partial hours and no whole one.
        (
            BucketWidth::Hour,
            Filters {
                from: Some(t0 + 30 * minute),
                to: Some(t0 + 80 * minute),
                ..Filters::default()
            },
        ),
    ] {
        let stats = store
            .stats(
                &scope(&tenant),
                &StatsQuery {
                    filters: filters.clone(),
                    bucket,
                    top: 3,
                },
            )
            .await
            .expect("stats");
        let chosen: Vec<&Value> = everything.iter().filter(|e| matches(&filters, e)).collect();
        assert_eq!(stats.total, chosen.len() as u64);
        let errors = chosen
            .iter()
            .filter(|e| e["status"] == json!("error"))
            .count() as u64;
        assert_eq!(stats.errors, errors);
        let width = bucket.micros();
        let mut buckets: HashMap<i64, (u64, u64)> = HashMap::new();
        let mut types: HashMap<String, u64> = HashMap::new();
        let mut names: HashMap<String, u64> = HashMap::new();
        let mut durations = Vec::new();
        for e in &chosen {
            let t = trail_core::time::parse_rfc3339(e["started_at"].as_str().expect("time"))
                .expect("time");
            let b = buckets.entry(t.div_euclid(width) * width).or_default();
            b.0 += 1;
            if e["status"] == json!("error") {
                b.1 += 1;
            }
            *types
                .entry(e["type"].as_str().expect("type").to_owned())
                .or_default() += 1;
            *names
                .entry(e["name"].as_str().expect("name").to_owned())
                .or_default() += 1;
            durations.push(e["duration_ms"].as_u64().expect("duration"));
        }
        let mut want_buckets: Vec<(i64, u64, u64)> =
            buckets.into_iter().map(|(s, (c, e))| (s, c, e)).collect();
        want_buckets.sort_unstable();
        let got_buckets: Vec<(i64, u64, u64)> = stats
            .buckets
            .iter()
            .map(|b| (b.start, b.count, b.errors))
            .collect();
        assert_eq!(got_buckets, want_buckets);
        let got_types: HashMap<String, u64> = stats
            .by_type
            .iter()
            .map(|(t, n)| (t.as_str().to_owned(), *n))
            .collect();
        assert_eq!(got_types, types);
        let mut want_names: Vec<(String, u64)> = names.into_iter().collect();
        want_names.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        want_names.truncate(3);
        assert_eq!(stats.top_names, want_names);
        durations.sort_unstable();
        let rank = |p: usize| {
            (!durations.is_empty())
                .then(|| durations[(p * durations.len()).div_ceil(100).max(1) - 1])
        };
        assert_eq!(stats.p50_duration_ms, rank(50), "{filters:?}");
        assert_eq!(stats.p95_duration_ms, rank(95), "{filters:?}");
    }
}

/// Under `hash` no body is kept (user_email is); under `full` bodies are kept.
pub async fn content_policy_decides_what_is_kept(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let value = json!({"type": "llm_call", "name": "chat", "user_email": "a@b.c",
                       "input": {"prompt": "secret plan"}, "output": "ok", "input_summary": "sum"});
    let hashed = event(value.clone(), ContentPolicy::Hash);
    let full = event(value, ContentPolicy::Full);
    let accepted = store
        .append(&tenant, vec![hashed, full])
        .await
        .expect("append");
    let one = store
        .get(&scope(&tenant), accepted[0].id)
        .await
        .expect("get")
        .expect("present");
    let content: Value =
        serde_json::from_slice(one.content.as_deref().expect("content")).expect("json");
    assert_eq!(content, json!({"user_email": "a@b.c"}));
    let envelope: Value = serde_json::from_slice(&one.envelope).expect("json");
    assert!(envelope.get("input").is_none() && envelope["input_hash"].is_string());
    assert!(!String::from_utf8_lossy(&one.envelope).contains("secret plan"));
    let two = store
        .get(&scope(&tenant), accepted[1].id)
        .await
        .expect("get")
        .expect("present");
    let content: Value =
        serde_json::from_slice(two.content.as_deref().expect("content")).expect("json");
    assert_eq!(content["input"], json!({"prompt": "secret plan"}));
    assert_eq!(content["input_summary"], json!("sum"));
    let digest = trail_core::hashing::content_digest(
        &two.content_salt.expect("salt"),
        two.content.as_deref().expect("content"),
    );
    let envelope: Value = serde_json::from_slice(&two.envelope).expect("json");
    assert_eq!(envelope["content_digest"], json!(hex::encode(digest)));
}

/// Keys are stored, found, listed per tenant and revoked.
pub async fn keys_round_trip_and_revoke(store: Arc<dyn Store>) {
    assert!(store.has_no_keys().await.expect("empty"));
    let one = store.ensure_tenant("one").await.expect("tenant");
    let two = store.ensure_tenant("two").await.expect("tenant");
    let key = ApiKey {
        key_id: "00112233aabbccdd".into(),
        tenant: one.clone(),
        role: Role::Read,
        user_id: Some("u1".into()),
        secret_hash: [7; 32],
        label: Some("reader".into()),
        created_at: 1,
        revoked_at: None,
    };
    store.create_key(&key).await.expect("create");
    assert!(!store.has_no_keys().await.expect("not empty"));
    assert_eq!(
        store.key(&key.key_id).await.expect("key"),
        Some(key.clone())
    );
    assert_eq!(
        store.list_keys(&one).await.expect("list"),
        vec![key.clone()]
    );
    assert!(store.list_keys(&two).await.expect("list").is_empty());
    assert!(matches!(
        store.revoke_key(&two, &key.key_id).await,
        Err(StoreError::NotFound(_))
    ));
    let revoked = store.revoke_key(&one, &key.key_id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    assert!(store
        .key(&key.key_id)
        .await
        .expect("key")
        .expect("kept")
        .revoked_at
        .is_some());
    assert_eq!(store.ensure_tenant("one").await.expect("again"), one);
}

/// Settings default, then round-trip per tenant.
pub async fn settings_round_trip(store: Arc<dyn Store>) {
    let one = store.ensure_tenant("one").await.expect("tenant");
    let two = store.ensure_tenant("two").await.expect("tenant");
    assert_eq!(store.settings(&one).await.expect("get"), None);
    let settings = TenantSettings {
        retention_days: Some(30),
        content_policy: ContentPolicy::Full,
        record_types: Some(vec![EventType::ToolCall]),
        audit_queries: true,
    };
    store.put_settings(&one, &settings).await.expect("put");
    assert_eq!(store.settings(&one).await.expect("get"), Some(settings));
    assert_eq!(store.settings(&two).await.expect("get"), None);
    let names: BTreeSet<String> = [one.name, two.name].into_iter().collect();
    assert_eq!(names.len(), 2);
}

/// Roots and proofs served from the stored tree agree with a tree built
/// from the records' leaf hashes; checkpoints are refused when their root is
/// wrong or when they would go back.
pub async fn tree_roots_proofs_and_checkpoints_match_the_records(store: Arc<dyn Store>) {
    use trail_core::merkle;
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let data = dataset(300);
    let mut start = 0;
    for size in [1usize, 2, 13, 16, 17, 51, 100, 100] {
        store
            .append(&tenant, events(&data[start..start + size]))
            .await
            .expect("append");
        start += size;
    }
    let leaves: Vec<[u8; 32]> = store
        .tree_nodes(&tenant, 0, 0, 300)
        .await
        .expect("leaves")
        .into_iter()
        .map(|(_, hash)| hash)
        .collect();
    assert_eq!(leaves.len(), 300);
    for size in [1u64, 2, 3, 15, 16, 17, 64, 100, 255, 256, 257, 300] {
        let root = store.root(&tenant, size).await.expect("root");
        assert_eq!(
            root,
            merkle::root_of(&leaves[..size as usize]),
            "root of {size}"
        );
        for seq in [0, size / 3, size / 2, size - 1] {
            let proof = store
                .inclusion_proof(&tenant, seq, size)
                .await
                .expect("inclusion");
            merkle::verify_inclusion(&leaves[seq as usize], seq, size, &proof, &root)
                .unwrap_or_else(|e| panic!("inclusion of {seq} in {size}: {e}"));
        }
        for from in [1, size / 2, size] {
            if from == 0 {
                continue;
            }
            let proof = store
                .consistency_proof(&tenant, from, size)
                .await
                .expect("consistency");
            let old = merkle::root_of(&leaves[..from as usize]);
            merkle::verify_consistency(from, size, &proof, &old, &root)
                .unwrap_or_else(|e| panic!("consistency {from} -> {size}: {e}"));
        }
    }
    assert!(
        store.root(&tenant, 301).await.is_err(),
        "a size beyond the log"
    );
    let checkpoint = |size: u64, root: [u8; 32]| crate::StoredCheckpoint {
        size,
        root,
        note: format!("test note {size}"),
        created_at: 1,
    };
    let root_100 = merkle::root_of(&leaves[..100]);
    assert!(matches!(
        store
            .add_checkpoint(&tenant, &checkpoint(100, [9; 32]))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .add_checkpoint(&tenant, &checkpoint(100, root_100))
        .await
        .expect("keep");
    store
        .add_checkpoint(&tenant, &checkpoint(100, root_100))
        .await
        .expect("again is a no-op");
    assert!(matches!(
        store
            .add_checkpoint(&tenant, &checkpoint(50, merkle::root_of(&leaves[..50])))
            .await,
        Err(StoreError::Conflict { .. })
    ));
    let root_300 = merkle::root_of(&leaves);
    store
        .add_checkpoint(&tenant, &checkpoint(300, root_300))
        .await
        .expect("newer");
    let kept: Vec<u64> = store
        .checkpoints(&tenant)
        .await
        .expect("list")
        .iter()
        .map(|c| c.size)
        .collect();
    assert_eq!(kept, vec![100, 300]);
    assert_eq!(
        store
            .latest_checkpoint(&tenant)
            .await
            .expect("latest")
            .map(|c| c.root),
        Some(root_300)
    );
    assert_eq!(
        store
            .checkpoint(&tenant, 100)
            .await
            .expect("by size")
            .map(|c| c.root),
        Some(root_100)
    );
    assert_eq!(store.checkpoint(&tenant, 99).await.expect("by size"), None);
}

async fn stats_total(store: &dyn Store, tenant: &Tenant, filters: Filters) -> (u64, u64) {
    let stats = store
        .stats(
            &scope(tenant),
            &StatsQuery {
                filters,
                bucket: BucketWidth::Hour,
                top: 10,
            },
        )
        .await
        .expect("stats");
    let by_type: u64 = stats.by_type.iter().map(|(_, n)| n).sum();
    let in_buckets: u64 = stats.buckets.iter().map(|b| b.count).sum();
    assert_eq!(by_type, stats.total, "by_type sums to the total");
    assert_eq!(in_buckets, stats.total, "buckets sum to the total");
    // Nothing retired lingers as an empty bucket, type or name.
    assert!(
        stats.buckets.iter().all(|b| b.count > 0),
        "{:?}",
        stats.buckets
    );
    assert!(
        stats.by_type.iter().all(|(_, n)| *n > 0),
        "{:?}",
        stats.by_type
    );
    assert!(
        stats.top_names.iter().all(|(_, n)| *n > 0),
        "{:?}",
        stats.top_names
    );
    (stats.total, stats.errors)
}

/// Retirement deletes whole old commits from the start of the log, keeps
/// every leaf hash (roots and proofs unchanged, old and new sizes), keeps
/// queries, counts and stats consistent, and lets the log grow on.
pub async fn retirement_keeps_every_proof(store: Arc<dyn Store>) {
    use trail_core::merkle;
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let other = store.ensure_tenant("o").await.expect("tenant");
    let data = dataset(120);
    store
        .append(&other, events(&data[..10]))
        .await
        .expect("append other");
    let mut accepted = Vec::new();
    for range in [0..7, 7..30, 30..50] {
        accepted.extend(
            store
                .append(&tenant, events(&data[range]))
                .await
                .expect("append old"),
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cutoff = crate::now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for range in [50..90, 90..120] {
        accepted.extend(
            store
                .append(&tenant, events(&data[range]))
                .await
                .expect("append new"),
        );
    }
    let leaves: Vec<[u8; 32]> = store
        .tree_nodes(&tenant, 0, 0, 120)
        .await
        .expect("leaves")
        .into_iter()
        .map(|(_, hash)| hash)
        .collect();
    let root_120 = store.root(&tenant, 120).await.expect("root");
    let errors_after_50 = data[50..].iter().filter(|e| e["status"] == "error").count() as u64;
    assert_eq!(store.retired(&tenant).await.expect("retired"), 0);

    // A batch smaller than a commit still retires whole commits.
    assert_eq!(
        store.retire(&tenant, cutoff, 5).await.expect("retire"),
        crate::RetireOutcome::Retired {
            first_seq: 0,
            end_seq: 50
        }
    );
    assert_eq!(store.retired(&tenant).await.expect("retired"), 50);
    assert_eq!(store.log_size(&tenant).await.expect("size"), 120);
    let remaining = all(&*store, &scope(&tenant), Filters::default()).await;
    let seqs: Vec<u64> = remaining
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (50..120).collect::<Vec<_>>());
    assert_eq!(
        count(&*store, &scope(&tenant), &Filters::default()).await,
        70
    );
    let u1 = Filters {
        user_id: Some("u1".into()),
        ..Filters::default()
    };
    let u1_after_50 = data[50..].iter().filter(|e| e["user_id"] == "u1").count();
    assert_eq!(
        count(&*store, &scope(&tenant), &u1).await,
        u1_after_50 as u64
    );
    assert_eq!(
        all(&*store, &scope(&tenant), u1.clone()).await.len(),
        u1_after_50
    );
    assert_eq!(
        stats_total(&*store, &tenant, Filters::default()).await,
        (70, errors_after_50)
    );
    let (u1_stats, _) = stats_total(&*store, &tenant, u1).await;
    assert_eq!(u1_stats, u1_after_50 as u64);
    for gone in [0usize, 6, 7, 49] {
        assert_eq!(
            store
                .get(&scope(&tenant), accepted[gone].id)
                .await
                .expect("get"),
            None,
            "retired seq {gone} is gone"
        );
    }
    assert!(store
        .get(&scope(&tenant), accepted[50].id)
        .await
        .expect("get")
        .is_some());

    // Every leaf hash is kept, so every root and proof is unchanged.
    let kept: Vec<[u8; 32]> = store
        .tree_nodes(&tenant, 0, 0, 120)
        .await
        .expect("leaves")
        .into_iter()
        .map(|(_, hash)| hash)
        .collect();
    assert_eq!(kept, leaves, "leaf hashes of retired records are kept");
    assert_eq!(store.root(&tenant, 120).await.expect("root"), root_120);
    for size in [1u64, 7, 30, 31, 64, 120] {
        assert_eq!(
            store.root(&tenant, size).await.expect("root"),
            merkle::root_of(&leaves[..size as usize]),
            "root of {size}"
        );
    }
    for (seq, size) in [(50, 120), (77, 120), (119, 120), (50, 51), (60, 64)] {
        let proof = store
            .inclusion_proof(&tenant, seq, size)
            .await
            .expect("inclusion");
        merkle::verify_inclusion(
            &leaves[seq as usize],
            seq,
            size,
            &proof,
            &merkle::root_of(&leaves[..size as usize]),
        )
        .unwrap_or_else(|e| panic!("inclusion of {seq} in {size}: {e}"));
    }
    for from in [1u64, 7, 29, 50, 64] {
        let proof = store
            .consistency_proof(&tenant, from, 120)
            .await
            .expect("consistency");
        merkle::verify_consistency(
            from,
            120,
            &proof,
            &merkle::root_of(&leaves[..from as usize]),
            &root_120,
        )
        .unwrap_or_else(|e| panic!("consistency {from} -> 120: {e}"));
    }

    // Nothing more is old enough; another tenant is untouched.
    assert_eq!(
        store.retire(&tenant, cutoff, 5).await.expect("retire"),
        crate::RetireOutcome::Retired {
            first_seq: 50,
            end_seq: 50
        }
    );
    assert_eq!(store.retired(&other).await.expect("retired"), 0);
    assert_eq!(
        count(&*store, &scope(&other), &Filters::default()).await,
        10
    );

    // The log grows on, and may be retired entirely; seqs never restart.
    let more = store
        .append(&tenant, events(&data[..3]))
        .await
        .expect("append");
    assert_eq!(more[0].seq, 120);
    let mut all_leaves = leaves.clone();
    all_leaves.extend(more.iter().map(|a| a.leaf_hash));
    assert_eq!(
        store.root(&tenant, 123).await.expect("root"),
        merkle::root_of(&all_leaves)
    );
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let now = crate::now_micros() + 1;
    assert_eq!(
        store.retire(&tenant, now, 1000).await.expect("retire"),
        crate::RetireOutcome::Retired {
            first_seq: 50,
            end_seq: 123
        }
    );
    assert_eq!(store.log_size(&tenant).await.expect("size"), 123);
    assert_eq!(
        count(&*store, &scope(&tenant), &Filters::default()).await,
        0
    );
    assert_eq!(
        stats_total(&*store, &tenant, Filters::default()).await,
        (0, 0)
    );
    let after = store
        .append(&tenant, events(&data[3..4]))
        .await
        .expect("append after retiring everything");
    assert_eq!(after[0].seq, 123);
    all_leaves.push(after[0].leaf_hash);
    assert_eq!(
        store.root(&tenant, 124).await.expect("root"),
        merkle::root_of(&all_leaves)
    );
    let proof = store
        .inclusion_proof(&tenant, 123, 124)
        .await
        .expect("inclusion");
    merkle::verify_inclusion(
        &all_leaves[123],
        123,
        124,
        &proof,
        &merkle::root_of(&all_leaves),
    )
    .expect("inclusion of the newest record");
}

/// Erasure deletes the content and salt of one user's records and nothing
/// else: envelopes, leaf hashes, other users' content and roots stay.
pub async fn erasure_removes_content_and_keeps_envelopes(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let make = |i: usize, user: Option<&str>| {
        let mut value = json!({
            "type": "llm_call",
            "name": "chat",
            "input": format!("secret input {i}"),
            "output": format!("answer {i}"),
            "input_summary": format!("summary {i}"),
        });
        if let Some(user) = user {
            value["user_id"] = json!(user);
            value["user_email"] = json!(format!("{user}@example.com"));
        }
        event(value, ContentPolicy::Full)
    };
    let users = [
        Some("u1"),
        Some("u2"),
        Some("u1"),
        None,
        Some("u1"),
        Some("u2"),
    ];
    let accepted = store
        .append(
            &tenant,
            users
                .iter()
                .enumerate()
                .map(|(i, user)| make(i, *user))
                .collect(),
        )
        .await
        .expect("append");
    let mut before = Vec::new();
    for a in &accepted {
        let record = store
            .get(&scope(&tenant), a.id)
            .await
            .expect("get")
            .expect("present");
        assert!(record.content.is_some());
        before.push(record);
    }
    let root = store.root(&tenant, 6).await.expect("root");
    assert_eq!(store.erase_user(&tenant, "u1").await.expect("erase"), 3);
    assert_eq!(store.erase_user(&tenant, "u1").await.expect("again"), 0);
    assert_eq!(store.erase_user(&tenant, "nobody").await.expect("none"), 0);
    for (i, a) in accepted.iter().enumerate() {
        let record = store
            .get(&scope(&tenant), a.id)
            .await
            .expect("get")
            .expect("the envelope stays");
        assert_eq!(record.envelope, before[i].envelope);
        assert_eq!(record.leaf_hash, before[i].leaf_hash);
        if users[i] == Some("u1") {
            assert_eq!(record.content, None, "seq {i}");
            assert_eq!(record.content_salt, None, "seq {i}");
            assert!(record.content_erased, "seq {i}");
        } else {
            assert_eq!(record.content, before[i].content, "seq {i}");
            assert!(!record.content_erased, "seq {i}");
        }
    }
    let page = store
        .query(
            &ReadScope {
                tenant: tenant.clone(),
                bound_user: Some("u1".into()),
            },
            &EventQuery {
                limit: 10,
                ..EventQuery::default()
            },
        )
        .await
        .expect("query");
    assert_eq!(page.records.len(), 3);
    assert!(page
        .records
        .iter()
        .all(|r| r.content_erased && r.content.is_none()));
    assert_eq!(store.root(&tenant, 6).await.expect("root"), root);
}

/// `retire_then` runs its `then` with the retired range while the tenant's
/// retirement is still held: another retirement of the tenant meanwhile is
/// `Busy`, one of another tenant is not; an error of `then` comes back and
/// the records stay retired.
pub async fn a_retirement_is_held_until_it_is_recorded(store: Arc<dyn Store>) {
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let other = store.ensure_tenant("o").await.expect("tenant");
    let data = dataset(12);
    store
        .append(&tenant, events(&data[..5]))
        .await
        .expect("append");
    store
        .append(&other, events(&data[..2]))
        .await
        .expect("append");
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let cutoff = crate::now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    store
        .append(&tenant, events(&data[5..8]))
        .await
        .expect("append");
    let (inner, held, spare) = (Arc::clone(&store), tenant.clone(), other.clone());
    let outcome = store
        .retire_then(
            &tenant,
            cutoff,
            100,
            Box::new(move |first, end| {
                Box::pin(async move {
                    assert_eq!((first, end), (0, 5));
                    assert_eq!(
                        inner.retire(&held, cutoff, 100).await?,
                        crate::RetireOutcome::Busy,
                        "a second retirement while the first is being recorded"
                    );
                    assert_eq!(
                        inner.retire(&spare, cutoff, 100).await?,
                        crate::RetireOutcome::Retired {
                            first_seq: 0,
                            end_seq: 2
                        },
                        "another tenant's retirement"
                    );
                    Ok(())
                })
            }),
        )
        .await
        .expect("retire");
    assert_eq!(
        outcome,
        crate::RetireOutcome::Retired {
            first_seq: 0,
            end_seq: 5
        }
    );
    // Released: the next one runs (and finds nothing old enough).
    assert_eq!(
        store.retire(&tenant, cutoff, 100).await.expect("retire"),
        crate::RetireOutcome::Retired {
            first_seq: 5,
            end_seq: 5
        }
    );
    // An error of `then` is the call's; the retirement stands, and the
    // tenant's retirement is released all the same.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let later = crate::now_micros();
    let failed = store
        .retire_then(
            &tenant,
            later,
            100,
            Box::new(|_, _| {
                Box::pin(async { Err(StoreError::Unavailable("recording failed".into())) })
            }),
        )
        .await;
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert_eq!(store.retired(&tenant).await.expect("retired"), 8);
    assert_eq!(
        store.retire(&tenant, later, 100).await.expect("retire"),
        crate::RetireOutcome::Retired {
            first_seq: 8,
            end_seq: 8
        }
    );
}
