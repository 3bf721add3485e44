//! [`LogVerifier`]: checks one tenant's log record by record against its
//! signed checkpoints, the way `trail verify` and any third party do it.
//!
//! Feed it the kept checkpoints first ([`LogVerifier::expect_checkpoint`]:
//! each must carry a valid signature by a trusted key and name the log's
//! origin), then every record in seq order ([`LogVerifier::record`]). For
//! each record it checks that the seq is the next one, that the stored leaf
//! hash is `SHA-256(0x00 || envelope)`, that the envelope (canonical JSON)
//! names this seq and tenant, and, when content is present, that
//! `SHA-256(salt || content)` is the envelope's `content_digest`; it then
//! grows the Merkle tree and, at each checkpoint size, compares the root
//! with the signed one. [`LogVerifier::finish`] fails when a checkpoint
//! covers records that never came. Errors name the first seq that is wrong
//! (for a root mismatch: the first seq not covered by an earlier verified
//! checkpoint, since a consistent rewrite can only be located that far).

use std::collections::BTreeMap;

use crate::checkpoint::open_checkpoint;
use crate::hashing::{content_digest, leaf_hash};
use crate::merkle::{CompactRange, Hash};
use crate::note::Verifier;

/// Why a log does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// One record is wrong.
    #[error("seq {seq}: {what}")]
    Record {
        /// The record's position.
        seq: u64,
        /// What is wrong with it.
        what: String,
    },
    /// A signed checkpoint does not match the records.
    #[error("checkpoint of size {size}: {what}; first seq not covered by a verified checkpoint: {first_bad}")]
    Checkpoint {
        /// The checkpoint's tree size.
        size: u64,
        /// The first seq that may be affected.
        first_bad: u64,
        /// What is wrong.
        what: String,
    },
    /// A checkpoint note is not valid (signature, origin, format).
    #[error("checkpoint note: {0}")]
    Note(String),
}

impl LogError {
    /// The first seq the error affects, when it is about records.
    pub fn first_bad_seq(&self) -> Option<u64> {
        match self {
            LogError::Record { seq, .. } => Some(*seq),
            LogError::Checkpoint { first_bad, .. } => Some(*first_bad),
            LogError::Note(_) => None,
        }
    }
}

/// What was verified.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifySummary {
    /// Records checked.
    pub records: u64,
    /// Of which with content checked against its digest.
    pub with_content: u64,
    /// Of which whose envelope commits to content that is gone.
    pub content_absent: u64,
    /// Signed checkpoints whose root matched.
    pub checkpoints: u64,
}

/// Incremental verifier of one tenant's log.
pub struct LogVerifier {
    origin: String,
    verifiers: Vec<Verifier>,
    tenant_member: String,
    range: CompactRange,
    expected: BTreeMap<u64, Hash>,
    verified_upto: u64,
    summary: VerifySummary,
}

/// A record that passed [`LogVerifier::check`], ready to be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    position: u64,
    leaf: Hash,
    with_content: bool,
    content_absent: bool,
}

impl LogVerifier {
    /// A verifier for the log of `tenant` with this `origin`, trusting
    /// checkpoints signed by any of `verifiers`.
    pub fn new(tenant: &str, origin: &str, verifiers: Vec<Verifier>) -> Self {
        // The member as JCS writes it (the name escaped as a JSON string).
        let mut member = b",\"tenant_id\":".to_vec();
        let _ = crate::jcs::write(&serde_json::Value::from(tenant), &mut member);
        member.push(b',');
        let tenant_member = String::from_utf8_lossy(&member).into_owned();
        LogVerifier {
            origin: origin.to_owned(),
            verifiers,
            tenant_member,
            range: CompactRange::new(),
            expected: BTreeMap::new(),
            verified_upto: 0,
            summary: VerifySummary::default(),
        }
    }

    /// Adds a signed checkpoint the records must match; returns its size.
    pub fn expect_checkpoint(&mut self, note: &str) -> Result<u64, LogError> {
        let checkpoint = open_checkpoint(note, &self.verifiers)
            .map_err(|error| LogError::Note(error.to_string()))?;
        if checkpoint.origin != self.origin {
            return Err(LogError::Note(format!(
                "origin {:?} is not this log's ({:?})",
                checkpoint.origin, self.origin
            )));
        }
        if let Some(root) = self.expected.get(&checkpoint.size) {
            if *root != checkpoint.root {
                return Err(LogError::Checkpoint {
                    size: checkpoint.size,
                    first_bad: 0,
                    what: "two signed checkpoints of this size disagree".into(),
                });
            }
        }
        if checkpoint.size < self.range.size() {
            return Err(LogError::Note(format!(
                "checkpoint of size {} came after {} records; give checkpoints first",
                checkpoint.size,
                self.range.size()
            )));
        }
        self.expected.insert(checkpoint.size, checkpoint.root);
        if checkpoint.size == 0 {
            self.check_root()?;
        }
        Ok(checkpoint.size)
    }

    /// Checks the next record; returns the subtree hashes (level >= 1) its
    /// leaf completed, for comparison with stored ones.
    pub fn record(
        &mut self,
        seq: u64,
        envelope: &[u8],
        stored_leaf: &Hash,
        content: Option<(&[u8], &[u8; 32])>,
    ) -> Result<Vec<(u8, u64, Hash)>, LogError> {
        let checked = self.check(self.range.size(), seq, envelope, stored_leaf, content)?;
        self.append(checked)
    }

    /// The checks of one record that need no other record: that it is at
    /// `position`, that its leaf hash is its envelope's, that its envelope
    /// names its seq and tenant, that its content matches the digest. Takes
    /// `&self`, so the records of a page can be checked on several threads
    /// before [`LogVerifier::append`] adds them in order.
    pub fn check(
        &self,
        position: u64,
        seq: u64,
        envelope: &[u8],
        stored_leaf: &Hash,
        content: Option<(&[u8], &[u8; 32])>,
    ) -> Result<Checked, LogError> {
        let bad = |what: String| LogError::Record {
            seq: position,
            what,
        };
        if seq != position {
            return Err(bad(format!("expected seq {position}, found seq {seq}")));
        }
        let leaf = leaf_hash(envelope);
        if leaf != *stored_leaf {
            return Err(bad("the leaf hash is not SHA-256(0x00 || envelope): the envelope or its leaf hash was changed".into()));
        }
        // Canonical JSON sorts members and always has "id" before and
        // "type" after these two, so each appears exactly in this form.
        let text =
            std::str::from_utf8(envelope).map_err(|_| bad("the envelope is not UTF-8".into()))?;
        if !text.contains(&format!(",\"seq\":{seq},")) {
            return Err(bad(
                "the envelope does not name this seq: the record was moved or inserted".into(),
            ));
        }
        if !text.contains(self.tenant_member.as_str()) {
            return Err(bad("the envelope names another tenant".into()));
        }
        let mut checked = Checked {
            position,
            leaf,
            with_content: false,
            content_absent: false,
        };
        match content {
            Some((content, salt)) => {
                let digest = content_digest(salt, content);
                let member = format!("\"content_digest\":\"{}\"", crate::hashing::to_hex(&digest));
                if !text.contains(&member) {
                    return Err(bad(
                        "the content does not match the envelope's content_digest".into(),
                    ));
                }
                checked.with_content = true;
            }
            None => checked.content_absent = text.contains("\"content_digest\":"),
        }
        Ok(checked)
    }

    /// Adds a checked record as the next leaf; returns the subtree hashes
    /// (level >= 1) it completed. Fails when it is not the next record or
    /// when it completes a checkpoint whose signed root differs.
    pub fn append(&mut self, checked: Checked) -> Result<Vec<(u8, u64, Hash)>, LogError> {
        if checked.position != self.range.size() {
            return Err(LogError::Record {
                seq: self.range.size(),
                what: format!(
                    "checked as seq {}, appended as seq {}",
                    checked.position,
                    self.range.size()
                ),
            });
        }
        let nodes = self.range.append(checked.leaf);
        self.summary.records += 1;
        self.summary.with_content += u64::from(checked.with_content);
        self.summary.content_absent += u64::from(checked.content_absent);
        if self.expected.contains_key(&self.range.size()) {
            self.check_root()?;
        }
        Ok(nodes)
    }

    fn check_root(&mut self) -> Result<(), LogError> {
        let size = self.range.size();
        if let Some(expected) = self.expected.get(&size) {
            if *expected != self.range.root() {
                return Err(LogError::Checkpoint {
                    size,
                    first_bad: self.verified_upto,
                    what: "the root of the records is not the signed root: records were rewritten"
                        .into(),
                });
            }
            self.verified_upto = size;
            self.summary.checkpoints += 1;
        }
        Ok(())
    }

    /// Records checked so far.
    pub fn size(&self) -> u64 {
        self.range.size()
    }

    /// Ends the check: every expected checkpoint must have been reached.
    pub fn finish(self) -> Result<VerifySummary, LogError> {
        if let Some((&size, _)) = self.expected.range(self.range.size() + 1..).next() {
            return Err(LogError::Checkpoint {
                size,
                first_bad: self.range.size(),
                what: format!(
                    "it covers {size} records but the log ends after {}: records are missing",
                    self.range.size()
                ),
            });
        }
        Ok(self.summary)
    }
}
