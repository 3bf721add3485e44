//! The HTTP API of trail (v1), built on axum.
//!
//! [`router`] builds the whole API around an [`AppState`] holding any
//! [`trail_store::Store`]; the server does not know which backend it runs
//! on. Handlers live in [`routes`], one module per resource; authentication
//! in [`auth`]; the problem+json error type in [`error`]. [`serve`] runs the
//! router on a listener until a shutdown signal, then drains the store's
//! ingest queue before returning; [`log`] holds the log key and cuts signed
//! checkpoints; [`retention`] sweeps old records; [`tenant_settings`]
//! validates settings changes.

pub mod auth;
pub mod error;
pub mod log;
mod metrics;
mod params;
pub mod retention;
pub mod routes;
mod settings_cache;
pub mod tenant_settings;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use trail_store::{Store, TenantSettings};

pub use log::LogSigner;
pub use metrics::Metrics;
use settings_cache::SettingsCache;

/// Ingest requests in memory at once (see `AppState::ingest_slots`).
const INGEST_SLOTS: usize = 4;

/// Server-wide configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// A request that takes longer is answered 408.
    pub request_timeout: Duration,
    /// How often every tenant with `retention_days` is swept (the first
    /// sweep runs at start).
    pub sweep_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            request_timeout: Duration::from_secs(30),
            sweep_interval: retention::SWEEP_INTERVAL,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The backend.
    pub store: Arc<dyn Store>,
    /// The log key that signs checkpoints.
    pub signer: Arc<LogSigner>,
    /// Request and ingest counters.
    pub metrics: Arc<Metrics>,
    settings: Arc<SettingsCache>,
    /// Bounds how many request bodies are parsed at once: the work is
    /// CPU-bound, so more than one per core only adds memory (each parse
    /// holds a request's whole JSON tree).
    prepare_slots: Arc<tokio::sync::Semaphore>,
    /// Bounds how many ingest requests hold their body and prepared events
    /// in memory at once (from reading the body to the commit). The writer
    /// commits whatever is queued in one transaction, so a few requests
    /// already fill a batch; more only cost memory. Waiting requests stay in
    /// the kernel's socket buffers; a body must arrive within 10 s.
    ingest_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Wraps a store and the log key.
    pub fn new(store: Arc<dyn Store>, signer: LogSigner) -> Self {
        AppState {
            store,
            signer: Arc::new(signer),
            metrics: Arc::new(Metrics::default()),
            settings: Arc::new(SettingsCache::new(TenantSettings::default())),
            prepare_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            ingest_slots: Arc::new(tokio::sync::Semaphore::new(INGEST_SLOTS)),
        }
    }

    /// The settings of tenants that never set their own (from
    /// `TRAIL_RETENTION_DAYS`, `TRAIL_CONTENT_POLICY`, `TRAIL_RECORD_TYPES`).
    pub fn with_default_settings(mut self, defaults: TenantSettings) -> Self {
        self.settings = Arc::new(SettingsCache::new(defaults));
        self
    }
}

/// The whole v1 API.
pub fn router(state: AppState, config: &ServerConfig) -> Router {
    routes::router(state, config)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests,
/// signs a final checkpoint per grown log and drains the store (every
/// acknowledged event is durable). Meanwhile a background task cuts a
/// checkpoint within a second of any log growing, and another sweeps
/// every tenant with `retention_days` every `config.sweep_interval`.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = Arc::clone(&state.store);
    let signer = Arc::clone(&state.signer);
    let checkpointer = tokio::spawn(log::run_checkpointer(
        Arc::clone(&signer),
        Arc::clone(&store),
    ));
    let sweeper = tokio::spawn(retention::run_sweeper(
        Arc::clone(&store),
        Arc::clone(&state.settings),
        config.sweep_interval,
    ));
    let app = router(state, &config);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    checkpointer.abort();
    // Every request has been answered, so every acknowledged event is
    // committed: sign a final checkpoint for each grown log, then stop.
    if let Err(error) = signer.cut_all(&*store).await {
        tracing::warn!(%error, "final checkpoints failed");
    }
    store.shutdown().await;
    result
}
