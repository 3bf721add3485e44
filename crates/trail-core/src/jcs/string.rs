//! JCS string encoding: ECMAScript `JSON.stringify` escaping, with control
//! characters as lowercase `\u00xx`, the short forms `\b \t \n \f \r`, and
//! everything else (including `/` and all non-ASCII) written literally.

/// Lowercase hexadecimal digits for `\u00xx` escapes.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a canonical JSON string literal (with quotes) to `out`.
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        let mut out = Vec::new();
        write_string(s, &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn escapes() {
        assert_eq!(enc("a/b"), "\"a/b\"");
        assert_eq!(enc("\u{f}\n\"\\"), "\"\\u000f\\n\\\"\\\\\"");
        assert_eq!(enc("\u{7f}\u{80}€"), "\"\u{7f}\u{80}€\"");
        assert_eq!(enc("\u{8}\u{c}\t\r\u{1f}"), "\"\\b\\f\\t\\r\\u001f\"");
    }
}
