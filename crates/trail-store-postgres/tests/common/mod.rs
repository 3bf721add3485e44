//! What the postgres test files share: the test cluster's superuser URL, a
//! plain client, and a fresh database per test.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The superuser URL of the test cluster. Never skips: without a cluster
/// the postgres tests fail, so CI cannot pass them by accident.
pub fn admin_url() -> String {
    std::env::var("TRAIL_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!("TRAIL_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a PostgreSQL cluster")
    })
}

/// A client connected to `url`, its connection driven by a task.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Creates an empty database named after `prefix` and returns its URL.
pub async fn fresh_database(prefix: &str) -> String {
    let admin = admin_url();
    let name = format!(
        "{prefix}_{}_{}",
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
