//! `trail settings show|set`, against a server (`--url --key ADMIN`, the
//! settings API) or a store (`--data-dir` / `--database-url`, `--tenant`);
//! and the server-wide defaults of tenants that never set settings
//! (`TRAIL_RETENTION_DAYS`, `TRAIL_CONTENT_POLICY`, `TRAIL_RECORD_TYPES`),
//! which `trail serve` applies and the store path of these commands shows.
//!
//! Both paths build the same JSON object from the flags; the server and the
//! store path validate it with the one `trail_server::tenant_settings`
//! function.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Map, Value};
use trail_server::tenant_settings::{apply_fields, settings_json};
use trail_store::TenantSettings;

use crate::target::Target;
use crate::UsageError;

/// The settings of tenants that never set their own.
#[derive(Args, Debug, Clone, Default)]
pub struct DefaultSettingsArgs {
    /// Retention in days of tenants that never set settings (unset: keep
    /// forever).
    #[arg(
        id = "default_retention_days",
        long = "default-retention-days",
        env = "TRAIL_RETENTION_DAYS",
        value_name = "DAYS"
    )]
    pub retention_days: Option<String>,
    /// Content policy of tenants that never set settings: hash, summary or
    /// full (default hash).
    #[arg(
        id = "default_content_policy",
        long = "default-content-policy",
        env = "TRAIL_CONTENT_POLICY",
        value_name = "POLICY"
    )]
    pub content_policy: Option<String>,
    /// Comma-separated event types recorded for tenants that never set
    /// settings (unset: every type).
    #[arg(
        id = "default_record_types",
        long = "default-record-types",
        env = "TRAIL_RECORD_TYPES",
        value_name = "TYPES"
    )]
    pub record_types: Option<String>,
}

impl DefaultSettingsArgs {
    /// The defaults, validated like `PUT /v1/settings`; a bad value is a
    /// usage error naming its variable and flag.
    pub fn settings(&self) -> Result<TenantSettings, UsageError> {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let fields = fields_from_flags(
            given(&self.retention_days).as_deref(),
            given(&self.content_policy).as_deref(),
            given(&self.record_types).as_deref(),
            None,
        );
        let mut settings = TenantSettings::default();
        apply_fields(&mut settings, &fields).map_err(|errors| {
            let names = |field: &str| match field {
                "retention_days" => "TRAIL_RETENTION_DAYS (--default-retention-days)",
                "content_policy" => "TRAIL_CONTENT_POLICY (--default-content-policy)",
                "record_types" => "TRAIL_RECORD_TYPES (--default-record-types)",
                _ => "a default setting",
            };
            let problems: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", names(&e.field), e.message))
                .collect();
            UsageError(problems.join("; "))
        })?;
        Ok(settings)
    }
}

/// The settings API's JSON fields from command-line text: retention days
/// (`off`, `forever` or `none`: keep forever), a content policy, a comma
/// list of event types (`all`: every type), `on`/`off`. Anything that is not
/// one of these is passed on as text for the validation to name.
fn fields_from_flags(
    retention_days: Option<&str>,
    content_policy: Option<&str>,
    record_types: Option<&str>,
    audit_queries: Option<&str>,
) -> Map<String, Value> {
    let mut fields = Map::new();
    if let Some(days) = retention_days {
        let value = match days.trim() {
            "off" | "forever" | "none" => Value::Null,
            text => text
                .parse::<u64>()
                .map_or_else(|_| Value::from(text), Value::from),
        };
        fields.insert("retention_days".into(), value);
    }
    if let Some(policy) = content_policy {
        fields.insert("content_policy".into(), policy.trim().into());
    }
    if let Some(types) = record_types {
        let value = match types.trim() {
            "all" => Value::Null,
            list => Value::Array(
                list.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Value::from)
                    .collect(),
            ),
        };
        fields.insert("record_types".into(), value);
    }
    if let Some(on) = audit_queries {
        let value = match on.trim() {
            "on" | "true" | "yes" => Value::Bool(true),
            "off" | "false" | "no" => Value::Bool(false),
            text => Value::from(text),
        };
        fields.insert("audit_queries".into(), value);
    }
    fields
}

/// The settings subcommands.
#[derive(Subcommand, Debug)]
pub enum SettingsCommand {
    /// Show the tenant's settings.
    Show(ShowArgs),
    /// Change some of the tenant's settings (the others keep their value).
    Set(SetArgs),
}

/// Flags of `settings show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    defaults: DefaultSettingsArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Flags of `settings set`.
#[derive(Args, Debug)]
pub struct SetArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    defaults: DefaultSettingsArgs,
    /// Retire records older than this many days (1..36500; `off`: keep
    /// forever).
    #[arg(long, value_name = "DAYS|off")]
    retention_days: Option<String>,
    /// hash, summary or full.
    #[arg(long, value_name = "POLICY")]
    content_policy: Option<String>,
    /// Comma-separated event types to record (`all`: every type).
    #[arg(long, value_name = "TYPES|all")]
    record_types: Option<String>,
    /// Record list and stats queries too: on or off.
    #[arg(long, value_name = "on|off")]
    audit_queries: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a settings subcommand.
pub async fn run(command: SettingsCommand) -> anyhow::Result<()> {
    match command {
        SettingsCommand::Show(args) => {
            let value = if let Some(client) = args.target.remote()? {
                client.call(Method::GET, "/v1/settings", &[], None).await?
            } else {
                args.target
                    .on_store(&args.defaults, |_, _, settings| async move {
                        Ok(settings_json(&settings))
                    })
                    .await?
            };
            print(&value, args.json)
        }
        SettingsCommand::Set(args) => {
            let fields = fields_from_flags(
                args.retention_days.as_deref(),
                args.content_policy.as_deref(),
                args.record_types.as_deref(),
                args.audit_queries.as_deref(),
            );
            if fields.is_empty() {
                return Err(UsageError(
                    "nothing to set: give --retention-days, --content-policy, --record-types or --audit-queries".into(),
                )
                .into());
            }
            let value = if let Some(client) = args.target.remote()? {
                let body = serde_json::to_vec(&Value::Object(fields))?;
                client
                    .call(Method::PUT, "/v1/settings", &[], Some(body))
                    .await?
            } else {
                args.target
                    .on_store(&args.defaults, |store, tenant, mut settings| async move {
                        apply_fields(&mut settings, &fields).map_err(|errors| {
                            let problems: Vec<String> = errors
                                .iter()
                                .map(|e| format!("--{}: {}", e.field.replace('_', "-"), e.message))
                                .collect();
                            UsageError(problems.join("; "))
                        })?;
                        store.put_settings(&tenant, &settings).await?;
                        Ok(settings_json(&settings))
                    })
                    .await?
            };
            print(&value, args.json)
        }
    }
}

fn print(value: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
        return Ok(());
    }
    let text = |name: &str, none: &str| match &value[name] {
        Value::Null => none.to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(","),
        Value::Bool(true) => "on".into(),
        Value::Bool(false) => "off".into(),
        other => other.to_string(),
    };
    println!(
        "retention_days: {}",
        text("retention_days", "off (keep forever)")
    );
    println!("content_policy: {}", text("content_policy", "hash"));
    println!("record_types:   {}", text("record_types", "all"));
    println!("audit_queries:  {}", text("audit_queries", "off"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use trail_core::policy::ContentPolicy;

    #[test]
    fn defaults_parse_and_bad_ones_name_their_variable() {
        let args = DefaultSettingsArgs {
            retention_days: Some("90".into()),
            content_policy: Some("full".into()),
            record_types: Some("llm_call, tool_call".into()),
        };
        let settings = args.settings().expect("valid");
        assert_eq!(settings.retention_days, Some(90));
        assert_eq!(settings.content_policy, ContentPolicy::Full);
        assert_eq!(settings.record_types.map(|t| t.len()), Some(2));
        assert_eq!(
            DefaultSettingsArgs::default().settings().expect("none"),
            TenantSettings::default()
        );
        for (args, variable) in [
            (
                DefaultSettingsArgs {
                    retention_days: Some("ninety".into()),
                    ..DefaultSettingsArgs::default()
                },
                "TRAIL_RETENTION_DAYS",
            ),
            (
                DefaultSettingsArgs {
                    content_policy: Some("most".into()),
                    ..DefaultSettingsArgs::default()
                },
                "TRAIL_CONTENT_POLICY",
            ),
            (
                DefaultSettingsArgs {
                    record_types: Some("llm_call,nope".into()),
                    ..DefaultSettingsArgs::default()
                },
                "TRAIL_RECORD_TYPES",
            ),
        ] {
            let error = args.settings().expect_err("invalid");
            assert!(error.0.contains(variable), "{error}");
        }
    }

    #[test]
    fn flags_become_api_fields() {
        let fields = fields_from_flags(Some("off"), None, Some("all"), Some("on"));
        assert_eq!(fields["retention_days"], Value::Null);
        assert_eq!(fields["record_types"], Value::Null);
        assert_eq!(fields["audit_queries"], Value::Bool(true));
        let fields = fields_from_flags(Some("30"), Some("summary"), Some("llm_call"), None);
        assert_eq!(fields["retention_days"], 30);
        assert_eq!(fields["record_types"], serde_json::json!(["llm_call"]));
        assert!(!fields.contains_key("audit_queries"));
    }
}
