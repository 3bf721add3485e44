//! `trail query`: filtered records from a server, as a readable table or
//! `--json` (the API's own answer).

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use crate::client::Client;
use crate::record::ServerArgs;

/// Flags of `trail query`; each filter is the API parameter of the same name.
#[derive(Args, Debug)]
pub struct QueryArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Filter: event type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Filter: exact name.
    #[arg(long)]
    name: Option<String>,
    /// Filter: name contains (case-insensitive).
    #[arg(long)]
    name_contains: Option<String>,
    /// Filter: user.
    #[arg(long)]
    user_id: Option<String>,
    /// Filter: session.
    #[arg(long)]
    session_id: Option<String>,
    /// Filter: project.
    #[arg(long)]
    project_id: Option<String>,
    /// Filter: task.
    #[arg(long)]
    task_id: Option<String>,
    /// Filter: agent.
    #[arg(long)]
    agent_id: Option<String>,
    /// Filter: ok or error.
    #[arg(long)]
    status: Option<String>,
    /// Filter: model.
    #[arg(long)]
    model: Option<String>,
    /// From (RFC 3339, inclusive).
    #[arg(long)]
    from: Option<String>,
    /// To (RFC 3339, exclusive).
    #[arg(long)]
    to: Option<String>,
    /// Page size (1..=1000).
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Continue from a cursor printed by an earlier page.
    #[arg(long)]
    cursor: Option<String>,
    /// Oldest first.
    #[arg(long)]
    asc: bool,
    /// Print the API's JSON answer.
    #[arg(long)]
    json: bool,
}

/// Runs `trail query`.
pub async fn run(args: QueryArgs) -> anyhow::Result<()> {
    let mut query: Vec<(String, String)> = Vec::new();
    let filters = [
        ("type", &args.event_type),
        ("name", &args.name),
        ("name_contains", &args.name_contains),
        ("user_id", &args.user_id),
        ("session_id", &args.session_id),
        ("project_id", &args.project_id),
        ("task_id", &args.task_id),
        ("agent_id", &args.agent_id),
        ("status", &args.status),
        ("model", &args.model),
        ("from", &args.from),
        ("to", &args.to),
        ("cursor", &args.cursor),
    ];
    for (name, value) in filters {
        if let Some(value) = value {
            query.push((name.into(), value.clone()));
        }
    }
    query.push(("limit".into(), args.limit.to_string()));
    if args.asc {
        query.push(("order".into(), "asc".into()));
    }
    let client = Client::new(&args.server.url, &args.server.key)?;
    let answer = client.call(Method::GET, "/v1/events", &query, None).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    print_table(&answer);
    Ok(())
}

fn print_table(answer: &Value) {
    println!(
        "{:>8}  {:<27} {:<17} {:<32} {:<6} {:<16} {:>9}",
        "SEQ", "TIME", "TYPE", "NAME", "STATUS", "USER", "MS"
    );
    for event in answer["events"].as_array().into_iter().flatten() {
        let text = |name: &str| event[name].as_str().unwrap_or("-").to_owned();
        let time = event["started_at"]
            .as_str()
            .or_else(|| event["received_at"].as_str())
            .unwrap_or("-");
        let mut name = text("name");
        if name.chars().count() > 32 {
            name = name.chars().take(31).collect::<String>() + "…";
        }
        let duration = event["duration_ms"]
            .as_u64()
            .map_or("-".to_owned(), |ms| ms.to_string());
        println!(
            "{:>8}  {:<27} {:<17} {:<32} {:<6} {:<16} {:>9}",
            event["seq"],
            time,
            text("type"),
            name,
            text("status"),
            text("user_id"),
            duration
        );
    }
    if let Some(cursor) = answer["next_cursor"].as_str() {
        eprintln!("more: --cursor {cursor}");
    }
}
