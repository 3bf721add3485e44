//! `trail bench ingest`: drives a running server with realistic batched
//! events from several concurrent connections and reports events/s and
//! acknowledgement latency percentiles. With `--rate`, requests are paced to
//! a target event rate (to measure latency at a given load rather than at
//! saturation).
//!
//! Events mimic an agent fleet: LLM calls with provider, model, tokens and
//! message bodies; tool calls with arguments, results, exit codes and
//! durations; the odd escalation, connector fetch and document access; 1,000
//! users, 10,000 sessions, 20 projects, time-ordered (v7) ids as the SDK
//! sends them.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::Mutex;

use crate::client::{problem, Client};
use crate::UsageError;

/// The bench subcommands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Batched durable ingest over HTTP.
    Ingest(IngestArgs),
    /// Filtered page queries and stats against what `bench ingest` wrote.
    Query(QueryArgs),
}

/// Flags of `trail bench query`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// Server URL.
    #[arg(long, env = "TRAIL_URL", default_value = "http://127.0.0.1:8750")]
    url: String,
    /// A read (or admin) key.
    #[arg(long, env = "TRAIL_KEY", hide_env_values = true)]
    key: String,
    /// Page queries to time.
    #[arg(long, default_value_t = 500)]
    queries: u32,
    /// Stats queries to time (30 days, day buckets, and one filtered).
    #[arg(long, default_value_t = 20)]
    stats: u32,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Flags of `trail bench ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Server URL.
    #[arg(long, env = "TRAIL_URL", default_value = "http://127.0.0.1:8750")]
    url: String,
    /// An ingest (or admin) key.
    #[arg(long, env = "TRAIL_KEY", hide_env_values = true)]
    key: String,
    /// Events to send in all.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 8)]
    concurrency: u32,
    /// Events per request.
    #[arg(long, default_value_t = 1000)]
    batch: u32,
    /// Pace to this many events per second (default: as fast as acknowledged).
    #[arg(long)]
    rate: Option<u64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Runs a bench subcommand.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Ingest(args) => ingest(args).await,
        BenchCommand::Query(args) => query(args).await,
    }
}

/// Times one GET; fails on a non-2xx answer.
async fn timed_get(
    client: &Client,
    path: &str,
    query: &[(String, String)],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    client.call(reqwest::Method::GET, path, query, None).await?;
    Ok(started.elapsed())
}

fn percentile_ms(sorted: &[Duration], p: usize) -> f64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted
        .get(rank - 1)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Filtered first pages (limit 100) with the filters users reach for, one
/// at a time, then 30-day stats; reports p50/p95 of each.
async fn query(args: QueryArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.url, &args.key)?;
    let mut generator = Generator::new(0x5eed);
    let now = trail_store::now_micros();
    let hour_ago = trail_core::time::format_rfc3339(now - 3_600_000_000);
    let mut pages = Vec::with_capacity(args.queries as usize);
    for i in 0..args.queries {
        let pair = |k: &str, v: String| (k.to_owned(), v);
        let mut query = match i % 8 {
            0 => vec![pair("user_id", format!("user-{}", generator.below(1000)))],
            1 => vec![pair(
                "session_id",
                format!("session-{}", generator.below(10_000)),
            )],
            2 => vec![
                pair("type", "tool_call".into()),
                pair("status", "error".into()),
            ],
            3 => vec![pair("name_contains", "SEARCH".into())],
            4 => vec![
                pair("project_id", format!("project-{}", generator.below(20))),
                pair("type", "llm_call".into()),
                pair("model", "gpt-4.1".into()),
            ],
            5 => vec![pair(
                "document_id",
                format!("doc-{}", generator.below(50_000)),
            )],
            6 => vec![pair("from", hour_ago.clone())],
            _ => vec![
                pair("user_id", format!("user-{}", generator.below(1000))),
                pair("from", hour_ago.clone()),
            ],
        };
        query.push(("limit".into(), "100".into()));
        pages.push(timed_get(&client, "/v1/events", &query).await?);
    }
    let month_ago = trail_core::time::format_rfc3339(now - 30 * 86_400_000_000);
    let mut stats = Vec::with_capacity(args.stats as usize);
    for i in 0..args.stats {
        let mut query = vec![
            ("from".to_owned(), month_ago.clone()),
            ("bucket".to_owned(), "day".to_owned()),
        ];
        if i % 2 == 1 {
            query.push(("type".into(), "tool_call".into()));
        }
        stats.push(timed_get(&client, "/v1/stats", &query).await?);
    }
    pages.sort_unstable();
    stats.sort_unstable();
    let report = json!({
        "queries": pages.len(),
        "page_p50_ms": percentile_ms(&pages, 50),
        "page_p95_ms": percentile_ms(&pages, 95),
        "stats": stats.len(),
        "stats_p50_ms": percentile_ms(&stats, 50),
        "stats_p95_ms": percentile_ms(&stats, 95),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} filtered pages: p50 {:.1} ms, p95 {:.1} ms; {} 30-day stats: p50 {:.1} ms, p95 {:.1} ms",
            pages.len(),
            report["page_p50_ms"].as_f64().unwrap_or(0.0),
            report["page_p95_ms"].as_f64().unwrap_or(0.0),
            stats.len(),
            report["stats_p50_ms"].as_f64().unwrap_or(0.0),
            report["stats_p95_ms"].as_f64().unwrap_or(0.0),
        );
    }
    Ok(())
}

async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    if args.events == 0 || args.concurrency == 0 || args.batch == 0 {
        return Err(
            UsageError("--events, --concurrency and --batch must be positive".into()).into(),
        );
    }
    if args.batch > 10_000 {
        return Err(UsageError("--batch is at most 10000 (the server's limit)".into()).into());
    }
    let client = Arc::new(Client::new(&args.url, &args.key)?);
    let batches = args.events.div_ceil(u64::from(args.batch));
    let next_batch = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(batches as usize)));
    let progress = if std::io::stderr().is_terminal() && !args.json {
        let bar = ProgressBar::new(args.events);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let client = Arc::clone(&client);
        let next_batch = Arc::clone(&next_batch);
        let latencies = Arc::clone(&latencies);
        let progress = progress.clone();
        let (total, batch, rate) = (args.events, u64::from(args.batch), args.rate);
        workers.push(tokio::spawn(async move {
            let mut generator = Generator::new(0x9e37_79b9_7f4a_7c15 ^ u64::from(worker + 1));
            let mut own = Vec::new();
            loop {
                let index = next_batch.fetch_add(1, Ordering::Relaxed);
                let first = index * batch;
                if first >= total {
                    break;
                }
                let count = batch.min(total - first);
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(first as f64 / rate as f64);
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = generator.batch(count);
                let sent = Instant::now();
                let response = client
                    .http()
                    .post(format!("{}/v1/events", client.base()))
                    .bearer_auth(client.key())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .context("sending a batch")?;
                let status = response.status();
                let bytes = response.bytes().await.context("reading the answer")?;
                if !status.is_success() {
                    return Err(problem(status, &bytes));
                }
                own.push(sent.elapsed());
                progress.inc(count);
            }
            latencies.lock().await.extend(own);
            anyhow::Ok(())
        }));
    }
    for worker in workers {
        worker.await.context("a bench worker panicked")??;
    }
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let mut latencies = std::mem::take(&mut *latencies.lock().await);
    latencies.sort_unstable();
    let report = json!({
        "events": args.events,
        "requests": latencies.len(),
        "concurrency": args.concurrency,
        "batch": args.batch,
        "rate": args.rate,
        "seconds": elapsed.as_secs_f64(),
        "events_per_s": args.events as f64 / elapsed.as_secs_f64(),
        "p50_ms": percentile_ms(&latencies, 50),
        "p99_ms": percentile_ms(&latencies, 99),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "{} events in {:.2} s: {:.0} events/s; acknowledgement p50 {:.1} ms, p99 {:.1} ms ({} requests of {}, concurrency {})",
            args.events,
            elapsed.as_secs_f64(),
            report["events_per_s"].as_f64().unwrap_or(0.0),
            report["p50_ms"].as_f64().unwrap_or(0.0),
            report["p99_ms"].as_f64().unwrap_or(0.0),
            latencies.len(),
            args.batch,
            args.concurrency
        );
    }
    Ok(())
}

/// Makes realistic event batches; a small xorshift generator keeps it
/// deterministic per worker and cheap.
struct Generator {
    state: u64,
}

const TOOLS: &[&str] = &[
    "web.search",
    "fs.read",
    "fs.write",
    "sql.query",
    "bank.create_transfer",
    "crm.lookup",
    "email.send",
    "calendar.create",
    "code.run",
    "pdf.extract",
    "http.get",
    "vector.search",
];
const MODELS: &[(&str, &str)] = &[
    ("openai", "gpt-4.1"),
    ("openai", "gpt-4.1-mini"),
    ("anthropic", "claude-sonnet-4"),
    ("google", "gemini-2.5-pro"),
    ("mistral", "mistral-large"),
];

impl Generator {
    fn new(seed: u64) -> Self {
        Generator { state: seed.max(1) }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn batch(&mut self, count: u64) -> Vec<u8> {
        let mut events = Vec::with_capacity(count as usize);
        for _ in 0..count {
            events.push(self.event());
        }
        serde_json::to_vec(&events).unwrap_or_default()
    }

    fn event(&mut self) -> serde_json::Value {
        let user = self.below(1000);
        let session = self.below(10_000);
        let project = self.below(20);
        let duration = 5 + self.below(4000);
        let now = trail_store::now_micros();
        let started = trail_core::time::format_rfc3339(now - duration as i64 * 1000);
        let common = json!({
            "id": uuid::Uuid::now_v7(),
            "user_id": format!("user-{user}"),
            "session_id": format!("session-{session}"),
            "project_id": format!("project-{project}"),
            "agent_id": format!("agent-{}", project % 10),
            "started_at": started,
            "duration_ms": duration,
        });
        let mut event = match self.below(100) {
            0..=39 => {
                let (provider, model) = MODELS[self.below(MODELS.len() as u64) as usize];
                json!({
                    "type": "llm_call", "name": "chat", "provider": provider, "model": model,
                    "input_tokens": 200 + self.below(4000), "output_tokens": 20 + self.below(800),
                    "input": {"messages": [{"role": "user", "content": format!("Summarise the Q{} report for account {}", 1 + self.below(4), self.below(100_000))}]},
                    "output": "The report shows revenue up 4% quarter on quarter, driven by the new product line.",
                    "metadata": {"temperature": 0.2, "stream": true},
                })
            }
            40..=89 => {
                let tool = TOOLS[self.below(TOOLS.len() as u64) as usize];
                let failed = self.below(20) == 0;
                json!({
                    "type": "tool_call", "name": tool,
                    "status": if failed { "error" } else { "ok" },
                    "error": if failed { Some("upstream timed out after 30s") } else { None },
                    "exit_code": if failed { 1 } else { 0 },
                    "input": {"query": format!("customer {} invoices", self.below(100_000)), "limit": 20},
                    "output": {"rows": self.below(50), "truncated": false},
                    "input_summary": "query customer invoices",
                    "document_ids": [format!("doc-{}", self.below(50_000))],
                })
            }
            90..=93 => {
                json!({"type": "escalation", "name": "human.approval", "confirmed": self.below(2) == 0})
            }
            94..=96 => {
                json!({"type": "connector_fetch", "name": "sharepoint.fetch", "http_status": 200, "output_bytes": self.below(1_000_000)})
            }
            97 => {
                json!({"type": "document_upload", "name": "documents.upload", "document_ids": [format!("doc-{}", self.below(50_000))]})
            }
            98 => {
                json!({"type": "document_download", "name": "documents.download", "document_ids": [format!("doc-{}", self.below(50_000))]})
            }
            _ => json!({"type": "api_request", "name": "bank.create", "http_status": 201}),
        };
        if let (Some(event), Some(common)) = (event.as_object_mut(), common.as_object()) {
            for (key, value) in common {
                event.insert(key.clone(), value.clone());
            }
            event.retain(|_, value| !value.is_null());
        }
        event
    }
}
