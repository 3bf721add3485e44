//! `trail record`: sends one event to a server, built from flags or read as
//! JSON from stdin (`trail record -` or no `--type`).

use std::io::Read;

use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value};

use crate::client::Client;
use crate::UsageError;

/// Server connection flags shared by record and query.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Server URL.
    #[arg(long, env = "TRAIL_URL", default_value = "http://127.0.0.1:8750")]
    pub url: String,
    /// API key.
    #[arg(long, env = "TRAIL_KEY", hide_env_values = true)]
    pub key: String,
}

/// Flags of `trail record`.
#[derive(Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Event type (llm_call, tool_call, ...). Without it, the event is read as JSON from stdin.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Event name.
    #[arg(long)]
    name: Option<String>,
    /// ok or error.
    #[arg(long)]
    status: Option<String>,
    /// Error message.
    #[arg(long)]
    error: Option<String>,
    /// Duration in milliseconds.
    #[arg(long)]
    duration_ms: Option<u64>,
    /// Who.
    #[arg(long)]
    user_id: Option<String>,
    /// Session.
    #[arg(long)]
    session_id: Option<String>,
    /// Project.
    #[arg(long)]
    project_id: Option<String>,
    /// Agent.
    #[arg(long)]
    agent_id: Option<String>,
    /// Model (llm_call).
    #[arg(long)]
    model: Option<String>,
    /// Provider (llm_call).
    #[arg(long)]
    provider: Option<String>,
    /// Metadata as a JSON object.
    #[arg(long)]
    metadata: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    /// Read the event from stdin (the default when --type is absent).
    #[arg(value_name = "-")]
    stdin: Option<String>,
}

/// Runs `trail record`.
pub async fn run(args: RecordArgs) -> anyhow::Result<()> {
    let body = match &args.event_type {
        None => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            if text.trim().is_empty() {
                return Err(UsageError(
                    "give --type and --name, or an event as JSON on stdin".into(),
                )
                .into());
            }
            text.into_bytes()
        }
        Some(event_type) => {
            let mut event = Map::new();
            event.insert("type".into(), Value::from(event_type.as_str()));
            let text = [
                ("name", &args.name),
                ("status", &args.status),
                ("error", &args.error),
                ("user_id", &args.user_id),
                ("session_id", &args.session_id),
                ("project_id", &args.project_id),
                ("agent_id", &args.agent_id),
                ("model", &args.model),
                ("provider", &args.provider),
            ];
            for (field, value) in text {
                if let Some(value) = value {
                    event.insert(field.into(), Value::from(value.as_str()));
                }
            }
            if let Some(ms) = args.duration_ms {
                event.insert("duration_ms".into(), Value::from(ms));
            }
            if let Some(metadata) = &args.metadata {
                let value: Value = serde_json::from_str(metadata)
                    .map_err(|e| UsageError(format!("--metadata is not JSON: {e}")))?;
                event.insert("metadata".into(), value);
            }
            serde_json::to_vec(&Value::Object(event))?
        }
    };
    let client = Client::new(&args.server.url, &args.server.key)?;
    let answer = client
        .call(Method::POST, "/v1/events", &[], Some(body))
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        for accepted in answer["accepted"].as_array().into_iter().flatten() {
            println!(
                "{} seq {} leaf {}{}",
                accepted["id"].as_str().unwrap_or(""),
                accepted["seq"],
                accepted["leaf_hash"].as_str().unwrap_or(""),
                if accepted["duplicate"] == Value::Bool(true) {
                    " (duplicate)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(())
}
