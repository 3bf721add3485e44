//! Content policy and redaction. Under the default `hash` policy the input
//! and output bodies and the summaries are absent from the API answers and
//! from the store (the raw bytes of the sqlite database files `trail.db`,
//! `trail.db-wal`; on postgres, a dump of the database);
//! only their SHA-256 (of the UTF-8 bytes of a string, else of the RFC 8785
//! JCS) and sizes are kept, plus `user_email`. Under `summary` only the
//! redacted, cut summaries are kept. Under `full` (set with `PUT
//! /v1/settings`) redacted bodies are kept: secrets in bodies, `error` and
//! `metadata` come back as `[REDACTED:<kind>]`, with the text around them
//! intact, and no raw secret reaches the store.

use serde_json::{json, Value};

use crate::harness::{marker, new_uuid, random_u64, sha256_hex, store_contains, Failures, Server};

fn hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&format!("{:016x}", random_u64()));
    }
    s.truncate(n);
    // Make sure both letters and digits occur.
    s.replace_range(0..2, "a7");
    s
}

/// True when `got` is `original` with `secret` replaced by one
/// `[REDACTED:<kind>]` tag (kind: lowercase letters and underscores).
fn redacted_in_place(original: &str, secret: &str, got: &str) -> bool {
    let Some(at) = original.find(secret) else {
        panic!("{secret:?} not in {original:?}");
    };
    let (before, after) = (&original[..at], &original[at + secret.len()..]);
    let Some(middle) = got
        .strip_prefix(before)
        .and_then(|rest| rest.strip_suffix(after))
    else {
        return false;
    };
    let Some(kind) = middle
        .strip_prefix("[REDACTED:")
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return false;
    };
    !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn metadata_text(record: &Value, member: &str) -> String {
    record["metadata"][member]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn is_tag(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.starts_with("[REDACTED:") && s.ends_with(']') && !s.contains(' '))
}

#[test]
fn default_policy_keeps_only_hashes_and_sizes() {
    let server = Server::start();
    let admin = server.admin();
    assert_eq!(
        admin.get("/v1/settings").expect(200)["content_policy"],
        json!("hash")
    );
    let name = marker("NAMEPROBE");
    let in_mark = marker("INPUTMARK");
    let out_mark = marker("OUTPUTMARK");
    let sum_mark = marker("SUMMARYMARK");
    let id = new_uuid();
    // The input as sent, and its JCS: sorted members, canonical numbers,
    // no escapes for printable characters.
    let body = format!(
        r#"{{"id":"{id}","type":"llm_call","name":"{name}","user_email":"alice@example.com",
            "input":{{"z":[1,2.50],"prompt":"{in_mark} caf\u00e9","n":1e3}},
            "output":"{out_mark} résumé ✓",
            "input_summary":"{sum_mark} in","output_summary":"{sum_mark} out"}}"#
    );
    let jcs = format!(r#"{{"n":1000,"prompt":"{in_mark} café","z":[1,2.5]}}"#);
    let output = format!("{out_mark} résumé ✓");
    admin.post_raw("/v1/events", body.as_bytes()).expect(200);

    let answer = admin.get(&format!("/v1/events/{id}"));
    let detail = answer.expect(200);
    let record = &detail["record"];
    for field in ["input", "output", "input_summary", "output_summary"] {
        assert!(
            record[field].is_null(),
            "{field} kept under hash policy: {record}"
        );
    }
    let text = answer.text();
    for mark in [&in_mark, &out_mark, &sum_mark] {
        assert!(
            !text.contains(mark.as_str()),
            "{mark} in the answer: {text}"
        );
    }
    assert_eq!(
        record["input_hash"],
        json!(sha256_hex(jcs.as_bytes())),
        "input_hash over JCS"
    );
    assert_eq!(
        record["output_hash"],
        json!(sha256_hex(output.as_bytes())),
        "output_hash over UTF-8"
    );
    assert_eq!(record["input_bytes"], json!(jcs.len()));
    assert_eq!(record["output_bytes"], json!(output.len()));
    assert_eq!(
        record["user_email"],
        json!("alice@example.com"),
        "user_email is kept"
    );
    assert_eq!(record["name"], json!(name));
    let listed = admin.get("/v1/events").text();
    for mark in [&in_mark, &out_mark, &sum_mark] {
        assert!(!listed.contains(mark.as_str()), "{mark} in the list");
    }

    // The store itself: the name is there (so the grep works), the
    // bodies are not.
    let dir = &server.data_dir;
    assert!(
        store_contains(dir, name.as_bytes()),
        "probe: name not found in the db files"
    );
    for mark in [&in_mark, &out_mark, &sum_mark] {
        assert!(
            !store_contains(dir, mark.as_bytes()),
            "{mark} in the database files"
        );
    }

    // Secrets in error and metadata are redacted under every policy.
    let openai = format!("sk-{}", hex(48));
    let password = marker("pw-");
    let error = format!("provider said: invalid key {openai}");
    let accepted = admin.ingest(&json!({
        "type": "llm_call", "name": "chat", "status": "error", "error": error,
        "metadata": {"password": password, "region": "eu"},
    }));
    let id = accepted[0]["id"].as_str().unwrap();
    let answer = admin.get(&format!("/v1/events/{id}"));
    let record = &answer.expect(200)["record"];
    let got = record["error"].as_str().unwrap();
    assert!(redacted_in_place(&error, &openai, got), "error: {got}");
    assert!(
        is_tag(&record["metadata"]["password"]),
        "{}",
        record["metadata"]
    );
    assert_eq!(record["metadata"]["region"], json!("eu"));
    for secret in [&openai, &password] {
        assert!(
            !answer.text().contains(secret.as_str()),
            "{secret} in the answer"
        );
        assert!(
            !store_contains(dir, secret.as_bytes()),
            "{secret} in the database files"
        );
    }

    // A hash the client sends without a body is kept as sent.
    let sent_hash = sha256_hex(b"elsewhere");
    let accepted = admin.ingest(&json!({
        "type": "document_upload", "name": "upload", "input_hash": sent_hash, "input_bytes": 9,
        "document_ids": ["doc-9"]
    }));
    let id = accepted[0]["id"].as_str().unwrap();
    let record = &admin.get(&format!("/v1/events/{id}")).expect(200)["record"];
    assert_eq!(record["input_hash"], json!(sent_hash));
    assert_eq!(record["input_bytes"], json!(9));
}

#[test]
fn summary_policy_keeps_redacted_cut_summaries_only() {
    let server = Server::start();
    let admin = server.admin();
    let settings = admin
        .put("/v1/settings", &json!({"content_policy": "summary"}))
        .expect(200);
    assert_eq!(settings["content_policy"], json!("summary"));
    let secret = format!("sk-proj-{}", hex(40));
    let body_mark = marker("BODYMARK");
    let out_mark = marker("OUTSUMMARK");
    let long_summary = format!("key {secret} then {}", "words and more words ".repeat(60));
    let accepted = admin.ingest(&json!({
        "type": "llm_call", "name": "chat",
        "input": {"prompt": body_mark}, "output": body_mark,
        "input_summary": long_summary, "output_summary": out_mark,
    }));
    let id = accepted[0]["id"].as_str().unwrap();
    let answer = admin.get(&format!("/v1/events/{id}"));
    let record = &answer.expect(200)["record"];
    let summary = record["input_summary"]
        .as_str()
        .expect("input_summary kept");
    assert!(
        summary.chars().count() <= 512,
        "summary not cut: {} chars",
        summary.chars().count()
    );
    assert!(
        summary.starts_with("key [REDACTED:"),
        "summary not redacted: {summary}"
    );
    assert_eq!(record["output_summary"], json!(out_mark));
    assert!(
        record["input"].is_null() && record["output"].is_null(),
        "{record}"
    );
    let text = answer.text();
    assert!(
        !text.contains(&secret) && !text.contains(&body_mark),
        "{text}"
    );
    let dir = &server.data_dir;
    assert!(
        store_contains(dir, out_mark.as_bytes()),
        "probe: summary not stored"
    );
    assert!(
        !store_contains(dir, secret.as_bytes()),
        "secret in the database files"
    );
    assert!(
        !store_contains(dir, body_mark.as_bytes()),
        "body in the database files"
    );
}

#[test]
fn full_policy_redacts_secrets_in_bodies_error_and_metadata() {
    let server = Server::start();
    let admin = server.admin();

    // Stored before the change: stays hash-only.
    let early_mark = marker("EARLYMARK");
    let early = admin.ingest(&json!({"type": "tool_call", "name": "early", "input": early_mark}));
    let early_id = early[0]["id"].as_str().unwrap().to_owned();

    let settings = admin
        .put("/v1/settings", &json!({"content_policy": "full"}))
        .expect(200);
    assert_eq!(settings["content_policy"], json!("full"));
    assert_eq!(
        admin.get("/v1/settings").expect(200)["content_policy"],
        json!("full")
    );

    let openai = format!("sk-proj-{}", hex(40));
    let aws = format!("AKIA{}", hex(16).to_uppercase());
    let github = format!("ghp_{}", hex(36));
    let bearer_token = hex(40);
    let jwt = format!("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI{}.{}", hex(20), hex(43));
    let pem = format!(
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA{}\n{}\n-----END RSA PRIVATE KEY-----",
        hex(60),
        hex(60)
    );
    let password = marker("hunter2-");
    let api_key_value = marker("apikeyvalue-");
    let client_secret = marker("clientsecret-");
    let keep = marker("KEEPMARK");
    let text_password = marker("textpw");
    let text_api_key = marker("textapikey");

    let prompt = format!("call it with {openai} and {aws} please");
    let output = format!("cloned with {github} ok");
    let header = format!("sent Authorization: Bearer {bearer_token}");
    let error = format!("upstream rejected token {jwt}");
    let event = json!({
        "type": "llm_call", "name": "chat", "status": "error",
        "error": error,
        "input": {
            "messages": [
                {"role": "user", "content": prompt},
                {"role": "system", "content": header},
                {"role": "tool", "content": format!("retry with password={text_password} now")},
            ],
            "password": password,
            "keep": keep,
            "key_file": pem,
        },
        "output": output,
        "metadata": {"api_key": api_key_value, "note": aws, "config": format!("api_key: {text_api_key}"), "nested": {"client_secret": client_secret}, "plain": keep},
    });
    let accepted = admin.ingest(&event);
    let id = accepted[0]["id"].as_str().unwrap();
    let answer = admin.get(&format!("/v1/events/{id}"));
    let detail = answer.expect(200);
    let record = &detail["record"];

    // Bodies are kept, with the secrets replaced in place. Every check is
    // made, and all failures are reported together.
    let mut failures = Failures::default();
    assert_eq!(
        record["input"]["keep"],
        json!(keep),
        "full policy keeps the input: {record}"
    );
    let messages = record["input"]["messages"]
        .as_array()
        .expect("messages kept");
    let content = messages[0]["content"].as_str().unwrap();
    failures.check(
        content.starts_with("call it with [REDACTED:")
            && content.ends_with("] please")
            && content.matches("[REDACTED:").count() == 2,
        format!("OpenAI and AWS keys in input text: {prompt:?} came back as {content:?}"),
    );
    let system = messages[1]["content"].as_str().unwrap();
    failures.check(
        redacted_in_place(&header, &bearer_token, system)
            || system == "sent Authorization: [REDACTED:authorization]",
        format!("Bearer token in input text: {header:?} came back as {system:?}"),
    );
    let tool = messages[2]["content"].as_str().unwrap();
    failures.check(
        redacted_in_place(
            &format!("retry with password={text_password} now"),
            &text_password,
            tool,
        ),
        format!("password=... in input text came back as {tool:?}"),
    );
    let config = metadata_text(record, "config");
    failures.check(
        redacted_in_place(&format!("api_key: {text_api_key}"), &text_api_key, &config),
        format!("api_key: ... in a metadata string came back as {config:?}"),
    );
    failures.check(
        is_tag(&record["input"]["password"]),
        format!(
            "input.password came back as {}",
            record["input"]["password"]
        ),
    );
    failures.check(
        is_tag(&record["input"]["key_file"]),
        format!(
            "PEM private key in input came back as {}",
            record["input"]["key_file"]
        ),
    );
    let out = record["output"].as_str().expect("output kept");
    failures.check(
        redacted_in_place(&output, &github, out),
        format!("GitHub token in output: {output:?} came back as {out:?}"),
    );
    let err = record["error"].as_str().expect("error");
    failures.check(
        redacted_in_place(&error, &jwt, err),
        format!("JWT in error: {error:?} came back as {err:?}"),
    );
    let metadata = &record["metadata"];
    failures.check(
        is_tag(&metadata["api_key"]),
        format!("metadata.api_key: {metadata}"),
    );
    failures.check(
        is_tag(&metadata["note"]),
        format!("AWS key as metadata.note: {metadata}"),
    );
    failures.check(
        is_tag(&metadata["nested"]["client_secret"]),
        format!("metadata.nested.client_secret: {metadata}"),
    );
    failures.check(
        metadata["plain"] == json!(keep),
        format!("metadata.plain: {metadata}"),
    );
    // The hash is over what the client sent, not the redacted copy.
    failures.check(
        record["output_hash"] == json!(sha256_hex(output.as_bytes())),
        "output_hash is not the SHA-256 of the output as sent",
    );

    let secrets = [
        ("openai key", openai.as_str()),
        ("aws key", aws.as_str()),
        ("github token", github.as_str()),
        ("bearer token", bearer_token.as_str()),
        ("jwt", jwt.as_str()),
        ("pem body", &pem[32..90]),
        ("password", password.as_str()),
        ("api_key value", api_key_value.as_str()),
        ("client_secret value", client_secret.as_str()),
        ("password= in text", text_password.as_str()),
        ("api_key: in text", text_api_key.as_str()),
    ];
    let text = answer.text();
    let listed = admin.get("/v1/events").text();
    let dir = &server.data_dir;
    assert!(
        store_contains(dir, keep.as_bytes()),
        "probe: kept body not found"
    );
    for (kind, secret) in secrets {
        failures.check(
            !text.contains(secret),
            format!("raw {kind} in GET /v1/events/{{id}}"),
        );
        failures.check(
            !listed.contains(secret),
            format!("raw {kind} in GET /v1/events"),
        );
        failures.check(
            !store_contains(dir, secret.as_bytes()),
            format!("raw {kind} in the database files"),
        );
    }
    failures.finish("full-policy redaction");

    // The earlier event got no content retroactively.
    let early = admin.get(&format!("/v1/events/{early_id}"));
    assert!(early.expect(200)["record"]["input"].is_null());
    assert!(!early.text().contains(&early_mark));

    // Bad settings are named and change nothing.
    let response = admin.put(
        "/v1/settings",
        &json!({"content_policy": "everything", "colour": 1}),
    );
    let problem = crate::harness::assert_problem(&response, 400, "content_policy");
    assert!(problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["field"] == json!("colour")));
    assert_eq!(
        admin.get("/v1/settings").expect(200)["content_policy"],
        json!("full")
    );
}
