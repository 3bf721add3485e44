//! A short-lived cache of tenant settings, so the ingest path does not read
//! the settings table on every request. Entries expire after two seconds
//! (other servers on the same database may change them) and are dropped at
//! once when this server changes them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trail_store::{Store, StoreError, Tenant, TenantSettings};

const TTL: Duration = Duration::from_secs(2);

/// The cache, and the server-wide defaults of tenants that never set any.
#[derive(Default)]
pub struct SettingsCache {
    entries: Mutex<HashMap<i64, (Instant, TenantSettings)>>,
    defaults: TenantSettings,
}

impl SettingsCache {
    /// A cache whose tenants without settings get `defaults`.
    pub fn new(defaults: TenantSettings) -> Self {
        SettingsCache {
            entries: Mutex::default(),
            defaults,
        }
    }

    /// The tenant's settings, read from the store (no cache).
    pub async fn read(
        &self,
        store: &dyn Store,
        tenant: &Tenant,
    ) -> Result<TenantSettings, StoreError> {
        Ok(store
            .settings(tenant)
            .await?
            .unwrap_or_else(|| self.defaults.clone()))
    }

    /// The tenant's settings, at most two seconds old.
    pub async fn get(
        &self,
        store: &dyn Store,
        tenant: &Tenant,
    ) -> Result<TenantSettings, StoreError> {
        if let Ok(entries) = self.entries.lock() {
            if let Some((at, settings)) = entries.get(&tenant.id) {
                if at.elapsed() < TTL {
                    return Ok(settings.clone());
                }
            }
        }
        let settings = self.read(store, tenant).await?;
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(tenant.id, (Instant::now(), settings.clone()));
        }
        Ok(settings)
    }

    pub fn forget(&self, tenant: &Tenant) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&tenant.id);
        }
    }
}
