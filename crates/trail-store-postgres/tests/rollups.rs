//! The hourly rollups behind postgres stats: stats answered from them (plus
//! the partial hours at the edges of a range) equal the same stats computed
//! by scanning the records, and the writer counts exactly the events it
//! added (not resends, not the jobs refused for a conflict), across batches
//! and tenants. Runs on the cluster of `TRAIL_TEST_DATABASE_URL`.

mod common;

use std::sync::Arc;

use serde_json::{json, Value};
use trail_core::event::{EventType, Status};
use trail_core::policy::ContentPolicy;
use trail_core::record::PreparedEvent;
use trail_store::{BucketWidth, Filters, ReadScope, Stats, StatsQuery, Store, StoreError, Tenant};
use trail_store_postgres::{PostgresOptions, PostgresStore};

const HOUR: i64 = 3_600_000_000;
const MINUTE: i64 = 60_000_000;
/// 2023-11-14T22:00:00Z, on an hour.
const T0: i64 = 1_700_000_000_000_000 - 1_700_000_000_000_000 % HOUR;

async fn fresh() -> (String, Arc<PostgresStore>) {
    let url = common::fresh_database("trail_rollups").await;
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect");
    (url, Arc::new(store))
}

fn rfc3339(micros: i64) -> String {
    trail_core::time::format_rfc3339(micros)
}

/// Event `i` of a data set spread over 8 hours from `T0 - 30 min`, every
/// record of user `u`.
fn value(i: i64, max_duration: u64) -> Value {
    let types = ["tool_call", "llm_call", "escalation", "api_request"];
    let names = [
        "Search.Web",
        "chat",
        "bank.create_transfer",
        "search.docs",
        "Überweisung",
    ];
    let at = T0 - 30 * MINUTE + i * 97 * 1_000_000 * 29 % (8 * HOUR);
    let mut event = json!({
        "type": types[(i % 4) as usize],
        "name": names[(i % 5) as usize],
        "user_id": "u",
        "session_id": format!("s{}", i % 7),
        "started_at": rfc3339(at),
        "status": if i % 6 == 0 { "error" } else { "ok" },
    });
    if i % 9 != 0 {
        event["duration_ms"] = json!((i as u64 * 37) % max_duration);
    }
    event
}

fn prepared(value: Value) -> PreparedEvent {
    trail_store::conformance::event(value, ContentPolicy::Hash)
}

fn scope(tenant: &Tenant) -> ReadScope {
    ReadScope {
        tenant: tenant.clone(),
        bound_user: None,
    }
}

async fn stats(
    store: &dyn Store,
    scope: &ReadScope,
    filters: &Filters,
    bucket: BucketWidth,
) -> Stats {
    store
        .stats(
            scope,
            &StatsQuery {
                filters: filters.clone(),
                bucket,
                top: 4,
            },
        )
        .await
        .expect("stats")
}

/// The answer of the record scan: the same filters plus one the rollups
/// are not keyed by and that every record matches (`user_id = u`), and the
/// same through a read scope bound to `u`.
async fn scanned(
    store: &dyn Store,
    tenant: &Tenant,
    filters: &Filters,
    bucket: BucketWidth,
) -> Stats {
    let with_user = Filters {
        user_id: Some("u".into()),
        ..filters.clone()
    };
    let by_filter = stats(store, &scope(tenant), &with_user, bucket).await;
    let bound = ReadScope {
        tenant: tenant.clone(),
        bound_user: Some("u".into()),
    };
    let by_binding = stats(store, &bound, filters, bucket).await;
    assert_eq!(by_filter, by_binding, "{filters:?}");
    by_filter
}

/// Filter sets the rollups answer: ranges on, inside and across hours.
fn rollup_filters() -> Vec<Filters> {
    let range = |from: Option<i64>, to: Option<i64>| Filters {
        from,
        to,
        ..Filters::default()
    };
    vec![
        Filters::default(),
        range(Some(T0), Some(T0 + 3 * HOUR)),
        range(
            Some(T0 + 17 * MINUTE + 3),
            Some(T0 + 5 * HOUR + 41 * MINUTE),
        ),
        range(Some(T0 - 7 * MINUTE), None),
        range(None, Some(T0 + 2 * HOUR + 1)),
        // Inside one hour; across one boundary without a whole hour.
        range(Some(T0 + HOUR + 5 * MINUTE), Some(T0 + HOUR + 50 * MINUTE)),
        range(
            Some(T0 + 2 * HOUR + 30 * MINUTE),
            Some(T0 + 3 * HOUR + 30 * MINUTE),
        ),
        range(Some(T0 + HOUR), Some(T0 + HOUR)),
        // Edges in hours without records (not scanned).
        range(Some(T0 - 30 * 24 * HOUR + 17), None),
        range(Some(T0 - 5 * HOUR - 1), Some(T0 + 20 * HOUR + 1)),
        range(Some(T0 + 20 * HOUR + 5), Some(T0 + 20 * HOUR + 50)),
        Filters {
            event_type: Some(EventType::ToolCall),
            from: Some(T0 + 95 * MINUTE + 17),
            to: Some(T0 + 6 * HOUR + 5),
            ..Filters::default()
        },
        Filters {
            status: Some(Status::Error),
            from: Some(T0 + 10 * MINUTE),
            ..Filters::default()
        },
        Filters {
            name: Some("chat".into()),
            to: Some(T0 + 4 * HOUR + 59 * MINUTE),
            ..Filters::default()
        },
        Filters {
            name_contains: Some("SEARCH".into()),
            status: Some(Status::Ok),
            from: Some(T0 + 3 * MINUTE),
            to: Some(T0 + 7 * HOUR + 3 * MINUTE),
            ..Filters::default()
        },
        Filters {
            name: Some("Search.Web".into()),
            name_contains: Some("web".into()),
            event_type: Some(EventType::ToolCall),
            ..Filters::default()
        },
        Filters {
            name: Some("never".into()),
            ..Filters::default()
        },
        Filters {
            name_contains: Some("üBER".into()),
            ..Filters::default()
        },
        Filters {
            name_contains: Some("zzz".into()),
            ..Filters::default()
        },
    ]
}

/// Stats from the rollups equal the record scan, for whole hours, partial
/// hours at either edge, ranges inside one hour and hour or day buckets;
/// the rollups were merged over many commits and two tenants.
#[tokio::test]
async fn rollup_stats_equal_the_record_scan() {
    let (url, store) = fresh().await;
    let a = store.ensure_tenant("a").await.expect("tenant");
    let b = store.ensure_tenant("b").await.expect("tenant");
    // Batches of uneven size, tenant b interleaved, appended concurrently so
    // that some writer batches hold both tenants.
    let mut tasks = Vec::new();
    let mut i = 0i64;
    for round in 0..24 {
        let size = 7 + round * 5 % 31;
        let events: Vec<PreparedEvent> = (i..i + size).map(|i| prepared(value(i, 1000))).collect();
        i += size;
        let (store, a, b) = (Arc::clone(&store), a.clone(), b.clone());
        tasks.push(tokio::spawn(async move {
            store.append(&a, events).await.expect("append a");
            let other: Vec<PreparedEvent> = (0..3)
                .map(|k| prepared(value(1000 + round * 3 + k, 1000)))
                .collect();
            store.append(&b, other).await.expect("append b");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let n = i as u64;
    let all_a = stats(&*store, &scope(&a), &Filters::default(), BucketWidth::Hour).await;
    assert_eq!(all_a.total, n);
    let all_b = stats(&*store, &scope(&b), &Filters::default(), BucketWidth::Hour).await;
    assert_eq!(all_b.total, 72);
    assert!(all_a.buckets.len() >= 8, "the data spans hours");

    let mut compared = 0;
    for filters in rollup_filters() {
        for bucket in [BucketWidth::Hour, BucketWidth::Day] {
            for tenant in [&a, &b] {
                let from_rollups = stats(&*store, &scope(tenant), &filters, bucket).await;
                let scan = scanned(&*store, tenant, &filters, bucket).await;
                assert_eq!(from_rollups, scan, "{filters:?} {bucket:?}");
                compared += usize::from(from_rollups.total > 0);
            }
        }
    }
    assert!(compared > 40, "most filter sets match records ({compared})");

    // The rollups hold one row per (hour, type, status, name), not one per
    // record, and their counts add up to the log.
    let db = common::client(&url).await;
    db.batch_execute(&format!(
        "BEGIN; SET LOCAL ROLE trail_app; SELECT set_config('trail.tenant', '{}', true)",
        a.id
    ))
    .await
    .expect("scope");
    let row = db
        .query_one("SELECT count(*), sum(n)::bigint FROM rollups", &[])
        .await
        .expect("rollups");
    let (rows, sum): (i64, i64) = (row.get(0), row.get(1));
    db.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(sum as u64, n);
    assert!((rows as u64) < n / 2, "{rows} rollup rows for {n} records");

    // Those rows are what answers: a changed count shows in the stats of
    // whole hours, not in the scan (nor in a range inside one hour).
    db.batch_execute(&format!(
        "UPDATE rollups SET n = n + 1000 WHERE tenant_id = {} AND hour = {}",
        a.id,
        T0 / HOUR + 1
    ))
    .await
    .expect("tamper");
    let whole = Filters::default();
    let tampered = stats(&*store, &scope(&a), &whole, BucketWidth::Hour).await;
    let scan = scanned(&*store, &a, &whole, BucketWidth::Hour).await;
    assert!(tampered.total >= scan.total + 1000);
    let inside = Filters {
        from: Some(T0 + HOUR + 1),
        to: Some(T0 + 2 * HOUR - 1),
        ..Filters::default()
    };
    let from_records = stats(&*store, &scope(&a), &inside, BucketWidth::Hour).await;
    assert_eq!(
        from_records,
        scanned(&*store, &a, &inside, BucketWidth::Hour).await
    );
}

/// Above 1,024 ms a percentile from the rollups is its bucket's lower
/// bound: at most 1/64 below the exact one of the record scan.
#[tokio::test]
async fn long_durations_are_within_one_sixty_fourth() {
    let (_, store) = fresh().await;
    let t = store.ensure_tenant("t").await.expect("tenant");
    let events: Vec<PreparedEvent> = (0..400).map(|i| prepared(value(i, 90_000))).collect();
    store.append(&t, events).await.expect("append");
    for filters in rollup_filters() {
        let from_rollups = stats(&*store, &scope(&t), &filters, BucketWidth::Day).await;
        let scan = scanned(&*store, &t, &filters, BucketWidth::Day).await;
        let close = |rollup: Option<u64>, exact: Option<u64>| match (rollup, exact) {
            (Some(r), Some(e)) => r <= e && (e - r) * 64 <= e && (e < 1024) <= (r == e),
            (r, e) => r == e,
        };
        assert!(
            close(from_rollups.p50_duration_ms, scan.p50_duration_ms)
                && close(from_rollups.p95_duration_ms, scan.p95_duration_ms),
            "{filters:?}: {from_rollups:?} vs {scan:?}"
        );
        let counts = |s: &Stats| {
            (
                s.total,
                s.errors,
                s.buckets.clone(),
                s.by_type.clone(),
                s.top_names.clone(),
            )
        };
        assert_eq!(counts(&from_rollups), counts(&scan), "{filters:?}");
    }
}

/// Only the events a commit adds count: a resend (alone or beside new
/// events, which takes the writer's second pass) adds nothing, and a job
/// refused for a conflicting id adds none of its events, even those settled
/// before the conflict.
#[tokio::test]
async fn resends_and_refused_jobs_do_not_count() {
    let (_, store) = fresh().await;
    let t = store.ensure_tenant("t").await.expect("tenant");
    let first: Vec<PreparedEvent> = (0..20).map(|i| prepared(value(i, 1000))).collect();
    store.append(&t, first.clone()).await.expect("append");
    let check = |expected: u64| {
        let (store, t) = (Arc::clone(&store), t.clone());
        async move {
            for filters in rollup_filters() {
                let from_rollups = stats(&*store, &scope(&t), &filters, BucketWidth::Hour).await;
                let scan = scanned(&*store, &t, &filters, BucketWidth::Hour).await;
                assert_eq!(from_rollups, scan, "{filters:?}");
            }
            let all = stats(&*store, &scope(&t), &Filters::default(), BucketWidth::Day).await;
            assert_eq!(all.total, expected);
        }
    };
    check(20).await;

    // A resend alone.
    let accepted = store.append(&t, first.clone()).await.expect("resend");
    assert!(accepted.iter().all(|a| a.duplicate));
    check(20).await;

    // Resends beside new events.
    let mut mixed: Vec<PreparedEvent> = (20..30).map(|i| prepared(value(i, 1000))).collect();
    mixed.insert(3, first[4].clone());
    mixed.push(first[11].clone());
    let accepted = store.append(&t, mixed).await.expect("mixed");
    assert_eq!(accepted.iter().filter(|a| a.duplicate).count(), 2);
    check(30).await;

    // A conflicting id after new events: the job fails alone.
    let mut changed = value(0, 1000);
    changed["id"] = json!(first[0].id.to_string());
    changed["name"] = json!("something.else");
    let mut conflicting: Vec<PreparedEvent> = (30..35).map(|i| prepared(value(i, 1000))).collect();
    conflicting.push(prepared(changed));
    let error = store.append(&t, conflicting).await.expect_err("conflict");
    assert!(matches!(error, StoreError::Conflict { .. }), "{error}");
    check(30).await;

    // Conflicting, resent and new jobs at once, likely in one batch.
    let mut tasks = Vec::new();
    for k in 0..6i64 {
        let (store, t) = (Arc::clone(&store), t.clone());
        let job: Vec<PreparedEvent> = match k % 3 {
            0 => (100 + k * 10..110 + k * 10)
                .map(|i| prepared(value(i, 1000)))
                .collect(),
            1 => first[..5].to_vec(),
            _ => {
                let mut changed = value(1, 1000);
                changed["id"] = json!(first[1].id.to_string());
                changed["status"] = json!("error");
                let mut job: Vec<PreparedEvent> = (200 + k * 10..205 + k * 10)
                    .map(|i| prepared(value(i, 1000)))
                    .collect();
                job.push(prepared(changed));
                job
            }
        };
        tasks.push(tokio::spawn(
            async move { (k, store.append(&t, job).await) },
        ));
    }
    for task in tasks {
        let (k, outcome) = task.await.expect("task");
        match k % 3 {
            0 | 1 => {
                outcome.expect("appended");
            }
            _ => assert!(matches!(outcome, Err(StoreError::Conflict { .. }))),
        }
    }
    check(50).await;
}

/// Retiring records takes them out of the rollups exactly: counts and
/// duration histograms of the rows they were merged into, so stats from
/// the rollups still equal the scan of the remaining records; a row left
/// with no record goes, and retiring everything leaves none.
#[tokio::test]
async fn retired_records_leave_the_rollups() {
    let (url, store) = fresh().await;
    let t = store.ensure_tenant("t").await.expect("tenant");
    let mut i = 0i64;
    for size in [13, 40, 7, 29] {
        let events: Vec<PreparedEvent> = (i..i + size).map(|i| prepared(value(i, 1000))).collect();
        store.append(&t, events).await.expect("append old");
        i += size;
    }
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let cutoff = trail_store::now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for size in [31, 17] {
        let events: Vec<PreparedEvent> = (i..i + size).map(|i| prepared(value(i, 1000))).collect();
        store.append(&t, events).await.expect("append new");
        i += size;
    }
    assert_eq!(
        store.retire(&t, cutoff, 20).await.expect("retire"),
        trail_store::RetireOutcome::Retired {
            first_seq: 0,
            end_seq: 89
        }
    );
    for filters in rollup_filters() {
        for bucket in [BucketWidth::Hour, BucketWidth::Day] {
            let from_rollups = stats(&*store, &scope(&t), &filters, bucket).await;
            let scan = scanned(&*store, &t, &filters, bucket).await;
            assert_eq!(from_rollups, scan, "{filters:?} {bucket:?}");
        }
    }
    let all = stats(&*store, &scope(&t), &Filters::default(), BucketWidth::Day).await;
    assert_eq!(all.total, 48);

    let rollup_rows = |db: tokio_postgres::Client| async move {
        db.query_one(
            "SELECT count(*), coalesce(sum(n), 0)::bigint FROM rollups WHERE tenant_id = $1",
            &[&t.id],
        )
        .await
        .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1)))
        .expect("rollups")
    };
    let (_, sum) = rollup_rows(common::client(&url).await).await;
    assert_eq!(sum, 48);
    let now = trail_store::now_micros() + 1;
    store.retire(&t, now, 1000).await.expect("retire all");
    assert_eq!(rollup_rows(common::client(&url).await).await, (0, 0));
}
