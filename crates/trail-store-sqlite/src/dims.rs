//! The `dims` dictionary: every filterable (kind, value) pair of a tenant gets
//! a small integer id, so the `postings` index stores integers instead of
//! strings and the planner knows how many records each value has.

use trail_core::record::IndexFields;

/// The kinds of filterable values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
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

/// A fast, non-cryptographic hasher for the writer's dims cache (the keys
/// are the writer's own strings, so flooding is not a concern, and SipHash
/// showed up in the ingest profile).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`FastHasher`]s.
pub type FastHash = std::hash::BuildHasherDefault<FastHasher>;
