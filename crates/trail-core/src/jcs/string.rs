//! JCS string encoding: ECMAScript `JSON.stringify` escaping, with control
//! characters as lowercase `\u00xx`, the short forms `\b \t \n \f \r`, and
//! everything else (including `/` and all non-ASCII) written literally.

/// Lowercase hexadecimal digits for `\u00xx` escapes.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that need an escape: controls, `"` and `\\`.
const fn needs_escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static NEEDS_ESCAPE: [bool; 256] = needs_escape_table();

/// Appends `s` as a canonical JSON string literal (with quotes) to `out`.
pub(crate) fn write_string(s: &str, out: &mut Vec<u8>) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut rest = s.as_bytes();
    // Copy runs of plain bytes in one go; escape the byte that ends a run.
    while let Some(i) = rest.iter().position(|&b| NEEDS_ESCAPE[usize::from(b)]) {
        out.extend_from_slice(&rest[..i]);
        let b = rest[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0a => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            0x0d => out.extend_from_slice(b"\\r"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
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
