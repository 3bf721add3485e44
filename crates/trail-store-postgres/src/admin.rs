//! Tenants, API keys and settings. The key lookup of authentication, which
//! must find a key before its tenant is known, goes through the SECURITY
//! DEFINER function `trail_key`, so the application role itself never reads
//! another tenant's keys.

use deadpool_postgres::{Object, Transaction};
use tokio_postgres::Row;
use trail_store::{ApiKey, Role, StoreError, Tenant, TenantSettings};

use crate::{begin, db};
use trail_store::now_micros;

fn tenant_from_row(row: &Row) -> Tenant {
    Tenant {
        id: row.get(0),
        name: row.get(1),
    }
}

/// The tenant with this name, if any.
pub async fn tenant(tx: &Transaction<'_>, name: &str) -> Result<Option<Tenant>, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT id, name FROM tenants WHERE name = $1")
        .await
        .map_err(db)?;
    let row = tx.query_opt(&stmt, &[&name]).await.map_err(db)?;
    Ok(row.as_ref().map(tenant_from_row))
}

/// Every tenant, by id.
pub async fn tenants(tx: &Transaction<'_>) -> Result<Vec<Tenant>, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT id, name FROM tenants ORDER BY id")
        .await
        .map_err(db)?;
    let rows = tx.query(&stmt, &[]).await.map_err(db)?;
    Ok(rows.iter().map(tenant_from_row).collect())
}

/// Creates the tenant and its log head when missing.
pub async fn ensure_tenant(client: &mut Object, name: &str) -> Result<Tenant, StoreError> {
    let tx = begin(client, None).await?;
    tx.execute(
        "INSERT INTO tenants (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        &[&name, &now_micros()],
    )
    .await
    .map_err(db)?;
    let found = tenant(&tx, name)
        .await?
        .ok_or_else(|| StoreError::Backend("tenant vanished after insert".into()))?;
    crate::switch_tenant(&tx, found.id).await?;
    tx.execute(
        "INSERT INTO log_heads (tenant_id, next_seq, received_at) VALUES ($1, 0, 0) \
         ON CONFLICT (tenant_id) DO NOTHING",
        &[&found.id],
    )
    .await
    .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(found)
}

/// Whether no key exists at all.
pub async fn has_no_keys(tx: &Transaction<'_>) -> Result<bool, StoreError> {
    let row = tx
        .query_one("SELECT trail_has_no_keys()", &[])
        .await
        .map_err(db)?;
    Ok(row.get(0))
}

/// Inserts a key.
pub async fn create_key(tx: &Transaction<'_>, key: &ApiKey) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO api_keys (key_id, tenant_id, role, user_id, secret_hash, label, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await
        .map_err(db)?;
    tx.execute(
        &stmt,
        &[
            &key.key_id,
            &key.tenant.id,
            &key.role.as_str(),
            &key.user_id,
            &key.secret_hash.as_slice(),
            &key.label,
            &key.created_at,
            &key.revoked_at,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}

fn key_from_row(row: &Row) -> ApiKey {
    let role: String = row.get(3);
    let hash: Vec<u8> = row.get(5);
    ApiKey {
        key_id: row.get(0),
        tenant: Tenant {
            id: row.get(1),
            name: row.get(2),
        },
        role: Role::parse(&role).unwrap_or(Role::Ingest),
        user_id: row.get(4),
        secret_hash: hash.try_into().unwrap_or([0; 32]),
        label: row.get(6),
        created_at: row.get(7),
        revoked_at: row.get(8),
    }
}

/// A key by id, whatever its tenant.
pub async fn key(tx: &Transaction<'_>, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT * FROM trail_key($1)")
        .await
        .map_err(db)?;
    let row = tx.query_opt(&stmt, &[&key_id]).await.map_err(db)?;
    Ok(row.as_ref().map(key_from_row))
}

const KEY_COLUMNS: &str = "k.key_id, k.tenant_id, t.name, k.role, k.user_id, k.secret_hash, \
                           k.label, k.created_at, k.revoked_at";

/// Keys of a tenant, newest first.
pub async fn list_keys(tx: &Transaction<'_>, tenant: &Tenant) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
         WHERE k.tenant_id = $1 ORDER BY k.created_at DESC, k.key_id"
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let rows = tx.query(&stmt, &[&tenant.id]).await.map_err(db)?;
    Ok(rows.iter().map(key_from_row).collect())
}

/// Revokes a key of the tenant (idempotent).
pub async fn revoke_key(
    tx: &Transaction<'_>,
    tenant: &Tenant,
    key_id: &str,
) -> Result<ApiKey, StoreError> {
    let sql = format!(
        "UPDATE api_keys k SET revoked_at = coalesce(k.revoked_at, $3) FROM tenants t \
         WHERE t.id = k.tenant_id AND k.tenant_id = $1 AND k.key_id = $2 RETURNING {KEY_COLUMNS}"
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    let row = tx
        .query_opt(&stmt, &[&tenant.id, &key_id, &now_micros()])
        .await
        .map_err(db)?;
    row.as_ref()
        .map(key_from_row)
        .ok_or_else(|| StoreError::NotFound(format!("key {key_id}")))
}

/// Settings of a tenant.
pub async fn settings(
    tx: &Transaction<'_>,
    tenant: &Tenant,
) -> Result<Option<TenantSettings>, StoreError> {
    let stmt = tx
        .prepare_cached("SELECT body FROM settings WHERE tenant_id = $1")
        .await
        .map_err(db)?;
    let row = tx.query_opt(&stmt, &[&tenant.id]).await.map_err(db)?;
    match row {
        None => Ok(None),
        Some(row) => serde_json::from_str(row.get(0))
            .map(Some)
            .map_err(|error| StoreError::Corrupt(format!("settings of {}: {error}", tenant.name))),
    }
}

/// Replaces the settings of a tenant.
pub async fn put_settings(
    tx: &Transaction<'_>,
    tenant: &Tenant,
    settings: &TenantSettings,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(settings).map_err(StoreError::backend)?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO settings (tenant_id, body) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
        )
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&tenant.id, &body]).await.map_err(db)?;
    Ok(())
}
