//! Where batches go: a trail server over HTTP, or a local store written
//! exactly as the server would write it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use trail_core::event::{parse_events, Transport};
use trail_core::note::SigningKey;
use trail_store::{Store, Tenant};
use trail_store_sqlite::{SqliteOptions, SqliteStore};

/// Why a batch was not delivered.
#[derive(Debug)]
pub enum SendError {
    /// Worth trying again later (connection error, timeout, 429, 5xx, an
    /// unusable key): the batch is kept.
    Retry(String),
    /// The batch itself was refused (400, 413): resending it cannot help.
    Refused(String),
}

/// A destination for batches.
pub enum Sink {
    Remote(Remote),
    Embedded(Box<Embedded>),
}

impl Sink {
    /// Delivers a batch of JSON lines; Ok once every event is durable.
    pub async fn send(&self, lines: &[String]) -> Result<(), SendError> {
        match self {
            Sink::Remote(remote) => remote.send(lines).await,
            Sink::Embedded(embedded) => embedded.send(lines).await,
        }
    }

    /// Called when the recorder shuts down.
    pub async fn close(&self) {
        if let Sink::Embedded(embedded) = self {
            embedded.close().await;
        }
    }

    /// The delay a server asked for with `Retry-After` on its last 429 or
    /// 503, once.
    pub fn take_retry_after(&self) -> Option<Duration> {
        match self {
            Sink::Remote(remote) => remote
                .retry_after
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
            Sink::Embedded(_) => None,
        }
    }

    /// Called after a flush delivered everything.
    pub async fn flushed(&self) {
        if let Sink::Embedded(embedded) = self {
            embedded.checkpoint().await;
        }
    }
}

/// `POST /v1/events` on a trail server, NDJSON, with a bearer key.
pub struct Remote {
    url: String,
    key: String,
    http: reqwest::Client,
    retry_after: std::sync::Mutex<Option<Duration>>,
}

impl Remote {
    pub fn new(url: &str, key: &str, timeout: Duration) -> Result<Remote, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Remote {
            url: format!("{}/v1/events", url.trim_end_matches('/')),
            key: key.to_owned(),
            http,
            retry_after: std::sync::Mutex::new(None),
        })
    }

    async fn send(&self, lines: &[String]) -> Result<(), SendError> {
        let mut body = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines {
            body.extend_from_slice(line.as_bytes());
            body.push(b'\n');
        }
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.key)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Retry(format!("cannot reach {}: {e}", self.url)))?;
        let status = response.status();
        if matches!(status.as_u16(), 429 | 503) {
            let seconds = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            *self.retry_after.lock().unwrap_or_else(|e| e.into_inner()) =
                seconds.map(Duration::from_secs);
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SendError::Retry(format!("reading the answer: {e}")))?;
        if status.is_success() {
            let answer: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| SendError::Retry(format!("the server answered invalid JSON: {e}")))?;
            let accepted = answer["accepted"].as_array().map_or(0, Vec::len);
            if accepted != lines.len() {
                return Err(SendError::Retry(format!(
                    "the server accepted {accepted} of {} events",
                    lines.len()
                )));
            }
            return Ok(());
        }
        let text = String::from_utf8_lossy(&bytes);
        let message = format!("{status}: {}", text.chars().take(500).collect::<String>());
        match status.as_u16() {
            400 | 413 | 422 => Err(SendError::Refused(message)),
            _ => Err(SendError::Retry(message)),
        }
    }
}

/// A local sqlite data directory written through trail-store-sqlite: the
/// tenant is created when missing, the log key `<dir>/log.key` made on first
/// use (as `trail serve` does), events are validated, redacted and split by
/// `trail_core` under the tenant's settings, and a signed checkpoint is cut
/// after each flush, so `trail serve` and `trail verify` on the directory
/// see exactly what a server would have written.
pub struct Embedded {
    store: Arc<dyn Store>,
    tenant: Tenant,
    key: SigningKey,
}

impl Embedded {
    pub async fn open(data_dir: &Path, tenant: &str) -> Result<Embedded, String> {
        let key = load_or_create_log_key(data_dir)?;
        let path = data_dir.join("trail.db");
        let store = SqliteStore::open(&path, SqliteOptions::default())
            .map_err(|e| format!("opening {}: {e}", path.display()))?;
        let store: Arc<dyn Store> = Arc::new(store);
        let tenant = store
            .ensure_tenant(tenant)
            .await
            .map_err(|e| format!("tenant {tenant}: {e}"))?;
        Ok(Embedded { store, tenant, key })
    }

    async fn send(&self, lines: &[String]) -> Result<(), SendError> {
        let settings = self
            .store
            .settings(&self.tenant)
            .await
            .map_err(|e| SendError::Retry(e.to_string()))?
            .unwrap_or_default();
        let mut values = Vec::with_capacity(lines.len());
        for line in lines {
            values.push(serde_json::from_str(line).map_err(|e| SendError::Refused(e.to_string()))?);
        }
        let events = parse_events(values).map_err(|errors| {
            SendError::Refused(
                errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let mut salts = vec![0u8; 32 * events.len()];
        getrandom::fill(&mut salts).map_err(|e| SendError::Retry(e.to_string()))?;
        let mut prepared = Vec::with_capacity(events.len());
        for (event, salt) in events.into_iter().zip(salts.chunks_exact(32)) {
            let mut salt_bytes = [0u8; 32];
            salt_bytes.copy_from_slice(salt);
            prepared.extend(settings.prepare(event, Transport::Sdk, salt_bytes));
        }
        if prepared.is_empty() {
            return Ok(());
        }
        self.store
            .append(&self.tenant, prepared)
            .await
            .map(|_| ())
            .map_err(|e| SendError::Retry(e.to_string()))
    }

    /// Cuts a signed checkpoint when the log grew since the newest one (as
    /// the server's checkpointer does).
    async fn checkpoint(&self) {
        if let Err(error) = self.cut().await {
            tracing::warn!(%error, "trail: cutting a checkpoint failed");
        }
    }

    async fn cut(&self) -> Result<(), String> {
        let store = &*self.store;
        let size = store
            .log_size(&self.tenant)
            .await
            .map_err(|e| e.to_string())?;
        let latest = store
            .latest_checkpoint(&self.tenant)
            .await
            .map_err(|e| e.to_string())?;
        if size == 0 || latest.is_some_and(|latest| latest.size >= size) {
            return Ok(());
        }
        trail_store::checkpoint::cut(store, &self.key, &self.tenant)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn close(&self) {
        self.checkpoint().await;
        self.store.shutdown().await;
    }
}

/// The log key of `trail serve`: `<dir>/log.key`, one line in the signed-note
/// private key format, mode 0600, named `trail.local` when made here.
fn load_or_create_log_key(data_dir: &Path) -> Result<SigningKey, String> {
    trail_store::log_key::load_or_create(&data_dir.join("log.key"), "trail.local")
        .map(|(key, _)| key)
}
