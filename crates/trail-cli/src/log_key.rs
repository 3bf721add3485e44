//! The log key: an Ed25519 key that signs every tenant's checkpoints, made
//! at first start in the data directory (mode 0600) or read from
//! `--log-key-file` / `TRAIL_LOG_KEY_FILE`.
//!
//! The file holds one line in the signed-note tooling's private key format,
//! `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`; the key's name
//! is the origin prefix of every log it signs (`<name>/<tenant>`).

use std::path::{Path, PathBuf};

use clap::Args;
use trail_core::note::SigningKey;

/// Where the log key comes from.
#[derive(Args, Debug, Clone)]
pub struct LogKeyArgs {
    /// Use this log key file instead of `<data dir>/log.key`.
    #[arg(long, env = "TRAIL_LOG_KEY_FILE")]
    pub log_key_file: Option<PathBuf>,
    /// Origin prefix (and key name) for a newly made log key; logs are
    /// `<prefix>/<tenant>`.
    #[arg(long, env = "TRAIL_LOG_ORIGIN", default_value = "trail.local")]
    pub log_origin: String,
}

impl LogKeyArgs {
    /// Reads the key when there is one (the key file, else
    /// `<data dir>/log.key`), without ever making one.
    pub fn load_existing(&self, data_dir: &Path) -> anyhow::Result<Option<SigningKey>> {
        let path = self
            .log_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join("log.key"));
        if !path.exists() {
            return Ok(None);
        }
        read(&path).map(Some)
    }

    /// Reads the key, or makes and saves one in `data_dir` when no key file
    /// was given and none exists yet.
    pub fn load_or_create(&self, data_dir: &Path) -> anyhow::Result<SigningKey> {
        let path = match &self.log_key_file {
            Some(path) => {
                return read(path);
            }
            None => data_dir.join("log.key"),
        };
        trail_store::log_key::load_or_create(&path, &self.log_origin)
            .map(|(key, _)| key)
            .map_err(|e| anyhow::anyhow!(e))
    }
}

fn read(path: &Path) -> anyhow::Result<SigningKey> {
    trail_store::log_key::read(path).map_err(|e| anyhow::anyhow!(e))
}
