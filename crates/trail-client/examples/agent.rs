//! An agent loop that records N events through trail-client's helpers (a
//! mix of tool calls, failing tool calls, LLM calls and streamed LLM calls)
//! under one session id, flushes, and prints its counters as one JSON line.
//!
//! ```text
//! agent --url URL --key KEY --events N --session S      # to a trail server
//! agent --data-dir DIR --tenant T --events N --session S # embedded, no server
//! agent --url URL --key KEY --events 0                  # only replay the spool
//! agent --url URL --key KEY --events 100000 --bench     # ns per record(), events/s
//! ```
//!
//! `TRAIL_ENABLED`, `TRAIL_SPOOL_DIR`, `TRAIL_QUEUE_SIZE`, `TRAIL_BATCH_SIZE`,
//! `TRAIL_RECORD_TYPES` and `TRAIL_RECORD_NAMES` apply as in any agent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use serde_json::{json, Value};
use trail_client::{Config, Recorder, SinkConfig};

#[derive(Parser, Debug)]
#[command(about = "An example agent recording its tool and LLM calls to trail")]
struct Args {
    /// trail server URL (remote mode).
    #[arg(long, conflicts_with = "data_dir")]
    url: Option<String>,
    /// API key (remote mode).
    #[arg(long, default_value = "")]
    key: String,
    /// Data directory (embedded mode).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Tenant (embedded mode).
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Events to record; 0 only replays the spool.
    #[arg(long, default_value_t = 10)]
    events: u64,
    /// Session id of every event.
    #[arg(long, default_value = "example-session")]
    session: String,
    /// Spool directory (else TRAIL_SPOOL_DIR, else the default).
    #[arg(long)]
    spool_dir: Option<PathBuf>,
    /// Pause between two steps of the loop.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// How long the final flush may wait.
    #[arg(long, default_value_t = 60)]
    flush_timeout_secs: u64,
    /// Measure: ns per record() call and sustained events/s.
    #[arg(long)]
    bench: bool,
}

#[derive(Debug)]
struct ToolError(String);

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let mut config = Config::from_env();
    if let Some(url) = &args.url {
        config.sink = Some(SinkConfig::Remote {
            url: url.clone(),
            key: args.key.clone(),
        });
    } else if let Some(dir) = &args.data_dir {
        let embedded = Config::embedded(dir, &args.tenant);
        config.sink = embedded.sink;
        if std::env::var_os("TRAIL_SPOOL_DIR").is_none() {
            config.spool_dir = embedded.spool_dir;
        }
    }
    if let Some(dir) = &args.spool_dir {
        config.spool_dir = dir.clone();
    }
    let recorder = Recorder::new(config);
    let trail = recorder.with_fields(json!({
        "session_id": args.session,
        "agent_id": "example-agent",
        "user_id": "u-17",
    }));
    let start = Instant::now();
    let mut bench = Value::Null;
    if args.bench {
        let event = json!({"type": "tool_call", "name": "bench.step", "duration_ms": 1,
            "input": {"q": "weather in Lyon"}, "output": "sunny"});
        let t = Instant::now();
        for _ in 0..args.events {
            trail.record(event.clone());
        }
        let record_ns = t.elapsed().as_nanos() as f64 / args.events.max(1) as f64;
        // The same loop without record(): what the clone costs.
        let t = Instant::now();
        for _ in 0..args.events {
            std::hint::black_box(event.clone());
        }
        let clone_ns = t.elapsed().as_nanos() as f64 / args.events.max(1) as f64;
        bench = json!({"record_ns": (record_ns * 10.0).round() / 10.0,
            "event_clone_ns": (clone_ns * 10.0).round() / 10.0});
    } else {
        for i in 0..args.events {
            step(&trail, i).await;
            if args.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(args.delay_ms)).await;
            }
        }
    }
    let flushed = trail
        .flush_async(Duration::from_secs(args.flush_timeout_secs))
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    let counters = trail.counters();
    let mut out = json!({"flushed": flushed, "enabled": trail.is_enabled(), "counters": counters});
    if args.bench {
        bench["events_per_s"] = json!((counters.sent as f64 / elapsed).round());
        bench["seconds"] = json!((elapsed * 1000.0).round() / 1000.0);
        out["bench"] = bench;
    }
    println!("{out}");
}

/// One step of the agent loop: exactly one recorded event.
async fn step(trail: &Recorder, i: u64) {
    match i % 5 {
        0 => {
            let request =
                json!({"messages": [{"role": "user", "content": format!("step {i}: plan")}]});
            let answer = trail
                .llm_call("openai", "gpt-4.1", request, async {
                    Ok::<_, ToolError>(json!({
                        "choices": [{"message": {"role": "assistant", "content": "call search.web"}}],
                        "usage": {"prompt_tokens": 42, "completion_tokens": 7},
                    }))
                })
                .await;
            assert!(answer.is_ok());
        }
        1 | 2 => {
            let hits = trail
                .tool_call("search.web", json!({"q": format!("query {i}")}), async {
                    Ok::<_, ToolError>(vec!["https://example.org/a", "https://example.org/b"])
                })
                .await;
            assert!(hits.is_ok());
        }
        3 => {
            let read = trail
                .tool_call("fs.read", json!({"path": "/etc/missing"}), async {
                    Err::<String, _>(ToolError("no such file: /etc/missing".into()))
                })
                .await;
            // The tool's error comes back unchanged.
            assert_eq!(read.unwrap_err().0, "no such file: /etc/missing");
        }
        _ => {
            let chunks =
                futures_util::stream::iter(["The ", "answer ", "is 42."].map(Ok::<_, ToolError>));
            let mut stream = trail.llm_stream(
                "anthropic",
                "claude-sonnet-4",
                json!({"messages": [{"role": "user", "content": "answer"}]}),
                chunks,
            );
            let mut text = String::new();
            while let Some(chunk) = stream.next().await {
                text.push_str(chunk.expect("chunk"));
            }
            assert_eq!(text, "The answer is 42.");
        }
    }
}
