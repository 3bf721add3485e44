//! The sqlite side of the dims (see `trail_store::dims`): each tenant's
//! filterable (kind, value) pairs get a small integer id in the `dims`
//! table, so the `postings` index stores integers instead of strings and the
//! planner knows how many records each value has.

pub use trail_store::dims::{dims_of, DimKind};

/// A fast, non-cryptographic hasher for the writer's dims cache (the keys
/// are the writer's own strings, so flooding is not a concern, and SipHash
/// showed up in the ingest profile).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`FastHasher`]s.
pub type FastHash = std::hash::BuildHasherDefault<FastHasher>;
