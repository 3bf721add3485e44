//! The log key file beside a store: one line in the signed-note private key
//! format (`PRIVATE+KEY+<name>+<hash>+<key>`), mode 0600. `trail serve`
//! makes it at first start; the SDK's embedded sink makes the same one.

use std::io::Write;
use std::path::Path;

use trail_core::note::SigningKey;

/// Reads a log key file; warns when others may read it.
pub fn read(path: &Path) -> Result<SigningKey, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the log key {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the log key is readable by others; chmod 600 it");
            }
        }
    }
    SigningKey::parse_go_private_key(text.trim())
        .map_err(|e| format!("{} is not a log key: {e}", path.display()))
}

/// Reads the key at `path`, or makes a new one named `name` there (mode
/// 0600, fsync'd; never overwriting a file). True when it was made.
pub fn load_or_create(path: &Path, name: &str) -> Result<(SigningKey, bool), String> {
    if path.exists() {
        return read(path).map(|key| (key, false));
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no randomness for a log key: {e}"))?;
    let key =
        SigningKey::from_seed(name, seed).map_err(|e| format!("log key name {name:?}: {e}"))?;
    let text = format!("{}\n", key.to_go_private_key());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("creating the log key {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    tracing::info!(path = %path.display(), vkey = %key.verifier().to_vkey(), "made a new log key");
    Ok((key, true))
}
