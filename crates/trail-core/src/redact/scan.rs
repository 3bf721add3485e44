//! The cheap pre-check run on every string before any regex: one pass over
//! the bytes that notes which pattern families could possibly match. Most
//! strings (prose, ids, hashes, numbers) set no bit and are returned as-is.

/// `-----BEGIN ... PRIVATE KEY-----` blocks.
pub(crate) const PEM: u16 = 1 << 0;
/// `eyJ...` JSON Web Tokens.
pub(crate) const JWT: u16 = 1 << 1;
/// `Bearer <token>`.
pub(crate) const BEARER: u16 = 1 << 2;
/// `sk-...` provider keys.
pub(crate) const OPENAI: u16 = 1 << 3;
/// `sk_live_...` / `rk_test_...`.
pub(crate) const STRIPE: u16 = 1 << 4;
/// `AKIA...` / `ASIA...`.
pub(crate) const AWS: u16 = 1 << 5;
/// `ghp_...`, `github_pat_...`.
pub(crate) const GITHUB: u16 = 1 << 6;
/// `xoxb-...`.
pub(crate) const SLACK: u16 = 1 << 7;
/// `AIza...`.
pub(crate) const GOOGLE: u16 = 1 << 8;
/// `password=...`, `"api_key": "..."` in free text.
pub(crate) const KEY_VALUE: u16 = 1 << 9;

fn at(b: &[u8], i: usize, lit: &[u8]) -> bool {
    b.get(i..i + lit.len()) == Some(lit)
}

/// Case-insensitive `at`; `lit` must be lowercase ASCII.
fn at_ci(b: &[u8], i: usize, lit: &[u8]) -> bool {
    b.get(i..i + lit.len())
        .is_some_and(|w| w.eq_ignore_ascii_case(lit))
}

/// Returns the set of families whose trigger text occurs in `s`.
pub(crate) fn candidates(s: &str) -> u16 {
    let b = s.as_bytes();
    let mut mask = 0u16;
    let mut has_sep = false;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b':' | b'=' => has_sep = true,
            b'-' if at(b, i, b"-----BEGIN") => mask |= PEM,
            b'e' if at(b, i, b"eyJ") => mask |= JWT,
            b'b' | b'B' if at_ci(b, i, b"bearer") => mask |= BEARER,
            b's' if at(b, i, b"sk-") => mask |= OPENAI,
            b's' | b'r' if at(b, i + 1, b"k_") => mask |= STRIPE,
            b'A' if at(b, i, b"AKIA") || at(b, i, b"ASIA") => mask |= AWS,
            b'A' if at(b, i, b"AIza") => mask |= GOOGLE,
            b'g' if at(b, i, b"github_pat_")
                || (at(b, i + 3, b"_")
                    && b.get(i + 1) == Some(&b'h')
                    && matches!(b.get(i + 2), Some(b'p' | b'o' | b'u' | b's' | b'r'))) =>
            {
                mask |= GITHUB
            }
            b'x' if at(b, i, b"xox") => mask |= SLACK,
            _ => {}
        }
        if mask & KEY_VALUE == 0 && key_trigger(b, i) && secret_assignment_at(s, i) {
            mask |= KEY_VALUE;
        }
    }
    if !has_sep {
        mask &= !KEY_VALUE;
    }
    mask
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')
}

/// Is the identifier around byte `i` a secret name (per `key_kind`)
/// followed by a `:` or `=` separator, as the key-value regex requires?
/// This keeps `"max_tokens": 256` from sending a body to the regexes.
fn secret_assignment_at(s: &str, i: usize) -> bool {
    let b = s.as_bytes();
    let mut start = i;
    while start > 0 && is_ident(b[start - 1]) {
        start -= 1;
    }
    let mut end = i;
    while end < b.len() && is_ident(b[end]) {
        end += 1;
    }
    let mut j = end;
    if b.get(j) == Some(&b'\\') {
        j += 1;
    }
    if matches!(b.get(j), Some(b'"' | b'\'')) {
        j += 1;
    }
    while matches!(b.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    // Identifier bytes are ASCII, so `start..end` is on char boundaries.
    matches!(b.get(j), Some(b':' | b'='))
        && s.get(start..end).and_then(super::keys::key_kind).is_some()
}

/// Could a secret-looking member name start at `i`?
fn key_trigger(b: &[u8], i: usize) -> bool {
    match b[i] | 0x20 {
        b'p' => at_ci(b, i, b"pass") || at_ci(b, i, b"pwd") || at_ci(b, i, b"private"),
        b's' => at_ci(b, i, b"secret"),
        b't' => at_ci(b, i, b"token"),
        b'a' => at_ci(b, i, b"api") || at_ci(b, i, b"authorization"),
        b'c' => at_ci(b, i, b"credential"),
        _ => false,
    }
}
