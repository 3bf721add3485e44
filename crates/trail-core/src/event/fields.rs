//! Per-field checks used by event validation. Each helper takes the raw JSON
//! value of one field (already `None` when absent or null), records a
//! [`FieldError`] on failure and returns the normalized value on success, so
//! the caller can check every field and report all problems at once.

use serde_json::Value;

use super::FieldError;
use crate::limits::{MAX_NAME_CHARS, MAX_SAFE_INTEGER};

/// Accumulates field errors during validation.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// A string field; `None` (with an error) when it is not a string.
    pub(crate) fn string(&mut self, field: &str, v: Option<Value>) -> Option<String> {
        match v? {
            Value::String(s) => Some(s),
            _ => {
                self.push(field, "must be a string");
                None
            }
        }
    }

    /// A string of 1..=`MAX_NAME_CHARS` characters.
    pub(crate) fn short_string(&mut self, field: &str, v: Option<Value>) -> Option<String> {
        let s = self.string(field, v)?;
        if s.is_empty() {
            self.push(field, "must not be empty");
            return None;
        }
        if s.chars().count() > MAX_NAME_CHARS {
            self.push(
                field,
                format!("must be at most {MAX_NAME_CHARS} characters"),
            );
            return None;
        }
        Some(s)
    }

    /// A string of at most `max` UTF-8 bytes.
    pub(crate) fn bounded_string(
        &mut self,
        field: &str,
        v: Option<Value>,
        max: usize,
    ) -> Option<String> {
        let s = self.string(field, v)?;
        if s.len() > max {
            self.push(field, format!("must be at most {max} bytes"));
            return None;
        }
        Some(s)
    }

    /// A non-negative integer no larger than 2^53 - 1. A float with no
    /// fractional part (`12.0`) counts as an integer.
    pub(crate) fn uint(&mut self, field: &str, v: Option<Value>) -> Option<u64> {
        let v = v?;
        let n = as_integer(&v).and_then(|n| u64::try_from(n).ok());
        match n {
            Some(n) if n <= MAX_SAFE_INTEGER => Some(n),
            _ => {
                self.push(
                    field,
                    format!("must be a non-negative integer (at most {MAX_SAFE_INTEGER})"),
                );
                None
            }
        }
    }

    /// Any integer of magnitude at most 2^53 - 1.
    pub(crate) fn int(&mut self, field: &str, v: Option<Value>) -> Option<i64> {
        let v = v?;
        match as_integer(&v) {
            Some(n) if n.unsigned_abs() <= MAX_SAFE_INTEGER => Some(n),
            _ => {
                self.push(
                    field,
                    format!("must be an integer (magnitude at most {MAX_SAFE_INTEGER})"),
                );
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, field: &str, v: Option<Value>) -> Option<bool> {
        match v? {
            Value::Bool(b) => Some(b),
            _ => {
                self.push(field, "must be a boolean");
                None
            }
        }
    }

    /// A trace or span id: exactly `len` hex digits, either case, not all
    /// zero; returned lowercase.
    pub(crate) fn hex_id(&mut self, field: &str, v: Option<Value>, len: usize) -> Option<String> {
        let s = self.string(field, v)?;
        if s.len() != len || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.push(field, format!("must be {len} hexadecimal characters"));
            return None;
        }
        if s.bytes().all(|b| b == b'0') {
            self.push(field, "must not be all zeros");
            return None;
        }
        Some(s.to_ascii_lowercase())
    }

    /// A SHA-256 given as exactly 64 lowercase hex digits.
    pub(crate) fn sha256_hex(&mut self, field: &str, v: Option<Value>) -> Option<[u8; 32]> {
        let s = self.string(field, v)?;
        let mut out = [0u8; 32];
        let lower = s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if s.len() == 64 && lower && hex::decode_to_slice(&s, &mut out).is_ok() {
            Some(out)
        } else {
            self.push(field, "must be 64 lowercase hexadecimal characters");
            None
        }
    }

    /// An RFC 3339 timestamp, as Unix microseconds.
    pub(crate) fn timestamp(&mut self, field: &str, v: Option<Value>) -> Option<i64> {
        let s = self.string(field, v)?;
        match crate::time::parse_rfc3339(&s) {
            Ok(us) => Some(us),
            Err(why) => {
                self.push(
                    field,
                    format!("must be an RFC 3339 date-time with offset, e.g. 2026-01-02T03:04:05.678Z ({why})"),
                );
                None
            }
        }
    }

    /// One of an enum's wire strings.
    pub(crate) fn variant<T>(
        &mut self,
        field: &str,
        v: Option<Value>,
        parse: fn(&str) -> Result<T, super::UnknownVariant>,
        allowed: fn() -> String,
    ) -> Option<T> {
        let v = v?;
        let parsed = match &v {
            Value::String(s) => parse(s).ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.push(field, format!("must be one of: {}", allowed()));
        }
        parsed
    }
}

/// The integer value of a JSON number, accepting integral floats.
fn as_integer(v: &Value) -> Option<i64> {
    let Value::Number(n) = v else { return None };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        // Larger than i64::MAX: certainly out of every accepted range.
        return None;
    }
    let f = n.as_f64()?;
    // The range check makes the cast exact.
    (f.fract() == 0.0 && f.abs() <= MAX_SAFE_INTEGER as f64).then_some(f as i64)
}
