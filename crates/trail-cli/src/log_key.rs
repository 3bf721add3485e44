//! The log key: an Ed25519 key that signs every tenant's checkpoints, made
//! at first start in the data directory (mode 0600) or read from
//! `--log-key-file` / `TRAIL_LOG_KEY_FILE`.
//!
//! The file holds one line in the signed-note tooling's private key format,
//! `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>`; the key's name
//! is the origin prefix of every log it signs (`<name>/<tenant>`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
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
        if path.exists() {
            return read(&path);
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| anyhow::anyhow!("no randomness for a log key: {e}"))?;
        let key = SigningKey::from_seed(&self.log_origin, seed)
            .map_err(|e| anyhow::anyhow!("--log-origin {:?}: {e}", self.log_origin))?;
        let text = format!("{}\n", key.to_go_private_key());
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&path)
            .with_context(|| format!("creating the log key {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        tracing::info!(path = %path.display(), vkey = %key.verifier().to_vkey(), "made a new log key");
        Ok(key)
    }
}

fn read(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the log key {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the log key is readable by others; chmod 600 it");
        }
    }
    match SigningKey::parse_go_private_key(text.trim()) {
        Ok(key) => Ok(key),
        Err(error) => bail!("{} is not a log key: {error}", path.display()),
    }
}
