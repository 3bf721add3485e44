//! Envelope members kept pre-encoded in canonical order, and the byte-level
//! merge that seals them. JCS of an object is `{` + the sorted
//! `"name":value` members joined by `,` + `}`, so adding three members only
//! needs a sorted merge, never a re-encoding of the others.

use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::jcs::{cmp_keys, write_number, write_string};

/// Members added at seal time; excluded from the idempotency digest along
/// with `content_digest`.
pub(crate) const SEAL_KEYS: [&str; 3] = ["received_at", "seq", "tenant_id"];
/// The salted content digest member.
pub(crate) const CONTENT_DIGEST: &str = "content_digest";

/// Pre-encoded envelope members sorted by name: every value's JCS bytes
/// live in one buffer, addressed by range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Members {
    buf: Vec<u8>,
    index: Vec<(&'static str, Range<usize>)>,
}

impl Members {
    /// Adds a member whose JCS value `encode` appends to the buffer.
    pub(crate) fn push(&mut self, key: &'static str, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        encode(&mut self.buf);
        self.index.push((key, start..self.buf.len()));
    }

    /// Sorts the members into JCS order; call once after the last push.
    pub(crate) fn finish(&mut self) {
        self.index.sort_by(|a, b| cmp_keys(a.0, b.0));
    }

    fn sorted(&self) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        self.index
            .iter()
            .map(|(k, r)| (*k, self.buf.get(r.clone()).unwrap_or_default()))
    }

    /// The complete envelope with the three seal-time members merged in.
    pub(crate) fn seal(&self, tenant_id: &str, seq: u64, received_at_us: i64) -> Vec<u8> {
        let mut extra_buf = Vec::with_capacity(tenant_id.len() + 48);
        let mut extra: Vec<(&str, Range<usize>)> = Vec::with_capacity(3);
        // Encoded in SEAL_KEYS order, which is already sorted.
        let start = extra_buf.len();
        write_string(&crate::time::format_rfc3339(received_at_us), &mut extra_buf);
        extra.push((SEAL_KEYS[0], start..extra_buf.len()));
        let start = extra_buf.len();
        // A finite f64 never fails to format.
        let _ = write_number(seq as f64, &mut extra_buf);
        extra.push((SEAL_KEYS[1], start..extra_buf.len()));
        let start = extra_buf.len();
        write_string(tenant_id, &mut extra_buf);
        extra.push((SEAL_KEYS[2], start..extra_buf.len()));
        let extra = extra
            .into_iter()
            .map(|(k, r)| (k, extra_buf.get(r).unwrap_or_default()));

        let mut out =
            Vec::with_capacity(self.buf.len() + self.index.len() * 20 + extra_buf.len() + 48);
        out.push(b'{');
        let mut first = true;
        let mut emit = |key: &str, value: &[u8]| {
            if !first {
                out.push(b',');
            }
            first = false;
            write_string(key, &mut out);
            out.push(b':');
            out.extend_from_slice(value);
        };
        let mut a = self.sorted().peekable();
        let mut b = extra.peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => cmp_keys(x.0, y.0).is_lt(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a { a.next() } else { b.next() };
            if let Some((k, v)) = next {
                emit(k, v);
            }
        }
        out.push(b'}');
        out
    }

    /// SHA-256 of the JCS object formed by all members but `content_digest`.
    pub(crate) fn idempotency_digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut key_buf = Vec::with_capacity(32);
        h.update(b"{");
        let mut first = true;
        for (key, value) in self.sorted().filter(|(k, _)| *k != CONTENT_DIGEST) {
            if !first {
                h.update(b",");
            }
            first = false;
            key_buf.clear();
            write_string(key, &mut key_buf);
            h.update(&key_buf);
            h.update(b":");
            h.update(value);
        }
        h.update(b"}");
        h.finalize().into()
    }
}
