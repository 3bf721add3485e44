//! `trail retention run [--older-than AGE]` and `trail erase --user U`,
//! through a server (`--url --key ADMIN`: `POST /v1/retention/run`,
//! `POST /v1/erasure`) or straight against a store (`--data-dir` /
//! `--database-url`, `--tenant`; safe while `trail serve` runs). Both paths
//! call `trail_store::retention` and print the same answer; from a store,
//! a checkpoint is cut afterwards when the log key is at hand.

use std::sync::Arc;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use trail_server::retention::{erased_json, retention_cutoff, swept_json};
use trail_store::retention::{self, parse_age};
use trail_store::{Store, Tenant, TenantSettings};

use crate::log_key::LogKeyArgs;
use crate::settings::DefaultSettingsArgs;
use crate::target::Target;
use crate::UsageError;

/// The retention subcommands.
#[derive(Subcommand, Debug)]
pub enum RetentionCommand {
    /// Retire the records older than --older-than, else than the tenant's
    /// retention_days (their leaf hashes stay, so the log still verifies).
    Run(RunArgs),
}

/// Flags of `retention run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    defaults: DefaultSettingsArgs,
    #[command(flatten)]
    log_key: LogKeyArgs,
    /// Retire records received longer ago than this: an integer and s, m, h
    /// or d (for example 90d).
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    /// Print the JSON answer.
    #[arg(long)]
    json: bool,
}

/// Flags of `trail erase`.
#[derive(Args, Debug)]
pub struct EraseArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    defaults: DefaultSettingsArgs,
    #[command(flatten)]
    log_key: LogKeyArgs,
    /// The user_id whose records lose their content.
    #[arg(long)]
    user: String,
    /// Print the JSON answer.
    #[arg(long)]
    json: bool,
}

/// Runs a retention subcommand.
pub async fn run(command: RetentionCommand) -> anyhow::Result<()> {
    match command {
        RetentionCommand::Run(args) => sweep(args).await,
    }
}

async fn sweep(args: RunArgs) -> anyhow::Result<()> {
    let age = match &args.older_than {
        Some(text) => Some(
            parse_age(text).map_err(|message| UsageError(format!("--older-than: {message}")))?,
        ),
        None => None,
    };
    let value = if let Some(client) = args.target.remote()? {
        let body = match &args.older_than {
            Some(text) => json!({ "older_than": text }),
            None => json!({}),
        };
        client
            .call(
                Method::POST,
                "/v1/retention/run",
                &[],
                Some(serde_json::to_vec(&body)?),
            )
            .await?
    } else {
        on_store(&args.target, &args.defaults, &args.log_key, |store, tenant, settings| async move {
            let now = trail_store::now_micros();
            let cutoff = match age {
                Some(age) => now.saturating_sub(age),
                None => retention_cutoff(&settings, now).ok_or_else(|| {
                    anyhow!(
                        "retention is not configured for tenant {}: set it (trail settings set --retention-days N) or give --older-than",
                        tenant.name
                    )
                })?,
            };
            let swept =
                retention::sweep(&*store, &tenant, cutoff, settings.content_policy, None).await?;
            swept_json(&swept).ok_or_else(|| {
                anyhow!("a sweep of tenant {} is running; try again later", tenant.name)
            })
        })
        .await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if value["status"] == "running" {
        println!("{}", value["detail"].as_str().unwrap_or("still running"));
    } else if value["retired"].as_u64().unwrap_or(0) == 0 {
        println!("nothing to retire");
    } else {
        println!(
            "retired {} records (seq {} to {}); recorded as event {} (seq {})",
            value["retired"],
            value["first_seq"],
            value["last_seq"],
            value["event"]["id"].as_str().unwrap_or_default(),
            value["event"]["seq"]
        );
    }
    Ok(())
}

/// Runs `trail erase`.
pub async fn erase(args: EraseArgs) -> anyhow::Result<()> {
    if args.user.is_empty() || args.user.chars().count() > 256 {
        return Err(UsageError("--user must be 1 to 256 characters".into()).into());
    }
    let value = if let Some(client) = args.target.remote()? {
        let body = json!({ "user_id": args.user });
        client
            .call(
                Method::POST,
                "/v1/erasure",
                &[],
                Some(serde_json::to_vec(&body)?),
            )
            .await?
    } else {
        let user = args.user.as_str();
        on_store(
            &args.target,
            &args.defaults,
            &args.log_key,
            |store, tenant, settings| async move {
                let (erased, event) =
                    retention::erase(&*store, &tenant, user, settings.content_policy, None).await?;
                Ok(erased_json(erased, &event))
            },
        )
        .await?
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else if value["status"] == "running" {
        println!("{}", value["detail"].as_str().unwrap_or("still running"));
    } else {
        println!(
            "erased the content of {} records of user {}; recorded as event {} (seq {})",
            value["erased"],
            args.user,
            value["event"]["id"].as_str().unwrap_or_default(),
            value["event"]["seq"]
        );
    }
    Ok(())
}

/// Runs `work` through [`Target::on_store`], then signs a checkpoint over
/// the grown log when the log key is at hand (a running server would do it
/// within a second; a store alone needs it here).
async fn on_store<F, Fut>(
    target: &Target,
    defaults: &DefaultSettingsArgs,
    log_key: &LogKeyArgs,
    work: F,
) -> anyhow::Result<Value>
where
    F: FnOnce(Arc<dyn Store>, Tenant, TenantSettings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    target
        .on_store(defaults, |store, tenant, settings| async move {
            let value = work(Arc::clone(&store), tenant.clone(), settings).await?;
            if let Some(key) = log_key.load_existing(&target.store.data_dir)? {
                trail_store::checkpoint::cut(&*store, &key, &tenant).await?;
            }
            Ok(value)
        })
        .await
}
