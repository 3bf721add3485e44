//! The `--data-dir` / `--database-url` choice shared by every command that
//! opens a store directly.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use trail_store::{Store, StoreError};
use trail_store_postgres::{PostgresOptions, PostgresStore};
use trail_store_sqlite::{SqliteOptions, SqliteStore};

use crate::UsageError;

/// Where the store is.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded sqlite store (with --database-url,
    /// only where the log key is kept).
    #[arg(long, env = "TRAIL_DATA_DIR", default_value = "./trail-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB` or a
    /// libpq `key=value` string); selects the postgres backend.
    #[arg(long, env = "TRAIL_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// Opens the chosen store, creating or migrating it when needed.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_with(true).await
    }

    /// Opens an existing store and never creates or migrates one (for
    /// `trail verify`): no store there is a usage error.
    pub async fn open_existing(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_with(false).await
    }

    async fn open_with(&self, create: bool) -> anyhow::Result<Arc<dyn Store>> {
        if let Some(url) = &self.database_url {
            let shown = describe_url(url)?;
            let options = PostgresOptions {
                migrate: create,
                ..PostgresOptions::default()
            };
            return match PostgresStore::connect(url, options).await {
                Ok(store) => Ok(Arc::new(store)),
                Err(StoreError::NotFound(_)) if !create => Err(UsageError(format!(
                    "no trail store in the database {shown}: it holds no trail schema"
                ))
                .into()),
                Err(error) => Err(anyhow::Error::new(error))
                    .with_context(|| format!("opening the postgres store {shown}")),
            };
        }
        let path = self.data_dir.join("trail.db");
        if !create && !path.exists() {
            return Err(
                UsageError(format!("no trail store in {}", self.data_dir.display())).into(),
            );
        }
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(store))
    }
}

/// Checks that `url` parses as a PostgreSQL connection string (a usage
/// error when not) and returns it for messages, without its password:
/// `postgres://USER@HOST:PORT/DB`.
fn describe_url(url: &str) -> anyhow::Result<String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| {
        UsageError(format!(
            "--database-url is not a PostgreSQL URL (postgres://USER@HOST:PORT/DB): {e}"
        ))
    })?;
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let user = config
        .get_user()
        .map(|user| format!("{user}@"))
        .unwrap_or_default();
    Ok(format!(
        "postgres://{user}{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::describe_url;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            describe_url("postgres://app:s3cret@db.example:6543/trail").unwrap(),
            "postgres://app@db.example:6543/trail"
        );
        assert_eq!(
            describe_url("host=localhost port=5433 user=u password=p dbname=d").unwrap(),
            "postgres://u@localhost:5433/d"
        );
        assert!(describe_url("postgres://a@b:notaport/x").is_err());
        assert!(describe_url("this is not a url").is_err());
    }
}
