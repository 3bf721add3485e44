//! `trail serve`: open the store, make the first admin key on a fresh store,
//! listen, and on SIGTERM or Ctrl-C drain the ingest queue and exit 0.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};
use serde::Deserialize;
use tokio::net::TcpListener;
use trail_server::{auth, AppState, LogSigner, ServerConfig};
use trail_store::Role;

use crate::log_key::LogKeyArgs;
use crate::settings::DefaultSettingsArgs;
use crate::store_arg::StoreArgs;
use crate::UsageError;

/// Flags of `trail serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log_key: LogKeyArgs,
    #[command(flatten)]
    defaults: DefaultSettingsArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "TRAIL_LISTEN", default_value = "127.0.0.1:8750")]
    listen: SocketAddr,
    /// Seconds before a request is answered 408.
    #[arg(long, env = "TRAIL_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    request_timeout_secs: u64,
    /// Configuration file (the lowest layer, under flags and TRAIL_*
    /// variables); `./trail.toml` is read when it exists.
    #[arg(long, env = "TRAIL_CONFIG")]
    config: Option<PathBuf>,
}

/// The keys `trail.toml` may hold; each is the flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<SocketAddr>,
    request_timeout_secs: Option<u64>,
    log_key_file: Option<PathBuf>,
    log_origin: Option<String>,
    default_retention_days: Option<u32>,
    default_content_policy: Option<String>,
    default_record_types: Option<Vec<String>>,
}

impl ServeArgs {
    /// Fills every setting that neither a flag nor a TRAIL_* variable gave
    /// from the configuration file, when there is one.
    pub fn apply_config_file(&mut self, matches: &ArgMatches) -> anyhow::Result<()> {
        let path = match &self.config {
            Some(path) => path.clone(),
            None if Path::new("trail.toml").exists() => PathBuf::from("trail.toml"),
            None => return Ok(()),
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| UsageError(format!("cannot read {}: {e}", path.display())))?;
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| UsageError(format!("{}: {}", path.display(), e.to_string().trim())))?;
        let unset = |id: &str| {
            !matches!(
                matches.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        if let Some(value) = file.data_dir.filter(|_| unset("data_dir")) {
            self.store.data_dir = value;
        }
        if let Some(value) = file.database_url.filter(|_| unset("database_url")) {
            self.store.database_url = Some(value);
        }
        if let Some(value) = file.listen.filter(|_| unset("listen")) {
            self.listen = value;
        }
        if let Some(value) = file
            .request_timeout_secs
            .filter(|_| unset("request_timeout_secs"))
        {
            self.request_timeout_secs = value;
        }
        if let Some(value) = file.log_key_file.filter(|_| unset("log_key_file")) {
            self.log_key.log_key_file = Some(value);
        }
        if let Some(value) = file.log_origin.filter(|_| unset("log_origin")) {
            self.log_key.log_origin = value;
        }
        if let Some(value) = file
            .default_retention_days
            .filter(|_| unset("default_retention_days"))
        {
            self.defaults.retention_days = Some(value.to_string());
        }
        if let Some(value) = file
            .default_content_policy
            .filter(|_| unset("default_content_policy"))
        {
            self.defaults.content_policy = Some(value);
        }
        if let Some(value) = file
            .default_record_types
            .filter(|_| unset("default_record_types"))
        {
            self.defaults.record_types = Some(value.join(","));
        }
        Ok(())
    }
}

/// The tenant a fresh store starts with.
pub const DEFAULT_TENANT: &str = "default";

/// Runs the server until a shutdown signal.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let defaults = args.defaults.settings()?;
    let store = args.store.open().await?;
    let log_key = args.log_key.load_or_create(&args.store.data_dir)?;
    if store.has_no_keys().await? {
        let tenant = store.ensure_tenant(DEFAULT_TENANT).await?;
        let key = auth::new_key(
            &tenant,
            Role::Admin,
            None,
            Some("first admin key".into()),
            trail_store::now_micros(),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        store.create_key(&key.record).await?;
        println!(
            "admin key for tenant {DEFAULT_TENANT} (shown once, keep it): {}",
            key.text
        );
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("trail listening on http://{address}");
    let _ = std::io::stdout().flush();
    tracing::info!(%address, "listening");
    let config = ServerConfig {
        request_timeout: Duration::from_secs(args.request_timeout_secs.max(1)),
        ..ServerConfig::default()
    };
    let state = AppState::new(store, LogSigner::new(log_key)).with_default_settings(defaults);
    trail_server::serve(listener, state, config, shutdown_signal()).await?;
    tracing::info!("stopped; every acknowledged event is committed");
    Ok(())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = terminate.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown signal: draining the ingest queue");
}
