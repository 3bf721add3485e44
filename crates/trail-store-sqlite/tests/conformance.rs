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
