//! Known-answer tests for the transparency-log primitives: RFC 6962 hashing,
//! roots, compact ranges, inclusion and consistency proofs (generation and
//! every upstream probe), C2SP signed notes and checkpoints, plus property
//! tests of proof generation over a store-like node map.
//!
//! Each vector file has one `check_*` loader. Values whose length makes them
//! impossible as SHA-256 hashes are rejected by [`hash_b64`] / [`hash_hex`],
//! the length check of this test's parsing layer; the few vectors that
//! expect success with such placeholders are adapted where named in
//! `testdata/README.md`.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use proptest::prelude::*;
use serde_json::Value;
use trail_core::checkpoint::{open_checkpoint, sign_checkpoint, Checkpoint, CheckpointError};
use trail_core::hashing::sha256;
use trail_core::merkle::{
    compact_range_nodes, consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash,
    root_from_nodes, root_of, verify_consistency, verify_inclusion, CompactRange, Hash,
    VerifyError,
};
use trail_core::note::{
    open_note, parse_note, sign_note, NoteError, SigningKey, Verifier, MAX_SIGNATURES,
};

use crate::{load, s};

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("missing number {key}"))
}

fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("missing array {key}"))
}

/// The length check: a hash is exactly 32 bytes of standard base64.
fn hash_b64(text: &str) -> Option<Hash> {
    STANDARD.decode(text).ok()?.try_into().ok()
}

/// The length check for lowercase-hex hashes.
fn hash_hex(text: &str) -> Option<Hash> {
    hex::decode(text).ok()?.try_into().ok()
}

fn hex_hash(text: &str) -> Hash {
    hash_hex(text).unwrap_or_else(|| panic!("not a 32-byte hex hash: {text}"))
}

/// A probe proof: `null` and `[]` are both empty; any element failing the
/// length check fails the whole proof.
fn proof_b64(v: &Value) -> Option<Vec<Hash>> {
    match v {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items.iter().map(|h| hash_b64(h.as_str()?)).collect(),
        _ => panic!("proof is neither null nor an array"),
    }
}

/// A store-like node map built the way the store will build it: every
/// level-0 leaf plus every node `CompactRange::append` reports.
fn node_map(leaves: &[Hash]) -> (HashMap<(u8, u64), Hash>, CompactRange) {
    let mut map = HashMap::new();
    let mut cr = CompactRange::new();
    for (i, leaf) in leaves.iter().enumerate() {
        map.insert((0, i as u64), *leaf);
        for (level, index, hash) in cr.append(*leaf) {
            assert!(level >= 1);
            assert!(
                map.insert((level, index), hash).is_none(),
                "node reported twice"
            );
        }
    }
    (map, cr)
}

/// A getter over a node map that fails on missing nodes, as a store would.
fn getter(map: &HashMap<(u8, u64), Hash>) -> impl FnMut(u8, u64) -> Result<Hash, String> + '_ {
    move |level, index| {
        map.get(&(level, index))
            .copied()
            .ok_or_else(|| format!("no node ({level}, {index})"))
    }
}

fn reference_leaves() -> Vec<Hash> {
    let roots = load("rfc6962_roots.json");
    arr(&roots, "leaf_inputs_hex")
        .iter()
        .map(|h| leaf_hash(&hex::decode(h.as_str().expect("hex")).expect("hex")))
        .collect()
}

// ---------------------------------------------------------------- hasher

#[test]
fn check_rfc6962_hasher() {
    let file = load("rfc6962_hasher.json");
    let mut checked = 0;
    for v in arr(&file, "vectors") {
        let want = hex_hash(s(v, "expected"));
        match s(v, "operation") {
            "empty_root" => assert_eq!(empty_root(), want),
            "hash_leaf" => assert_eq!(leaf_hash(s(v, "input_ascii").as_bytes()), want),
            "hash_children" => {
                // Adapted (README): the children are 4-byte ASCII strings,
                // which no `Hash` can hold. Check that they fail the length
                // check, that the expected value is SHA-256(0x01 || l || r),
                // and that `node_hash` is exactly that preimage layout.
                let (l, r) = (s(v, "left_ascii"), s(v, "right_ascii"));
                assert!(hash_hex(&hex::encode(l)).is_none());
                let mut pre = vec![1u8];
                pre.extend_from_slice(l.as_bytes());
                pre.extend_from_slice(r.as_bytes());
                assert_eq!(sha256(&pre), want);
                let (a, b) = (leaf_hash(l.as_bytes()), leaf_hash(r.as_bytes()));
                let mut pre = vec![1u8];
                pre.extend_from_slice(&a);
                pre.extend_from_slice(&b);
                assert_eq!(node_hash(&a, &b), sha256(&pre));
                assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
            }
            other => panic!("unknown operation {other}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 4);
}

// ---------------------------------------------------------------- roots

#[test]
fn check_rfc6962_roots() {
    let file = load("rfc6962_roots.json");
    let leaves = reference_leaves();
    assert_eq!(leaves.len(), 8);
    assert_eq!(empty_root(), hex_hash(s(&file, "empty_tree_root")));

    // Expected complete subtree hashes, keyed by (level, index).
    let mut want_nodes = HashMap::new();
    for level in arr(&file["complete_subtree_hashes"], "levels") {
        let l = u(level, "level") as u8;
        for (i, h) in arr(level, "hashes").iter().enumerate() {
            want_nodes.insert((l, i as u64), hex_hash(h.as_str().expect("hex")));
        }
    }
    assert_eq!(want_nodes.len(), 8 + 4 + 2 + 1);

    let roots = arr(&file, "roots");
    assert_eq!(roots.len(), 9);
    for r in roots {
        let n = u(r, "tree_size");
        let want = hex_hash(s(r, "root"));
        let prefix = &leaves[..n as usize];

        // All at once.
        assert_eq!(root_of(prefix), want, "root_of size {n}");
        for (&(level, index), hash) in &want_nodes {
            let (b, e) = ((index << level) as usize, ((index + 1) << level) as usize);
            if e <= prefix.len() {
                assert_eq!(root_of(&prefix[b..e]), *hash, "subtree ({level},{index})");
            }
        }

        // One leaf at a time.
        let (map, cr) = node_map(prefix);
        assert_eq!(cr.size(), n);
        assert_eq!(cr.root(), want, "compact range size {n}");
        assert_eq!(root_from_nodes(n, getter(&map)), Ok(want));
        // Every stored node is a known complete subtree, and every known
        // complete subtree inside the tree was stored.
        for (key, hash) in &map {
            assert_eq!(want_nodes.get(key), Some(hash), "node {key:?}");
        }
        let inside = want_nodes
            .keys()
            .filter(|&&(level, index)| (index + 1) << level <= n)
            .count();
        assert_eq!(map.len(), inside, "node count at size {n}");

        // Rebuilt from its stored parts.
        let parts: Vec<Hash> = compact_range_nodes(n).iter().map(|key| map[key]).collect();
        assert_eq!(parts, cr.hashes());
        let rebuilt = CompactRange::from_parts(n, parts).expect("count matches");
        assert_eq!(rebuilt, cr);
        assert_eq!(rebuilt.root(), want);
    }
}

// ---------------------------------------------------------------- inclusion

#[test]
fn check_rfc6962_inclusion() {
    let file = load("rfc6962_inclusion.json");
    let leaves = reference_leaves();
    let (map, _) = node_map(&leaves);

    let refs = arr(&file["reference_proofs"], "items");
    assert_eq!(refs.len(), 7);
    for r in refs {
        let (index, size) = (u(r, "index"), u(r, "size"));
        let want: Vec<Hash> = arr(r, "proof")
            .iter()
            .map(|h| hex_hash(h.as_str().expect("hex")))
            .collect();
        let got = inclusion_proof(index, size, getter(&map)).expect("proof");
        assert_eq!(got, want, "inclusion proof {index} in {size}");
        let root = root_of(&leaves[..size as usize]);
        assert_eq!(
            verify_inclusion(&leaves[index as usize], index, size, &got, &root),
            Ok(())
        );
    }

    let probes = arr(&file["probes"], "items");
    assert_eq!(probes.len(), 98);
    let (mut ok, mut rejected_by_length) = (0, 0);
    for p in probes {
        let name = s(p, "file");
        let want_err = p["wantErr"].as_bool().expect("wantErr");
        let parsed = (|| {
            Some((
                hash_b64(s(p, "leafHash"))?,
                hash_b64(s(p, "root"))?,
                proof_b64(&p["proof"])?,
            ))
        })();
        let Some((leaf, root, proof)) = parsed else {
            assert!(want_err, "{name}: placeholder hash in a passing probe");
            rejected_by_length += 1;
            continue;
        };
        let got = verify_inclusion(&leaf, u(p, "leafIdx"), u(p, "treeSize"), &proof, &root);
        assert_eq!(got.is_err(), want_err, "{name}: {got:?}");
        ok += usize::from(!want_err);
    }
    assert_eq!(rejected_by_length, 26);
    assert_eq!(ok, 6);
}

// ---------------------------------------------------------------- consistency

/// The one consistency probe README names as expecting success with
/// placeholder roots.
const ADAPTED_CONSISTENCY: &str =
    "testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json";

#[test]
fn check_rfc6962_consistency() {
    let file = load("rfc6962_consistency.json");
    let leaves = reference_leaves();
    let (map, _) = node_map(&leaves);

    let refs = arr(&file["reference_proofs"], "items");
    assert_eq!(refs.len(), 4);
    for r in refs {
        let (from, to) = (u(r, "size1"), u(r, "size2"));
        let want: Vec<Hash> = arr(r, "proof")
            .iter()
            .map(|h| hex_hash(h.as_str().expect("hex")))
            .collect();
        let got = consistency_proof(from, to, getter(&map)).expect("proof");
        assert_eq!(got, want, "consistency proof {from} -> {to}");
        let (r1, r2) = (
            root_of(&leaves[..from as usize]),
            root_of(&leaves[..to as usize]),
        );
        assert_eq!(verify_consistency(from, to, &got, &r1, &r2), Ok(()));
    }

    let probes = arr(&file["probes"], "items");
    assert_eq!(probes.len(), 98);
    let (mut rejected_by_length, mut adapted, mut ok) = (0, 0, 0);
    for p in probes {
        let name = s(p, "file");
        let want_err = p["wantErr"].as_bool().expect("wantErr");
        let (from, to) = (u(p, "size1"), u(p, "size2"));
        let parsed = (|| {
            Some((
                hash_b64(s(p, "root1"))?,
                hash_b64(s(p, "root2"))?,
                proof_b64(&p["proof"])?,
            ))
        })();
        let Some((r1, r2, proof)) = parsed else {
            if name == ADAPTED_CONSISTENCY {
                // Adapted: the roots are the 12-byte placeholder
                // "don't care 2", which the length check rejects. What the
                // probe tests is that equal sizes with an empty proof and
                // equal roots pass; use a real 32-byte hash instead.
                assert!(!want_err);
                let root = sha256(&STANDARD.decode(s(p, "root1")).expect("base64"));
                assert_eq!(s(p, "root1"), s(p, "root2"));
                assert_eq!(verify_consistency(from, to, &[], &root, &root), Ok(()));
                adapted += 1;
            } else {
                assert!(want_err, "{name}: placeholder hash in a passing probe");
            }
            rejected_by_length += 1;
            continue;
        };
        let got = verify_consistency(from, to, &proof, &r1, &r2);
        assert_eq!(got.is_err(), want_err, "{name}: {got:?}");
        ok += usize::from(!want_err);
    }
    assert_eq!(adapted, 1);
    assert_eq!(ok, 5);
    assert_eq!(rejected_by_length, 27);
}

// ---------------------------------------------------------------- signed notes

fn vector<'a>(file: &'a Value, id: &str) -> &'a Value {
    arr(file, "vectors")
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

/// Key ID recomputed independently of the library:
/// SHA-256(name || 0x0A || 0x01 || pubkey)[:4].
fn recomputed_key_id(vkey: &str) -> [u8; 4] {
    let mut parts = vkey.splitn(3, '+');
    let name = parts.next().expect("name");
    let _ = parts.next().expect("hash");
    let raw = STANDARD.decode(parts.next().expect("key")).expect("base64");
    assert_eq!(raw.len(), 33);
    assert_eq!(raw[0], 1);
    let mut pre = name.as_bytes().to_vec();
    pre.push(0x0a);
    pre.extend_from_slice(&raw);
    let h = sha256(&pre);
    [h[0], h[1], h[2], h[3]]
}

#[test]
fn check_signed_note() {
    let file = load("signed_note.json");

    // Sign byte for byte, then verify.
    let peter = vector(&file, "go-peterneumann-sign");
    let skey = SigningKey::parse_go_private_key(s(peter, "skey")).expect("skey");
    let pv = Verifier::parse_vkey(s(peter, "vkey")).expect("vkey");
    assert_eq!(skey.name(), "PeterNeumann");
    assert_eq!(hex::encode(skey.key_id()), s(peter, "key_id_hex"));
    assert_eq!(hex::encode(pv.key_id()), s(peter, "key_id_hex"));
    assert_eq!(recomputed_key_id(s(peter, "vkey")), pv.key_id());
    assert_eq!(skey.verifier(), pv);
    assert_eq!(pv.to_vkey(), s(peter, "vkey"));
    let text = s(peter, "text");
    let line = skey.sign(text).expect("sign");
    assert_eq!(line, s(peter, "expected_signature_line"));
    let signed = sign_note(text, &[&skey]).expect("sign note");
    assert_eq!(signed, s(peter, "expected_signed_note"));
    let (note, who) = open_note(&signed, std::slice::from_ref(&pv)).expect("open");
    assert_eq!(note.text, text);
    assert_eq!(who, vec![pv.clone()]);
    assert!(pv.verify(text.as_bytes(), &note.signatures[0].signature));
    assert!(!pv.verify(b"other text\n", &note.signatures[0].signature));

    // Two signatures; the unknown one is ignored.
    let enoch = vector(&file, "go-enochroot-cosign");
    let ev = Verifier::parse_vkey(s(enoch, "vkey")).expect("vkey");
    assert_eq!(hex::encode(ev.key_id()), s(enoch, "key_id_hex"));
    assert_eq!(recomputed_key_id(s(enoch, "vkey")), ev.key_id());
    let doubly = s(enoch, "doubly_signed_note");
    assert_eq!(
        doubly,
        format!(
            "{text}\n{}{}",
            s(peter, "expected_signature_line"),
            s(enoch, "signature_line")
        )
    );
    let (note, who) = open_note(doubly, std::slice::from_ref(&pv)).expect("open");
    assert_eq!(who, vec![pv.clone()]);
    assert_eq!(note.signatures.len(), 2);
    assert_eq!(note.signatures[1].name, "EnochRoot");
    let (_, who) = open_note(doubly, &[ev.clone(), pv.clone()]).expect("open");
    assert_eq!(who, vec![pv.clone(), ev.clone()]);
    let (_, who) = open_note(doubly, std::slice::from_ref(&ev)).expect("open");
    assert_eq!(who, vec![ev.clone()]);
    let none = open_note(doubly, &[]).expect_err("no verifiers");
    assert_eq!(none, NoteError::NoVerifiedSignatures);
    assert_eq!(none.to_string(), "note has no verifiable signatures");

    // The spec's own key and note.
    let foo = vector(&file, "c2sp-example-foo");
    let fv = Verifier::parse_vkey(s(foo, "vkey")).expect("vkey");
    assert_eq!(fv.name(), "example.com/foo");
    assert_eq!(hex::encode(fv.key_id()), s(foo, "key_id_hex"));
    assert_eq!(recomputed_key_id(s(foo, "vkey")), fv.key_id());
    let (note, who) = open_note(s(foo, "signed_note"), &[pv.clone(), fv.clone()]).expect("open");
    assert_eq!(note.text, "This is an example message.\n");
    assert_eq!(who, vec![fv.clone()]);

    // Parse only: the text has its own blank line.
    let intro = vector(&file, "c2sp-intro-parse-only");
    let note = parse_note(s(intro, "signed_note")).expect("parse");
    assert_eq!(note.text, s(intro, "expected_text"));
    assert_eq!(note.signatures.len(), 1);
    assert_eq!(note.signatures[0].name, "quasimodo.example/salvatore");
    assert_eq!(note.signatures[0].signature.len(), 64);
    assert_eq!(
        open_note(s(intro, "signed_note"), &[pv.clone(), fv.clone()]),
        Err(NoteError::NoVerifiedSignatures)
    );

    // Invalid vkeys.
    let mut rejected = 0;
    for item in arr(&file, "invalid_vkeys") {
        if let Some(vkey) = item["vkey"].as_str() {
            assert!(Verifier::parse_vkey(vkey).is_err(), "{vkey}");
            rejected += 1;
        }
    }
    assert_eq!(rejected, 2);
    let vkey = s(peter, "vkey").as_bytes();
    for start in 0..vkey.len() {
        for end in start..=vkey.len() {
            if (start, end) == (0, vkey.len()) {
                continue;
            }
            let sub = std::str::from_utf8(&vkey[start..end]).expect("ASCII");
            assert!(Verifier::parse_vkey(sub).is_err(), "substring {sub}");
            rejected += 1;
        }
    }
    for i in 0..vkey.len() {
        let mut bumped = vkey.to_vec();
        bumped[i] += 1;
        let bumped = String::from_utf8(bumped).expect("ASCII");
        assert!(Verifier::parse_vkey(&bumped).is_err(), "increment {bumped}");
        rejected += 1;
    }
    assert!(rejected > 2000);

    // Malformed notes.
    let signed_bytes = s(peter, "expected_signed_note").as_bytes();
    let mut malformed = 0;
    for item in arr(&file["malformed_notes"], "items") {
        let why = s(item, "why");
        if let Some(msg) = item["note"].as_str() {
            assert!(parse_note(msg).is_err(), "{why}");
            assert!(open_note(msg, std::slice::from_ref(&pv)).is_err(), "{why}");
        } else if let Some(prefix) = item["prefix_byte_hex"].as_str() {
            let mut bytes = hex::decode(prefix).expect("hex");
            bytes.extend_from_slice(signed_bytes);
            match std::str::from_utf8(&bytes) {
                // 0x01: valid UTF-8, rejected as a control character.
                Ok(msg) => assert_eq!(parse_note(msg), Err(NoteError::MalformedNote), "{why}"),
                // 0xff: not UTF-8, so it cannot even become the `&str` the
                // API takes.
                Err(_) => assert_eq!(prefix, "ff"),
            }
        } else {
            assert!(item["construction"].as_str().is_some(), "{why}");
            let msg = format!(
                "{text}\n{}",
                s(peter, "expected_signature_line").repeat(MAX_SIGNATURES + 1)
            );
            assert_eq!(parse_note(&msg), Err(NoteError::TooManySignatures));
            assert!(open_note(&msg, std::slice::from_ref(&pv)).is_err());
        }
        malformed += 1;
    }
    assert_eq!(malformed, 8);

    // A corrupted signature by a known key is an error, not ignored.
    let bad = &file["invalid_signature"];
    let err = open_note(s(bad, "note"), &[ev.clone(), pv.clone()]).expect_err("corrupt");
    assert_eq!(
        err,
        NoteError::InvalidSignature {
            name: "PeterNeumann".into(),
            key_id: pv.key_id()
        }
    );
    assert_eq!(err.to_string(), s(bad, "expected_error"));
    // ... and ignored when that key is unknown.
    assert_eq!(
        open_note(s(bad, "note"), std::slice::from_ref(&ev)),
        Err(NoteError::NoVerifiedSignatures)
    );
}

// ---------------------------------------------------------------- checkpoints

/// Adapted body vector: the upstream bodies use short strings as "root
/// hashes". The original body must fail the 32-byte check; the same body
/// with line 3 replaced by a real hash (SHA-256 of the decoded bytes) must
/// then give upstream's verdict.
fn with_real_root(body: &str) -> Option<(String, Hash)> {
    let mut lines: Vec<&str> = body.split('\n').collect();
    let short = STANDARD.decode(lines.get(2)?).ok()?;
    assert_ne!(short.len(), 32);
    let root = sha256(&short);
    let encoded = STANDARD.encode(root);
    lines[2] = &encoded;
    Some((lines.join("\n"), root))
}

#[test]
fn check_checkpoint() {
    let file = load("checkpoint.json");

    // Spec examples, parse only.
    for ex in arr(&file, "spec_examples") {
        let note = parse_note(s(ex, "signed_checkpoint")).expect("parse");
        let cp = Checkpoint::parse_body(&note.text).expect("body");
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, 20852163);
        assert_eq!(
            Some(cp.root),
            hash_b64("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
        );
        assert!(cp.extensions.is_empty());
        if let Some(size) = ex["expected_tree_size"].as_u64() {
            assert_eq!(cp.size, size);
            assert_eq!(cp.origin, s(ex, "expected_origin"));
            assert_eq!(Some(cp.root), hash_b64(s(ex, "expected_root_hash_b64")));
            assert_eq!(note.signatures.len(), 1);
        } else {
            // The witness cosignature (type 0x04: timestamp + signature) is
            // parsed like any other line and ignored when unknown.
            assert_eq!(note.signatures.len(), 2);
            assert_eq!(note.signatures[1].name, "witness.example.com/w1");
            assert_eq!(note.signatures[1].signature.len(), 72);
        }
        assert_eq!(cp.to_body(), note.text);
        let stranger = SigningKey::from_seed("example.com/behind-the-sofa", [7; 32])
            .expect("name")
            .verifier();
        assert_eq!(
            open_checkpoint(s(ex, "signed_checkpoint"), &[stranger]),
            Err(CheckpointError::Note(NoteError::NoVerifiedSignatures))
        );
    }

    // Both signed test logs, every checkpoint.
    let logs = arr(&file, "signed_logs");
    assert_eq!(logs.len(), 2);
    let verifiers: Vec<Verifier> = logs
        .iter()
        .map(|l| Verifier::parse_vkey(s(l, "vkey")).expect("vkey"))
        .collect();
    let mut roots_by_log = Vec::new();
    for (li, log) in logs.iter().enumerate() {
        let v = &verifiers[li];
        let other = &verifiers[1 - li];
        let key = SigningKey::parse_go_private_key(s(log, "skey_TEST_ONLY")).expect("skey");
        assert_eq!(key.name(), s(log, "key_name"));
        assert_eq!(v.name(), s(log, "key_name"));
        assert_eq!(hex::encode(v.key_id()), s(log, "key_id_hex"));
        assert_eq!(recomputed_key_id(s(log, "vkey")), v.key_id());
        assert_eq!(&key.verifier(), v);
        let leaves: Vec<Hash> = arr(log, "leaf_data_utf8")
            .iter()
            .map(|d| leaf_hash(d.as_str().expect("leaf").as_bytes()))
            .collect();
        assert_eq!(leaves.len(), 15);
        let checkpoints = arr(log, "checkpoints");
        assert_eq!(checkpoints.len(), 16);
        let mut cr = CompactRange::new();
        let mut roots = Vec::new();
        for (n, c) in checkpoints.iter().enumerate() {
            assert_eq!(u(c, "tree_size"), n as u64);
            let note = s(c, "note");
            let cp = open_checkpoint(note, std::slice::from_ref(v)).expect("verifies");
            assert_eq!(cp.origin, s(log, "origin"));
            assert_eq!(cp.size, n as u64);
            assert!(cp.extensions.is_empty());
            assert_eq!(cp.root, root_of(&leaves[..n]), "root of {n}");
            assert_eq!(cp.root, cr.root());
            if n < leaves.len() {
                cr.append(leaves[n]);
            }
            // Re-signing reproduces the stored note byte for byte.
            assert_eq!(sign_checkpoint(&cp, &key).expect("sign"), note);
            // The other log's key does not open it, though the roots agree.
            assert_eq!(
                open_checkpoint(note, std::slice::from_ref(other)),
                Err(CheckpointError::Note(NoteError::NoVerifiedSignatures))
            );
            roots.push(cp);
        }
        roots_by_log.push(roots);
    }
    // Same roots, different origins: never the same checkpoint.
    assert_eq!(verifiers[1].name(), "astra");
    for (a, b) in roots_by_log[0].iter().zip(&roots_by_log[1]) {
        assert_eq!(a.root, b.root);
        assert_eq!(a.size, b.size);
        assert_ne!(a.origin, b.origin);
        assert_ne!(a, b);
    }

    // Line-syntax body vectors (adapted to 32-byte roots).
    let bodies = &file["body_vectors"];
    for m in arr(bodies, "marshal") {
        let body = s(m, "expected_body");
        assert_eq!(
            Checkpoint::parse_body(body),
            Err(CheckpointError::InvalidRoot)
        );
        let (adapted, root) = with_real_root(body).expect("adaptable");
        let cp = Checkpoint {
            origin: s(m, "origin").into(),
            size: u(m, "size"),
            root,
            extensions: vec![],
        };
        assert_eq!(
            STANDARD.decode(body.split('\n').nth(2).expect("line 3")),
            Ok(s(m, "hash_ascii").as_bytes().to_vec())
        );
        assert_eq!(cp.to_body(), adapted);
        assert_eq!(Checkpoint::parse_body(&adapted), Ok(cp));
    }
    let mut checked = 0;
    for m in arr(bodies, "unmarshal") {
        let desc = s(m, "desc");
        let body = s(m, "body");
        let want_error = m["want_error"].as_bool().expect("want_error");
        assert!(Checkpoint::parse_body(body).is_err(), "{desc}: short root");
        let Some((adapted, root)) = with_real_root(body) else {
            assert!(want_error, "{desc}");
            checked += 1;
            continue;
        };
        let got = Checkpoint::parse_body(&adapted);
        if desc == "valid with trailing newlines" {
            // Deliberately stricter than transparency-dev/formats: C2SP
            // extension lines are non-empty.
            assert_eq!(got, Err(CheckpointError::EmptyExtension), "{desc}");
        } else {
            assert_eq!(got.is_err(), want_error, "{desc}: {got:?}");
        }
        if let (Ok(cp), Some(rest)) = (&got, m["want_rest"].as_str()) {
            assert_eq!(cp.root, root);
            let joined: String = cp.extensions.iter().map(|e| format!("{e}\n")).collect();
            assert_eq!(joined, rest, "{desc}");
        }
        checked += 1;
    }
    assert_eq!(checked, 12);

    // The Go sumdb tree note has the same shape.
    let go = &file["go_sumdb_tree_note"];
    let cp = Checkpoint::parse_body(s(go, "body")).expect("body");
    assert_eq!(cp.origin, "go.sum database tree");
    assert_eq!(cp.size, u(go, "tree_size"));
    assert_eq!(cp.root, leaf_hash(b"hello world"));
    assert_eq!(cp.to_body(), s(go, "body"));
}

// ---------------------------------------------------------------- properties

fn prop_leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
        .collect()
}

/// A counting getter over a node map, failing on missing nodes.
fn counting<'a>(
    map: &'a HashMap<(u8, u64), Hash>,
    reads: &'a mut usize,
) -> impl FnMut(u8, u64) -> Result<Hash, String> + 'a {
    move |level, index| {
        *reads += 1;
        map.get(&(level, index))
            .copied()
            .ok_or_else(|| format!("no node ({level}, {index})"))
    }
}

/// Node reads allowed for a proof in a tree of `size`: O(log n).
fn read_budget(size: u64) -> usize {
    2 * (64 - size.leading_zeros() as usize) + 2
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn inclusion_proofs_from_stored_nodes(size in 1u64..=300, pick in any::<u64>()) {
        let leaves = prop_leaves(size);
        let (map, cr) = node_map(&leaves);
        let root = root_of(&leaves);
        prop_assert_eq!(cr.root(), root);
        prop_assert_eq!(root_from_nodes(size, getter(&map)), Ok(root));
        let index = pick % size;
        let mut reads = 0;
        let proof = inclusion_proof(index, size, counting(&map, &mut reads)).expect("proof");
        prop_assert!(reads <= read_budget(size), "{} reads", reads);
        let leaf = leaves[index as usize];
        prop_assert_eq!(verify_inclusion(&leaf, index, size, &proof, &root), Ok(()));
        for i in 0..proof.len() {
            for byte in 0..32 {
                let mut bad = proof.clone();
                bad[i][byte] ^= 0x01;
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &root).is_err());
            }
        }
        for byte in 0..32 {
            let mut bad_root = root;
            bad_root[byte] ^= 0x80;
            prop_assert!(verify_inclusion(&leaf, index, size, &proof, &bad_root).is_err());
            let mut bad_leaf = leaf;
            bad_leaf[byte] ^= 0x80;
            prop_assert!(verify_inclusion(&bad_leaf, index, size, &proof, &root).is_err());
        }
        if size > 1 {
            prop_assert!(verify_inclusion(&leaf, (index + 1) % size, size, &proof, &root).is_err());
        }
        if let Some((_, shorter)) = proof.split_last() {
            prop_assert!(verify_inclusion(&leaf, index, size, shorter, &root).is_err());
            let mut longer = proof.clone();
            longer.push(root);
            prop_assert!(verify_inclusion(&leaf, index, size, &longer, &root).is_err());
        }
    }

    #[test]
    fn consistency_proofs_from_stored_nodes(to in 1u64..=300, pick in any::<u64>()) {
        let leaves = prop_leaves(to);
        let (map, _) = node_map(&leaves);
        let from = pick % to + 1;
        let (r1, r2) = (root_of(&leaves[..from as usize]), root_of(&leaves));
        prop_assert_eq!(root_from_nodes(from, getter(&map)), Ok(r1));
        let mut reads = 0;
        let proof = consistency_proof(from, to, counting(&map, &mut reads)).expect("proof");
        prop_assert!(reads <= read_budget(to), "{} reads", reads);
        prop_assert_eq!(verify_consistency(from, to, &proof, &r1, &r2), Ok(()));
        for i in 0..proof.len() {
            for byte in 0..32 {
                let mut bad = proof.clone();
                bad[i][byte] ^= 0x01;
                prop_assert!(verify_consistency(from, to, &bad, &r1, &r2).is_err());
            }
        }
        for byte in 0..32 {
            let mut bad = r1;
            bad[byte] ^= 0x80;
            prop_assert!(verify_consistency(from, to, &proof, &bad, &r2).is_err());
            let mut bad = r2;
            bad[byte] ^= 0x80;
            prop_assert!(verify_consistency(from, to, &proof, &r1, &bad).is_err());
        }
        if !proof.is_empty() {
            let mut longer = proof.clone();
            longer.push(r2);
            prop_assert_eq!(
                verify_consistency(from, to, &longer, &r1, &r2),
                Err(VerifyError::WrongProofLength)
            );
            prop_assert!(verify_consistency(from, to, &proof[1..], &r1, &r2).is_err());
        }
    }

    #[test]
    fn compact_range_round_trips_through_stored_parts(size in 0u64..=300) {
        let leaves = prop_leaves(size);
        let (map, cr) = node_map(&leaves);
        prop_assert_eq!(root_from_nodes(size, getter(&map)), Ok(root_of(&leaves)));
        let parts: Vec<Hash> = compact_range_nodes(size).iter().map(|k| map[k]).collect();
        let rebuilt = CompactRange::from_parts(size, parts).expect("count matches");
        prop_assert_eq!(rebuilt.hashes(), cr.hashes());
        prop_assert_eq!(rebuilt.root(), root_of(&leaves));
    }
}
