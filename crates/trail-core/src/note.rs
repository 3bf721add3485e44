//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys (signature
//! type 0x01): signing keys, verifier keys (`vkey`s), signing, strict
//! parsing and verification.
//!
//! A signed note is UTF-8 text ending in a newline, one empty line, then one
//! or more signature lines `— <key name> <base64(key ID || signature)>\n`
//! (U+2014 em dash). The key ID of an Ed25519 key is the first four bytes
//! of SHA-256(name || 0x0A || 0x01 || public key). The signed message is the
//! text including its final newline.
//!
//! Private keys come from a 32-byte seed supplied by the caller; this crate
//! draws no random numbers. [`SigningKey::parse_go_private_key`] reads the
//! `PRIVATE+KEY+…` encoding of golang.org/x/mod, which upstream test logs
//! publish; it is not part of C2SP.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer as _, SIGNATURE_LENGTH};

use crate::hashing::sha256;

/// Signature type byte of Ed25519 keys in key IDs and key encodings.
const ALG_ED25519: u8 = 0x01;
/// Prefix of every signature line: U+2014 em dash and a space.
const SIG_PREFIX: &str = "\u{2014} ";
/// Most signature lines accepted on one note. C2SP requires accepting at
/// least 16; golang.org/x/mod stops at 100, and so do we.
pub const MAX_SIGNATURES: usize = 100;

/// Errors from keys, signing and note parsing/verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A key name is empty, or contains whitespace or `+`.
    #[error("invalid key name")]
    InvalidName,
    /// A verifier key (`name+hash+base64`) is malformed, uses an unknown
    /// algorithm, or its key ID does not match the key.
    #[error("invalid verifier key")]
    InvalidVerifierKey,
    /// A private key string is malformed, uses an unknown algorithm, or its
    /// key ID does not match the key.
    #[error("invalid signing key")]
    InvalidSigningKey,
    /// Text to sign does not end in a newline or holds control characters
    /// other than newline.
    #[error("note text must end in a newline and hold no control characters but newline")]
    InvalidText,
    /// No signing key was given.
    #[error("no signing keys")]
    NoSigners,
    /// The note does not follow the signed-note syntax.
    #[error("malformed note")]
    MalformedNote,
    /// The note carries more than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {MAX_SIGNATURES} signatures")]
    TooManySignatures,
    /// A signature by a known key (same name and key ID) does not verify.
    #[error("invalid signature for key {name}+{}", hex::encode(key_id))]
    InvalidSignature {
        /// Key name on the signature line.
        name: String,
        /// Key ID on the signature line.
        key_id: [u8; 4],
    },
    /// No signature was made by any of the given verifiers.
    #[error("note has no verifiable signatures")]
    NoVerifiedSignatures,
}

/// Whether `name` is a valid key name: non-empty, no Unicode whitespace,
/// no `+`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Ed25519 key ID: SHA-256(name || 0x0A || 0x01 || public key)[..4].
fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut buf = Vec::with_capacity(name.len() + 2 + public.len());
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'\n');
    buf.push(ALG_ED25519);
    buf.extend_from_slice(public);
    let h = sha256(&buf);
    [h[0], h[1], h[2], h[3]]
}

/// Parses exactly eight hex digits (either case) into a key ID.
fn parse_key_id(hex8: &str) -> Option<[u8; 4]> {
    if hex8.len() != 8 {
        return None;
    }
    let mut out = [0u8; 4];
    hex::decode_to_slice(hex8, &mut out).ok()?;
    Some(out)
}

/// Decodes `base64(0x01 || 32 bytes)`.
fn decode_ed25519_key(b64: &str) -> Option<[u8; 32]> {
    let raw = STANDARD.decode(b64).ok()?;
    match raw.split_first() {
        Some((&ALG_ED25519, rest)) => rest.try_into().ok(),
        _ => None,
    }
}

/// Whether `text` may be the text of a note: ends in a newline and holds no
/// control characters (below U+0020) other than newline.
fn valid_text(text: &str) -> bool {
    text.ends_with('\n') && !text.chars().any(|c| c < ' ' && c != '\n')
}

/// An Ed25519 signing key with its key name.
#[derive(Clone)]
pub struct SigningKey {
    name: String,
    key_id: [u8; 4],
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    // Never print the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Builds a key from its name and a 32-byte Ed25519 seed (the RFC 8032
    /// private key). The caller supplies the randomness.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        if !valid_name(name) {
            return Err(NoteError::InvalidName);
        }
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let key_id = key_id(name, key.verifying_key().as_bytes());
        Ok(Self {
            name: name.to_owned(),
            key_id,
            key,
        })
    }

    /// Parses golang.org/x/mod's private key encoding,
    /// `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>`, checking
    /// that the key ID matches. Test vectors only: it is not a C2SP format.
    pub fn parse_go_private_key(text: &str) -> Result<Self, NoteError> {
        let mut parts = text.splitn(5, '+');
        let (Some("PRIVATE"), Some("KEY"), Some(name), Some(hex8), Some(b64)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(NoteError::InvalidSigningKey);
        };
        if !valid_name(name) {
            return Err(NoteError::InvalidSigningKey);
        }
        let id = parse_key_id(hex8).ok_or(NoteError::InvalidSigningKey)?;
        let seed = decode_ed25519_key(b64).ok_or(NoteError::InvalidSigningKey)?;
        let key = Self::from_seed(name, seed)?;
        if key.key_id != id {
            return Err(NoteError::InvalidSigningKey);
        }
        Ok(key)
    }

    /// The encoding [`SigningKey::parse_go_private_key`] reads,
    /// `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>` (what
    /// `<data dir>/log.key` holds).
    pub fn to_go_private_key(&self) -> String {
        let mut payload = vec![1u8];
        payload.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(&payload)
        )
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID: SHA-256(name || 0x0A || 0x01 || public key)[..4].
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs note `text` (which must end in a newline) and returns the
    /// signature line, `— <name> <base64(key ID || signature)>\n`.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        if !valid_text(text) {
            return Err(NoteError::InvalidText);
        }
        let sig = self.key.sign(text.as_bytes());
        let mut raw = Vec::with_capacity(4 + SIGNATURE_LENGTH);
        raw.extend_from_slice(&self.key_id);
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{SIG_PREFIX}{} {}\n",
            self.name,
            STANDARD.encode(raw)
        ))
    }
}

/// An Ed25519 verifier key with its key name, as written in a `vkey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key_id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

impl Verifier {
    /// Parses a verifier key `<name>+<hex key ID>+<base64(0x01 || public
    /// key)>`, splitting on the first two `+` only (base64 may contain `+`)
    /// and checking that the key ID matches the name and key.
    pub fn parse_vkey(vkey: &str) -> Result<Self, NoteError> {
        let mut parts = vkey.splitn(3, '+');
        let (Some(name), Some(hex8), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::InvalidVerifierKey);
        };
        if !valid_name(name) {
            return Err(NoteError::InvalidVerifierKey);
        }
        let id = parse_key_id(hex8).ok_or(NoteError::InvalidVerifierKey)?;
        let public = decode_ed25519_key(b64).ok_or(NoteError::InvalidVerifierKey)?;
        if key_id(name, &public) != id {
            return Err(NoteError::InvalidVerifierKey);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::InvalidVerifierKey)?;
        Ok(Self {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// The verifier key string, `<name>+<hex key ID>+<base64(0x01 || key)>`.
    pub fn to_vkey(&self) -> String {
        let mut raw = Vec::with_capacity(33);
        raw.push(ALG_ED25519);
        raw.extend_from_slice(self.key.as_bytes());
        format!(
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            STANDARD.encode(raw)
        )
    }

    /// Key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Key ID.
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// Whether `signature` (64 bytes, without the key ID) is a valid
    /// signature of `text` (the note text including its final newline).
    /// Uses strict Ed25519 verification (no small-order keys or points,
    /// canonical scalars).
    pub fn verify(&self, text: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        self.key.verify_strict(text, &sig).is_ok()
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID (first four bytes of the decoded base64).
    pub key_id: [u8; 4],
    /// Signature bytes after the key ID.
    pub signature: Vec<u8>,
}

/// A parsed signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Note text including its final newline, without the blank separator
    /// line. This is the signed message.
    pub text: String,
    /// Signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

/// Signs `text` (ending in a newline) with every key and returns the signed
/// note: text, an empty line, one signature line per key.
pub fn sign_note(text: &str, keys: &[&SigningKey]) -> Result<String, NoteError> {
    if keys.is_empty() {
        return Err(NoteError::NoSigners);
    }
    if !valid_text(text) {
        return Err(NoteError::InvalidText);
    }
    let mut out = String::with_capacity(text.len() + 1 + keys.len() * 110);
    out.push_str(text);
    out.push('\n');
    for key in keys {
        out.push_str(&key.sign(text)?);
    }
    Ok(out)
}

/// Parses a signed note without verifying it. Strict: no control
/// characters but newline, the text ends in a newline, the last empty line
/// separates text from signatures, every following line is a well-formed
/// signature line ending in a newline, at most [`MAX_SIGNATURES`] of them.
pub fn parse_note(msg: &str) -> Result<Note, NoteError> {
    if msg.chars().any(|c| c < ' ' && c != '\n') {
        return Err(NoteError::MalformedNote);
    }
    let split = msg.rfind("\n\n").ok_or(NoteError::MalformedNote)?;
    // The text keeps its own final newline; the second newline is the
    // empty separator line. Both are ASCII, so these are char boundaries.
    let text = &msg[..split + 1];
    let sigs = &msg[split + 2..];
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(NoteError::MalformedNote);
    }
    let mut signatures = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if signatures.len() == MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures);
        }
        signatures.push(parse_signature_line(line)?);
    }
    Ok(Note {
        text: text.to_owned(),
        signatures,
    })
}

/// Parses `— <name> <base64>` (without the newline).
fn parse_signature_line(line: &str) -> Result<NoteSignature, NoteError> {
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(NoteError::MalformedNote)?;
    let (name, b64) = rest.split_once(' ').ok_or(NoteError::MalformedNote)?;
    if !valid_name(name) {
        return Err(NoteError::MalformedNote);
    }
    let raw = STANDARD.decode(b64).map_err(|_| NoteError::MalformedNote)?;
    // A key ID and at least one signature byte.
    if raw.len() < 5 {
        return Err(NoteError::MalformedNote);
    }
    let (id, signature) = raw.split_at(4);
    Ok(NoteSignature {
        name: name.to_owned(),
        key_id: [id[0], id[1], id[2], id[3]],
        signature: signature.to_vec(),
    })
}

/// Parses and verifies a signed note. Signatures whose name and key ID
/// match no verifier are ignored; a signature by a known verifier that does
/// not verify is an error; at least one signature must verify. Returns the
/// note and the verifiers whose signatures verified (each once, in the
/// order their signatures appear).
pub fn open_note(msg: &str, verifiers: &[Verifier]) -> Result<(Note, Vec<Verifier>), NoteError> {
    let note = parse_note(msg)?;
    let mut verified: Vec<Verifier> = Vec::new();
    for sig in &note.signatures {
        let Some(v) = verifiers
            .iter()
            .find(|v| v.name == sig.name && v.key_id == sig.key_id)
        else {
            continue;
        };
        if !v.verify(note.text.as_bytes(), &sig.signature) {
            return Err(NoteError::InvalidSignature {
                name: sig.name.clone(),
                key_id: sig.key_id,
            });
        }
        if !verified.contains(v) {
            verified.push(v.clone());
        }
    }
    if verified.is_empty() {
        return Err(NoteError::NoVerifiedSignatures);
    }
    Ok((note, verified))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_key_encoding_round_trips() {
        let key = SigningKey::from_seed("trail.local", [7u8; 32]).unwrap();
        let text = key.to_go_private_key();
        assert!(text.starts_with("PRIVATE+KEY+trail.local+"));
        let back = SigningKey::parse_go_private_key(&text).unwrap();
        assert_eq!(back.key_id(), key.key_id());
        assert_eq!(back.verifier().to_vkey(), key.verifier().to_vkey());
    }

    fn key(name: &str, byte: u8) -> SigningKey {
        SigningKey::from_seed(name, [byte; 32]).expect("valid name")
    }

    #[test]
    fn names_are_validated() {
        for bad in ["", "a b", "a+b", "a\tb", "a\u{a0}b", "a\nb"] {
            assert_eq!(
                SigningKey::from_seed(bad, [1; 32]).err(),
                Some(NoteError::InvalidName),
                "{bad:?}"
            );
        }
        assert!(SigningKey::from_seed("example.com/log", [1; 32]).is_ok());
    }

    #[test]
    fn sign_and_open_round_trip() {
        let a = key("a.example/log", 1);
        let b = key("b.example/witness", 2);
        let msg = sign_note("hello\nworld\n", &[&a, &b]).expect("sign");
        assert!(msg.starts_with("hello\nworld\n\n\u{2014} a.example/log "));
        let (note, who) = open_note(&msg, &[b.verifier()]).expect("open");
        assert_eq!(note.text, "hello\nworld\n");
        assert_eq!(note.signatures.len(), 2);
        assert_eq!(who, vec![b.verifier()]);
        let (_, who) = open_note(&msg, &[a.verifier(), b.verifier()]).expect("open");
        assert_eq!(who.len(), 2);
        assert_eq!(
            open_note(&msg, &[key("c", 3).verifier()]).err(),
            Some(NoteError::NoVerifiedSignatures)
        );
        let v = a.verifier();
        assert_eq!(Verifier::parse_vkey(&v.to_vkey()), Ok(v));
    }

    #[test]
    fn text_is_validated() {
        let a = key("a", 1);
        assert_eq!(a.sign("no newline").err(), Some(NoteError::InvalidText));
        assert_eq!(a.sign("tab\there\n").err(), Some(NoteError::InvalidText));
        assert_eq!(a.sign("cr\r\n").err(), Some(NoteError::InvalidText));
        assert_eq!(sign_note("x\n", &[]).err(), Some(NoteError::NoSigners));
    }

    #[test]
    fn same_name_other_key_is_invalid_signature() {
        // A verifier with the right name but another key has another key
        // ID, so its signature is simply unknown.
        let a = key("a", 1);
        let impostor = key("a", 2);
        let msg = sign_note("x\n", &[&a]).expect("sign");
        assert_eq!(
            open_note(&msg, &[impostor.verifier()]).err(),
            Some(NoteError::NoVerifiedSignatures)
        );
        // A tampered text under the right key is an error.
        let tampered = msg.replacen('x', "y", 1);
        assert!(matches!(
            open_note(&tampered, &[a.verifier()]),
            Err(NoteError::InvalidSignature { .. })
        ));
    }

    #[test]
    fn signature_count_limit() {
        let a = key("a", 1);
        let line = a.sign("x\n").expect("sign");
        let ok = format!("x\n\n{}", line.repeat(MAX_SIGNATURES));
        assert!(parse_note(&ok).is_ok());
        let too_many = format!("x\n\n{}", line.repeat(MAX_SIGNATURES + 1));
        assert_eq!(parse_note(&too_many), Err(NoteError::TooManySignatures));
    }

    #[test]
    fn debug_hides_the_secret() {
        let a = key("a", 7);
        let shown = format!("{a:?}");
        assert!(shown.contains("key_id"));
        assert!(!shown.contains("0707"));
    }
}
