//! `trail keys create|list|revoke`, against a store directly (`--data-dir`
//! or `--database-url`, safe while `trail serve` runs) or a server (`--url
//! --key ADMIN`). `create` prints only the new key on stdout.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Value};
use trail_server::auth;
use trail_server::routes::key_json;
use trail_store::Role;

use crate::store_arg::StoreArgs;
use crate::target::Target;
use crate::UsageError;

/// The keys subcommands.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key; prints only the key.
    Create(CreateArgs),
    /// List the keys of a tenant.
    List(ListArgs),
    /// Revoke a key by its id.
    Revoke(RevokeArgs),
    /// Print the log key's origin prefix and C2SP verifier key (vkey).
    LogKey(LogKeyCommandArgs),
}

/// Flags of `keys log-key`.
#[derive(Args, Debug)]
pub struct LogKeyCommandArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log_key: crate::log_key::LogKeyArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `keys create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    target: Target,
    /// ingest, read or admin.
    #[arg(long)]
    role: String,
    /// Bind a read key to one user_id.
    #[arg(long)]
    user: Option<String>,
    /// A label to recognise the key by.
    #[arg(long)]
    label: Option<String>,
    /// Print the key's JSON (with the key) instead of the key alone.
    #[arg(long)]
    json: bool,
}

/// Flags of `keys list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `keys revoke`.
#[derive(Args, Debug)]
pub struct RevokeArgs {
    #[command(flatten)]
    target: Target,
    /// The key id (the 16 hex characters after `trail_`).
    key_id: String,
}

/// Runs a keys subcommand.
pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(args) => list(args).await,
        KeysCommand::Revoke(args) => revoke(args).await,
        KeysCommand::LogKey(args) => log_key(args),
    }
}

fn log_key(args: LogKeyCommandArgs) -> anyhow::Result<()> {
    let key = args.log_key.load_or_create(&args.store.data_dir)?;
    let vkey = key.verifier().to_vkey();
    if args.json {
        println!("{}", json!({"origin_prefix": key.name(), "vkey": vkey}));
    } else {
        println!(
            "origin prefix: {} (logs are {}/<tenant>)",
            key.name(),
            key.name()
        );
        println!("vkey: {vkey}");
    }
    Ok(())
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let role = Role::parse(&args.role)
        .ok_or_else(|| UsageError("--role must be ingest, read or admin".into()))?;
    if args.user.is_some() && role != Role::Read {
        return Err(UsageError("--user only applies to read keys".into()).into());
    }
    let value = if let Some(client) = args.target.remote()? {
        let body = json!({"role": role.as_str(), "user_id": args.user, "label": args.label});
        client
            .call(
                Method::POST,
                "/v1/keys",
                &[],
                Some(serde_json::to_vec(&body)?),
            )
            .await?
    } else {
        let store = args.target.store.open().await?;
        let tenant = store.ensure_tenant(&args.target.tenant).await?;
        let key = auth::new_key(
            &tenant,
            role,
            args.user,
            args.label,
            trail_store::now_micros(),
        )
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        store.create_key(&key.record).await?;
        store.shutdown().await;
        let mut value = key_json(&key.record);
        value["key"] = json!(key.text);
        value
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", value["key"].as_str().unwrap_or_default());
    }
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let keys: Vec<Value> = if let Some(client) = args.target.remote()? {
        let value = client.call(Method::GET, "/v1/keys", &[], None).await?;
        value["keys"].as_array().cloned().unwrap_or_default()
    } else {
        let store = args.target.store.open().await?;
        let Some(tenant) = store.tenant(&args.target.tenant).await? else {
            return Err(anyhow::anyhow!("no tenant named {}", args.target.tenant));
        };
        let keys = store.list_keys(&tenant).await?;
        store.shutdown().await;
        keys.iter().map(key_json).collect()
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "keys": keys }))?
        );
        return Ok(());
    }
    println!(
        "{:<18} {:<7} {:<16} {:<28} {:<8} LABEL",
        "KEY ID", "ROLE", "USER", "CREATED", "STATE"
    );
    for key in keys {
        let text = |name: &str| key[name].as_str().unwrap_or("-").to_owned();
        let state = if key["revoked_at"].is_null() {
            "active"
        } else {
            "revoked"
        };
        println!(
            "{:<18} {:<7} {:<16} {:<28} {:<8} {}",
            text("key_id"),
            text("role"),
            text("user_id"),
            text("created_at"),
            state,
            text("label")
        );
    }
    Ok(())
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    if let Some(client) = args.target.remote()? {
        client
            .call(
                Method::DELETE,
                &format!("/v1/keys/{}", args.key_id),
                &[],
                None,
            )
            .await?;
    } else {
        let store = args.target.store.open().await?;
        let Some(tenant) = store.tenant(&args.target.tenant).await? else {
            return Err(anyhow::anyhow!("no tenant named {}", args.target.tenant));
        };
        store.revoke_key(&tenant, &args.key_id).await?;
        store.shutdown().await;
    }
    eprintln!("revoked {}", args.key_id);
    Ok(())
}
