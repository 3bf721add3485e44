//! Recognizing member names that hold secrets (`password`, `client_secret`,
//! `X-Api-Key`, `accessToken`...) while leaving look-alikes such as
//! `max_tokens` or `token_count` alone.
//!
//! Names are normalized first: ASCII lowercase, `-`, `.` and spaces become
//! `_`, and a lowercase-to-uppercase step in camelCase becomes `_`.

/// Names ending in `_token` that are not credentials: tokenizer special
/// tokens, pagination cursors and counters.
const NOT_SECRET_TOKENS: &[&str] = &[
    "eos_token",
    "bos_token",
    "pad_token",
    "unk_token",
    "sep_token",
    "cls_token",
    "mask_token",
    "max_token",
    "min_token",
    "next_token",
    "page_token",
    "continuation_token",
    "cancellation_token",
];

/// The redaction kind for a member named `name`, if the name looks like it
/// holds a secret (`"password"`, `"secret"`, `"token"`, `"api_key"`,
/// `"authorization"`, `"private_key"` or `"credentials"`).
pub fn key_kind(name: &str) -> Option<&'static str> {
    if name.len() < 3 || name.len() > 128 || !name.is_ascii() || !maybe_secret_name(name) {
        return None;
    }
    let mut buf = [0u8; 256];
    let n = normalize(name.as_bytes(), &mut buf);
    let norm = trim_underscores(&buf[..n]);
    classify(norm)
}

/// Cheap screen: every secret name contains one of these fragments.
fn maybe_secret_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.windows(3).any(|w| {
        matches!(
            [w[0] | 0x20, w[1] | 0x20, w[2] | 0x20],
            [b'p', b'a', b's']
                | [b'p', b'w', b'd']
                | [b'c', b'r', b'e']
                | [b't', b'o', b'k']
                | [b'k', b'e', b'y']
                | [b'a', b'u', b't']
        )
    })
}

/// Writes the normalized form of `name` into `out`, returning its length.
/// At most one `_` is inserted per input byte, so `out` needs twice the
/// input length (`key_kind` caps names at 128 bytes and passes 256); writes
/// past the end are dropped rather than panicking.
fn normalize(name: &[u8], out: &mut [u8]) -> usize {
    let mut n = 0;
    let mut prev_lower = false;
    for &c in name {
        let mapped = match c {
            b'A'..=b'Z' => {
                if prev_lower && n < out.len() {
                    out[n] = b'_';
                    n += 1;
                }
                c.to_ascii_lowercase()
            }
            b'-' | b'.' | b' ' => b'_',
            _ => c,
        };
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        if n < out.len() {
            out[n] = mapped;
            n += 1;
        }
    }
    n
}

fn trim_underscores(mut s: &[u8]) -> &[u8] {
    while let [b'_', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b'_'] = s {
        s = rest;
    }
    s
}

/// `s` is `word` or ends with `_word`.
fn is_or_ends(s: &[u8], word: &[u8]) -> bool {
    s == word || (s.len() > word.len() && s.ends_with(word) && s[s.len() - word.len() - 1] == b'_')
}

fn classify(s: &[u8]) -> Option<&'static str> {
    if is_or_ends(s, b"private_key") || is_or_ends(s, b"privatekey") {
        return Some("private_key");
    }
    if s.ends_with(b"api_key") || s.ends_with(b"apikey") {
        return Some("api_key");
    }
    if [&b"password"[..], b"passwd", b"pwd", b"passphrase"]
        .iter()
        .any(|w| is_or_ends(s, w))
    {
        return Some("password");
    }
    if is_or_ends(s, b"secret") || s.ends_with(b"secret_key") || s.ends_with(b"secret_access_key") {
        return Some("secret");
    }
    if is_or_ends(s, b"authorization") {
        return Some("authorization");
    }
    if is_or_ends(s, b"credentials") || is_or_ends(s, b"credential") {
        return Some("credentials");
    }
    if is_or_ends(s, b"token")
        && !NOT_SECRET_TOKENS
            .iter()
            .any(|w| is_or_ends(s, w.as_bytes()))
    {
        return Some("token");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::key_kind;

    #[test]
    fn names() {
        let yes = [
            ("password", "password"),
            ("DB_PASSWORD", "password"),
            ("passwd", "password"),
            ("pwd", "password"),
            ("ssh-passphrase", "password"),
            ("secret", "secret"),
            ("client_secret", "secret"),
            ("clientSecret", "secret"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("token", "token"),
            ("access_token", "token"),
            ("refreshToken", "token"),
            ("X-Auth-Token", "token"),
            ("OAuthToken", "token"),
            ("api_key", "api_key"),
            ("apikey", "api_key"),
            ("api-key", "api_key"),
            ("X-API-Key", "api_key"),
            ("openai_api_key", "api_key"),
            ("apiKey", "api_key"),
            ("Authorization", "authorization"),
            ("proxy-authorization", "authorization"),
            ("private_key", "private_key"),
            ("privateKey", "private_key"),
            ("credentials", "credentials"),
            ("gcp_credentials", "credentials"),
        ];
        for (name, kind) in yes {
            assert_eq!(key_kind(name), Some(kind), "{name}");
        }
        let no = [
            "tokens",
            "max_tokens",
            "maxTokens",
            "input_tokens",
            "token_count",
            "token_type",
            "tokenizer",
            "eos_token",
            "next_page_token",
            "keyboard",
            "monkey",
            "key",
            "author",
            "authored_by",
            "passage",
            "compass",
            "bypass_cache",
            "secretary_name",
            "api_version",
            "public_key",
            "credential_id",
            "id",
            "",
        ];
        for name in no {
            assert_eq!(key_kind(name), None, "{name}");
        }
    }
}
