//! The compiled redaction regexes, built once, and how each family's matches
//! are checked for plausibility and rewritten.

use std::sync::OnceLock;

use regex::{Captures, Regex};

use super::keys::key_kind;
use super::scan;

/// Turns one match into its replacement, or declines it (`None`).
pub(crate) type Rewrite = fn(&Captures<'_>) -> Option<String>;

/// One pattern family: which pre-check bit enables it, and its regex.
pub(crate) struct Family {
    pub(crate) bit: u16,
    pub(crate) re: Regex,
    pub(crate) rewrite: Rewrite,
}

/// Families in application order: whole blocks first, then structured
/// tokens, then `key=value` text (which skips values already redacted).
pub(crate) fn families() -> &'static [Family] {
    static FAMILIES: OnceLock<Vec<Family>> = OnceLock::new();
    FAMILIES.get_or_init(build)
}

/// Compiles the fixed pattern set. The patterns are constants covered by
/// the unit tests, so a compile failure is a programming error; such a
/// pattern is skipped rather than taking the process down.
fn build() -> Vec<Family> {
    let specs: [(u16, &str, Rewrite); 10] = [
        (
            scan::PEM,
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\z)",
            |_| Some(tag("private_key")),
        ),
        (
            scan::JWT,
            r"(?-u:\b)eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*",
            |_| Some(tag("jwt")),
        ),
        (
            scan::BEARER,
            r"(?i)(?-u:\b)(bearer)([ \t]+)([A-Za-z0-9._~+/=-]+)",
            rewrite_bearer,
        ),
        (
            scan::OPENAI,
            r"(?-u:\b)sk-(?:proj-|ant-|svcacct-|admin-)?([A-Za-z0-9_-]{20,})",
            |c| looks_random(&c[1]).then(|| tag("openai_key")),
        ),
        (
            scan::STRIPE,
            r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}",
            |_| Some(tag("stripe_key")),
        ),
        (
            scan::AWS,
            r"(?-u:\b)(?:AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
            |_| Some(tag("aws_access_key")),
        ),
        (
            scan::GITHUB,
            r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})(?-u:\b)",
            |_| Some(tag("github_token")),
        ),
        (scan::SLACK, r"(?-u:\b)xox[abprs]-[A-Za-z0-9-]{10,}", |_| {
            Some(tag("slack_token"))
        }),
        (scan::GOOGLE, r"(?-u:\b)AIza[0-9A-Za-z_-]{35}", |_| {
            Some(tag("google_api_key"))
        }),
        (
            scan::KEY_VALUE,
            concat!(
                // 1: a member name containing a secret-ish word
                r"(?i)([a-z0-9_.-]*(?:pass|pwd|secret|token|api[-_]?key|authorization|private[-_]?key|credential)[a-z0-9_.-]*)",
                r#"(\\?["']?[ \t]*[:=][ \t]*)"#, // 2: separator
                r"((?:basic|bearer|digest|negotiate|token)[ \t]+)?", // 3: auth scheme
                r#"(?:\\"(.*?)\\""#,             // 4: \"escaped\"
                r#"|"((?:[^"\\\n]|\\.)*)""#,     // 5: "quoted"
                r"|'([^'\n]*)'",                 // 6: 'quoted'
                r#"|([^\s"',;&}\])<>\\]+))"#,    // 7: bare
            ),
            rewrite_key_value,
        ),
    ];
    specs
        .into_iter()
        .map(|(bit, pattern, rewrite)| {
            // The patterns are constants; the `every_pattern_compiles` test
            // builds them all, so this cannot fail in a tested build. A
            // pattern silently dropped would mean secrets stored in clear.
            #[allow(clippy::expect_used)]
            let re = Regex::new(pattern).expect("redaction pattern must compile");
            Family { bit, re, rewrite }
        })
        .collect()
}

/// The replacement text for `kind`.
pub(crate) fn tag(kind: &str) -> String {
    format!("[REDACTED:{kind}]")
}

/// A provider key body must look random: a letter, a digit, and a run of at
/// least 12 alphanumerics (so `sk-learn-compatible-pipeline-v2` survives).
fn looks_random(s: &str) -> bool {
    let has_digit = s.bytes().any(|b| b.is_ascii_digit());
    let has_alpha = s.bytes().any(|b| b.is_ascii_alphabetic());
    let longest_run = s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::len)
        .max()
        .unwrap_or(0);
    has_digit && has_alpha && longest_run >= 12
}

/// `Bearer <token>`: keep the word, replace a plausible token. A token needs
/// 8+ characters and either a digit/symbol or 20+ characters, so prose such
/// as "bearer of bad news" or "bearer instrument" is left alone.
fn rewrite_bearer(c: &Captures<'_>) -> Option<String> {
    let token = &c[3];
    let symbolic = token
        .bytes()
        .any(|b| b.is_ascii_digit() || b"._~+/=".contains(&b));
    if token.len() < 8 || !(symbolic || token.len() >= 20) {
        return None;
    }
    Some(format!("{}{}{}", &c[1], &c[2], tag("bearer_token")))
}

/// `name: value` / `name=value` where `name` is a secret-looking name:
/// replace only the value, keeping name, separator, scheme and quotes.
fn rewrite_key_value(c: &Captures<'_>) -> Option<String> {
    let kind = key_kind(&c[1])?;
    let value = (4..=7).find_map(|g| c.get(g))?;
    let v = value.as_str();
    if v.is_empty() || v.starts_with("[REDACTED") || (kind == "token" && v.len() < 8) {
        return None;
    }
    let whole = c.get(0)?;
    let start = value.start() - whole.start();
    let end = value.end() - whole.start();
    let m = whole.as_str();
    Some(format!("{}{}{}", &m[..start], tag(kind), &m[end..]))
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_pattern_compiles() {
        assert_eq!(super::build().len(), 10);
    }
}
