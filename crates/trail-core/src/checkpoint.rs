//! C2SP transparency log checkpoints (c2sp.org/tlog-checkpoint): the body
//! `origin\nsize\nbase64(root)\n` plus optional extension lines, signed as a
//! C2SP signed note (see [`crate::note`]).
//!
//! Parsing is strict: a non-empty origin, the size in ASCII decimal without
//! leading zeros, the root as padded standard base64 of exactly 32 bytes,
//! non-empty extension lines and a final newline. The origin and the key
//! name that signs it are independent: opening a checkpoint checks the
//! signature under the verifiers the caller trusts, whatever their names.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::merkle::Hash;
use crate::note::{self, NoteError, SigningKey, Verifier};

/// Errors from checkpoint parsing, signing and opening.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note itself is malformed or does not verify.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The body does not end in a newline or has fewer than three lines.
    #[error("checkpoint body must have origin, size and root lines, each ending in a newline")]
    MissingLines,
    /// The origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// The size line is not a decimal `u64` without leading zeros.
    #[error("checkpoint size is not a canonical decimal number")]
    InvalidSize,
    /// The root line is not padded standard base64 of 32 bytes.
    #[error("checkpoint root is not base64 of a 32-byte hash")]
    InvalidRoot,
    /// An extension line is empty.
    #[error("checkpoint extension lines must not be empty")]
    EmptyExtension,
    /// A field holds a newline, so the body would not parse back.
    #[error("checkpoint fields must not contain newlines")]
    NewlineInField,
}

/// A transparency log checkpoint: the log's origin, tree size and root
/// hash, and any extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log origin (first line), e.g. `example.com/log`.
    pub origin: String,
    /// Tree size.
    pub size: u64,
    /// RFC 6962 root hash of the tree of `size` leaves.
    pub root: Hash,
    /// Extension lines after the root, without their newlines.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body: `origin\nsize\nbase64(root)\n`, then each extension
    /// line followed by a newline.
    pub fn to_body(&self) -> String {
        let mut out = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        );
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        out
    }

    /// Parses a checkpoint body (the text of the signed note).
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err(CheckpointError::MissingLines);
        };
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(CheckpointError::MissingLines);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_size(size).ok_or(CheckpointError::InvalidSize)?;
        let root = parse_root(root).ok_or(CheckpointError::InvalidRoot)?;
        let mut extensions = Vec::new();
        for ext in lines {
            if ext.is_empty() {
                return Err(CheckpointError::EmptyExtension);
            }
            extensions.push(ext.to_owned());
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// Checks that [`to_body`](Self::to_body) gives a body that parses back
    /// to this checkpoint: a non-empty origin and non-empty extensions, none
    /// holding a newline.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if self.origin.contains('\n') || self.extensions.iter().any(|e| e.contains('\n')) {
            return Err(CheckpointError::NewlineInField);
        }
        if self.extensions.iter().any(String::is_empty) {
            return Err(CheckpointError::EmptyExtension);
        }
        Ok(())
    }
}

/// ASCII decimal, no sign, no leading zeros (except `0` itself), fits u64.
fn parse_size(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Padded standard base64 of exactly 32 bytes.
fn parse_root(s: &str) -> Option<Hash> {
    STANDARD.decode(s).ok()?.try_into().ok()
}

/// Signs a checkpoint with `key` and returns the signed note text.
pub fn sign_checkpoint(cp: &Checkpoint, key: &SigningKey) -> Result<String, CheckpointError> {
    cp.validate()?;
    Ok(note::sign_note(&cp.to_body(), &[key])?)
}

/// Opens a signed checkpoint: the note must verify under at least one of
/// `verifiers` (see [`note::open_note`]) and its text must parse as a
/// checkpoint body.
pub fn open_checkpoint(note: &str, verifiers: &[Verifier]) -> Result<Checkpoint, CheckpointError> {
    let (note, _) = note::open_note(note, verifiers)?;
    Checkpoint::parse_body(&note.text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::empty_root;

    fn cp() -> Checkpoint {
        Checkpoint {
            origin: "example.com/log".into(),
            size: 3,
            root: empty_root(),
            extensions: vec!["ext one".into()],
        }
    }

    #[test]
    fn body_round_trip() {
        let c = cp();
        let body = c.to_body();
        assert_eq!(
            body,
            "example.com/log\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next one\n"
        );
        assert_eq!(Checkpoint::parse_body(&body), Ok(c));
    }

    #[test]
    fn strict_parsing() {
        let root = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let bad = [
            (format!("o\n1\n{root}"), CheckpointError::MissingLines),
            ("o\n1\n".to_string(), CheckpointError::MissingLines),
            (format!("\n1\n{root}\n"), CheckpointError::EmptyOrigin),
            (format!("o\n01\n{root}\n"), CheckpointError::InvalidSize),
            (format!("o\n+1\n{root}\n"), CheckpointError::InvalidSize),
            (format!("o\n\n{root}\n"), CheckpointError::InvalidSize),
            (
                format!("o\n18446744073709551616\n{root}\n"),
                CheckpointError::InvalidSize,
            ),
            (
                "o\n1\nYmFuYW5hcw==\n".to_string(),
                CheckpointError::InvalidRoot,
            ),
            (
                "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n".to_string(),
                CheckpointError::InvalidRoot,
            ),
            (format!("o\n1\n{root}\n\n"), CheckpointError::EmptyExtension),
            (
                format!("o\n1\n{root}\na\n\nb\n"),
                CheckpointError::EmptyExtension,
            ),
        ];
        for (body, want) in bad {
            assert_eq!(Checkpoint::parse_body(&body), Err(want), "{body:?}");
        }
        let max = format!("o\n18446744073709551615\n{root}\n");
        assert_eq!(Checkpoint::parse_body(&max).map(|c| c.size), Ok(u64::MAX));
        assert_eq!(
            Checkpoint::parse_body(&format!("o\n0\n{root}\n")).map(|c| c.size),
            Ok(0)
        );
    }

    #[test]
    fn sign_and_open() {
        let key = SigningKey::from_seed("other-name", [9; 32]).expect("name");
        let signed = sign_checkpoint(&cp(), &key).expect("sign");
        assert_eq!(open_checkpoint(&signed, &[key.verifier()]), Ok(cp()));
        let other = SigningKey::from_seed("other-name", [8; 32]).expect("name");
        assert_eq!(
            open_checkpoint(&signed, &[other.verifier()]),
            Err(CheckpointError::Note(NoteError::NoVerifiedSignatures))
        );
        let mut bad = cp();
        bad.extensions.push(String::new());
        assert_eq!(
            sign_checkpoint(&bad, &key),
            Err(CheckpointError::EmptyExtension)
        );
        bad.extensions = vec!["a\nb".into()];
        assert_eq!(
            sign_checkpoint(&bad, &key),
            Err(CheckpointError::NewlineInField)
        );
    }
}
