//! The filterable values of a record ("dims"): every (kind, value) pair an
//! equality filter can ask for. Both backends index exactly these: sqlite
//! through its dictionary and posting lists, postgres through a GIN index.

use trail_core::record::IndexFields;

use crate::{Filters, ReadScope};

/// The kinds of filterable values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum DimKind {
    Name = 1,
    User = 2,
    Session = 3,
    Project = 4,
    Task = 5,
    Agent = 6,
    Model = 7,
    Provider = 8,
    Document = 9,
    Type = 10,
    Status = 11,
    Transport = 12,
    Confirmed = 13,
    /// The hour of the record's time (started_at, else received_at), as
    /// `floor(ts / 1 h)` in decimal: time ranges are served by these lists.
    Hour = 14,
}

/// Every (kind, value) an event is filed under; the name comes first.
pub fn dims_of(index: &IndexFields) -> Vec<(DimKind, &str)> {
    let mut dims = Vec::with_capacity(12 + index.document_ids.len());
    dims.push((DimKind::Name, index.name.as_str()));
    dims.push((DimKind::Type, index.event_type.as_str()));
    dims.push((DimKind::Status, index.status.as_str()));
    let optional = [
        (DimKind::User, &index.user_id),
        (DimKind::Session, &index.session_id),
        (DimKind::Project, &index.project_id),
        (DimKind::Task, &index.task_id),
        (DimKind::Agent, &index.agent_id),
        (DimKind::Model, &index.model),
        (DimKind::Provider, &index.provider),
    ];
    for (kind, value) in optional {
        if let Some(value) = value {
            dims.push((kind, value.as_str()));
        }
    }
    if let Some(transport) = index.transport {
        dims.push((DimKind::Transport, transport.as_str()));
    }
    if let Some(confirmed) = index.confirmed {
        dims.push((DimKind::Confirmed, if confirmed { "true" } else { "false" }));
    }
    let mut documents: Vec<&str> = index.document_ids.iter().map(String::as_str).collect();
    documents.sort_unstable();
    documents.dedup();
    for document in documents {
        dims.push((DimKind::Document, document));
    }
    dims
}

/// Every (kind, value) a record must be filed under to match the scope's
/// user binding and the filters' equality conditions.
pub fn wanted_dims(scope: &ReadScope, filters: &Filters) -> Vec<(DimKind, String)> {
    let mut wanted: Vec<(DimKind, String)> = Vec::new();
    if let Some(user) = &scope.bound_user {
        wanted.push((DimKind::User, user.clone()));
    }
    let text = [
        (DimKind::Name, &filters.name),
        (DimKind::User, &filters.user_id),
        (DimKind::Session, &filters.session_id),
        (DimKind::Project, &filters.project_id),
        (DimKind::Task, &filters.task_id),
        (DimKind::Agent, &filters.agent_id),
        (DimKind::Model, &filters.model),
        (DimKind::Provider, &filters.provider),
        (DimKind::Document, &filters.document_id),
    ];
    for (kind, value) in text {
        if let Some(value) = value {
            wanted.push((kind, value.clone()));
        }
    }
    if let Some(event_type) = filters.event_type {
        wanted.push((DimKind::Type, event_type.as_str().to_owned()));
    }
    if let Some(status) = filters.status {
        wanted.push((DimKind::Status, status.as_str().to_owned()));
    }
    if let Some(transport) = filters.transport {
        wanted.push((DimKind::Transport, transport.as_str().to_owned()));
    }
    if let Some(confirmed) = filters.confirmed {
        wanted.push((DimKind::Confirmed, confirmed.to_string()));
    }
    wanted
}
