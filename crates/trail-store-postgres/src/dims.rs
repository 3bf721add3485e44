//! How postgres indexes the equality filters. Each record carries its
//! identifying dims (`trail_store::dims`: user, session, project, task,
//! agent, documents) as a `text[]` of `<tenant>|<kind>:<value>` strings
//! under one GIN index (whose fast-update pending list keeps inserts cheap),
//! and a filter on them is one `dims @> ARRAY[...]` containment; the tenant
//! prefix keeps one tenant's values out of another's index lookups.
//!
//! The few-valued kinds (name, type, status, model, provider, transport,
//! confirmed) are plain columns instead: each GIN entry costs the writer,
//! and a filter on a value that many records share is answered as fast by
//! walking the log backwards.

use trail_core::record::IndexFields;
use trail_store::dims::{dims_of, DimKind};

/// Whether a kind of dim goes into the GIN index (else it is a column).
pub fn is_indexed(kind: DimKind) -> bool {
    matches!(
        kind,
        DimKind::User
            | DimKind::Session
            | DimKind::Project
            | DimKind::Task
            | DimKind::Agent
            | DimKind::Document
    )
}

/// The indexed string of one dim.
pub fn dim(tenant: i64, kind: DimKind, value: &str) -> String {
    format!("{tenant}|{}:{value}", kind as u8)
}

/// A record's dims as a PostgreSQL array literal (`{"..","..."}`), which the
/// bulk insert casts to `text[]` (an array of arrays cannot be unnested row
/// by row).
pub fn array_literal(tenant: i64, index: &IndexFields) -> String {
    let mut out = String::with_capacity(128);
    out.push('{');
    for (i, (kind, value)) in dims_of(index)
        .into_iter()
        .filter(|(kind, _)| is_indexed(*kind))
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        for c in dim(tenant, kind, value).chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_backslashes_are_escaped() {
        let value = serde_json::json!({"type": "tool_call", "name": "a\"b\\c,{d}"});
        let event = trail_store::conformance::event(value, trail_core::policy::ContentPolicy::Hash);
        let literal = array_literal(7, &event.index);
        assert_eq!(literal, "{}");
        let value =
            serde_json::json!({"type": "tool_call", "name": "n", "session_id": "a\"b\\c,{d}"});
        let event = trail_store::conformance::event(value, trail_core::policy::ContentPolicy::Hash);
        let literal = array_literal(7, &event.index);
        assert_eq!(literal, "{\"7|3:a\\\"b\\\\c,{d}\"}");
    }
}
