//! Where the admin commands (`keys`, `settings`, `retention`, `erase`) act:
//! a store directly (`--data-dir` / `--database-url`, with `--tenant`), or a
//! running server (`--url --key ADMIN`, the tenant being the key's).

use clap::Args;

use crate::client::Client;
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

    /// Opens the store and finds the tenant (which must exist).
    pub async fn open_tenant(
        &self,
    ) -> anyhow::Result<(std::sync::Arc<dyn trail_store::Store>, trail_store::Tenant)> {
        let store = self.store.open().await?;
        match store.tenant(&self.tenant).await? {
            Some(tenant) => Ok((store, tenant)),
            None => {
                store.shutdown().await;
                Err(anyhow::anyhow!("no tenant named {}", self.tenant))
            }
        }
    }
}
