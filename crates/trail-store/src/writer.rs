//! The group-commit writer: one thread per process drains the ingest queue
//! into one transaction per batch, so concurrent requests share one fsync.
//!
//! Each HTTP request becomes an [`AppendJob`] on a bounded queue. The writer
//! thread blocks for the first job, then takes whatever else is already
//! queued (up to [`WriterConfig::max_batch_events`]) and hands the lot to the
//! backend's [`Committer`], which assigns seqs, seals, inserts and commits.
//! Only after the commit returns does any job get its reply, so an
//! acknowledgement always means durable. Under load the queue fills while the
//! previous commit syncs, so batches grow by themselves; at low load a lone
//! request commits at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use trail_core::record::PreparedEvent;

use crate::{Accepted, StoreError, Tenant};

/// The outcome of one job.
pub type JobResult = Result<Vec<Accepted>, StoreError>;

/// One request's events, waiting to be committed.
pub struct AppendJob {
    /// The tenant whose log the events join.
    pub tenant: Tenant,
    /// The prepared events, in request order.
    pub events: Vec<PreparedEvent>,
    reply: oneshot::Sender<JobResult>,
}

/// What a backend does with a batch of jobs.
pub trait Committer: Send + 'static {
    /// Writes every job in one transaction and returns one result per job,
    /// in order. A job that fails on its own (a conflicting id) is rolled back
    /// alone and the others commit; an `Err` fails every job of the batch and
    /// nothing of it may be left in the database.
    fn commit(&mut self, jobs: &[AppendJob]) -> Result<Vec<JobResult>, StoreError>;
}

/// Tuning of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Jobs (requests) the queue holds before senders wait.
    pub queue_jobs: usize,
    /// Events one transaction takes at most (a single larger job still
    /// commits whole).
    pub max_batch_events: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_jobs: 1024,
            max_batch_events: 50_000,
        }
    }
}

/// Counters of the writer, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterMetrics {
    /// Transactions committed.
    pub commits: u64,
    /// Transactions that failed as a whole.
    pub failed_commits: u64,
    /// Events acknowledged (duplicates included).
    pub events: u64,
    /// Jobs acknowledged or failed.
    pub jobs: u64,
    /// Total time spent in commits, microseconds.
    pub commit_micros: u64,
    /// Jobs waiting in the queue right now.
    pub queued_jobs: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    events: AtomicU64,
    jobs: AtomicU64,
    commit_micros: AtomicU64,
}

/// Handle to the writer thread.
pub struct Writer {
    sender: Mutex<Option<mpsc::Sender<AppendJob>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    queue_jobs: usize,
}

impl Writer {
    /// Starts the writer thread around a backend's committer.
    pub fn start(committer: impl Committer, config: WriterConfig) -> Writer {
        let (sender, receiver) = mpsc::channel(config.queue_jobs.max(1));
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let max_events = config.max_batch_events.max(1);
        let thread = std::thread::Builder::new()
            .name("trail-writer".into())
            .spawn(move || run(committer, receiver, max_events, &thread_counters))
            .ok();
        Writer {
            sender: Mutex::new(thread.as_ref().map(|_| sender)),
            thread: Mutex::new(thread),
            counters,
            queue_jobs: config.queue_jobs.max(1),
        }
    }

    /// Queues the events and waits until they are durable.
    pub async fn append(&self, tenant: Tenant, events: Vec<PreparedEvent>) -> JobResult {
        let sender = self
            .sender
            .lock()
            .map_err(|_| StoreError::Unavailable("writer lock poisoned".into()))?
            .clone()
            .ok_or_else(|| StoreError::Unavailable("shutting down".into()))?;
        let (reply, answer) = oneshot::channel();
        sender
            .send(AppendJob {
                tenant,
                events,
                reply,
            })
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped before commit".into()))?
    }

    /// A snapshot of the counters.
    pub fn metrics(&self) -> WriterMetrics {
        let queued_jobs = self
            .sender
            .lock()
            .ok()
            .and_then(|guard| {
                guard
                    .as_ref()
                    .map(|s| (self.queue_jobs - s.capacity()) as u64)
            })
            .unwrap_or(0);
        WriterMetrics {
            commits: self.counters.commits.load(Ordering::Relaxed),
            failed_commits: self.counters.failed_commits.load(Ordering::Relaxed),
            events: self.counters.events.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            commit_micros: self.counters.commit_micros.load(Ordering::Relaxed),
            queued_jobs,
        }
    }

    /// Closes the queue, lets the thread commit what is queued, and waits for
    /// it to finish. Appends after this answer `Unavailable`.
    pub async fn shutdown(&self) {
        if let Ok(mut guard) = self.sender.lock() {
            guard.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut guard| guard.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

fn run(
    mut committer: impl Committer,
    mut receiver: mpsc::Receiver<AppendJob>,
    max_events: usize,
    counters: &Counters,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut events = first.events.len();
        let mut jobs = vec![first];
        while events < max_events {
            match receiver.try_recv() {
                Ok(job) => {
                    events += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let outcome = committer.commit(&jobs);
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        counters.commit_micros.fetch_add(micros, Ordering::Relaxed);
        counters
            .jobs
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        match outcome {
            Ok(results) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                let mut results = results.into_iter();
                for job in jobs {
                    let result = results.next().unwrap_or_else(|| {
                        Err(StoreError::Backend(
                            "committer returned too few results".into(),
                        ))
                    });
                    if let Ok(accepted) = &result {
                        counters
                            .events
                            .fetch_add(accepted.len() as u64, Ordering::Relaxed);
                    }
                    let _ = job.reply.send(result);
                }
            }
            Err(error) => {
                counters.failed_commits.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%error, jobs = jobs.len(), "batch commit failed");
                for job in jobs {
                    let _ = job.reply.send(Err(error.clone()));
                }
            }
        }
    }
    tracing::debug!("writer queue closed and drained");
}
