//! Runs the shared store conformance suite against the postgres backend,
//! each case on a fresh database of the cluster that `scripts/test` starts
//! (`TRAIL_TEST_DATABASE_URL`, a superuser URL), plus the rules the
//! database itself enforces: no UPDATE or DELETE for the application role,
//! row-level security by tenant, triggers, refused newer schemas, several
//! stores on one database.

mod common;

use std::sync::Arc;

use trail_store::Store;
use trail_store_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};

async fn fresh() -> Arc<dyn Store> {
    let url = common::fresh_database("trail_store").await;
    Arc::new(
        PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .expect("connect"),
    )
}

trail_store::conformance_tests!(fresh().await);

fn ingest_event(name: &str) -> trail_core::record::PreparedEvent {
    trail_store::conformance::event(
        serde_json::json!({"type": "tool_call", "name": name, "user_email": "a@b.c"}),
        trail_core::policy::ContentPolicy::Full,
    )
}

/// A database written by a newer trail is refused with a clear message.
#[tokio::test]
async fn newer_schema_is_refused() {
    let url = common::fresh_database("trail_store").await;
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect");
    store.shutdown().await;
    common::client(&url)
        .await
        .execute(
            "UPDATE trail_schema SET version = $1",
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .expect("bump");
    let error = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .err()
        .expect("must refuse");
    assert!(error.to_string().contains("newer trail"), "{error}");
}

/// Without `migrate`, an empty database is refused and left empty.
#[tokio::test]
async fn without_migrate_an_empty_database_is_refused_and_left_empty() {
    let url = common::fresh_database("trail_store").await;
    let options = PostgresOptions {
        migrate: false,
        ..PostgresOptions::default()
    };
    let error = PostgresStore::connect(&url, options)
        .await
        .err()
        .expect("must refuse");
    assert!(error.to_string().contains("no trail schema"), "{error}");
    let tables: i64 = common::client(&url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(tables, 0);
}

/// The application role may not UPDATE or DELETE what the log holds, sees
/// no rows without the tenant setting, and cannot write another tenant's
/// rows; a superuser is stopped by the triggers.
#[tokio::test]
async fn the_database_enforces_append_only_and_tenant_isolation() {
    let url = common::fresh_database("trail_store").await;
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect");
    let a = store.ensure_tenant("a").await.expect("tenant");
    let b = store.ensure_tenant("b").await.expect("tenant");
    let events: Vec<_> = (0..40).map(|i| ingest_event(&format!("e{i}"))).collect();
    store.append(&a, events).await.expect("append");
    store
        .append(&b, vec![ingest_event("x")])
        .await
        .expect("append");
    let size = store.log_size(&a).await.expect("size");
    let root = store.root(&a, size).await.expect("root");
    let note = "not checked by the store\n".to_owned();
    store
        .add_checkpoint(
            &a,
            &trail_store::StoredCheckpoint {
                size,
                root,
                note,
                created_at: 1,
            },
        )
        .await
        .expect("checkpoint");
    store.shutdown().await;

    let db = common::client(&url).await;
    for table in ["records", "content", "tree_nodes", "checkpoints"] {
        for sql in [
            format!("UPDATE {table} SET tenant_id = tenant_id"),
            format!("DELETE FROM {table}"),
            format!("TRUNCATE {table}"),
        ] {
            let error = db
                .batch_execute(&format!("BEGIN; SET LOCAL ROLE trail_app; SELECT set_config('trail.tenant', '{}', true); {sql}; COMMIT", a.id))
                .await
                .expect_err(&sql);
            let _ = db.batch_execute("ROLLBACK").await;
            let message = error
                .as_db_error()
                .map(|e| e.message().to_owned())
                .unwrap_or_default();
            assert!(message.contains("permission denied"), "{sql}: {message}");
        }
        // A superuser is stopped by the triggers.
        let error = db
            .batch_execute(&format!("DELETE FROM {table}"))
            .await
            .expect_err("trigger");
        let message = error
            .as_db_error()
            .map(|e| e.message().to_owned())
            .unwrap_or_default();
        assert!(message.contains("append-only"), "{table}: {message}");
    }
    let count = |setting: Option<i64>| {
        let db = &db;
        async move {
            let set = setting.map_or(String::new(), |t| {
                format!("SELECT set_config('trail.tenant', '{t}', true);")
            });
            db.batch_execute(&format!("BEGIN; SET LOCAL ROLE trail_app; {set}"))
                .await
                .expect("begin");
            let n: i64 = db
                .query_one("SELECT count(*) FROM records", &[])
                .await
                .expect("count")
                .get(0);
            db.batch_execute("COMMIT").await.expect("commit");
            n
        }
    };
    assert_eq!(count(None).await, 0, "no tenant setting: no rows");
    assert_eq!(count(Some(a.id)).await, 40);
    assert_eq!(count(Some(b.id)).await, 1);
    // Writing a row of tenant b while scoped to a is refused by the policy.
    let error = db
        .batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE trail_app; SELECT set_config('trail.tenant', '{}', true); \
             INSERT INTO checkpoints (tenant_id, size, root, note, created_at) \
             VALUES ({}, 999, decode(repeat('00', 32), 'hex'), 'x', 0); COMMIT",
            a.id, b.id
        ))
        .await
        .expect_err("policy");
    let _ = db.batch_execute("ROLLBACK").await;
    let message = error
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default();
    assert!(message.contains("row-level security"), "{message}");
}

/// Several stores (as several servers would) on one database, appending to
/// the same tenant at once, with a migration race at start: one gap-free
/// log, every event once, a root every store agrees on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_stores_share_one_gap_free_log() {
    let url = common::fresh_database("trail_store").await;
    let stores: Vec<Arc<PostgresStore>> = futures_join((0..3).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            Arc::new(
                PostgresStore::connect(&url, PostgresOptions::default())
                    .await
                    .expect("connect"),
            )
        })
    }))
    .await;
    let tenant = stores[0].ensure_tenant("shared").await.expect("tenant");
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..4 {
            let (store, tenant) = (Arc::clone(store), tenant.clone());
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for round in 0..10 {
                    let events: Vec<_> = (0..25)
                        .map(|i| ingest_event(&format!("s{s}t{t}r{round}i{i}")))
                        .collect();
                    for accepted in store.append(&tenant, events).await.expect("append") {
                        assert!(!accepted.duplicate);
                        seqs.push(accepted.seq);
                    }
                }
                seqs
            }));
        }
    }
    let mut seqs: Vec<u64> = Vec::new();
    for task in tasks {
        seqs.extend(task.await.expect("task"));
    }
    seqs.sort_unstable();
    let n = 3 * 4 * 10 * 25;
    assert_eq!(
        seqs,
        (0..n as u64).collect::<Vec<_>>(),
        "gap-free, no seq twice"
    );
    let mut roots = Vec::new();
    for store in &stores {
        assert_eq!(store.log_size(&tenant).await.expect("size"), n as u64);
        roots.push(store.root(&tenant, n as u64).await.expect("root"));
    }
    let leaves: Vec<[u8; 32]> = stores[0]
        .tree_nodes(&tenant, 0, 0, n as u64)
        .await
        .expect("leaves")
        .into_iter()
        .map(|(_, hash)| hash)
        .collect();
    let expected = trail_core::merkle::root_of(&leaves);
    assert!(roots.iter().all(|root| *root == expected));
    for store in stores {
        store.shutdown().await;
    }
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

/// A user filter with a rare name fragment: the matching seqs come from
/// `trail_match` in growing rounds (256, 1024, ...), and paging with the
/// cursor still sees every match once, newest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dims_pages_fill_up_across_rounds() {
    let url = common::fresh_database("trail_store").await;
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect");
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let mut rare = Vec::new();
    for chunk in 0..6 {
        let events: Vec<_> = (0..500)
            .map(|i| {
                let n = chunk * 500 + i;
                let name = if n % 700 == 4 { format!("RareThing{n}") } else { format!("common{}", n % 7) };
                trail_store::conformance::event(
                    serde_json::json!({"type": "tool_call", "name": name, "user_id": if n % 2 == 0 { "u1" } else { "u2" }}),
                    trail_core::policy::ContentPolicy::Hash,
                )
            })
            .collect();
        for accepted in store.append(&tenant, events).await.expect("append") {
            let n = accepted.seq;
            if n % 700 == 4 && n % 2 == 0 {
                rare.push(n);
            }
        }
    }
    assert!(rare.len() >= 2, "{rare:?}");
    rare.reverse();
    let scope = trail_store::ReadScope {
        tenant: tenant.clone(),
        bound_user: None,
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let query = trail_store::EventQuery {
            filters: trail_store::Filters {
                user_id: Some("u1".into()),
                name_contains: Some("rarething".into()),
                ..Default::default()
            },
            limit: 1,
            after_seq: cursor,
            count: true,
            ..Default::default()
        };
        let page = store.query(&scope, &query).await.expect("query");
        assert_eq!(page.total, Some(rare.len() as u64));
        seen.extend(page.records.iter().map(|r| r.seq));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, rare);
    store.shutdown().await;
}

/// Several stores keep checkpoints of one log at once, while it grows: each
/// is kept whole or refused (`Conflict`), and what is kept never goes back
/// and always holds the log's root at its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_checkpoint_cutters_never_regress() {
    let url = common::fresh_database("trail_store").await;
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(
            PostgresStore::connect(&url, PostgresOptions::default())
                .await
                .expect("connect"),
        ));
    }
    let tenant = stores[0].ensure_tenant("t").await.expect("tenant");
    let mut tasks = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        let (store, tenant) = (Arc::clone(store), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let (mut kept, mut refused) = (Vec::new(), 0);
            for round in 0..15 {
                let events: Vec<_> = (0..20)
                    .map(|i| ingest_event(&format!("s{s}r{round}i{i}")))
                    .collect();
                store.append(&tenant, events).await.expect("append");
                let size = store.log_size(&tenant).await.expect("size");
                let root = store.root(&tenant, size).await.expect("root");
                let checkpoint = trail_store::StoredCheckpoint {
                    size,
                    root,
                    note: format!("cut by {s} at {size}\n"),
                    created_at: i64::from(round),
                };
                match store.add_checkpoint(&tenant, &checkpoint).await {
                    // Ok: kept, or the same checkpoint was already kept.
                    Ok(()) => kept.push(size),
                    Err(trail_store::StoreError::Conflict { .. }) => refused += 1,
                    Err(other) => panic!("unexpected: {other}"),
                }
            }
            (kept, refused)
        }));
    }
    let mut kept = std::collections::BTreeSet::new();
    for task in tasks {
        kept.extend(task.await.expect("task").0);
    }
    let checkpoints = stores[0].checkpoints(&tenant).await.expect("checkpoints");
    let sizes: std::collections::BTreeSet<u64> = checkpoints.iter().map(|c| c.size).collect();
    assert_eq!(sizes, kept, "every accepted size is kept, nothing else");
    assert!(checkpoints
        .windows(2)
        .all(|pair| pair[0].size < pair[1].size));
    for checkpoint in &checkpoints {
        let root = stores[0]
            .root(&tenant, checkpoint.size)
            .await
            .expect("root");
        assert_eq!(root, checkpoint.root, "size {}", checkpoint.size);
    }
    for store in stores {
        store.shutdown().await;
    }
}

/// The message of a database error (empty for any other error).
fn db_message(error: &tokio_postgres::Error) -> String {
    error
        .as_db_error()
        .map(|e| e.message().to_owned())
        .unwrap_or_default()
}

/// Runs `sql` in a transaction as the application role scoped to `tenant`
/// (None: no tenant setting) and returns its error, rolling back.
async fn as_app_fails(db: &tokio_postgres::Client, tenant: Option<i64>, sql: &str) -> String {
    let set = tenant.map_or(String::new(), |t| {
        format!("SELECT set_config('trail.tenant', '{t}', true);")
    });
    let error = db
        .batch_execute(&format!(
            "BEGIN; SET LOCAL ROLE trail_app; {set} {sql}; COMMIT"
        ))
        .await
        .expect_err(sql);
    let _ = db.batch_execute("ROLLBACK").await;
    db_message(&error)
}

fn user_event(name: &str, user: &str) -> trail_core::record::PreparedEvent {
    trail_store::conformance::event(
        serde_json::json!({"type": "tool_call", "name": name, "user_id": user, "input": format!("secret of {user}")}),
        trail_core::policy::ContentPolicy::Full,
    )
}

/// Deletion goes only through the sanctioned functions: ordinary DELETEs
/// still fail for the application role and for a superuser (even in a
/// transaction where a function just deleted), UPDATE too; the functions
/// refuse any tenant but the transaction's; the application role cannot
/// write the guard table; retiring and erasing one tenant leaves another
/// untouched.
#[tokio::test]
async fn deletion_only_through_the_sanctioned_functions() {
    let url = common::fresh_database("trail_store").await;
    let store = PostgresStore::connect(&url, PostgresOptions::default())
        .await
        .expect("connect");
    let a = store.ensure_tenant("a").await.expect("tenant");
    let b = store.ensure_tenant("b").await.expect("tenant");
    for tenant in [&a, &b] {
        let events = (0..20)
            .map(|i| user_event(&format!("e{i}"), if i % 2 == 0 { "u1" } else { "u2" }))
            .collect();
        store.append(tenant, events).await.expect("append");
    }
    let root_b = store.root(&b, 20).await.expect("root");
    let db = common::client(&url).await;

    for table in ["records", "content"] {
        let sql = format!("DELETE FROM {table} WHERE seq = 0");
        let message = as_app_fails(&db, Some(a.id), &sql).await;
        assert!(message.contains("permission denied"), "{sql}: {message}");
        for sql in [sql, format!("UPDATE {table} SET seq = seq WHERE seq = 0")] {
            let message = db_message(&db.batch_execute(&sql).await.expect_err(&sql));
            assert!(
                message.contains("append-only"),
                "superuser {sql}: {message}"
            );
        }
        // The guard row lives only while a function deletes: right after
        // one, in the same transaction, a plain DELETE is refused again.
        let sql = format!(
            "BEGIN; SELECT set_config('trail.tenant', '{}', true); \
             SELECT * FROM trail_erase_user({}, 'u1', '{}|2:u1', 0, 1); DELETE FROM {table}; COMMIT",
            a.id, a.id, a.id
        );
        let message = db_message(&db.batch_execute(&sql).await.expect_err(&sql));
        let _ = db.batch_execute("ROLLBACK").await;
        assert!(message.contains("append-only"), "{sql}: {message}");
    }
    let message = as_app_fails(
        &db,
        Some(a.id),
        "INSERT INTO trail_sanction VALUES (txid_current())",
    )
    .await;
    assert!(message.contains("permission denied"), "{message}");
    let message = as_app_fails(&db, Some(a.id), "DELETE FROM trail_sanction").await;
    assert!(message.contains("permission denied"), "{message}");
    for call in [
        format!(
            "SELECT * FROM trail_retire({}, 9223372036854775807, 100)",
            b.id
        ),
        format!(
            "SELECT * FROM trail_erase_user({}, 'u1', '{}|2:u1', 0, 100)",
            b.id, b.id
        ),
    ] {
        for scope in [Some(a.id), None] {
            let message = as_app_fails(&db, scope, &call).await;
            assert!(message.contains("not the tenant"), "{call}: {message}");
        }
    }

    // Retiring and erasing all of tenant a leaves tenant b as it was.
    assert_eq!(store.erase_user(&a, "u1").await.expect("erase"), 10);
    let now = trail_store::now_micros() + 1;
    assert_eq!(
        store.retire(&a, now, 7).await.expect("retire"),
        trail_store::RetireOutcome::Retired {
            first_seq: 0,
            end_seq: 20
        }
    );
    assert_eq!(store.retired(&b).await.expect("retired"), 0);
    assert_eq!(store.root(&b, 20).await.expect("root"), root_b);
    let scope_b = trail_store::ReadScope {
        tenant: b.clone(),
        bound_user: None,
    };
    let page = store
        .query(
            &scope_b,
            &trail_store::EventQuery {
                limit: 100,
                count: true,
                ..Default::default()
            },
        )
        .await
        .expect("query");
    assert_eq!(page.total, Some(20));
    assert!(page.records.iter().all(|r| r.content.is_some()));
    let rows: i64 = db
        .query_one(
            "SELECT count(*) FROM content WHERE tenant_id = $1",
            &[&b.id],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 20);
    let sanction: i64 = db
        .query_one("SELECT count(*) FROM trail_sanction", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(sanction, 0, "no guard row outlives its function");
    store.shutdown().await;
}

/// One retirement per tenant at a time: while another session holds the
/// tenant's retirement lock, `retire` answers Busy and retires nothing
/// (another tenant is not held up); two retirements racing never retire a
/// record twice and together retire exactly the old records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_retirement_of_a_tenant_is_busy() {
    let url = common::fresh_database("trail_store").await;
    let store = Arc::new(
        PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .expect("connect"),
    );
    let a = store.ensure_tenant("a").await.expect("tenant");
    let b = store.ensure_tenant("b").await.expect("tenant");
    for round in 0..20 {
        for tenant in [&a, &b] {
            let events = (0..10)
                .map(|i| ingest_event(&format!("r{round}i{i}")))
                .collect();
            store.append(tenant, events).await.expect("append");
        }
    }
    let now = trail_store::now_micros() + 1;
    // The key retention.rs locks: (0x7472_6c02, tenant id).
    let db = common::client(&url).await;
    db.execute("SELECT pg_advisory_lock(1953655810, $1)", &[&(a.id as i32)])
        .await
        .expect("lock");
    assert_eq!(
        store.retire(&a, now, 10).await.expect("retire"),
        trail_store::RetireOutcome::Busy
    );
    assert_eq!(store.retired(&a).await.expect("retired"), 0);
    assert_eq!(
        store.retire(&b, now, 50).await.expect("retire"),
        trail_store::RetireOutcome::Retired {
            first_seq: 0,
            end_seq: 200
        }
    );
    db.execute(
        "SELECT pg_advisory_unlock(1953655810, $1)",
        &[&(a.id as i32)],
    )
    .await
    .expect("unlock");

    let racers: Vec<_> = (0..2)
        .map(|_| {
            let (store, a) = (Arc::clone(&store), a.clone());
            tokio::spawn(async move { store.retire(&a, now, 10).await.expect("retire") })
        })
        .collect();
    let mut ranges = Vec::new();
    for racer in racers {
        if let trail_store::RetireOutcome::Retired { first_seq, end_seq } =
            racer.await.expect("task")
        {
            ranges.push((first_seq, end_seq));
        }
    }
    ranges.sort_unstable();
    assert!(!ranges.is_empty());
    assert_eq!(ranges[0].0, 0);
    assert_eq!(ranges.last().map(|r| r.1), Some(200));
    assert!(ranges.windows(2).all(|w| w[0].1 == w[1].0), "{ranges:?}");
    assert_eq!(store.retired(&a).await.expect("retired"), 200);
    assert_eq!(store.log_size(&a).await.expect("size"), 200);
    // The lock was released: the next retirement is not Busy.
    assert_eq!(
        store.retire(&a, now, 10).await.expect("retire"),
        trail_store::RetireOutcome::Retired {
            first_seq: 200,
            end_seq: 200
        }
    );
    store.shutdown().await;
}
