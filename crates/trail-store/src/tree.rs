//! What every backend shares about keeping a Merkle tree: which levels of
//! complete-subtree hashes are stored, and how a node of a level that is not
//! stored is folded up from the stored level below it.
//!
//! Level 0 (the leaf hashes) lives with the records; levels 4, 8, 12, ...
//! are stored as the writer completes them. Any other node is computed from
//! at most 16 stored nodes one stored level down, read in one range scan,
//! which keeps a proof under a millisecond while the writer inserts one node
//! per 16 leaves instead of one per leaf.

use trail_core::merkle::{self, Hash};

use crate::StoreError;

/// Distance between stored levels.
pub const LEVEL_STEP: u8 = 4;

/// Whether nodes of `level` are kept as tree nodes (level 0, the leaves,
/// are kept in the records).
pub fn is_stored_level(level: u8) -> bool {
    level > 0 && level.is_multiple_of(LEVEL_STEP)
}

/// The stored nodes a node is folded from: (their level, first index,
/// count). A stored node (or a leaf) is its own base.
pub fn base_of(level: u8, index: u64) -> (u8, u64, u64) {
    let base = level - level % LEVEL_STEP;
    let span = u32::from(level - base);
    (base, index << span, 1u64 << span)
}

/// Folds the node (`level`, `index`) from its base nodes, given in index
/// order as [`base_of`] names them; a missing one is `Corrupt`.
pub fn fold(level: u8, index: u64, base: &[(u64, Hash)]) -> Result<Hash, StoreError> {
    let (base_level, first, count) = base_of(level, index);
    let mut hashes = Vec::with_capacity(count as usize);
    for offset in 0..count {
        match base.get(offset as usize) {
            Some((at, hash)) if *at == first + offset => hashes.push(*hash),
            _ => return Err(missing(base_level, first + offset)),
        }
    }
    while hashes.len() > 1 {
        hashes = hashes
            .chunks_exact(2)
            .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
            .collect();
    }
    hashes.pop().ok_or_else(|| missing(level, index))
}

/// The error of a node the store should hold and does not.
pub fn missing(level: u8, index: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "tree node (level {level}, index {index}) is missing"
    ))
}

/// Maps a proof computation's error to the store's: a node the store could
/// not give keeps its own error, a bad size or index is the caller's
/// (`Invalid`, naming `field`).
pub fn proof_error(error: merkle::ProofError<StoreError>, field: &str) -> StoreError {
    match error {
        merkle::ProofError::Node { source, .. } => source,
        other => StoreError::Invalid {
            field: field.into(),
            message: other.to_string(),
        },
    }
}

/// Checks a tree size against the log size; `field` names the parameter.
pub fn check_size(log: u64, size: u64, field: &str) -> Result<(), StoreError> {
    if size > log {
        return Err(StoreError::Invalid {
            field: field.into(),
            message: format!("the log holds {log} records; {field} {size} is beyond it"),
        });
    }
    Ok(())
}

/// Checks the arguments of an inclusion proof of `seq` in a tree of `size`.
pub fn check_inclusion(seq: u64, size: u64) -> Result<(), StoreError> {
    if seq >= size {
        return Err(StoreError::Invalid {
            field: "seq".into(),
            message: format!("seq {seq} is not in a tree of size {size}"),
        });
    }
    Ok(())
}

/// Checks the arguments of a consistency proof from `from` to `to`.
pub fn check_consistency(from: u64, to: u64) -> Result<(), StoreError> {
    if from == 0 || from > to {
        return Err(StoreError::Invalid {
            field: "from".into(),
            message: format!("a consistency proof needs 0 < from <= to (from {from}, to {to})"),
        });
    }
    Ok(())
}

/// The outcome of [`checkpoint_admission`].
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// The same checkpoint is already kept: nothing to do.
    AlreadyKept,
    /// Newer than every kept one: keep it once its root is checked.
    Check,
}

/// Whether a checkpoint of `size` and `root` may follow the newest kept one
/// (`latest`: its size and root): never older, never a second one of the
/// same size with another root.
pub fn checkpoint_admission(
    latest: Option<(u64, Hash)>,
    size: u64,
    root: &Hash,
) -> Result<Admission, StoreError> {
    if let Some((latest_size, latest_root)) = latest {
        if latest_size == size && &latest_root == root {
            return Ok(Admission::AlreadyKept);
        }
        if latest_size >= size {
            return Err(StoreError::Conflict {
                id: format!("checkpoint of size {size}"),
                seq: latest_size,
            });
        }
    }
    Ok(Admission::Check)
}

/// The refusal of a checkpoint whose root is not the log's.
pub fn wrong_root(size: u64) -> StoreError {
    StoreError::Conflict {
        id: format!("checkpoint of size {size} with a root that is not the log's"),
        seq: size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_matches_the_tree() {
        let leaves: Vec<Hash> = (0u8..32).map(|i| [i; 32]).collect();
        let base: Vec<(u64, Hash)> = leaves
            .iter()
            .copied()
            .enumerate()
            .map(|(i, h)| (i as u64, h))
            .collect();
        assert_eq!(
            fold(2, 1, &base[4..8]).unwrap(),
            merkle::root_of(&leaves[4..8])
        );
        assert_eq!(fold(0, 3, &base[3..4]).unwrap(), leaves[3]);
        assert!(matches!(
            fold(2, 1, &base[4..7]),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(base_of(6, 3), (4, 12, 4));
        assert!(is_stored_level(8) && !is_stored_level(0) && !is_stored_level(3));
    }
}
