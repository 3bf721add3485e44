//! Secret redaction: API keys, tokens, passwords and private keys are
//! replaced by `[REDACTED:<kind>]` before anything is stored.
//!
//! Strings are scanned once by a cheap byte-level pre-check; only strings
//! that contain a trigger (`sk-`, `AKIA`, `Bearer`, `password`...) reach the
//! regexes, so ordinary text is returned borrowed, without allocation. In
//! JSON values, members whose *name* looks secret (`password`,
//! `client_secret`, `X-Api-Key`, but not `max_tokens`) lose their whole value.

mod keys;
mod patterns;
mod scan;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

pub use keys::key_kind;

/// Redacts secrets in free text. Returns `Cow::Borrowed` when nothing was
/// found (the common case).
pub fn redact_str(s: &str) -> Cow<'_, str> {
    let mask = scan::candidates(s);
    if mask == 0 {
        return Cow::Borrowed(s);
    }
    redact_families(s, mask)
}

/// Runs the pattern families selected by `mask` over `s`.
fn redact_families(s: &str, mask: u16) -> Cow<'_, str> {
    let mut current = Cow::Borrowed(s);
    for family in patterns::families() {
        if mask & family.bit == 0 {
            continue;
        }
        if let Some(changed) = replace(&family.re, &current, family.rewrite) {
            current = Cow::Owned(changed);
        }
    }
    current
}

/// Redacts a JSON value in place: every string is passed through
/// [`redact_str`], and members whose name looks secret (see [`key_kind`])
/// have their value, unless null or a boolean, replaced by
/// `"[REDACTED:<kind>]"`. Member names themselves are kept.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::String(s) => {
            if let Cow::Owned(new) = redact_str(s) {
                *s = new;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                match key_kind(key) {
                    Some(kind) if !matches!(member, Value::Null | Value::Bool(_)) => {
                        *member = Value::String(patterns::tag(kind));
                    }
                    _ => redact_value(member),
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Like `Regex::replace_all`, but the rewrite may decline a match (returns
/// `None`), and the result is `None` when nothing changed.
fn replace(re: &Regex, text: &str, rewrite: patterns::Rewrite) -> Option<String> {
    let mut out: Option<String> = None;
    let mut last = 0;
    for caps in re.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        if let Some(replacement) = rewrite(&caps) {
            let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
            buf.push_str(&text[last..whole.start()]);
            buf.push_str(&replacement);
            last = whole.end();
        }
    }
    let mut buf = out?;
    buf.push_str(&text[last..]);
    Some(buf)
}
