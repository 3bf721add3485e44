//! The recorder: a bounded queue in front of a background batcher thread,
//! with the disk spool behind it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::{Config, SinkConfig};
use crate::sink::{Embedded, Remote, SendError, Sink};
use crate::spool::{read_lines, Spool};

/// What a recorder has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Events taken by `record()` (after the allowlists).
    pub recorded: u64,
    /// Events acknowledged by the sink.
    pub sent: u64,
    /// Events written to the disk spool.
    pub spooled: u64,
    /// Events lost: refused by the sink as invalid, or the spool failed.
    pub dropped: u64,
    /// Retried sends.
    pub retried: u64,
    /// Events left out by `TRAIL_RECORD_TYPES` / `TRAIL_RECORD_NAMES`.
    pub filtered: u64,
    /// Events in the in-memory queue or being sent right now.
    pub queued: u64,
    /// Events in the spool not yet acknowledged (also from earlier runs).
    pub spool_pending: u64,
}

#[derive(Default)]
struct Atomics {
    recorded: AtomicU64,
    sent: AtomicU64,
    spooled: AtomicU64,
    dropped: AtomicU64,
    retried: AtomicU64,
    filtered: AtomicU64,
    queued: AtomicU64,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// State shared by the handles and the batcher thread.
struct Shared {
    config: Config,
    counters: Atomics,
    spool: Mutex<Spool>,
    /// Wakes the batcher (a flush was asked for).
    wake: Notify,
    flush_requested: AtomicBool,
    /// The last delivery attempt failed (the sink is down).
    failing: AtomicBool,
    /// The last handle is gone: requests in flight are abandoned (their
    /// events spooled) so closing never waits for a stalled server.
    stopping: AtomicBool,
    stop: Notify,
    /// Signalled after every round of the batcher.
    round: Mutex<u64>,
    round_done: Condvar,
}

impl Shared {
    fn spool(&self) -> MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn spool_pending(&self) -> u64 {
        self.spool().pending()
    }

    /// Writes events to the spool right away; fsync'd now when `sync`,
    /// else by the batcher's next round.
    fn spool_now(&self, lines: &[String], sync: bool) {
        match self.spool().append(lines, sync) {
            Ok(()) => add(&self.counters.spooled, lines.len()),
            Err(error) => {
                add(&self.counters.dropped, lines.len());
                tracing::error!(%error, events = lines.len(), dir = %self.config.spool_dir.display(),
                    "trail: cannot write the spool; events lost");
            }
        }
    }

    fn counters(&self) -> Counters {
        let c = &self.counters;
        Counters {
            recorded: c.recorded.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            spooled: c.spooled.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            filtered: c.filtered.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
            spool_pending: self.spool_pending(),
        }
    }

    fn end_round(&self) {
        *self.round.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.round_done.notify_all();
    }
}

/// Owns the batcher thread; the last handle to go flushes and joins it.
struct Inner {
    shared: Arc<Shared>,
    tx: Option<mpsc::Sender<String>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Everything in memory is sent or spooled; the spool is waited for
        // only while the sink works (it is on disk and replayed next time).
        let timeout = self.shared.config.drop_flush_timeout;
        flush_shared(&self.shared, timeout, true);
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.stop.notify_waiters();
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let counters = self.shared.counters();
        tracing::info!(?counters, "trail: recorder closed");
    }
}

/// Records events; cheap to clone (clones share one queue and thread).
///
/// A disabled recorder (`TRAIL_ENABLED=false`, or no sink configured) does
/// nothing at all.
#[derive(Clone)]
pub struct Recorder {
    inner: Option<Arc<Inner>>,
    /// Fields every event of this handle gets unless it sets them.
    defaults: Arc<Map<String, Value>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Recorder {
    /// A recorder configured from `TRAIL_*` variables.
    pub fn from_env() -> Recorder {
        Recorder::new(Config::from_env())
    }

    /// A recorder that does nothing.
    pub fn disabled() -> Recorder {
        Recorder {
            inner: None,
            defaults: Arc::new(Map::new()),
        }
    }

    /// A recorder for `config`; starts the batcher thread unless disabled.
    /// Opening the spool or the sink never fails here: problems are logged
    /// and events kept in the spool until the sink works.
    pub fn new(config: Config) -> Recorder {
        if !config.enabled {
            return Recorder::disabled();
        }
        let Some(sink) = config.sink.clone() else {
            tracing::warn!("trail: no TRAIL_URL or TRAIL_DATA_DIR; recording is off");
            return Recorder::disabled();
        };
        let spool = match Spool::open(&config.spool_dir) {
            Ok(spool) => spool,
            Err(error) => {
                tracing::error!(%error, dir = %config.spool_dir.display(), "trail: cannot read the spool; recording is off");
                return Recorder::disabled();
            }
        };
        if spool.pending() > 0 {
            tracing::info!(
                events = spool.pending(),
                "trail: replaying events spooled earlier"
            );
        }
        let (tx, rx) = mpsc::channel(config.queue_size.max(1));
        let shared = Arc::new(Shared {
            config,
            counters: Atomics::default(),
            spool: Mutex::new(spool),
            wake: Notify::new(),
            flush_requested: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            round: Mutex::new(0),
            round_done: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("trail-recorder".into())
                .spawn(move || batcher_thread(shared, sink, rx))
        };
        let thread = match thread {
            Ok(thread) => thread,
            Err(error) => {
                tracing::error!(%error, "trail: cannot start the recorder thread; recording is off");
                return Recorder::disabled();
            }
        };
        Recorder {
            inner: Some(Arc::new(Inner {
                shared,
                tx: Some(tx),
                thread: Some(thread),
            })),
            defaults: Arc::new(Map::new()),
        }
    }

    /// Whether events go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// A handle on the same recorder whose events carry these fields
    /// (`session_id`, `user_id`, `agent_id`, ...) unless they set their own.
    pub fn with_fields(&self, fields: Value) -> Recorder {
        let mut defaults = (*self.defaults).clone();
        if let Value::Object(fields) = fields {
            defaults.extend(fields);
        }
        Recorder {
            inner: self.inner.clone(),
            defaults: Arc::new(defaults),
        }
    }

    /// Records one event (a JSON object as `POST /v1/events` takes it).
    /// Returns at once: the event is queued, or spooled to disk when the
    /// queue is full. Gives it a UUIDv7 `id` and `transport: "sdk"` unless
    /// set. Returns the event's id (None when not recorded).
    pub fn record(&self, event: Value) -> Option<Uuid> {
        let inner = self.inner.as_ref()?;
        let shared = &inner.shared;
        let Value::Object(mut map) = event else {
            add(&shared.counters.dropped, 1);
            tracing::warn!("trail: an event must be a JSON object; dropped");
            return None;
        };
        for (key, value) in self.defaults.iter() {
            if !map.contains_key(key) {
                map.insert(key.clone(), value.clone());
            }
        }
        let allowed = |list: &Option<Vec<String>>, field: &str| match list {
            None => true,
            Some(list) => map
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|v| list.iter().any(|a| a == v)),
        };
        if !allowed(&shared.config.record_types, "type")
            || !allowed(&shared.config.record_names, "name")
        {
            add(&shared.counters.filtered, 1);
            return None;
        }
        let id = match map.get("id").and_then(Value::as_str).map(Uuid::parse_str) {
            Some(Ok(id)) => id,
            _ => {
                let id = Uuid::now_v7();
                map.insert("id".into(), Value::String(id.to_string()));
                id
            }
        };
        map.entry("transport")
            .or_insert_with(|| Value::String("sdk".into()));
        let line = match serde_json::to_string(&map) {
            Ok(line) => line,
            Err(_) => {
                add(&shared.counters.dropped, 1);
                return None;
            }
        };
        add(&shared.counters.recorded, 1);
        add(&shared.counters.queued, 1);
        let tx = inner.tx.as_ref()?;
        match tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(line)) | Err(TrySendError::Closed(line)) => {
                shared.counters.queued.fetch_sub(1, Ordering::Relaxed);
                shared.spool_now(&[line], false);
            }
        }
        Some(id)
    }

    /// Waits (blocking the thread) until every event recorded so far and
    /// every spooled one is acknowledged, or `timeout` passes. True when
    /// everything was delivered; what is not stays in the spool.
    pub fn flush(&self, timeout: Duration) -> bool {
        match &self.inner {
            Some(inner) => flush_shared(&inner.shared, timeout, false),
            None => true,
        }
    }

    /// [`Recorder::flush`] without blocking an async runtime's worker.
    pub async fn flush_async(&self, timeout: Duration) -> bool {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.flush(timeout))
            .await
            .unwrap_or(false)
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.inner
            .as_ref()
            .map_or_else(Counters::default, |inner| inner.shared.counters())
    }
}

fn flush_shared(shared: &Shared, timeout: Duration, on_drop: bool) -> bool {
    let deadline = Instant::now() + timeout;
    shared.flush_requested.store(true, Ordering::Relaxed);
    let done = loop {
        if shared.counters.queued.load(Ordering::Relaxed) == 0 {
            if shared.spool_pending() == 0 {
                break true;
            }
            if on_drop && shared.failing.load(Ordering::Relaxed) {
                break false;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        shared.wake.notify_one();
        let round = shared.round.lock().unwrap_or_else(|e| e.into_inner());
        let _ = shared
            .round_done
            .wait_timeout(round, left.min(Duration::from_millis(50)));
    };
    shared.flush_requested.store(false, Ordering::Relaxed);
    let counters = shared.counters();
    if done {
        tracing::debug!(?counters, "trail: flushed");
    } else {
        tracing::warn!(?counters, "trail: flush timed out; the rest stays spooled");
    }
    done
}

fn batcher_thread(shared: Arc<Shared>, sink: SinkConfig, rx: mpsc::Receiver<String>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "trail: no runtime for the recorder");
            return;
        }
    };
    runtime.block_on(Batcher::new(shared, sink).run(rx));
}

struct Batcher {
    shared: Arc<Shared>,
    sink_config: SinkConfig,
    sink: Option<Sink>,
    /// Failed delivery rounds in a row (for the backoff).
    failures: u32,
    /// No replay of the spool before this.
    next_try: Instant,
}

impl Batcher {
    fn new(shared: Arc<Shared>, sink_config: SinkConfig) -> Batcher {
        Batcher {
            shared,
            sink_config,
            sink: None,
            failures: 0,
            next_try: Instant::now(),
        }
    }

    fn config(&self) -> &Config {
        &self.shared.config
    }

    async fn run(mut self, mut rx: mpsc::Receiver<String>) {
        let batch_size = self.config().batch_size.max(1);
        let interval = self.config().flush_interval;
        let mut closed = false;
        loop {
            let mut batch = Vec::new();
            if !closed {
                let wait = if self.shared.spool_pending() > 0 {
                    self.next_try
                        .saturating_duration_since(Instant::now())
                        .min(interval)
                } else {
                    interval
                };
                tokio::select! {
                    line = rx.recv() => match line {
                        Some(line) => batch.push(line),
                        None => closed = true,
                    },
                    _ = self.shared.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                if !batch.is_empty() {
                    let deadline = tokio::time::Instant::now() + interval;
                    while batch.len() < batch_size {
                        match rx.try_recv() {
                            Ok(line) => {
                                batch.push(line);
                                continue;
                            }
                            Err(TryRecvError::Disconnected) => {
                                closed = true;
                                break;
                            }
                            Err(TryRecvError::Empty) => {}
                        }
                        if self.shared.flush_requested.load(Ordering::Relaxed) {
                            break;
                        }
                        tokio::select! {
                            line = rx.recv() => match line {
                                Some(line) => batch.push(line),
                                None => { closed = true; break; }
                            },
                            _ = tokio::time::sleep_until(deadline) => break,
                            _ = self.shared.wake.notified() => break,
                        }
                    }
                }
            } else {
                while batch.len() < batch_size {
                    match rx.try_recv() {
                        Ok(line) => batch.push(line),
                        Err(_) => break,
                    }
                }
            }
            let n = batch.len();
            let synced = self.shared.spool().sync();
            if let Err(error) = synced {
                tracing::error!(%error, "trail: cannot fsync the spool");
            }
            self.deliver(batch, closed).await;
            if !closed && self.shared.spool_pending() > 0 && Instant::now() >= self.next_try {
                self.replay().await;
            }
            if n > 0 || self.shared.flush_requested.load(Ordering::Relaxed) {
                let idle = rx.is_empty() && self.shared.spool_pending() == 0;
                if idle {
                    if let Some(sink) = &self.sink {
                        sink.flushed().await;
                    }
                }
            }
            self.shared
                .counters
                .queued
                .fetch_sub(n as u64, Ordering::Relaxed);
            self.shared.end_round();
            if closed && rx.is_empty() {
                break;
            }
        }
        if let Err(error) = self.shared.spool().sync() {
            tracing::error!(%error, "trail: cannot fsync the spool");
        }
        if let Some(sink) = &self.sink {
            sink.close().await;
        }
    }

    /// The sink, opened on first use (and again after a failed open).
    async fn sink(&mut self) -> Result<&Sink, SendError> {
        if self.sink.is_none() {
            let config = &self.shared.config;
            let sink = match &self.sink_config {
                SinkConfig::Remote { url, key } => {
                    Remote::new(url, key, config.request_timeout).map(Sink::Remote)
                }
                SinkConfig::Embedded { data_dir, tenant } => Embedded::open(data_dir, tenant)
                    .await
                    .map(|e| Sink::Embedded(Box::new(e))),
            };
            match sink {
                Ok(sink) => self.sink = Some(sink),
                Err(error) => return Err(SendError::Retry(error)),
            }
        }
        Ok(self.sink.as_ref().expect("opened"))
    }

    /// One attempt; abandoned (as a retryable failure) when the recorder
    /// is closing.
    async fn send(&mut self, lines: &[String]) -> Result<(), SendError> {
        let shared = Arc::clone(&self.shared);
        let stop = shared.stop.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if shared.stopping.load(Ordering::SeqCst) {
            return Err(SendError::Retry("the recorder is closing".into()));
        }
        tokio::select! {
            result = async { self.sink().await?.send(lines).await } => result,
            _ = stop => Err(SendError::Retry("the recorder is closing".into())),
        }
    }

    /// Sleeps, unless the recorder is closing.
    async fn pause(&self, delay: Duration) {
        let stop = self.shared.stop.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if self.shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop => {}
        }
    }

    fn backoff(&mut self) -> Duration {
        let config = &self.shared.config;
        let exp = config
            .backoff_base
            .saturating_mul(1u32 << self.failures.min(16))
            .min(config.backoff_max);
        // A server's Retry-After (at most a minute) is a floor.
        let asked = self
            .sink
            .as_ref()
            .and_then(Sink::take_retry_after)
            .map(|d| d.min(Duration::from_secs(60)));
        self.failures = self.failures.saturating_add(1);
        self.shared.failing.store(true, Ordering::Relaxed);
        // Between half and all of it.
        let mut byte = [0u8; 2];
        let _ = getrandom::fill(&mut byte);
        let fraction = 0.5 + f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX) / 2.0;
        let delay = exp.mul_f64(fraction);
        asked.map_or(delay, |asked| delay.max(asked))
    }

    /// Sends a new batch, with retries; spools it when the sink is down or
    /// when older events wait in the spool (so order is kept).
    async fn deliver(&mut self, batch: Vec<String>, closing: bool) {
        if batch.is_empty() {
            return;
        }
        if self.shared.spool_pending() > 0 {
            self.shared.spool_now(&batch, true);
            return;
        }
        let attempts = if closing {
            1
        } else {
            self.config().max_attempts.max(1)
        };
        for attempt in 0..attempts {
            match self.send(&batch).await {
                Ok(()) => {
                    add(&self.shared.counters.sent, batch.len());
                    self.failures = 0;
                    self.shared.failing.store(false, Ordering::Relaxed);
                    return;
                }
                Err(SendError::Refused(message)) => {
                    self.deliver_one_by_one(batch, &message).await;
                    return;
                }
                Err(SendError::Retry(message)) => {
                    if attempt + 1 < attempts {
                        add(&self.shared.counters.retried, 1);
                        let delay = self.backoff();
                        tracing::debug!(%message, ?delay, "trail: retrying a batch");
                        self.pause(delay).await;
                    } else {
                        tracing::warn!(%message, events = batch.len(), "trail: sink unavailable; spooling");
                    }
                }
            }
        }
        self.shared.spool_now(&batch, true);
        let delay = self.backoff();
        self.next_try = Instant::now() + delay;
    }

    /// A batch was refused as invalid: send its events one at a time so
    /// only the bad ones are lost.
    async fn deliver_one_by_one(&mut self, batch: Vec<String>, message: &str) {
        tracing::warn!(%message, "trail: a batch was refused; sending its events one by one");
        let mut retry = Vec::new();
        for line in batch {
            match self.send(std::slice::from_ref(&line)).await {
                Ok(()) => add(&self.shared.counters.sent, 1),
                Err(SendError::Refused(message)) => {
                    add(&self.shared.counters.dropped, 1);
                    tracing::error!(%message, "trail: an event was refused; dropped");
                }
                Err(SendError::Retry(_)) => retry.push(line),
            }
        }
        if !retry.is_empty() {
            self.shared.spool_now(&retry, true);
        }
    }

    /// Sends spooled events, oldest segment first, deleting each segment
    /// once all of it is acknowledged; stops at the first failure and
    /// backs off.
    async fn replay(&mut self) {
        let batch_size = self.config().batch_size.max(1);
        loop {
            // Sealed segments never change, so they are read without the
            // lock; the segment being appended to is sealed only once it is
            // the oldest left.
            let next = {
                let mut spool = self.shared.spool();
                match spool.sync().and_then(|()| spool.segments()) {
                    Ok(segments) => match segments.first() {
                        Some(&n) => {
                            let sealed = if spool.current() == Some(n) {
                                spool.seal()
                            } else {
                                Ok(())
                            };
                            sealed.map(|()| (n, spool.segment_path(n), spool.acked(n)))
                        }
                        None => return,
                    },
                    Err(error) => Err(error),
                }
            };
            let (segment, lines) = match next.and_then(|(n, path, acked)| {
                let mut lines = read_lines(&path)?;
                lines.drain(..acked.min(lines.len()));
                Ok((n, lines))
            }) {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(%error, "trail: cannot read the spool");
                    self.next_try = Instant::now() + self.backoff();
                    return;
                }
            };
            for chunk in lines.chunks(batch_size) {
                match self.send(chunk).await {
                    Ok(()) => {
                        add(&self.shared.counters.sent, chunk.len());
                        self.shared.spool().ack(segment, chunk.len());
                    }
                    Err(SendError::Refused(message)) => {
                        tracing::warn!(%message, "trail: a spooled batch was refused; one by one");
                        for line in chunk {
                            match self.send(std::slice::from_ref(line)).await {
                                Ok(()) => add(&self.shared.counters.sent, 1),
                                Err(SendError::Refused(message)) => {
                                    add(&self.shared.counters.dropped, 1);
                                    tracing::error!(%message, "trail: a spooled event was refused; dropped");
                                }
                                Err(SendError::Retry(message)) => {
                                    tracing::debug!(%message, "trail: replay interrupted");
                                    self.next_try = Instant::now() + self.backoff();
                                    return;
                                }
                            }
                            self.shared.spool().ack(segment, 1);
                        }
                    }
                    Err(SendError::Retry(message)) => {
                        add(&self.shared.counters.retried, 1);
                        let delay = self.backoff();
                        tracing::debug!(%message, ?delay, "trail: spool replay failed; backing off");
                        self.next_try = Instant::now() + delay;
                        return;
                    }
                }
            }
            let removed = self.shared.spool().remove(segment);
            if let Err(error) = removed {
                tracing::error!(%error, "trail: cannot delete a delivered spool segment");
                self.next_try = Instant::now() + self.backoff();
                return;
            }
            self.failures = 0;
            self.shared.failing.store(false, Ordering::Relaxed);
            if self.shared.spool_pending() == 0 {
                tracing::info!("trail: spool delivered");
            }
        }
    }
}
