//! A short-lived cache of tenant settings, so the ingest path does not read
//! the settings table on every request. Entries expire after two seconds
//! (other servers on the same database may change them) and are dropped at
//! once when this server changes them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use trail_store::{Store, StoreError, Tenant, TenantSettings};

const TTL: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct SettingsCache {
    entries: Mutex<HashMap<i64, (Instant, TenantSettings)>>,
}

impl SettingsCache {
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
        let settings = store.settings(tenant).await?;
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
