//! Table-driven redaction corpus: strings that must be redacted (each kind,
//! several shapes) and look-alikes that must come back untouched (and
//! borrowed, proving the fast path allocates nothing).

use std::borrow::Cow;

use serde_json::json;

use proptest::prelude::*;

use super::{redact_families, redact_str, redact_value};

/// (input, expected output)
const POSITIVE: &[(&str, &str)] = &[
    // openai_key (sk-, sk-proj-, sk-ant-)
    ("key sk-abcdefghij1234567890ABCDEFGHIJ", "key [REDACTED:openai_key]"),
    (
        "OPENAI_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_AbCdEfGh",
        "OPENAI_KEY=[REDACTED:openai_key]",
    ),
    (
        "using sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv1234567890abcdEFGH-xyz now",
        "using [REDACTED:openai_key] now",
    ),
    ("(sk-0123456789abcdefghijKLMNOP)", "([REDACTED:openai_key])"),
    // aws_access_key
    ("AKIAIOSFODNN7EXAMPLE", "[REDACTED:aws_access_key]"),
    ("id ASIAY34FZKBOKMUTVV7A, region", "id [REDACTED:aws_access_key], region"),
    // github_token
    (
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "[REDACTED:github_token]",
    ),
    (
        "clone with gho_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789xyz",
        "clone with [REDACTED:github_token]",
    ),
    (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEF",
        "[REDACTED:github_token]",
    ),
    // slack_token
    (
        "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOp",
        "[REDACTED:slack_token]",
    ),
    ("token is xoxp-2222222222-abcdefXYZ", "token is [REDACTED:slack_token]"),
    // google_api_key
    (
        "key=AIzaSyD-1234567890abcdefghijklmnopqrstu&q=1",
        "key=[REDACTED:google_api_key]&q=1",
    ),
    // stripe_key
    ("sk_live_51H8abcdefghijklmnop", "[REDACTED:stripe_key]"),
    ("rk_live_0123456789abcdef", "[REDACTED:stripe_key]"),
    ("stripe sk_test_4eC39HqLyjWDarjtT1zdp7dc", "stripe [REDACTED:stripe_key]"),
    // bearer_token
    (
        "Authorization: Bearer abc123def456ghi789",
        "Authorization: Bearer [REDACTED:bearer_token]",
    ),
    (
        "curl -H 'bearer Zm9vYmFyYmF6cXV4cXV1eA=='",
        "curl -H 'bearer [REDACTED:bearer_token]'",
    ),
    (
        "BEARER abcdefghijklmnopqrstuvwxyz",
        "BEARER [REDACTED:bearer_token]",
    ),
    // jwt
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "[REDACTED:jwt]",
    ),
    (
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",
        "Bearer [REDACTED:jwt]",
    ),
    // private_key
    (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234\nabcd==\n-----END RSA PRIVATE KEY-----\nend",
        "key:\n[REDACTED:private_key]\nend",
    ),
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "[REDACTED:private_key]",
    ),
    (
        "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjE=\\n-----END OPENSSH PRIVATE KEY-----",
        "[REDACTED:private_key]",
    ),
    // key=value / key: value in free text
    ("password=hunter2", "password=[REDACTED:password]"),
    ("db_password: s3cr3t!", "db_password: [REDACTED:password]"),
    (
        r#"{"password": "hunter2", "user": "bob"}"#,
        r#"{"password": "[REDACTED:password]", "user": "bob"}"#,
    ),
    (
        "https://api.example.com/v1?api_key=abcd1234&x=1",
        "https://api.example.com/v1?api_key=[REDACTED:api_key]&x=1",
    ),
    ("client_secret=xyz", "client_secret=[REDACTED:secret]"),
    (
        "X-API-Key: 0123456789abcdef",
        "X-API-Key: [REDACTED:api_key]",
    ),
    (
        "Authorization: Basic dXNlcjpwYXNzd29yZA==",
        "Authorization: Basic [REDACTED:authorization]",
    ),
    (
        "access_token=ya29.a0AfH6SMBx",
        "access_token=[REDACTED:token]",
    ),
    ("PWD='p@ss w0rd'", "PWD='[REDACTED:password]'"),
    (
        r#"body: {\"secret\":\"abc\"}"#,
        r#"body: {\"secret\":\"[REDACTED:secret]\"}"#,
    ),
    (
        "refreshToken: 1//0gAbCdEfGhIjKlMn",
        "refreshToken: [REDACTED:token]",
    ),
    ("private_key = abc", "private_key = [REDACTED:private_key]"),
    (
        "credentials: user:pass rest",
        "credentials: [REDACTED:credentials] rest",
    ),
    ("passphrase=correct-horse", "passphrase=[REDACTED:password]"),
    (
        "pw password=a1 and sk-abcdefghij1234567890ABCDEFGHIJ",
        "pw password=[REDACTED:password] and [REDACTED:openai_key]",
    ),
];

/// Look-alikes that must not change.
const NEGATIVE: &[&str] = &[
    "risk-adjusted-return-calculation-model",
    "task-1234",
    "max_tokens: 100",
    "input_tokens=512, output_tokens=128",
    "tokens: 1500",
    "token_count=42",
    "Unexpected token: punc",
    "eos_token: </s>",
    "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    "AKIA",
    "ASIAN MARKETS OPENED HIGHER TODAY",
    "Asia/Tokyo",
    "Bearer",
    "He was the bearer of bad news",
    "bearer instrument",
    "bearer: none",
    "sk-learn-compatible-pipeline-v2",
    "skill-based routing for desk-agents",
    "The password policy requires 12 characters",
    "Enter your password:",
    "password_hash_algorithm: argon2id",
    "secretary: Ms. Smith",
    "the api: /v1/chat/completions",
    "Authorization header missing",
    "author: Jane",
    "eyJhbGciOiJIUzI1NiJ9",
    "ghp_short",
    "github_pat_short",
    "xoxo-hugs-and-kisses",
    "AIzaTooShort",
    "sk_live_",
    "https://example.com/path?page=2&sort=asc",
    "1234567890123456789012345",
    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----",
    "",
    "plain ascii text with nothing special, and unicode: héllo wörld 😂",
];

#[test]
fn positive_corpus() {
    assert!(POSITIVE.len() >= 30);
    for (input, want) in POSITIVE {
        assert_eq!(redact_str(input), *want, "input: {input}");
    }
}

#[test]
fn negative_corpus_is_untouched_and_borrowed() {
    assert!(NEGATIVE.len() >= 20);
    for input in NEGATIVE {
        let out = redact_str(input);
        assert_eq!(out, *input);
        assert!(matches!(out, Cow::Borrowed(_)), "allocated for {input}");
    }
}

#[test]
fn redaction_is_idempotent() {
    for (input, _) in POSITIVE {
        let once = redact_str(input).into_owned();
        assert_eq!(redact_str(&once), once, "input: {input}");
    }
}

#[test]
fn values_by_key_and_content() {
    let mut v = json!({
        "password": "x",
        "Client-Secret": {"nested": 1},
        "max_tokens": 100,
        "input_tokens": 5,
        "tokens": ["a"],
        "token": null,
        "api_key": true,
        "apiKey": 42,
        "headers": {
            "Authorization": "Bearer abc123def456ghi789",
            "X-Request-Id": "task-1234"
        },
        "list": ["sk-abcdefghij1234567890ABCDEFGHIJ", "fine"],
        "credentials": {"user": "a", "password": "b"},
        "note": "password=hunter2"
    });
    redact_value(&mut v);
    assert_eq!(
        v,
        json!({
            "password": "[REDACTED:password]",
            "Client-Secret": "[REDACTED:secret]",
            "max_tokens": 100,
            "input_tokens": 5,
            "tokens": ["a"],
            "token": null,
            "api_key": true,
            "apiKey": "[REDACTED:api_key]",
            "headers": {
                "Authorization": "[REDACTED:authorization]",
                "X-Request-Id": "task-1234"
            },
            "list": ["[REDACTED:openai_key]", "fine"],
            "credentials": "[REDACTED:credentials]",
            "note": "password=[REDACTED:password]"
        })
    );
}

proptest! {
    /// The pre-check never hides a match: running every family on every
    /// string gives the same result as the filtered fast path.
    #[test]
    fn precheck_never_skips_a_match(
        parts in prop::collection::vec(prop::sample::select(vec![
            "sk-", "sk_live_", "AKIA", "ASIA", "ghp_", "github_pat_", "xoxb-", "AIza", "eyJ", ".",
            "Bearer ", "bearer\t", "password", "Token", "_token", "api-key", "max_tokens", "secret",
            "Authorization", "credentials", "-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----",
            ": ", "=", "\"", "'", "\\\"", " ", "\n", "&", "abcdefghij", "0123456789", "ABCDEFGHIJKLMNOP", "é", "😂",
        ]), 0..24)
    ) {
        let s: String = parts.concat();
        prop_assert_eq!(redact_str(&s), redact_families(&s, u16::MAX));
    }
}
