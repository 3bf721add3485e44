//! RFC 8785 JSON Canonicalization Scheme (JCS): the one byte encoding of a
//! JSON value that every hash in trail is computed over.
//!
//! Rules implemented here: object members sorted by the UTF-16 code units of
//! their names, no insignificant whitespace, strings escaped exactly like
//! ECMAScript `JSON.stringify`, and every number (integers included) written
//! as the ECMAScript rendering of the nearest `f64`.

mod number;
mod string;

use std::cmp::Ordering;

use serde_json::Value;

pub use number::format_number;
pub(crate) use number::write_number;
pub(crate) use string::write_string;

/// Why a value cannot be canonicalized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JcsError {
    /// NaN and the infinities have no JSON representation.
    #[error("number is not finite (NaN or infinity has no JSON form)")]
    NonFiniteNumber,
}

/// Canonicalizes `value` into a fresh buffer.
pub fn to_vec(value: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(128);
    write(value, &mut out)?;
    Ok(out)
}

/// Appends the canonical encoding of `value` to `out`.
///
/// On error `out` may hold a partial encoding; callers discard it.
pub fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            // Without serde_json's `arbitrary_precision` every Number converts
            // to f64 (integers by rounding); treat a refusal as non-finite.
            let f = n.as_f64().ok_or(JcsError::NonFiniteNumber)?;
            write_number(f, out)?;
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|a, b| cmp_keys(a.0, b.0));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Orders object member names by their UTF-16 code units, as JCS requires.
///
/// UTF-8 byte order equals code-point order, which differs from UTF-16 order
/// only between a character in U+E000..=U+FFFF and a supplementary character
/// (encoded as surrogates 0xD800..0xDFFF in UTF-16). So compare bytes, and
/// only at the first differing character map both to their first UTF-16 unit.
pub(crate) fn cmp_keys(a: &str, b: &str) -> Ordering {
    let first_diff = a.bytes().zip(b.bytes()).position(|(x, y)| x != y);
    let Some(pos) = first_diff else {
        return a.len().cmp(&b.len());
    };
    if a.as_bytes()[pos] < 0x80 && b.as_bytes()[pos] < 0x80 {
        return a.as_bytes()[pos].cmp(&b.as_bytes()[pos]);
    }
    // Back up to the start of the character containing the difference; both
    // strings share the bytes before `pos`, so the boundary is the same.
    let mut start = pos;
    while !a.is_char_boundary(start) {
        start -= 1;
    }
    let ca = a[start..].chars().next();
    let cb = b[start..].chars().next();
    match (ca, cb) {
        (Some(x), Some(y)) => first_unit(x).cmp(&first_unit(y)).then(x.cmp(&y)),
        _ => a.len().cmp(&b.len()),
    }
}

/// The first UTF-16 code unit of `c`.
fn first_unit(c: char) -> u32 {
    let mut buf = [0u16; 2];
    u32::from(c.encode_utf16(&mut buf)[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_order_differs_from_code_point_order() {
        // U+FB33 (BMP, above the surrogate range) sorts after U+1F600 in UTF-16.
        assert_eq!(cmp_keys("\u{fb33}", "\u{1f600}"), Ordering::Greater);
        assert_eq!(cmp_keys("\u{20ac}", "\u{1f600}"), Ordering::Less);
        assert_eq!(cmp_keys("a", "ab"), Ordering::Less);
        assert_eq!(cmp_keys("b", "ab"), Ordering::Greater);
        assert_eq!(cmp_keys("\u{e9}", "\u{ea}"), Ordering::Less);
        assert_eq!(cmp_keys("x", "x"), Ordering::Equal);
    }
}
