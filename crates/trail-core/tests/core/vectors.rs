//! Known-answer tests from `testdata/`: every RFC 8785 (JCS) case and number
//! vector, the RFC 6962 leaf hashes, plus property tests that canonical
//! output re-parses to the same value and is a fixed point.

use proptest::prelude::*;
use serde_json::Value;
use trail_core::{hashing, jcs};

use crate::{load, s};

#[test]
fn jcs_cases_are_byte_exact() {
    let file = load("jcs.json");
    let cases = file["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 8);
    for case in cases {
        let name = s(case, "name");
        let input: Value = serde_json::from_str(s(case, "input")).expect(name);
        let got = jcs::to_vec(&input).expect(name);
        assert_eq!(
            String::from_utf8_lossy(&got),
            s(case, "expected"),
            "case {name}"
        );
        assert_eq!(got, s(case, "expected").as_bytes(), "case {name} bytes");
        if let Some(hex_bytes) = case["expected_utf8_hex"].as_str() {
            let want: Vec<u8> = hex_bytes
                .split_whitespace()
                .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
                .collect();
            assert_eq!(got, want, "case {name} utf8 hex");
        }
        // `write` appends to an existing buffer.
        let mut buf = b"prefix".to_vec();
        jcs::write(&input, &mut buf).expect(name);
        assert_eq!(&buf[6..], &got[..]);
    }
}

#[test]
fn jcs_ordering_cases() {
    let file = load("jcs.json");
    let cases = file["ordering_cases"].as_array().expect("ordering_cases");
    assert_eq!(cases.len(), 2);
    for case in cases {
        let name = s(case, "name");
        let input: Value = serde_json::from_str(s(case, "input")).expect(name);
        let out = jcs::to_vec(&input).expect(name);
        // Recover the member order from the canonical text itself (a parsed
        // Map would re-sort it): members are "key":"value" pairs.
        let text = String::from_utf8(out).expect("utf8");
        let reparsed: Value = serde_json::from_str(&text).expect("reparse");
        let map = reparsed.as_object().expect("object");
        let mut positions: Vec<(usize, &String, &Value)> = map
            .iter()
            .map(|(k, v)| {
                let needle = format!("{}:", serde_json::to_string(k).expect("key"));
                let pos = text
                    .find(&needle)
                    .or_else(|| text.find(&format!("\"{k}\":")))
                    .expect("key in output");
                (pos, k, v)
            })
            .collect();
        positions.sort_by_key(|p| p.0);
        if let Some(order) = case["expected_key_order"].as_array() {
            let got: Vec<&str> = positions.iter().map(|p| p.1.as_str()).collect();
            let want: Vec<&str> = order.iter().filter_map(Value::as_str).collect();
            assert_eq!(got, want, "{name}");
        }
        if let Some(order) = case["expected_value_order"].as_array() {
            let got: Vec<&str> = positions.iter().filter_map(|p| p.2.as_str()).collect();
            let want: Vec<&str> = order.iter().filter_map(Value::as_str).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}

#[test]
fn jcs_number_vectors() {
    let file = load("jcs_numbers.json");
    let vectors = file["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 42);
    let mut errors = 0;
    for v in vectors {
        let hex_bits = s(v, "ieee754_hex");
        let bits = u64::from_str_radix(&format!("{hex_bits:0>16}"), 16).expect("hex");
        let f = f64::from_bits(bits);
        let got = jcs::format_number(f);
        if v["error"].as_bool() == Some(true) {
            assert!(got.is_err(), "{hex_bits} must be rejected, got {got:?}");
            errors += 1;
        } else {
            assert_eq!(got.as_deref(), Ok(s(v, "expected")), "{hex_bits}");
        }
    }
    assert_eq!(errors, 5);
}

#[test]
fn integers_go_through_f64() {
    let v: Value = serde_json::from_str(
        r#"[9007199254740993, -9007199254740993, 18446744073709551615, 1e21, -0.0, 100]"#,
    )
    .expect("json");
    let out = jcs::to_vec(&v).expect("jcs");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "[9007199254740992,-9007199254740992,18446744073709552000,1e+21,0,100]"
    );
}

#[test]
fn rfc6962_leaf_hashes() {
    let hasher = load("rfc6962_hasher.json");
    let mut checked = 0;
    for v in hasher["vectors"].as_array().expect("vectors") {
        match s(v, "operation") {
            "hash_leaf" => {
                let got = hashing::leaf_hash(s(v, "input_ascii").as_bytes());
                assert_eq!(hex::encode(got), s(v, "expected"));
                checked += 1;
            }
            "empty_root" => {
                assert_eq!(hex::encode(hashing::sha256(b"")), s(v, "expected"));
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, 3);

    let roots = load("rfc6962_roots.json");
    let inputs = roots["leaf_inputs_hex"].as_array().expect("inputs");
    let level0 = &roots["complete_subtree_hashes"]["levels"][0]["hashes"];
    let level0 = level0.as_array().expect("level 0");
    assert_eq!(inputs.len(), level0.len());
    for (input, want) in inputs.iter().zip(level0) {
        let leaf = hex::decode(input.as_str().expect("hex")).expect("hex");
        assert_eq!(
            Some(hex::encode(hashing::leaf_hash(&leaf)).as_str()),
            want.as_str()
        );
    }
}

/// Arbitrary JSON values, with numbers drawn from all of f64 (finite) and
/// from the integer ranges, and strings with control and astral characters.
fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[\\u{0}-\\u{7f}\\u{e000}-\\u{ffff}\\u{10000}-\\u{10ffff}]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                "[a-z\\u{e9}\\u{fb33}\\u{1f600}\\u{0}-\\u{1f}]{0,6}",
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Two values are the same JSON data after a pass through f64.
fn same_after_f64(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_after_f64(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_after_f64(v, w)))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn jcs_reparses_equal_and_is_idempotent(v in arb_json()) {
        let once = jcs::to_vec(&v).expect("finite values canonicalize");
        let back: Value = serde_json::from_slice(&once).expect("JCS output is JSON");
        prop_assert!(same_after_f64(&v, &back), "{v} vs {back}");
        let twice = jcs::to_vec(&back).expect("canonicalize again");
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn number_text_round_trips(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let text = jcs::format_number(f).expect("finite");
        let back: f64 = text.parse().expect("parses as f64");
        prop_assert_eq!(back, if f == 0.0 { 0.0 } else { f });
    }
}
