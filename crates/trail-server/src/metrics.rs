//! Counters served at `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use trail_store::writer::WriterMetrics;

/// Request and ingest counters of this process.
#[derive(Default)]
pub struct Metrics {
    requests_2xx: AtomicU64,
    requests_4xx: AtomicU64,
    requests_5xx: AtomicU64,
    events_accepted: AtomicU64,
    events_duplicate: AtomicU64,
    rejected_requests: AtomicU64,
}

impl Metrics {
    /// Counts a finished request by status.
    pub fn record_status(&self, status: u16) {
        let counter = match status {
            500.. => &self.requests_5xx,
            400.. => &self.requests_4xx,
            _ => &self.requests_2xx,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts ingested events.
    pub fn record_ingest(&self, accepted: u64, duplicate: u64) {
        self.events_accepted.fetch_add(accepted, Ordering::Relaxed);
        self.events_duplicate
            .fetch_add(duplicate, Ordering::Relaxed);
    }

    /// Counts an ingest request rejected as invalid.
    pub fn record_rejected(&self) {
        self.rejected_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Renders every counter, with the writer's, as Prometheus text.
    pub fn render(&self, writer: &WriterMetrics) -> String {
        let mut out = String::new();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP trail_http_requests_total HTTP requests answered, by status class."
        );
        let _ = writeln!(out, "# TYPE trail_http_requests_total counter");
        for (class, counter) in [
            ("2xx", &self.requests_2xx),
            ("4xx", &self.requests_4xx),
            ("5xx", &self.requests_5xx),
        ] {
            let _ = writeln!(
                out,
                "trail_http_requests_total{{class=\"{class}\"}} {}",
                load(counter)
            );
        }
        let counters = [
            (
                "trail_events_accepted_total",
                "Events newly recorded.",
                load(&self.events_accepted),
            ),
            (
                "trail_events_duplicate_total",
                "Events acknowledged as idempotent resends.",
                load(&self.events_duplicate),
            ),
            (
                "trail_ingest_rejected_requests_total",
                "Ingest requests rejected as invalid (nothing of them stored).",
                load(&self.rejected_requests),
            ),
            (
                "trail_writer_commits_total",
                "Group-commit transactions committed.",
                writer.commits,
            ),
            (
                "trail_writer_failed_commits_total",
                "Group-commit transactions that failed.",
                writer.failed_commits,
            ),
            (
                "trail_writer_events_total",
                "Events acknowledged by the writer.",
                writer.events,
            ),
            (
                "trail_writer_jobs_total",
                "Requests handled by the writer.",
                writer.jobs,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP trail_writer_commit_seconds_total Time spent committing batches."
        );
        let _ = writeln!(out, "# TYPE trail_writer_commit_seconds_total counter");
        let _ = writeln!(
            out,
            "trail_writer_commit_seconds_total {}",
            writer.commit_micros as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "# HELP trail_writer_queued_jobs Requests waiting for the writer."
        );
        let _ = writeln!(out, "# TYPE trail_writer_queued_jobs gauge");
        let _ = writeln!(out, "trail_writer_queued_jobs {}", writer.queued_jobs);
        out
    }
}
