//! Runs the shared store conformance suite against the sqlite backend, each
//! case on a fresh database in its own temporary directory.

use std::sync::Arc;

use trail_store::Store;
use trail_store_sqlite::{SqliteOptions, SqliteStore};

fn fresh() -> Arc<dyn Store> {
    let dir = tempfile::tempdir().expect("tempdir");
    // The directory must outlive the store; leak it for the test's duration.
    let path = dir.keep().join("trail.db");
    Arc::new(SqliteStore::open(&path, SqliteOptions::default()).expect("open"))
}

trail_store::conformance_tests!(fresh());

/// A database written by a newer trail is refused with a clear message.
#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trail.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.pragma_update(None, "user_version", trail_store_sqlite::SCHEMA_VERSION + 1)
            .expect("bump");
    }
    let error = SqliteStore::open(&path, SqliteOptions::default())
        .err()
        .expect("must refuse");
    let message = error.to_string();
    assert!(message.contains("newer trail"), "{message}");
}

/// UPDATE and DELETE on records, postings and content abort at the database.
#[tokio::test]
async fn triggers_abort_update_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let event = trail_store::conformance::event(
        serde_json::json!({"type": "tool_call", "name": "x", "user_email": "a@b.c"}),
        trail_core::policy::ContentPolicy::Hash,
    );
    store.append(&tenant, vec![event]).await.expect("append");
    store.shutdown().await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    for sql in [
        "UPDATE records SET seq = seq + 1",
        "DELETE FROM records",
        "UPDATE postings SET n = n + 1",
        "DELETE FROM postings",
        "UPDATE content SET body = x'00'",
        "DELETE FROM content",
    ] {
        let error = conn.execute(sql, []).expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    let count: i64 = conn
        .query_row("SELECT count(*) FROM records", [], |row| row.get(0))
        .expect("count");
    assert_eq!(count, 1);
}

/// Retirement and erasure go through, and afterwards an ordinary UPDATE or
/// DELETE still aborts: the guard row lived only inside their transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sanctioned_deletions_leave_the_triggers_armed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let event = |user: &str| {
        trail_store::conformance::event(
            serde_json::json!({"type": "llm_call", "name": "x", "user_id": user,
                "user_email": format!("{user}@example.com"), "input": "hello"}),
            trail_core::policy::ContentPolicy::Full,
        )
    };
    store
        .append(&tenant, vec![event("u1"), event("u2")])
        .await
        .expect("append");
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let cutoff = trail_store::now_micros();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    store
        .append(&tenant, vec![event("u1"), event("u2")])
        .await
        .expect("append");
    assert_eq!(
        store.retire(&tenant, cutoff, 100).await.expect("retire"),
        trail_store::RetireOutcome::Retired {
            first_seq: 0,
            end_seq: 2
        }
    );
    assert_eq!(store.erase_user(&tenant, "u1").await.expect("erase"), 1);
    store.shutdown().await;
    let conn = rusqlite::Connection::open(&path).expect("open");
    let guards: i64 = conn
        .query_row("SELECT count(*) FROM sanction", [], |row| row.get(0))
        .expect("count");
    assert_eq!(guards, 0);
    for sql in [
        "DELETE FROM records",
        "DELETE FROM content",
        "DELETE FROM postings",
        "UPDATE records SET seq = seq",
        "UPDATE content SET body = x'00'",
        "DELETE FROM tree_nodes WHERE level = 0",
        "UPDATE tree_nodes SET hash = hash",
    ] {
        let error = conn.execute(sql, []).expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    let (records, contents): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM content)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("count");
    assert_eq!((records, contents), (2, 1));
}

/// After erasing a user, neither their email nor any of their content is
/// left anywhere in the database's files (main file, WAL, shared memory),
/// while the store is still open and serving, and their envelopes remain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erased_bytes_are_gone_from_the_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trail.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    // Content small and large (overflow pages), interleaved with another
    // user's, over many commits so the pages also hold kept rows.
    let big = |i: usize| format!("u1-private-{i}-").repeat(400);
    let mut ids = Vec::new();
    for batch in 0..20 {
        let events = (0..25)
            .map(|i| {
                let n = batch * 25 + i;
                let user = if n % 3 == 0 { "u1" } else { "u2" };
                let input = if user == "u1" {
                    if n % 2 == 0 {
                        big(n)
                    } else {
                        format!("u1-private-{n}")
                    }
                } else {
                    format!("u2-kept-{n}")
                };
                trail_store::conformance::event(
                    serde_json::json!({"type": "llm_call", "name": "chat", "user_id": user,
                        "user_email": format!("{user}.mailbox@example.com"),
                        "input": input, "output": format!("{user}-answer-{n}"),
                        "input_summary": format!("{user}-summary-{n}")}),
                    trail_core::policy::ContentPolicy::Full,
                )
            })
            .collect();
        ids.extend(store.append(&tenant, events).await.expect("append"));
    }
    let files = || -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|entry| {
                let entry = entry.expect("entry");
                (
                    entry.file_name().to_string_lossy().into_owned(),
                    std::fs::read(entry.path()).expect("read"),
                )
            })
            .collect()
    };
    let found = |needle: &str| -> Vec<String> {
        files()
            .into_iter()
            .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
            .map(|(name, _)| name)
            .collect()
    };
    assert!(
        !found("u1.mailbox@example.com").is_empty(),
        "the scan finds stored content"
    );
    let erased = store.erase_user(&tenant, "u1").await.expect("erase");
    assert_eq!(erased, 167);
    for needle in [
        "u1.mailbox@example.com",
        "u1-private-",
        "u1-answer-",
        "u1-summary-",
    ] {
        assert_eq!(found(needle), Vec::<String>::new(), "{needle} lingers");
    }
    for needle in ["u2.mailbox@example.com", "u2-kept-", "u2-answer-"] {
        assert!(!found(needle).is_empty(), "{needle} must stay");
    }
    let scope = trail_store::ReadScope {
        tenant: tenant.clone(),
        bound_user: None,
    };
    let record = store
        .get(&scope, ids[0].id)
        .await
        .expect("get")
        .expect("the envelope stays");
    assert!(record.content_erased);
    assert_eq!(record.leaf_hash, ids[0].leaf_hash);
    store.shutdown().await;
}

/// A time range older than the newest 20,000 records is found through the
/// (tenant, ts) index fallback, exactly, in both orders and with a cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_time_ranges_fall_back_to_the_time_index() {
    use trail_store::{EventQuery, Filters, Order, ReadScope};
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        SqliteStore::open(&dir.path().join("trail.db"), SqliteOptions::default()).expect("open");
    let tenant = store.ensure_tenant("t").await.expect("tenant");
    let t0 = 1_700_000_000_000_000i64;
    let minute = 60_000_000i64;
    for batch in 0..5 {
        let events = (0..5000)
            .map(|i| {
                let n = batch * 5000 + i;
                trail_store::conformance::event(
                    serde_json::json!({"type": "tool_call", "name": "x",
                        "started_at": trail_core::time::format_rfc3339(t0 + n * minute)}),
                    trail_core::policy::ContentPolicy::Hash,
                )
            })
            .collect();
        store.append(&tenant, events).await.expect("append");
    }
    let scope = ReadScope {
        tenant,
        bound_user: None,
    };
    let filters = Filters {
        from: Some(t0 + 1000 * minute),
        to: Some(t0 + 1250 * minute),
        ..Filters::default()
    };
    for order in [Order::Desc, Order::Asc] {
        let mut seqs = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .query(
                    &scope,
                    &EventQuery {
                        filters: filters.clone(),
                        order,
                        limit: 100,
                        after_seq: after,
                        ..EventQuery::default()
                    },
                )
                .await
                .expect("page");
            seqs.extend(page.records.iter().map(|r| r.seq));
            match page.next_cursor {
                Some(seq) => after = Some(seq),
                None => break,
            }
        }
        let mut want: Vec<u64> = (1000..1250).collect();
        if order == Order::Desc {
            want.reverse();
        }
        assert_eq!(seqs, want, "{order:?}");
    }
    store.shutdown().await;
}
