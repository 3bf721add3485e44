//! The JSON form of a tenant's settings and the one validation of changes
//! to them, shared by `PUT /v1/settings`, `trail settings set` against a
//! store, and the server-wide defaults of `trail serve`.

use serde_json::{json, Map, Value};
use trail_core::event::{EventType, FieldError};
use trail_core::policy::ContentPolicy;
use trail_store::TenantSettings;

use trail_store::retention::MAX_DAYS;

/// The settings as the API shows them.
pub fn settings_json(settings: &TenantSettings) -> Value {
    json!({
        "retention_days": settings.retention_days,
        "content_policy": settings.content_policy.as_str(),
        "record_types": settings.record_types.as_ref().map(|types| {
            types.iter().map(|t| t.as_str()).collect::<Vec<_>>()
        }),
        "audit_queries": settings.audit_queries,
    })
}

/// Applies the named fields (`retention_days`, `content_policy`,
/// `record_types`, `audit_queries`) to `settings`; fields not named keep
/// their value. Every bad or unknown field is reported, and then
/// `settings` is left unchanged.
pub fn apply_fields(
    settings: &mut TenantSettings,
    fields: &Map<String, Value>,
) -> Result<(), Vec<FieldError>> {
    let mut changed = settings.clone();
    let mut errors = Vec::new();
    for (name, value) in fields {
        let problem = match name.as_str() {
            "retention_days" => match value {
                Value::Null => {
                    changed.retention_days = None;
                    None
                }
                v => match v.as_u64() {
                    Some(days) if (1..=u64::from(MAX_DAYS)).contains(&days) => {
                        changed.retention_days = Some(days as u32);
                        None
                    }
                    _ => Some("must be null (keep forever) or an integer from 1 to 36500"),
                },
            },
            "content_policy" => {
                match value.as_str().and_then(|s| s.parse::<ContentPolicy>().ok()) {
                    Some(policy) => {
                        changed.content_policy = policy;
                        None
                    }
                    None => Some("must be one of: hash, summary, full"),
                }
            }
            "record_types" => match value {
                Value::Null => {
                    changed.record_types = None;
                    None
                }
                Value::Array(items) => {
                    let types: Option<Vec<EventType>> = items
                        .iter()
                        .map(|item| item.as_str().and_then(|s| s.parse().ok()))
                        .collect();
                    match types {
                        Some(types) => {
                            changed.record_types = Some(types);
                            None
                        }
                        None => Some("must be null or an array of event types"),
                    }
                }
                _ => Some("must be null or an array of event types"),
            },
            "audit_queries" => match value.as_bool() {
                Some(on) => {
                    changed.audit_queries = on;
                    None
                }
                None => Some("must be true or false"),
            },
            _ => Some("unknown field"),
        };
        if let Some(message) = problem {
            errors.push(FieldError {
                field: name.clone(),
                message: message.into(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    *settings = changed;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    }

    #[test]
    fn applies_named_fields_only() {
        let mut settings = TenantSettings::default();
        apply_fields(
            &mut settings,
            &object(json!({"retention_days": 90, "record_types": ["llm_call"]})),
        )
        .expect("valid");
        assert_eq!(settings.retention_days, Some(90));
        assert_eq!(settings.record_types, Some(vec![EventType::LlmCall]));
        assert_eq!(settings.content_policy, ContentPolicy::Hash);
        apply_fields(&mut settings, &object(json!({"retention_days": null}))).expect("valid");
        assert_eq!(settings.retention_days, None);
    }

    #[test]
    fn every_bad_field_is_named_and_nothing_changes() {
        let mut settings = TenantSettings::default();
        let errors = apply_fields(
            &mut settings,
            &object(json!({"retention_days": 0, "content_policy": "all",
                "record_types": ["nope"], "audit_queries": "yes", "extra": 1, "audit_queries_x": 1})),
        )
        .expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for field in [
            "retention_days",
            "content_policy",
            "record_types",
            "audit_queries",
            "extra",
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        let errors = apply_fields(
            &mut settings,
            &object(json!({"retention_days": 30, "audit_queries": 1})),
        )
        .expect_err("invalid");
        assert_eq!(errors.len(), 1);
        assert_eq!(settings, TenantSettings::default());
    }
}
