//! The `--data-dir` / `--database-url` choice shared by every command that
//! opens a store directly.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use trail_store::Store;
use trail_store_sqlite::{SqliteOptions, SqliteStore};

use crate::UsageError;

/// Where the store is.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Data directory of the embedded sqlite store.
    #[arg(long, env = "TRAIL_DATA_DIR", default_value = "./trail-data")]
    pub data_dir: PathBuf,
    /// PostgreSQL URL (selects the postgres backend).
    #[arg(long, env = "TRAIL_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    /// Opens the chosen store.
    pub fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        if let Some(url) = &self.database_url {
            let scheme = url.split(':').next().unwrap_or("");
            return Err(UsageError(format!(
                "--database-url {scheme}:... selects the postgres backend, which this build does not include yet"
            ))
            .into());
        }
        let path = self.data_dir.join("trail.db");
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Arc::new(store))
    }
}
