//! The plain data types that cross the [`Store`](crate::Store) boundary:
//! tenants, keys, settings, queries and their results.

use serde::{Deserialize, Serialize};
use trail_core::event::{Event, EventType, Status, Transport};
use trail_core::policy::ContentPolicy;
use trail_core::record::{prepare, PreparedEvent};
use uuid::Uuid;

/// A tenant: its internal id and its public name (the `tenant_id` of records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Internal numeric id, used in every table.
    pub id: i64,
    /// Public name, as it appears in envelopes and log origins.
    pub name: String,
}

/// The result of appending one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted {
    /// The event id (given or generated).
    pub id: Uuid,
    /// Its position in the tenant's log.
    pub seq: u64,
    /// Lowercase hex of the RFC 6962 leaf hash.
    #[serde(with = "hex32")]
    pub leaf_hash: [u8; 32],
    /// True when the id was already recorded with the same envelope.
    pub duplicate: bool,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Write events only.
    Ingest,
    /// Query only (optionally bound to one user).
    Read,
    /// Everything in its tenant.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// Parses `ingest`, `read` or `admin`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Whether the role may write events.
    pub fn can_ingest(self) -> bool {
        matches!(self, Role::Ingest | Role::Admin)
    }

    /// Whether the role may read records.
    pub fn can_read(self) -> bool {
        matches!(self, Role::Read | Role::Admin)
    }
}

/// A stored API key. The secret itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public identifier (the part of the key before the secret).
    pub key_id: String,
    /// The tenant the key belongs to.
    pub tenant: Tenant,
    /// What the key may do.
    pub role: Role,
    /// For read keys: the only user whose records it may see.
    pub user_id: Option<String>,
    /// SHA-256 of the secret part.
    pub secret_hash: [u8; 32],
    /// Free label given at creation.
    pub label: Option<String>,
    /// Creation time, unix microseconds.
    pub created_at: i64,
    /// Revocation time, unix microseconds.
    pub revoked_at: Option<i64>,
}

/// Per-tenant settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// Records older than this are swept; `None` keeps forever.
    pub retention_days: Option<u32>,
    /// What content is kept.
    pub content_policy: ContentPolicy,
    /// Only these types are recorded; `None` records every type.
    pub record_types: Option<Vec<EventType>>,
    /// Whether list and stats queries are themselves recorded.
    pub audit_queries: bool,
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            retention_days: None,
            content_policy: ContentPolicy::Hash,
            record_types: None,
            audit_queries: false,
        }
    }
}

impl TenantSettings {
    /// Prepares one validated event for the store under these settings:
    /// `None` when its type is not recorded; a missing transport becomes
    /// `default_transport` (the way it arrived). `salt` is the event's
    /// content-digest salt, from the caller's randomness.
    pub fn prepare(
        &self,
        mut event: Event,
        default_transport: Transport,
        salt: [u8; 32],
    ) -> Option<PreparedEvent> {
        if let Some(types) = &self.record_types {
            if !types.contains(&event.event_type) {
                return None;
            }
        }
        event.transport.get_or_insert(default_transport);
        Some(prepare(event, self.content_policy, salt, Uuid::now_v7()))
    }
}

/// Who is reading: the tenant, and the user a read key is bound to.
#[derive(Debug, Clone)]
pub struct ReadScope {
    /// The caller's tenant.
    pub tenant: Tenant,
    /// When set, only records with this `user_id` are visible.
    pub bound_user: Option<String>,
}

/// Equality and range filters shared by list and stats queries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// `type` equals.
    pub event_type: Option<EventType>,
    /// `name` equals.
    pub name: Option<String>,
    /// `name` contains, case-insensitive.
    pub name_contains: Option<String>,
    /// `user_id` equals.
    pub user_id: Option<String>,
    /// `session_id` equals.
    pub session_id: Option<String>,
    /// `project_id` equals.
    pub project_id: Option<String>,
    /// `task_id` equals.
    pub task_id: Option<String>,
    /// `agent_id` equals.
    pub agent_id: Option<String>,
    /// `transport` equals.
    pub transport: Option<Transport>,
    /// `status` equals.
    pub status: Option<Status>,
    /// `model` equals.
    pub model: Option<String>,
    /// `provider` equals.
    pub provider: Option<String>,
    /// `confirmed` equals.
    pub confirmed: Option<bool>,
    /// `document_ids` contains.
    pub document_id: Option<String>,
    /// Time (started_at, else received_at) at or after, unix µs.
    pub from: Option<i64>,
    /// Time (started_at, else received_at) before, unix µs.
    pub to: Option<i64>,
}

/// Sort order by seq.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Newest first (the default).
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// A list query.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Which records.
    pub filters: Filters,
    /// Sort order.
    pub order: Order,
    /// Page size, 1..=1000.
    pub limit: u32,
    /// Keyset cursor: continue after this seq (exclusive).
    pub after_seq: Option<u64>,
    /// Skip this many matching records (when no cursor).
    pub offset: u64,
    /// Also count every match.
    pub count: bool,
}

/// A stored record as the readers return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Position in the tenant's log.
    pub seq: u64,
    /// JCS bytes of the envelope (the RFC 6962 leaf).
    pub envelope: Vec<u8>,
    /// SHA-256(0x00 || envelope).
    pub leaf_hash: [u8; 32],
    /// JCS bytes of the content, when kept and not erased.
    pub content: Option<Vec<u8>>,
    /// The salt of the content digest, when content is kept.
    pub content_salt: Option<[u8; 32]>,
    /// The envelope commits to content that is gone.
    pub content_erased: bool,
}

impl StoredRecord {
    /// A record from its stored columns. A leaf hash of the wrong size reads
    /// as zeros, so that a record edited behind trail's back still reads and
    /// then fails verification at its seq, as any changed leaf hash does.
    pub fn from_columns(
        seq: u64,
        envelope: Vec<u8>,
        leaf_hash: Vec<u8>,
        has_content: bool,
        salt: Option<Vec<u8>>,
        body: Option<Vec<u8>>,
    ) -> StoredRecord {
        StoredRecord {
            seq,
            envelope,
            leaf_hash: leaf_hash.try_into().unwrap_or([0; 32]),
            content_erased: has_content && body.is_none(),
            content: body,
            content_salt: salt.and_then(|salt| <[u8; 32]>::try_from(salt).ok()),
        }
    }
}

/// One page of a list query.
#[derive(Debug, Clone, Default)]
pub struct Page {
    /// The records, in the query's order.
    pub records: Vec<StoredRecord>,
    /// Seq to pass as `after_seq` for the next page, when there may be one.
    pub next_cursor: Option<u64>,
    /// Every match, when `count` was asked.
    pub total: Option<u64>,
}

/// Bucket width of stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BucketWidth {
    /// One hour.
    Hour,
    /// One UTC day.
    #[default]
    Day,
}

impl BucketWidth {
    /// Width in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            BucketWidth::Hour => 3_600_000_000,
            BucketWidth::Day => 86_400_000_000,
        }
    }
}

/// A stats query.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    /// Which records.
    pub filters: Filters,
    /// Bucket width.
    pub bucket: BucketWidth,
    /// How many names in `top_names`.
    pub top: u32,
}

/// One time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// Bucket start, unix µs.
    pub start: i64,
    /// Records in the bucket.
    pub count: u64,
    /// Of which status error.
    pub errors: u64,
}

/// The result of a stats query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Non-empty buckets, oldest first.
    pub buckets: Vec<Bucket>,
    /// Count per event type.
    pub by_type: Vec<(EventType, u64)>,
    /// Most frequent names, most frequent first (ties by name).
    pub top_names: Vec<(String, u64)>,
    /// Matching records.
    pub total: u64,
    /// Of which status error.
    pub errors: u64,
    /// Median duration in ms over records that have one.
    pub p50_duration_ms: Option<u64>,
    /// 95th percentile duration in ms (nearest rank).
    pub p95_duration_ms: Option<u64>,
}

mod hex32 {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }
}

/// A signed checkpoint (C2SP tlog-checkpoint) as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size it commits to.
    pub size: u64,
    /// Merkle root at that size.
    pub root: [u8; 32],
    /// The whole signed note text.
    pub note: String,
    /// When it was cut, unix microseconds.
    pub created_at: i64,
}

/// The outcome of [`Store::retire`](crate::Store::retire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireOutcome {
    /// Another retirement of this tenant is running; nothing was done.
    Busy,
    /// The records with seq in `[first_seq, end_seq)` were retired (none
    /// when the range is empty).
    Retired {
        /// First retired seq.
        first_seq: u64,
        /// One past the last retired seq.
        end_seq: u64,
    },
}
