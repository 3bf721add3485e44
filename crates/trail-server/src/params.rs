//! Query-string parameters of the read endpoints, parsed strictly: an
//! unknown or repeated parameter and every bad value is reported, each under
//! its own name, in one 400.

use std::collections::HashMap;

use trail_core::event::{EventType, FieldError, Status, Transport};
use trail_store::{BucketWidth, EventQuery, Filters, Order, StatsQuery};

use crate::error::ApiError;

/// Default and maximum page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest `limit` accepted.
pub const MAX_LIMIT: u32 = 1000;

const FILTER_NAMES: &[&str] = &[
    "type",
    "name",
    "name_contains",
    "user_id",
    "session_id",
    "project_id",
    "task_id",
    "agent_id",
    "transport",
    "status",
    "model",
    "provider",
    "confirmed",
    "document_id",
    "from",
    "to",
];

struct Params {
    values: HashMap<String, String>,
    errors: Vec<FieldError>,
}

impl Params {
    fn new(pairs: Vec<(String, String)>, allowed: &[&[&str]]) -> Self {
        let mut values = HashMap::new();
        let mut errors = Vec::new();
        for (name, value) in pairs {
            if !allowed.iter().any(|names| names.contains(&name.as_str())) {
                errors.push(error(&name, "unknown parameter"));
            } else if values.insert(name.clone(), value).is_some() {
                errors.push(error(&name, "given more than once"));
            }
        }
        Params { values, errors }
    }

    fn text(&mut self, name: &str) -> Option<String> {
        let value = self.values.get(name)?;
        if value.is_empty() || value.chars().count() > 256 {
            self.errors.push(error(name, "must be 1 to 256 characters"));
            return None;
        }
        Some(value.clone())
    }

    fn parsed<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, String>) -> Option<T> {
        let value = self.values.get(name)?;
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.errors.push(error(name, &message));
                None
            }
        }
    }

    fn filters(&mut self) -> Filters {
        let enum_of = |allowed: &[&str]| format!("must be one of: {}", allowed.join(", "));
        let types: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        let transports: Vec<&str> = Transport::ALL.iter().map(|t| t.as_str()).collect();
        Filters {
            event_type: self.parsed("type", |v| {
                v.parse::<EventType>().map_err(|_| enum_of(&types))
            }),
            name: self.text("name"),
            name_contains: self.text("name_contains"),
            user_id: self.text("user_id"),
            session_id: self.text("session_id"),
            project_id: self.text("project_id"),
            task_id: self.text("task_id"),
            agent_id: self.text("agent_id"),
            transport: self.parsed("transport", |v| {
                v.parse::<Transport>().map_err(|_| enum_of(&transports))
            }),
            status: self.parsed("status", |v| {
                v.parse::<Status>().map_err(|_| enum_of(&["ok", "error"]))
            }),
            model: self.text("model"),
            provider: self.text("provider"),
            confirmed: self.parsed("confirmed", parse_bool),
            document_id: self.text("document_id"),
            from: self.parsed("from", trail_core::time::parse_rfc3339),
            to: self.parsed("to", trail_core::time::parse_rfc3339),
        }
    }

    fn finish<T>(self, value: T) -> Result<T, ApiError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            let detail = describe(&self.errors);
            Err(ApiError::invalid(detail, self.errors))
        }
    }
}

fn error(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

fn describe(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    parts.join("; ")
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

/// Parses the parameters of `GET /v1/events`.
pub fn event_query(pairs: Vec<(String, String)>) -> Result<EventQuery, ApiError> {
    let mut params = Params::new(
        pairs,
        &[
            FILTER_NAMES,
            &["limit", "cursor", "offset", "count", "order"],
        ],
    );
    let filters = params.filters();
    let limit = params
        .parsed("limit", |v| match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("must be an integer from 1 to {MAX_LIMIT}")),
        })
        .unwrap_or(DEFAULT_LIMIT);
    let after_seq = params.parsed("cursor", |v| {
        v.parse::<u64>()
            .map_err(|_| "is not a cursor this server returned".to_string())
    });
    let offset = params
        .parsed("offset", |v| {
            v.parse::<u64>()
                .map_err(|_| "must be a non-negative integer".to_string())
        })
        .unwrap_or(0);
    let count = params.parsed("count", parse_bool).unwrap_or(false);
    let order = params
        .parsed("order", |v| match v {
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            _ => Err("must be asc or desc".into()),
        })
        .unwrap_or_default();
    params.finish(EventQuery {
        filters,
        order,
        limit,
        after_seq,
        offset,
        count,
    })
}

/// Parses the parameters of `GET /v1/stats`.
pub fn stats_query(pairs: Vec<(String, String)>) -> Result<StatsQuery, ApiError> {
    let mut params = Params::new(pairs, &[FILTER_NAMES, &["bucket", "top"]]);
    let filters = params.filters();
    let bucket = params
        .parsed("bucket", |v| match v {
            "hour" => Ok(BucketWidth::Hour),
            "day" => Ok(BucketWidth::Day),
            _ => Err("must be hour or day".into()),
        })
        .unwrap_or_default();
    let top = params
        .parsed("top", |v| match v.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err("must be an integer from 1 to 100".into()),
        })
        .unwrap_or(10);
    params.finish(StatsQuery {
        filters,
        bucket,
        top,
    })
}

/// Parses non-negative integer parameters: only `names` are allowed, and
/// those in `required` must be present.
pub fn numbers(
    pairs: Vec<(String, String)>,
    names: &[&str],
    required: &[&str],
) -> Result<std::collections::HashMap<String, u64>, ApiError> {
    let mut params = Params::new(pairs, &[names]);
    let mut out = std::collections::HashMap::new();
    for name in names {
        if let Some(value) = params.parsed(name, |v| {
            v.parse::<u64>()
                .map_err(|_| "must be a non-negative integer".to_string())
        }) {
            out.insert((*name).to_owned(), value);
        } else if required.contains(name) && !params.values.contains_key(*name) {
            params.errors.push(error(name, "is required"));
        }
    }
    params.finish(out)
}

/// A request body that must be one JSON object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_field("body", format!("malformed JSON: {error}")))?;
    match value {
        serde_json::Value::Object(fields) => Ok(fields),
        _ => Err(ApiError::bad_field("body", "must be a JSON object")),
    }
}
