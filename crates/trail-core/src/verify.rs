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
//!
//! Records removed by retention leave their leaf hashes behind: feed those
//! first with [`LogVerifier::retired`]. A retired leaf is taken as given
//! (there is no envelope to hash), so nothing about its record is checked
//! but its place in the tree: every checkpoint, older or newer than the
//! retirement, is still compared with the root recomputed over all leaves.
//! Retention only ever removes the start of a log, so retired leaves must
//! come before every record.
//!
//! Every retirement is accounted for by the log itself: each sweep records
//! a `retention.sweep` event (type `api_request`, transport `system`) with
//! the seq range it retired, appended after the retirement. The verifier
//! checks that each event comes after the range it names and that the
//! ranges it sees (in any order: sweeps of several servers may be recorded
//! out of order) cover the retired leaves without a gap and end exactly
//! where they end: records
//! deleted behind trail's back (even with their leaf hashes put where
//! retired ones go, so that every root still matches) show up as retired
//! leaves no signed sweep accounts for. A sweep that finds records retired
//! without an event (a sweep interrupted before it could record itself)
//! starts its range where the last recorded sweep ended and says how many
//! it found in `unrecorded`; those are counted in
//! [`VerifySummary::retired_unrecorded`].

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
    /// Leaves of retired records, taken by their hash alone (not counted
    /// in `records`).
    pub retired: u64,
    /// Retention sweeps recorded in the remaining records.
    pub sweeps: u64,
    /// Of the retired records, those a sweep found already retired without
    /// an event (recorded late, in that sweep's `unrecorded`).
    pub retired_unrecorded: u64,
}

/// The range a `retention.sweep` record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepRange {
    /// First seq of the range (`metadata.first_seq`).
    pub first: u64,
    /// One past its last seq (`metadata.last_seq + 1`).
    pub end: u64,
    /// How many of them the sweep found already retired without an event
    /// (`metadata.unrecorded`).
    pub unrecorded: u64,
}

/// The sweep range of an envelope (canonical JSON text), when it is one of
/// trail's own `retention.sweep` events; an error when it is one but names
/// no valid range.
pub fn sweep_range(text: &str) -> Result<Option<SweepRange>, String> {
    if !text.contains("\"name\":\"retention.sweep\"")
        || !text.contains("\"transport\":\"system\"")
        || !text.contains("\"type\":\"api_request\"")
    {
        return Ok(None);
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("the envelope is not JSON: {error}"))?;
    let metadata = &value["metadata"];
    let number = |name: &str| metadata[name].as_u64();
    match (number("first_seq"), number("last_seq")) {
        (Some(first), Some(last)) if first <= last => Ok(Some(SweepRange {
            first,
            end: last + 1,
            unrecorded: number("unrecorded").unwrap_or(0),
        })),
        _ => Err("a retention.sweep record without a valid first_seq..last_seq range".into()),
    }
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
    /// The sweeps seen so far.
    sweeps: Vec<SweepRange>,
}

/// A record that passed [`LogVerifier::check`], ready to be appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    position: u64,
    leaf: Hash,
    with_content: bool,
    content_absent: bool,
    sweep: Option<SweepRange>,
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
            sweeps: Vec::new(),
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

    /// Appends the leaf hash of a retired record (one removed by retention;
    /// its hash is all that is left) as the next leaf, `seq`. Nothing is
    /// checked about the record itself; the leaf still counts towards every
    /// checkpoint root. Fails when `seq` is not the next position, when a
    /// record came before (retention removes only the start of a log), or
    /// when it completes a checkpoint whose signed root differs. Returns the
    /// subtree hashes (level >= 1) it completed.
    pub fn retired(&mut self, seq: u64, leaf: &Hash) -> Result<Vec<(u8, u64, Hash)>, LogError> {
        let position = self.range.size();
        if seq != position {
            return Err(LogError::Record {
                seq: position,
                what: format!("expected seq {position}, found a retired leaf for seq {seq}"),
            });
        }
        if self.summary.records > 0 {
            return Err(LogError::Record {
                seq: position,
                what: "a retired leaf after a record: retention only removes the start of a log"
                    .into(),
            });
        }
        let nodes = self.range.append(*leaf);
        self.summary.retired += 1;
        if self.expected.contains_key(&self.range.size()) {
            self.check_root()?;
        }
        Ok(nodes)
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
            sweep: sweep_range(text).map_err(bad)?,
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
        if let Some(sweep) = checked.sweep {
            self.account(checked.position, sweep)?;
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

    /// Takes note of the sweep recorded at `position`.
    fn account(&mut self, position: u64, sweep: SweepRange) -> Result<(), LogError> {
        if sweep.end > position {
            return Err(LogError::Record {
                seq: position,
                what: format!(
                    "a retention sweep of seqs {}..{} recorded before it ended",
                    sweep.first, sweep.end
                ),
            });
        }
        self.sweeps.push(sweep);
        self.summary.sweeps += 1;
        self.summary.retired_unrecorded += sweep.unrecorded;
        Ok(())
    }

    /// Checks that the sweeps seen account for exactly the retired leaves:
    /// their ranges, in any order (sweeps of several servers may be
    /// recorded out of order), cover `[start, retired)` without a gap, where
    /// `start` is 0 or, when earlier sweeps were themselves retired, a seq
    /// among the retired leaves (the sweep that ended there was recorded
    /// after it, and is gone).
    fn check_sweeps(&self) -> Result<(), LogError> {
        let retired = self.summary.retired;
        let unaccounted = |from: u64, to: u64| {
            LogError::Record {
            seq: from,
            what: format!(
                "seqs {from}..{to} are retired but no retention sweep in the log records their retirement"
            ),
        }
        };
        let mut ranges: Vec<SweepRange> = self.sweeps.clone();
        ranges.sort_by_key(|range| range.first);
        let Some(oldest) = ranges.first() else {
            return match retired {
                0 => Ok(()),
                _ => Err(unaccounted(0, retired)),
            };
        };
        if oldest.first > 0 && oldest.first >= retired {
            return Err(LogError::Record {
                seq: retired,
                what: format!(
                    "the oldest retention sweep left starts at seq {} but only {retired} records are retired",
                    oldest.first
                ),
            });
        }
        let mut covered = oldest.first;
        for range in &ranges {
            if range.first > covered {
                return Err(unaccounted(covered, range.first));
            }
            covered = covered.max(range.end);
        }
        if retired > covered {
            return Err(unaccounted(covered, retired));
        }
        if retired < covered {
            return Err(LogError::Record {
                seq: retired,
                what: format!(
                    "a retention sweep records seqs up to {covered} as retired, but the records from {retired} on are still there"
                ),
            });
        }
        Ok(())
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

    /// Leaves appended so far (retired ones and records).
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
        self.check_sweeps()?;
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{sign_checkpoint, Checkpoint};
    use crate::event::parse_event;
    use crate::merkle::root_of;
    use crate::note::SigningKey;
    use crate::policy::ContentPolicy;
    use crate::record::prepare;

    const ORIGIN: &str = "test.example/t";

    /// The envelopes of a log of `n` records of tenant `t`.
    fn log(n: u64) -> Vec<Vec<u8>> {
        log_with_sweeps(n, &[])
    }

    /// A log of `n` records where the record at `at` is a retention sweep
    /// of seqs `first..=last` (with `unrecorded` of them found retired
    /// without an event), for each `(at, first, last, unrecorded)`.
    fn log_with_sweeps(n: u64, sweeps: &[(u64, u64, u64, u64)]) -> Vec<Vec<u8>> {
        (0..n)
            .map(|seq| {
                let sweep = sweeps.iter().find(|sweep| sweep.0 == seq);
                let value = match sweep {
                    Some(&(_, first, last, unrecorded)) => serde_json::json!({
                        "type": "api_request", "name": "retention.sweep",
                        "metadata": {"first_seq": first, "last_seq": last,
                            "unrecorded": unrecorded}}),
                    None => serde_json::json!({"type": "tool_call", "name": format!("e{seq}")}),
                };
                let mut event = parse_event(value).expect("valid event");
                if sweep.is_some() {
                    event.transport = Some(crate::event::Transport::System);
                }
                let prepared = prepare(
                    event,
                    ContentPolicy::Hash,
                    [seq as u8; 32],
                    uuid::Uuid::from_u128(u128::from(seq) + 1),
                );
                prepared.seal("t", seq, 1_700_000_000_000_000).envelope
            })
            .collect()
    }

    fn key() -> SigningKey {
        SigningKey::from_seed("test.example", [7; 32]).expect("key")
    }

    fn note(leaves: &[Hash], size: usize) -> String {
        let checkpoint = Checkpoint {
            origin: ORIGIN.into(),
            size: size as u64,
            root: root_of(&leaves[..size]),
            extensions: Vec::new(),
        };
        sign_checkpoint(&checkpoint, &key()).expect("sign")
    }

    /// A verifier expecting checkpoints of `sizes` over `envelopes`.
    fn verifier(envelopes: &[Vec<u8>], sizes: &[usize]) -> (LogVerifier, Vec<Hash>) {
        let leaves: Vec<Hash> = envelopes.iter().map(|e| leaf_hash(e)).collect();
        let mut verifier = LogVerifier::new("t", ORIGIN, vec![key().verifier()]);
        for &size in sizes {
            verifier
                .expect_checkpoint(&note(&leaves, size))
                .expect("checkpoint");
        }
        (verifier, leaves)
    }

    #[test]
    fn records_verify() {
        let envelopes = log(8);
        let (mut verifier, leaves) = verifier(&envelopes, &[3, 8]);
        for (seq, envelope) in envelopes.iter().enumerate() {
            verifier
                .record(seq as u64, envelope, &leaves[seq], None)
                .expect("record");
        }
        let summary = verifier.finish().expect("verified");
        assert_eq!(summary.records, 8);
        assert_eq!(summary.retired, 0);
        assert_eq!(summary.checkpoints, 2);
    }

    #[test]
    fn retired_leaves_count_towards_old_and_new_checkpoints() {
        let envelopes = log_with_sweeps(8, &[(5, 0, 3, 0)]);
        // Checkpoints cut before the retirement (3: only retired leaves; 5:
        // both) and after (8).
        let (mut verifier, leaves) = verifier(&envelopes, &[3, 5, 8]);
        for (seq, leaf) in leaves.iter().enumerate().take(4) {
            verifier.retired(seq as u64, leaf).expect("retired leaf");
        }
        for (seq, envelope) in envelopes.iter().enumerate().skip(4) {
            verifier
                .record(seq as u64, envelope, &leaves[seq], None)
                .expect("record");
        }
        let summary = verifier.finish().expect("verified");
        assert_eq!(summary.retired, 4);
        assert_eq!(summary.records, 4);
        assert_eq!(summary.checkpoints, 3);
        assert_eq!(summary.sweeps, 1);
    }

    /// Feeds `retired` leaves, then the rest as records; the outcome.
    fn run(envelopes: &[Vec<u8>], retired: usize) -> Result<VerifySummary, LogError> {
        let (mut verifier, leaves) = verifier(envelopes, &[envelopes.len()]);
        for (seq, leaf) in leaves.iter().enumerate().take(retired) {
            verifier.retired(seq as u64, leaf)?;
        }
        for (seq, envelope) in envelopes.iter().enumerate().skip(retired) {
            verifier.record(seq as u64, envelope, &leaves[seq], None)?;
        }
        verifier.finish()
    }

    #[test]
    fn retired_leaves_no_sweep_accounts_for_fail() {
        // Deleted behind trail's back, leaf hashes put in place: every root
        // matches, but no sweep says so.
        let error = run(&log(6), 3).expect_err("unaccounted");
        assert_eq!(error.first_bad_seq(), Some(0));
        assert!(error.to_string().contains("no retention sweep"), "{error}");
        // A sweep that covers less than is retired.
        let error = run(&log_with_sweeps(8, &[(5, 0, 1, 0)]), 4).expect_err("short");
        assert_eq!(error.first_bad_seq(), Some(2));
    }

    #[test]
    fn sweeps_chain_and_come_after_their_range() {
        // Two sweeps, the second starting where the first ended.
        let summary = run(&log_with_sweeps(10, &[(6, 0, 1, 0), (7, 2, 4, 0)]), 5)
            .expect("chained sweeps verify");
        assert_eq!((summary.sweeps, summary.retired), (2, 5));
        // The oldest sweep's own event may be retired: the chain starts later.
        let summary = run(&log_with_sweeps(12, &[(3, 0, 1, 0), (8, 2, 5, 0)]), 6)
            .expect("the first sweep's event retired");
        assert_eq!(summary.sweeps, 1);
        // Recorded out of order (two servers), or overlapping: the union
        // counts.
        run(&log_with_sweeps(10, &[(6, 2, 4, 0), (7, 0, 1, 0)]), 5).expect("out of order");
        run(&log_with_sweeps(10, &[(6, 0, 2, 0), (7, 0, 4, 2)]), 5).expect("overlapping");
        // A gap between sweeps.
        let error = run(&log_with_sweeps(10, &[(6, 0, 1, 0), (7, 3, 4, 0)]), 5).expect_err("gap");
        assert_eq!(error.first_bad_seq(), Some(2));
        // A sweep naming records that are still there.
        let error = run(&log_with_sweeps(8, &[(5, 0, 3, 0)]), 2).expect_err("claims too much");
        assert_eq!(error.first_bad_seq(), Some(2));
        // A sweep recorded before the end of its range.
        let error = run(&log_with_sweeps(8, &[(2, 0, 4, 0)]), 0).expect_err("early");
        assert_eq!(error.first_bad_seq(), Some(2));
        // The oldest sweep left cannot start beyond the retired leaves.
        let error = run(&log_with_sweeps(10, &[(6, 4, 5, 0)]), 4).expect_err("oldest");
        assert_eq!(error.first_bad_seq(), Some(4));
    }

    #[test]
    fn late_recorded_retirements_are_counted() {
        let summary = run(&log_with_sweeps(8, &[(5, 0, 3, 2)]), 4).expect("verifies");
        assert_eq!(summary.retired_unrecorded, 2);
    }

    #[test]
    fn a_wrong_retired_leaf_breaks_the_checkpoint_it_falls_under() {
        let envelopes = log(6);
        let (mut verifier, leaves) = verifier(&envelopes, &[2, 6]);
        verifier.retired(0, &leaves[0]).expect("first leaf");
        let error = verifier.retired(1, &[0xaa; 32]).expect_err("root differs");
        assert_eq!(error.first_bad_seq(), Some(0));
        assert!(
            matches!(error, LogError::Checkpoint { size: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn retired_leaves_only_come_first_and_in_order() {
        let envelopes = log(4);
        let (mut verifier, leaves) = verifier(&envelopes, &[4]);
        let error = verifier.retired(1, &leaves[1]).expect_err("gap");
        assert_eq!(error.first_bad_seq(), Some(0));
        verifier
            .record(0, &envelopes[0], &leaves[0], None)
            .expect("record 0");
        let error = verifier.retired(1, &leaves[1]).expect_err("after a record");
        assert_eq!(error.first_bad_seq(), Some(1));
    }

    #[test]
    fn missing_leaves_after_retired_ones_fail_at_finish() {
        let envelopes = log(4);
        let (mut verifier, leaves) = verifier(&envelopes, &[4]);
        verifier.retired(0, &leaves[0]).expect("leaf");
        verifier.retired(1, &leaves[1]).expect("leaf");
        let error = verifier.finish().expect_err("records missing");
        assert_eq!(error.first_bad_seq(), Some(2));
    }
}
