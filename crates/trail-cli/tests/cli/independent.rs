//! An independent verifier of trail's tamper evidence, written from the
//! public specifications only (RFC 8785 JCS, RFC 6962/9162 Merkle trees and
//! proofs, C2SP signed notes and tlog checkpoints) with nothing but `sha2`,
//! `ed25519-dalek`, `base64`, `hex` and `serde_json` — never trail's own
//! crates — and the tests that point it at a running server: the latest
//! checkpoint, inclusion proofs (from `/v1/proof/inclusion` and from
//! `/v1/events/{id}`), consistency proofs between every pair of kept
//! checkpoints, and the whole `/v1/export` bundle all check out, while a
//! single flipped byte in a proof, a root or a signature makes this verifier
//! refuse (so its approval means something). The other tamper-evidence test
//! files reuse these functions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::harness::{new_uuid, Client, Server};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

// ---------------------------------------------------------------------------
// RFC 8785 JCS
// ---------------------------------------------------------------------------

/// The RFC 8785 canonical encoding of `value`.
pub fn jcs(value: &Value) -> String {
    let mut out = String::new();
    write_jcs(value, &mut out);
    out
}

fn write_jcs(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&es_number(n.as_f64().expect("a finite number"))),
        Value::String(s) => write_jcs_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_jcs(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| utf16_cmp(a, b));
            out.push('{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_jcs_string(key, out);
                out.push(':');
                write_jcs(&map[key.as_str()], out);
            }
            out.push('}');
        }
    }
}

/// Orders strings by their UTF-16 code units (RFC 8785 §3.2.3).
fn utf16_cmp(a: &str, b: &str) -> Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// A JSON string as ECMAScript's `JSON.stringify` writes it.
fn write_jcs_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{0c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A double as ECMAScript's `Number.prototype.toString` writes it, from the
/// shortest round-trip digits Rust's `{:e}` gives.
pub fn es_number(x: f64) -> String {
    assert!(x.is_finite(), "JCS has no {x}");
    if x == 0.0 {
        return "0".into();
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let sci = format!("{:e}", x.abs());
    let (mantissa, exponent) = sci.split_once('e').expect("an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    // The value is 0.DIGITS * 10^n.
    let n = exponent.parse::<i32>().expect("an integer exponent") + 1;
    let body = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let e = if e >= 0 {
            format!("+{e}")
        } else {
            e.to_string()
        };
        if k == 1 {
            format!("{digits}e{e}")
        } else {
            format!("{}.{}e{e}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{body}")
}

// ---------------------------------------------------------------------------
// RFC 6962 / RFC 9162 Merkle trees
// ---------------------------------------------------------------------------

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// `SHA-256(0x00 || bytes)`.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    sha256(&[&[0u8], bytes])
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1u8], left, right])
}

/// The largest power of two strictly below `n` (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH of a list of leaf hashes (RFC 6962 §2.1).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// Every complete subtree hash of level >= 1: `(level, index) -> hash`,
/// where the subtree covers leaves `index << level .. (index + 1) << level`.
pub fn complete_subtrees(leaves: &[Hash]) -> BTreeMap<(u32, u64), Hash> {
    let mut out = BTreeMap::new();
    let mut level_hashes: Vec<Hash> = leaves.to_vec();
    let mut level = 0u32;
    while level_hashes.len() >= 2 {
        level += 1;
        level_hashes = level_hashes
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
        for (i, hash) in level_hashes.iter().enumerate() {
            out.insert((level, i as u64), *hash);
        }
    }
    out
}

/// RFC 9162 §2.1.3.2: is `leaf` at `index` in the tree of `size` with
/// `root`, by `proof`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: is the tree of `second` (root `second_root`) an
/// extension of the tree of `first` (root `first_root`), by `proof`?
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first > second {
        return false;
    }
    if first == 0 {
        return proof.is_empty();
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    if path.is_empty() {
        return false;
    }
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first_root && sr == *second_root && sn == 0
}

/// RFC 9162 PATH(m, D): an inclusion proof, for testing the verifier.
fn make_inclusion(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = make_inclusion(m, &leaves[..k]);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = make_inclusion(m - k, &leaves[k..]);
        p.push(root(&leaves[..k]));
        p
    }
}

/// RFC 9162 SUBPROOF(m, D, b): a consistency proof, for testing.
fn make_consistency(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole {
            Vec::new()
        } else {
            vec![root(leaves)]
        };
    }
    let k = split(n);
    if m <= k {
        let mut p = make_consistency(m, &leaves[..k], whole);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = make_consistency(m - k, &leaves[k..], false);
        p.push(root(&leaves[..k]));
        p
    }
}

/// Parses a list of lowercase hex hashes.
pub fn hashes(value: &Value) -> Vec<Hash> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list of hashes: {value}"))
        .iter()
        .map(|h| parse_hash(h.as_str().unwrap_or_else(|| panic!("not hex: {h}"))))
        .collect()
}

/// Parses one 64-hex hash.
pub fn parse_hash(text: &str) -> Hash {
    let bytes = hex::decode(text).unwrap_or_else(|e| panic!("{text:?} is not hex: {e}"));
    bytes
        .try_into()
        .unwrap_or_else(|_| panic!("{text:?} is not 32 bytes"))
}

// ---------------------------------------------------------------------------
// C2SP signed notes and checkpoints
// ---------------------------------------------------------------------------

/// A verifier key: name, key id and Ed25519 public key.
#[derive(Debug, Clone)]
pub struct Vkey {
    /// Key name (the origin prefix for trail).
    pub name: String,
    /// The 4-byte key id.
    pub key_id: [u8; 4],
    /// The public key.
    pub key: VerifyingKey,
}

/// `SHA-256(name || 0x0A || 0x01 || pubkey)[:4]`.
pub fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let h = sha256(&[name.as_bytes(), b"\n", &[1u8], public]);
    [h[0], h[1], h[2], h[3]]
}

/// `name+<keyid hex>+base64(0x01 || pubkey)`.
pub fn vkey_text(name: &str, public: &[u8; 32]) -> String {
    let mut payload = vec![1u8];
    payload.extend_from_slice(public);
    format!(
        "{name}+{}+{}",
        hex::encode(key_id(name, public)),
        B64.encode(payload)
    )
}

/// Parses a vkey, checking its key id against its name and key.
pub fn parse_vkey(text: &str) -> Result<Vkey, String> {
    // A key name never holds '+'; the base64 key may.
    let mut parts = text.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("{text:?} is not name+id+key"));
    };
    let payload = B64
        .decode(b64)
        .map_err(|e| format!("key not base64: {e}"))?;
    if payload.len() != 33 || payload[0] != 1 {
        return Err("not an Ed25519 key (0x01 || 32 bytes)".into());
    }
    let public: [u8; 32] = payload[1..].try_into().unwrap();
    let key = VerifyingKey::from_bytes(&public).map_err(|e| format!("bad key: {e}"))?;
    let key_id = key_id(name, &public);
    if hex::encode(key_id) != id {
        return Err(format!("key id {id} is not {}", hex::encode(key_id)));
    }
    Ok(Vkey {
        name: name.to_owned(),
        key_id,
        key,
    })
}

/// The vkey of a private key file line
/// `PRIVATE+KEY+<name>+<keyid hex>+<base64(0x01 || seed)>`.
pub fn vkey_of_private_key(line: &str) -> Result<String, String> {
    let rest = line
        .trim()
        .strip_prefix("PRIVATE+KEY+")
        .ok_or("no PRIVATE+KEY+ prefix")?;
    // A key name never holds '+'; the base64 key may.
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(id), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not name+id+key".into());
    };
    let payload = B64.decode(b64).map_err(|e| format!("not base64: {e}"))?;
    if payload.len() != 33 || payload[0] != 1 {
        return Err("not an Ed25519 seed (0x01 || 32 bytes)".into());
    }
    let seed: [u8; 32] = payload[1..].try_into().unwrap();
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    if hex::encode(key_id(name, &public)) != id {
        return Err(format!("key id {id} does not match the key"));
    }
    Ok(vkey_text(name, &public))
}

/// A private key file line for `seed` under `name`, as the Go note tooling
/// writes it.
pub fn private_key_line(name: &str, seed: &[u8; 32]) -> String {
    let public = SigningKey::from_bytes(seed).verifying_key().to_bytes();
    let mut payload = vec![1u8];
    payload.extend_from_slice(seed);
    format!(
        "PRIVATE+KEY+{name}+{}+{}\n",
        hex::encode(key_id(name, &public)),
        B64.encode(payload)
    )
}

/// A verified checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// Root hash.
    pub root: Hash,
}

/// Checks a signed note's signature by `vkey` (name and key id must match
/// one signature line) and parses its checkpoint body.
pub fn open_note(note: &str, vkey: &Vkey) -> Result<Checkpoint, String> {
    let at = note.find("\n\n").ok_or("no blank line in the note")?;
    let (text, signatures) = (&note[..at + 1], &note[at + 2..]);
    if !signatures.ends_with('\n') {
        return Err("the signature block does not end with a newline".into());
    }
    let mut verified = false;
    for line in signatures.lines() {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| format!("signature line {line:?} does not start with an em dash"))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| format!("signature line {line:?} has no key name"))?;
        let blob = B64
            .decode(b64)
            .map_err(|e| format!("signature not base64: {e}"))?;
        if blob.len() < 4 || name != vkey.name || blob[..4] != vkey.key_id {
            continue;
        }
        let sig: [u8; 64] = blob[4..]
            .try_into()
            .map_err(|_| format!("signature of {} bytes", blob.len() - 4))?;
        vkey.key
            .verify_strict(text.as_bytes(), &Signature::from_bytes(&sig))
            .map_err(|e| format!("bad signature: {e}"))?;
        verified = true;
    }
    if !verified {
        return Err(format!("no signature by {}", vkey.name));
    }
    let mut lines = text.lines();
    let origin = lines.next().filter(|o| !o.is_empty()).ok_or("no origin")?;
    let size_text = lines.next().ok_or("no size")?;
    if size_text.is_empty()
        || !size_text.bytes().all(|b| b.is_ascii_digit())
        || (size_text.len() > 1 && size_text.starts_with('0'))
    {
        return Err(format!("bad size {size_text:?}"));
    }
    let size = size_text.parse().map_err(|e| format!("bad size: {e}"))?;
    let root_text = lines.next().ok_or("no root")?;
    let root: Hash = B64
        .decode(root_text)
        .map_err(|e| format!("root not base64: {e}"))?
        .try_into()
        .map_err(|_| "root is not 32 bytes".to_owned())?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

// ---------------------------------------------------------------------------
// Export bundles
// ---------------------------------------------------------------------------

/// What a verified bundle holds.
#[derive(Debug)]
pub struct Bundle {
    /// The log's origin.
    pub origin: String,
    /// Leaf hashes in seq order.
    pub leaves: Vec<Hash>,
    /// The verified checkpoints, as given.
    pub checkpoints: Vec<Checkpoint>,
    /// Their notes.
    pub notes: Vec<String>,
    /// Records with content whose digest was checked.
    pub with_content: usize,
}

/// Verifies an NDJSON export bundle against `vkey`: every leaf hash is
/// `SHA-256(0x00 || JCS(envelope))`, every envelope names its seq and the
/// tenant, every content matches its salted digest, every checkpoint is
/// signed, names the origin and has the root of that many leaves, and the
/// last one covers every record. Errors name the seq when there is one.
pub fn verify_bundle(text: &str, vkey: &Vkey) -> Result<Bundle, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head: Value = serde_json::from_str(lines.next().ok_or("empty bundle")?)
        .map_err(|e| format!("log line: {e}"))?;
    if head["kind"] != "log" {
        return Err(format!("the first line is not the log line: {head}"));
    }
    let origin = head["origin"].as_str().ok_or("no origin")?.to_owned();
    let tenant = head["tenant_id"].as_str().ok_or("no tenant_id")?.to_owned();
    let mut bundle = Bundle {
        origin: origin.clone(),
        leaves: Vec::new(),
        checkpoints: Vec::new(),
        notes: Vec::new(),
        with_content: 0,
    };
    for line in lines {
        let item: Value = serde_json::from_str(line).map_err(|e| format!("bad line: {e}"))?;
        match item["kind"].as_str() {
            Some("record") => {
                let seq = bundle.leaves.len() as u64;
                let bad = |what: &str| format!("seq {seq}: {what}");
                if item["seq"] != json!(seq) {
                    return Err(bad(&format!("the line says seq {}", item["seq"])));
                }
                let envelope = &item["envelope"];
                if !envelope.is_object() {
                    return Err(bad("no envelope"));
                }
                let leaf = leaf_hash(jcs(envelope).as_bytes());
                let stored = item["leaf_hash"]
                    .as_str()
                    .ok_or_else(|| bad("no leaf_hash"))?;
                if hex::encode(leaf) != stored {
                    return Err(bad("leaf hash is not SHA-256(0x00 || JCS(envelope))"));
                }
                if envelope["seq"] != json!(seq) || envelope["tenant_id"] != json!(tenant) {
                    return Err(bad("the envelope names another seq or tenant"));
                }
                if !item["content"].is_null() {
                    let salt = B64
                        .decode(
                            item["content_salt"]
                                .as_str()
                                .ok_or_else(|| bad("no salt"))?,
                        )
                        .map_err(|e| bad(&format!("salt: {e}")))?;
                    if salt.len() != 32 {
                        return Err(bad("the salt is not 32 bytes"));
                    }
                    let digest = sha256(&[&salt, jcs(&item["content"]).as_bytes()]);
                    if envelope["content_digest"] != json!(hex::encode(digest)) {
                        return Err(bad("content does not match content_digest"));
                    }
                    bundle.with_content += 1;
                }
                bundle.leaves.push(leaf);
            }
            Some("checkpoint") => {
                let note = item["note"].as_str().ok_or("a checkpoint without note")?;
                let checkpoint = open_note(note, vkey)?;
                if checkpoint.origin != origin {
                    return Err(format!("checkpoint of origin {}", checkpoint.origin));
                }
                bundle.checkpoints.push(checkpoint);
                bundle.notes.push(note.to_owned());
            }
            other => return Err(format!("unexpected line kind {other:?}")),
        }
    }
    let n = bundle.leaves.len() as u64;
    if head["tree_size"] != json!(n) {
        return Err(format!(
            "{n} records but the log line says {}",
            head["tree_size"]
        ));
    }
    for checkpoint in &bundle.checkpoints {
        if checkpoint.size > n {
            return Err(format!(
                "seq {n}: the checkpoint of size {} covers missing records",
                checkpoint.size
            ));
        }
        if root(&bundle.leaves[..checkpoint.size as usize]) != checkpoint.root {
            return Err(format!(
                "checkpoint of size {}: root differs from the records",
                checkpoint.size
            ));
        }
    }
    if bundle.checkpoints.iter().map(|c| c.size).max() != Some(n) {
        return Err("no checkpoint covers every record".into());
    }
    Ok(bundle)
}

// ---------------------------------------------------------------------------
// Helpers shared with the other files
// ---------------------------------------------------------------------------

/// The trusted vkey: the one `GET /v1/log` gives, checked equal to the one
/// derived from `DIR/log.key`.
pub fn trusted_vkey(server: &Server) -> Vkey {
    let log = server.admin().get("/v1/log").expect(200);
    let served = log["vkey"].as_str().expect("vkey").to_owned();
    let line = std::fs::read_to_string(server.data_dir.join("log.key")).expect("log.key");
    let derived = vkey_of_private_key(&line).expect("log.key parses");
    assert_eq!(served, derived, "GET /v1/log vkey vs DIR/log.key");
    parse_vkey(&served).expect("the served vkey parses")
}

/// `GET /v1/checkpoint[?size=N]`, opened with `vkey`.
pub fn fetch_checkpoint(client: &Client, size: Option<u64>, vkey: &Vkey) -> (Checkpoint, String) {
    let path = match size {
        Some(size) => format!("/v1/checkpoint?size={size}"),
        None => "/v1/checkpoint".to_owned(),
    };
    let response = client.get(&path);
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    let note = response.text();
    let checkpoint = open_note(&note, vkey).unwrap_or_else(|e| panic!("{path}: {e}:\n{note}"));
    if let Some(size) = size {
        assert_eq!(checkpoint.size, size, "{path} gave another size");
    }
    (checkpoint, note)
}

/// Checks `GET /v1/proof/consistency?from=A&to=B` between two checkpoints.
pub fn check_consistency(client: &Client, a: &Checkpoint, b: &Checkpoint) {
    let path = format!("/v1/proof/consistency?from={}&to={}", a.size, b.size);
    let answer = client.get(&path).expect(200);
    assert_eq!(answer["from"], json!(a.size), "{path}: {answer}");
    assert_eq!(answer["to"], json!(b.size), "{path}: {answer}");
    let proof = hashes(&answer["hashes"]);
    assert!(
        verify_consistency(a.size, b.size, &a.root, &b.root, &proof),
        "{path}: the proof does not verify: {answer}"
    );
}

/// Flips one bit of a hash.
pub fn flipped(hash: &Hash, byte: usize) -> Hash {
    let mut out = *hash;
    out[byte % 32] ^= 0x01;
    out
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn jcs_encoder_follows_rfc_8785() {
    let cases: &[(&str, &str)] = &[
        ("1e21", "1e+21"),
        ("1e20", "100000000000000000000"),
        ("1e-7", "1e-7"),
        ("0.000001", "0.000001"),
        ("123.456", "123.456"),
        ("-0.0", "0"),
        ("1.0", "1"),
        ("-1.5e-10", "-1.5e-10"),
        ("4.5e300", "4.5e+300"),
        ("9007199254740993", "9007199254740992"),
        ("0.1", "0.1"),
        ("5e-324", "5e-324"),
        ("333333333.33333329", "333333333.3333333"),
    ];
    for (input, want) in cases {
        let value: Value = serde_json::from_str(input).unwrap();
        assert_eq!(jcs(&value), *want, "number {input}");
    }
    let value: Value = serde_json::from_str(
        r#"{"b":[true,false,null,"\u0001\b\t\n\f\r\"\\/ é € \u2028 😀"],
            "a":{"\ufb01":1,"😀":2,"B":3,"a":4,"":5},"\u20ac":0}"#,
    )
    .unwrap();
    assert_eq!(
        jcs(&value),
        "{\"a\":{\"\":5,\"B\":3,\"a\":4,\"😀\":2,\"\u{fb01}\":1},\
         \"b\":[true,false,null,\"\\u0001\\b\\t\\n\\f\\r\\\"\\\\/ é € \u{2028} 😀\"],\"€\":0}"
    );
}

#[test]
fn merkle_verifiers_accept_real_proofs_and_reject_altered_ones() {
    let leaves: Vec<Hash> = (0u32..17).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    assert_eq!(root(&[]), sha256(&[]), "empty tree");
    assert_eq!(root(&leaves[..1]), leaves[0]);
    assert_eq!(
        root(&leaves[..3]),
        node_hash(&node_hash(&leaves[0], &leaves[1]), &leaves[2])
    );
    for n in 1..=leaves.len() {
        let tree = &leaves[..n];
        let r = root(tree);
        for m in 0..n {
            let proof = make_inclusion(m, tree);
            assert!(
                verify_inclusion(m as u64, n as u64, &tree[m], &proof, &r),
                "inclusion {m} in {n}"
            );
            assert!(!verify_inclusion(
                m as u64,
                n as u64,
                &tree[m],
                &proof,
                &flipped(&r, m)
            ));
            assert!(!verify_inclusion(
                m as u64,
                n as u64,
                &flipped(&tree[m], 3),
                &proof,
                &r
            ));
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flipped(&bad[i], i);
                assert!(!verify_inclusion(m as u64, n as u64, &tree[m], &bad, &r));
            }
        }
        for m in 1..=n {
            let proof = make_consistency(m, tree, true);
            let first = root(&tree[..m]);
            assert!(
                verify_consistency(m as u64, n as u64, &first, &r, &proof),
                "consistency {m} -> {n}"
            );
            assert!(!verify_consistency(
                m as u64,
                n as u64,
                &flipped(&first, 1),
                &r,
                &proof
            ));
            assert!(!verify_consistency(
                m as u64,
                n as u64,
                &first,
                &flipped(&r, 2),
                &proof
            ));
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                bad[i] = flipped(&bad[i], 7);
                assert!(!verify_consistency(m as u64, n as u64, &first, &r, &bad));
            }
        }
    }
    let subtrees = complete_subtrees(&leaves[..6]);
    assert_eq!(subtrees[&(1, 2)], node_hash(&leaves[4], &leaves[5]));
    assert_eq!(subtrees[&(2, 0)], root(&leaves[..4]));
    assert!(!subtrees.contains_key(&(2, 1)), "an incomplete subtree");
}

/// An event with metadata exercising the JCS corners the server must
/// canonicalize the same way: unsorted and non-ASCII keys, escapes,
/// fractions, exponents, nesting.
fn rich_event(round: usize, i: usize) -> Value {
    json!({
        "id": new_uuid(),
        "type": if i.is_multiple_of(2) { "llm_call" } else { "tool_call" },
        "name": format!("step-{round}-{i}"),
        "user_email": format!("user{round}{i}@example.com"),
        "duration_ms": 10 * i + round,
        "metadata": {
            "zeta": 1.5,
            "small": 1e-7,
            "big": 1e21,
            "neg": -0.25,
            "int": 12345,
            "\u{fb01}": "ligature key",
            "\u{1f600}": "astral key",
            "Alpha": [1, 2.50, "x\u{1}y\t\"q\"\\", null, true, {"b": 2, "a": 1}],
            "nested": {"k": {"z": [], "a": {}}, "café": "résumé ✓ \u{2028}"},
        },
    })
}

#[test]
fn independent_verifier_accepts_the_live_log() {
    let server = Server::start();
    let admin = server.admin();
    let vkey = trusted_vkey(&server);
    let mut ids: Vec<(String, u64)> = Vec::new();
    let mut rounds = Vec::new();
    for round in 0..4 {
        let batch: Vec<Value> = (0..3 + round).map(|i| rich_event(round, i)).collect();
        let accepted = admin.ingest(&Value::Array(batch));
        for a in &accepted {
            ids.push((
                a["id"].as_str().unwrap().to_owned(),
                a["seq"].as_u64().unwrap(),
            ));
        }
        // Cut a checkpoint at this size.
        let (checkpoint, _) = fetch_checkpoint(&admin, None, &vkey);
        assert_eq!(checkpoint.size as usize, ids.len(), "round {round}");
        rounds.push(checkpoint);
    }
    let n = ids.len() as u64;
    let log = admin.get("/v1/log").expect(200);
    assert_eq!(log["origin"], json!("trail.local/default"));
    assert_eq!(log["tree_size"], json!(n));

    // The whole bundle.
    let export = admin.get("/v1/export");
    assert_eq!(export.status, 200, "export: {}", export.text());
    let bundle = verify_bundle(&export.text(), &vkey)
        .unwrap_or_else(|e| panic!("the export does not verify: {e}"));
    assert_eq!(bundle.origin, "trail.local/default");
    assert_eq!(bundle.leaves.len() as u64, n);
    assert_eq!(bundle.with_content as u64, n, "every event carried content");
    let kept: Vec<u64> = bundle.checkpoints.iter().map(|c| c.size).collect();
    for c in &rounds {
        assert!(
            kept.contains(&c.size),
            "checkpoint {} not kept: {kept:?}",
            c.size
        );
    }

    // The latest checkpoint of the bundle (the export itself was recorded
    // after it, as events.export).
    let (latest, latest_note) = fetch_checkpoint(&admin, Some(n), &vkey);
    assert_eq!(latest.origin, "trail.local/default");
    assert_eq!(latest.size, n);
    assert_eq!(latest.root, root(&bundle.leaves));
    assert_eq!(
        bundle.notes.last(),
        Some(&latest_note),
        "the export's last checkpoint is the latest one"
    );

    // Every kept checkpoint by size, and consistency between every pair.
    let mut by_size: Vec<Checkpoint> = Vec::new();
    for (checkpoint, note) in bundle.checkpoints.iter().zip(&bundle.notes) {
        let (fetched, fetched_note) = fetch_checkpoint(&admin, Some(checkpoint.size), &vkey);
        assert_eq!(&fetched, checkpoint);
        assert_eq!(
            &fetched_note, note,
            "the kept note of size {}",
            checkpoint.size
        );
        if !by_size.iter().any(|c| c.size == fetched.size) {
            by_size.push(fetched);
        }
    }
    by_size.sort_by_key(|c| c.size);
    assert!(by_size.len() >= 4, "kept sizes: {kept:?}");
    for (i, a) in by_size.iter().enumerate() {
        for b in &by_size[i..] {
            check_consistency(&admin, a, b);
        }
    }

    // Inclusion proofs of several seqs, at the latest and at kept sizes.
    for seq in [0, 1, n / 2, n - 2, n - 1] {
        let answer = admin
            .get(&format!("/v1/proof/inclusion?seq={seq}"))
            .expect(200);
        assert_eq!(answer["tree_size"], json!(n));
        assert_eq!(answer["seq"], json!(seq));
        let leaf = parse_hash(answer["leaf_hash"].as_str().expect("leaf_hash"));
        assert_eq!(leaf, bundle.leaves[seq as usize], "leaf of seq {seq}");
        let proof = hashes(&answer["hashes"]);
        assert!(
            verify_inclusion(seq, n, &leaf, &proof, &latest.root),
            "inclusion of {seq}: {answer}"
        );
        for c in by_size.iter().filter(|c| c.size > seq) {
            let path = format!("/v1/proof/inclusion?seq={seq}&size={}", c.size);
            let answer = admin.get(&path).expect(200);
            assert_eq!(answer["tree_size"], json!(c.size));
            let proof = hashes(&answer["hashes"]);
            assert!(
                verify_inclusion(seq, c.size, &leaf, &proof, &c.root),
                "{path}: {answer}"
            );
        }
    }

    // Inclusion from the event detail, on its own terms.
    for (id, seq) in [&ids[0], &ids[ids.len() / 2], &ids[ids.len() - 1]] {
        let detail = admin.get(&format!("/v1/events/{id}")).expect(200);
        assert_eq!(detail["seq"], json!(seq));
        let envelope = &detail["envelope"];
        let leaf = leaf_hash(jcs(envelope).as_bytes());
        assert_eq!(detail["leaf_hash"], json!(hex::encode(leaf)), "{detail}");
        assert_eq!(envelope["id"], json!(id));
        let salt = B64
            .decode(detail["content_salt"].as_str().expect("content_salt"))
            .unwrap();
        let digest = sha256(&[&salt, jcs(&detail["content"]).as_bytes()]);
        assert_eq!(envelope["content_digest"], json!(hex::encode(digest)));
        let proof_member = &detail["proof"];
        let note = proof_member["checkpoint"]
            .as_str()
            .expect("proof.checkpoint");
        let checkpoint = open_note(note, &vkey).unwrap();
        assert_eq!(proof_member["tree_size"], json!(checkpoint.size));
        assert!(checkpoint.size > *seq);
        let proof = hashes(&proof_member["hashes"]);
        assert!(
            verify_inclusion(*seq, checkpoint.size, &leaf, &proof, &checkpoint.root),
            "inclusion from /v1/events/{id}: {detail}"
        );
        // And that checkpoint extends the first kept one.
        check_consistency(&admin, &by_size[0], &checkpoint);
    }
}

#[test]
fn independent_verifier_refuses_altered_proofs_roots_and_signatures() {
    let server = Server::start();
    let admin = server.admin();
    let vkey = trusted_vkey(&server);
    for round in 0..2 {
        let batch: Vec<Value> = (0..5).map(|i| rich_event(round, i)).collect();
        admin.ingest(&Value::Array(batch));
        fetch_checkpoint(&admin, None, &vkey);
    }
    let (small, _) = fetch_checkpoint(&admin, Some(5), &vkey);
    let (latest, note) = fetch_checkpoint(&admin, None, &vkey);
    assert_eq!(latest.size, 10);

    // Inclusion: a flipped proof hash, leaf, root, or a wrong index fails.
    let answer = admin.get("/v1/proof/inclusion?seq=6").expect(200);
    let leaf = parse_hash(answer["leaf_hash"].as_str().unwrap());
    let proof = hashes(&answer["hashes"]);
    assert!(verify_inclusion(6, 10, &leaf, &proof, &latest.root));
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i] = flipped(&bad[i], 31);
        assert!(
            !verify_inclusion(6, 10, &leaf, &bad, &latest.root),
            "hash {i}"
        );
    }
    assert!(!verify_inclusion(
        6,
        10,
        &flipped(&leaf, 0),
        &proof,
        &latest.root
    ));
    assert!(!verify_inclusion(
        6,
        10,
        &leaf,
        &proof,
        &flipped(&latest.root, 9)
    ));
    assert!(!verify_inclusion(7, 10, &leaf, &proof, &latest.root));
    assert!(!verify_inclusion(6, 10, &leaf, &proof[1..], &latest.root));

    // Consistency: likewise.
    let answer = admin.get("/v1/proof/consistency?from=5&to=10").expect(200);
    let proof = hashes(&answer["hashes"]);
    assert!(verify_consistency(5, 10, &small.root, &latest.root, &proof));
    for i in 0..proof.len() {
        let mut bad = proof.clone();
        bad[i] = flipped(&bad[i], 5);
        assert!(!verify_consistency(5, 10, &small.root, &latest.root, &bad));
    }
    assert!(!verify_consistency(
        5,
        10,
        &flipped(&small.root, 1),
        &latest.root,
        &proof
    ));
    assert!(!verify_consistency(
        5,
        10,
        &small.root,
        &flipped(&latest.root, 1),
        &proof
    ));
    assert!(!verify_consistency(
        4,
        10,
        &small.root,
        &latest.root,
        &proof
    ));

    // The note: a changed body, a flipped signature byte, another key.
    assert!(open_note(&note.replacen("\n10\n", "\n11\n", 1), &vkey).is_err());
    let sig_at = note.rfind(' ').unwrap() + 1;
    let sig_line_end = note.len() - 1;
    let blob = B64.decode(&note[sig_at..sig_line_end]).unwrap();
    for byte in [4, 20, blob.len() - 1] {
        let mut bad = blob.clone();
        bad[byte] ^= 0x80;
        let forged = format!("{}{}\n", &note[..sig_at], B64.encode(&bad));
        assert!(open_note(&forged, &vkey).is_err(), "flipped byte {byte}");
    }
    let other = SigningKey::from_bytes(&[7u8; 32])
        .verifying_key()
        .to_bytes();
    let stranger = parse_vkey(&vkey_text(&vkey.name, &other)).unwrap();
    assert!(open_note(&note, &stranger).is_err(), "another key");
    let renamed = parse_vkey(&vkey_text("other.example", &vkey.key.to_bytes())).unwrap();
    assert!(open_note(&note, &renamed).is_err(), "another key name");
    let bad_vkey = vkey_text(&vkey.name, &vkey.key.to_bytes()).replacen('+', "+00", 1);
    assert!(parse_vkey(&bad_vkey).is_err(), "a wrong key id");

    // The bundle: an edited envelope, a changed leaf, a dropped record.
    let export = admin.get("/v1/export").text();
    assert!(verify_bundle(&export, &vkey).is_ok());
    let edited = export.replacen("\"name\":\"step-1-2\"", "\"name\":\"step-1-X\"", 1);
    assert_ne!(edited, export);
    let error = verify_bundle(&edited, &vkey).unwrap_err();
    assert!(error.starts_with("seq 7:"), "{error}");
    let lines: Vec<&str> = export.lines().collect();
    let dropped: String = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 4)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let error = verify_bundle(&dropped, &vkey).unwrap_err();
    assert!(error.starts_with("seq 3:"), "{error}");
    let leaf_text = hex::encode(root(&[]));
    let re_leafed = lines
        .iter()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if v["seq"] == json!(2) {
                v["leaf_hash"] = json!(leaf_text);
            }
            format!("{v}\n")
        })
        .collect::<String>();
    let error = verify_bundle(&re_leafed, &vkey).unwrap_err();
    assert!(error.starts_with("seq 2:"), "{error}");
}
