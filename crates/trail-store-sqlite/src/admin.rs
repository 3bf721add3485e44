//! Tenants, API keys and settings: the small administrative tables. These
//! writes are rare and go straight through a pooled connection, not through
//! the ingest writer.

use rusqlite::{params, Connection, OptionalExtension, Row};
use trail_store::{ApiKey, Role, StoreError, Tenant, TenantSettings};

use trail_store::now_micros;

/// The tenant with this name, if any.
pub fn tenant(conn: &Connection, name: &str) -> Result<Option<Tenant>, StoreError> {
    conn.prepare_cached("SELECT id, name FROM tenants WHERE name = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([name], |row| {
                Ok(Tenant {
                    id: row.get(0)?,
                    name: row.get(1)?,
                })
            })
            .optional()
        })
        .map_err(StoreError::backend)
}

/// Every tenant, by id.
pub fn tenants(conn: &Connection) -> Result<Vec<Tenant>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, name FROM tenants ORDER BY id")
        .map_err(StoreError::backend)?;
    let tenants = stmt
        .query_map([], |row| {
            Ok(Tenant {
                id: row.get(0)?,
                name: row.get(1)?,
            })
        })
        .map_err(StoreError::backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::backend)?;
    Ok(tenants)
}

/// Creates the tenant when missing.
pub fn ensure_tenant(conn: &Connection, name: &str) -> Result<Tenant, StoreError> {
    conn.prepare_cached(
        "INSERT INTO tenants (name, created_at) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
    )
    .and_then(|mut stmt| stmt.execute(params![name, now_micros()]))
    .map_err(StoreError::backend)?;
    tenant(conn, name)?.ok_or_else(|| StoreError::Backend("tenant vanished after insert".into()))
}

/// Whether no key exists at all.
pub fn has_no_keys(conn: &Connection) -> Result<bool, StoreError> {
    conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM api_keys)", [], |row| {
        row.get(0)
    })
    .map_err(StoreError::backend)
}

/// Inserts a key.
pub fn create_key(conn: &Connection, key: &ApiKey) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO api_keys (key_id, tenant_id, role, user_id, secret_hash, label, created_at, revoked_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            key.key_id,
            key.tenant.id,
            key.role.as_str(),
            key.user_id,
            key.secret_hash.as_slice(),
            key.label,
            key.created_at,
            key.revoked_at,
        ])
    })
    .map_err(StoreError::backend)?;
    Ok(())
}

const KEY_COLUMNS: &str = "k.key_id, k.tenant_id, t.name, k.role, k.user_id, k.secret_hash, \
                           k.label, k.created_at, k.revoked_at";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let role: String = row.get(3)?;
    let hash: Vec<u8> = row.get(5)?;
    Ok(ApiKey {
        key_id: row.get(0)?,
        tenant: Tenant {
            id: row.get(1)?,
            name: row.get(2)?,
        },
        role: Role::parse(&role).unwrap_or(Role::Ingest),
        user_id: row.get(4)?,
        secret_hash: hash.try_into().unwrap_or([0; 32]),
        label: row.get(6)?,
        created_at: row.get(7)?,
        revoked_at: row.get(8)?,
    })
}

/// A key by id.
pub fn key(conn: &Connection, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_id = ?1"
    );
    conn.prepare_cached(&sql)
        .and_then(|mut stmt| stmt.query_row([key_id], key_from_row).optional())
        .map_err(StoreError::backend)
}

/// Keys of a tenant, newest first.
pub fn list_keys(conn: &Connection, tenant: &Tenant) -> Result<Vec<ApiKey>, StoreError> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM api_keys k JOIN tenants t ON t.id = k.tenant_id \
         WHERE k.tenant_id = ?1 ORDER BY k.created_at DESC, k.key_id"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::backend)?;
    let keys = stmt
        .query_map([tenant.id], key_from_row)
        .map_err(StoreError::backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::backend)?;
    Ok(keys)
}

/// Revokes a key of the tenant (idempotent).
pub fn revoke_key(conn: &Connection, tenant: &Tenant, key_id: &str) -> Result<ApiKey, StoreError> {
    conn.prepare_cached(
        "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?3) WHERE tenant_id = ?1 AND key_id = ?2",
    )
    .and_then(|mut stmt| stmt.execute(params![tenant.id, key_id, now_micros()]))
    .map_err(StoreError::backend)?;
    match key(conn, key_id)? {
        Some(key) if key.tenant.id == tenant.id => Ok(key),
        _ => Err(StoreError::NotFound(format!("key {key_id}"))),
    }
}

/// Settings of a tenant.
pub fn settings(conn: &Connection, tenant: &Tenant) -> Result<Option<TenantSettings>, StoreError> {
    let body: Option<String> = conn
        .prepare_cached("SELECT body FROM settings WHERE tenant_id = ?1")
        .and_then(|mut stmt| stmt.query_row([tenant.id], |row| row.get(0)).optional())
        .map_err(StoreError::backend)?;
    match body {
        None => Ok(None),
        Some(body) => serde_json::from_str(&body)
            .map(Some)
            .map_err(|error| StoreError::Corrupt(format!("settings of {}: {error}", tenant.name))),
    }
}

/// Replaces the settings of a tenant.
pub fn put_settings(
    conn: &Connection,
    tenant: &Tenant,
    settings: &TenantSettings,
) -> Result<(), StoreError> {
    let body = serde_json::to_string(settings).map_err(StoreError::backend)?;
    conn.prepare_cached(
        "INSERT INTO settings (tenant_id, body) VALUES (?1, ?2) \
         ON CONFLICT (tenant_id) DO UPDATE SET body = excluded.body",
    )
    .and_then(|mut stmt| stmt.execute(params![tenant.id, body]))
    .map_err(StoreError::backend)?;
    Ok(())
}
