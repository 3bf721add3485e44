//! Where the admin commands (`keys`, `settings`, `retention`, `erase`) act:
//! a store directly (`--data-dir` / `--database-url`, with `--tenant`), or a
//! running server (`--url --key ADMIN`, the tenant being the key's).

use std::future::Future;
use std::sync::Arc;

use clap::Args;
use trail_store::{Store, Tenant, TenantSettings};

use crate::client::Client;
use crate::settings::DefaultSettingsArgs;
use crate::store_arg::StoreArgs;
use crate::UsageError;

/// A store and tenant, or a server.
#[derive(Args, Debug)]
pub struct Target {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Go through a running server instead of the store.
    #[arg(long)]
    pub url: Option<String>,
    /// Admin key for --url.
    #[arg(long, env = "TRAIL_KEY", requires = "url", hide_env_values = true)]
    pub key: Option<String>,
    /// Tenant (store access only; a server takes the tenant from the key).
    #[arg(long, default_value = "default")]
    pub tenant: String,
}

impl Target {
    /// The server client when `--url` was given.
    pub fn remote(&self) -> anyhow::Result<Option<Client>> {
        match (&self.url, &self.key) {
            (Some(url), Some(key)) => Ok(Some(Client::new(url, key)?)),
            (Some(_), None) => Err(UsageError("--url needs --key (or TRAIL_KEY)".into()).into()),
            _ => Ok(None),
        }
    }

    /// Opens the store, finds the tenant (which must exist), runs `work`
    /// with them and the tenant's settings (`defaults` when it never set
    /// any), and closes the store whatever `work` returned.
    pub async fn on_store<T, F, Fut>(
        &self,
        defaults: &DefaultSettingsArgs,
        work: F,
    ) -> anyhow::Result<T>
    where
        F: FnOnce(Arc<dyn Store>, Tenant, TenantSettings) -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let defaults = defaults.settings()?;
        let store = self.store.open().await?;
        let result = async {
            let tenant = store
                .tenant(&self.tenant)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no tenant named {}", self.tenant))?;
            let settings = store.settings(&tenant).await?.unwrap_or(defaults);
            work(Arc::clone(&store), tenant, settings).await
        }
        .await;
        store.shutdown().await;
        result
    }
}
