//! `trail.toml`: the lowest configuration layer. A setting comes from the
//! flag, else its TRAIL_* variable, else the file (`./trail.toml` or
//! `--config`), else the default; unknown keys are usage errors.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// Starts `trail serve` in `cwd` with `args` and `env`, waits until it
/// listens, and returns the address line; the server is then stopped.
fn serve_once(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trail"));
    command
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for var in [
        "TRAIL_DATA_DIR",
        "TRAIL_LISTEN",
        "TRAIL_DATABASE_URL",
        "TRAIL_CONFIG",
        "TRAIL_LOG_ORIGIN",
    ] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut listening = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("trail listening on ") {
            listening = line;
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    listening
}

#[test]
fn trail_toml_sits_under_flags_and_environment() {
    let cwd = TempDir::new().unwrap();
    std::fs::write(
        cwd.path().join("trail.toml"),
        "data_dir = \"from-file\"\nlisten = \"127.0.0.1:0\"\nlog_origin = \"audit.example\"\n",
    )
    .unwrap();
    // The file alone.
    let line = serve_once(cwd.path(), &[], &[]);
    assert!(
        line.starts_with("trail listening on http://127.0.0.1:"),
        "{line}"
    );
    assert!(cwd.path().join("from-file/trail.db").exists());
    let key = std::fs::read_to_string(cwd.path().join("from-file/log.key")).unwrap();
    assert!(key.starts_with("PRIVATE+KEY+audit.example+"), "{key}");
    // The environment beats the file.
    serve_once(cwd.path(), &[], &[("TRAIL_DATA_DIR", "from-env")]);
    assert!(cwd.path().join("from-env/trail.db").exists());
    // A flag beats both.
    serve_once(
        cwd.path(),
        &["--data-dir", "from-flag"],
        &[("TRAIL_DATA_DIR", "from-env-2")],
    );
    assert!(cwd.path().join("from-flag/trail.db").exists());
    assert!(!cwd.path().join("from-env-2").exists());
    // --config names another file.
    let other = cwd.path().join("other.toml");
    std::fs::write(
        &other,
        "data_dir = \"from-other\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    serve_once(cwd.path(), &["--config", other.to_str().unwrap()], &[]);
    assert!(cwd.path().join("from-other/trail.db").exists());
}

#[test]
fn unknown_or_bad_keys_in_trail_toml_are_usage_errors() {
    let cwd = TempDir::new().unwrap();
    for (text, named) in [
        ("data_dri = \"x\"\n", "data_dri"),
        ("listen = \"not an address\"\n", "listen"),
        ("request_timeout_secs = \"soon\"\n", "request_timeout_secs"),
    ] {
        std::fs::write(cwd.path().join("trail.toml"), text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_trail"))
            .arg("serve")
            .current_dir(cwd.path())
            .env_remove("TRAIL_CONFIG")
            .env("TRAIL_LISTEN", "127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("trail.toml"), "{stderr}");
        assert!(
            stderr.contains(named) || text.contains("not an address"),
            "{stderr}"
        );
    }
}
