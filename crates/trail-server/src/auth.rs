//! API keys: their text format, how they are made, and how a request's
//! bearer key becomes a [`Caller`].
//!
//! A key reads `trail_<key id: 16 hex>_<secret: 64 hex>`. The key id is
//! public and stored as is; the secret (256 random bits) is stored only as
//! its SHA-256 and compared in constant time. The tenant always comes from
//! the key, never from the request.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use trail_store::{ApiKey, ReadScope, Role, Store, Tenant};

use crate::error::ApiError;

const PREFIX: &str = "trail_";

/// Who is calling, once the key checked out.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's public id.
    pub key_id: String,
    /// The key's tenant.
    pub tenant: Tenant,
    /// The key's role.
    pub role: Role,
    /// For a user-bound read key, the only visible user.
    pub user_id: Option<String>,
}

impl Caller {
    /// Fails with 403 unless the role may write.
    pub fn require_ingest(&self) -> Result<(), ApiError> {
        if self.role.can_ingest() {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "a {} key cannot write events",
                self.role.as_str()
            )))
        }
    }

    /// Fails with 403 unless the role may read; returns the read scope.
    pub fn require_read(&self) -> Result<ReadScope, ApiError> {
        if self.role.can_read() {
            Ok(ReadScope {
                tenant: self.tenant.clone(),
                bound_user: self.user_id.clone(),
            })
        } else {
            Err(ApiError::forbidden(format!(
                "an {} key cannot read records",
                self.role.as_str()
            )))
        }
    }

    /// Fails with 403 unless admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs an admin key"))
        }
    }
}

/// A freshly made key: the text to hand out once, and what to store.
pub struct NewKey {
    /// The full key text; shown once, never stored.
    pub text: String,
    /// The stored form.
    pub record: ApiKey,
}

/// Makes a new random key for a tenant.
pub fn new_key(
    tenant: &Tenant,
    role: Role,
    user_id: Option<String>,
    label: Option<String>,
    now_micros: i64,
) -> Result<NewKey, ApiError> {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id).map_err(ApiError::internal)?;
    getrandom::fill(&mut secret).map_err(ApiError::internal)?;
    let key_id = hex::encode(id);
    let secret_hex = hex::encode(secret);
    Ok(NewKey {
        text: format!("{PREFIX}{key_id}_{secret_hex}"),
        record: ApiKey {
            key_id,
            tenant: tenant.clone(),
            role,
            user_id,
            secret_hash: hash_secret(&secret_hex),
            label,
            created_at: now_micros,
            revoked_at: None,
        },
    })
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits key text into (key id, secret).
fn parse_key(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

/// Authenticates the request's bearer key.
pub async fn authenticate(store: &dyn Store, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthorized(
            "missing Authorization: Bearer <api key>",
        ));
    };
    let text = value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("Authorization must be: Bearer <api key>"))?;
    let rejected = || ApiError::unauthorized("invalid or revoked API key");
    let (key_id, secret) = parse_key(text).ok_or_else(rejected)?;
    let stored = store.key(key_id).await?;
    let presented = hash_secret(secret);
    // Compare even when the id is unknown, so timing says nothing about ids.
    let expected = stored.as_ref().map_or([0u8; 32], |key| key.secret_hash);
    let matches: bool = presented.ct_eq(&expected).into();
    match stored {
        Some(key) if matches && key.revoked_at.is_none() => Ok(Caller {
            key_id: key.key_id,
            tenant: key.tenant,
            role: key.role,
            user_id: key.user_id,
        }),
        _ => Err(rejected()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_well_formed_keys() {
        let id = "0123456789abcdef";
        let secret = "ab".repeat(32);
        let text = format!("trail_{id}_{secret}");
        assert_eq!(parse_key(&text), Some((id, secret.as_str())));
        assert_eq!(parse_key(&text[1..]), None);
        assert_eq!(parse_key(&format!("trail_{id}_{}", &secret[1..])), None);
        assert_eq!(parse_key(&format!("trail_{id}x_{secret}")), None);
        assert_eq!(parse_key(""), None);
    }
}
