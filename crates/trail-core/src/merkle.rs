//! RFC 6962 / RFC 9162 Merkle tree primitives over SHA-256: leaf and node
//! hashing (prefix bytes 0x00 and 0x01), tree roots, the compact range that
//! tracks the right edge of a growing log, proof generation over stored
//! nodes and proof verification.
//!
//! Stored nodes are addressed as complete subtrees: node `(level, index)`
//! is the hash of leaves `[index << level, (index + 1) << level)`, so level 0
//! holds the leaf hashes. A log only ever needs to persist complete
//! subtrees; the hash of any other range is folded from the complete
//! subtrees that make it up. Proof generation therefore takes a fallible
//! node getter and reads O(log n) nodes through it.
//!
//! Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2, with two choices
//! made by transparency-dev/merkle: a consistency proof from size 0 is always
//! an error, and equal sizes need an empty proof and equal roots.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// RFC 6962 leaf hash: SHA-256(0x00 || data).
pub use crate::hashing::leaf_hash;

/// RFC 6962 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest(b"").into()
}

/// Merkle Tree Hash (RFC 9162 §2.1.1) of a list of leaf hashes; the empty
/// list gives [`empty_root`].
pub fn root_of(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [leaf] => *leaf,
        _ => {
            // `leaves.len() >= 2`, so the split point is in 1..len.
            let k = split_point(leaves.len() as u64) as usize;
            node_hash(&root_of(&leaves[..k]), &root_of(&leaves[k..]))
        }
    }
}

/// The largest power of two strictly below `n`, for `n >= 2` (RFC 9162's
/// `k`). Returns 0 for `n < 2`.
fn split_point(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Errors from proof generation over stored nodes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError<E> {
    /// An inclusion proof was asked for a leaf the tree does not hold.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Requested leaf index.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// A consistency proof was asked from size 0 or from a larger tree to a
    /// smaller one.
    #[error("no consistency proof from size {from} to size {to}")]
    InvalidSizes {
        /// Older tree size.
        from: u64,
        /// Newer tree size.
        to: u64,
    },
    /// The node getter failed.
    #[error("reading node (level {level}, index {index}) failed")]
    Node {
        /// Level of the node being read.
        level: u8,
        /// Index of the node within its level.
        index: u64,
        /// The getter's error.
        #[source]
        source: E,
    },
}

/// Why a proof did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Claimed leaf index.
        index: u64,
        /// Claimed tree size.
        size: u64,
    },
    /// Consistency from size 0, or from a larger tree to a smaller one.
    #[error("no consistency proof from size {from} to size {to}")]
    InvalidSizes {
        /// Claimed older size.
        from: u64,
        /// Claimed newer size.
        to: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has the wrong number of hashes")]
    WrongProofLength,
    /// The recomputed root does not match the expected one.
    #[error("recomputed root does not match")]
    RootMismatch,
}

/// Errors from rebuilding a [`CompactRange`] from stored parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactRangeError {
    /// The number of hashes is not the number of set bits of the size.
    #[error("a compact range of size {size} has {expected} hashes, got {got}")]
    WrongHashCount {
        /// Tree size.
        size: u64,
        /// `size.count_ones()`.
        expected: usize,
        /// Number of hashes given.
        got: usize,
    },
}

/// The right edge of a growing tree: one complete subtree per set bit of
/// the size, largest (leftmost) first. It is enough to append leaves and to
/// compute the root, and it holds at most 64 hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    hashes: Vec<Hash>,
}

impl CompactRange {
    /// The compact range of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a compact range from its size and the hashes of the complete
    /// subtrees covering `[0, size)`, largest first, as listed by
    /// [`compact_range_nodes`].
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, CompactRangeError> {
        let expected = size.count_ones() as usize;
        if hashes.len() != expected {
            return Err(CompactRangeError::WrongHashCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves covered.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hashes of the complete subtrees covering `[0, size)`, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends one leaf hash. Returns every node at level 1 or above that
    /// became complete through this append, as `(level, index, hash)`,
    /// lowest level first; the leaf itself (level 0, index = old size) is
    /// not included.
    ///
    /// # Panics
    ///
    /// When the range already covers `u64::MAX` leaves, the largest size a
    /// `u64` can count. No real log gets there.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let old = self.size;
        self.size = match old.checked_add(1) {
            Some(size) => size,
            None => panic!("compact range is full (u64::MAX leaves)"),
        };
        let mut completed = Vec::new();
        let mut hash = leaf;
        let mut index = old;
        let mut level: u8 = 0;
        // Each set low bit of the old size is a complete subtree of that
        // level that the new node now pairs with.
        while (old >> level) & 1 == 1 {
            // The bit is set, so `hashes` holds that subtree as its last
            // entry (one entry per set bit, smallest last).
            let Some(left) = self.hashes.pop() else {
                break;
            };
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed.push((level, index, hash));
        }
        self.hashes.push(hash);
        completed
    }

    /// Root of the tree of `size` leaves.
    pub fn root(&self) -> Hash {
        fold_right(&self.hashes).unwrap_or_else(empty_root)
    }
}

/// MTH of a run of complete subtrees, largest first, whose start is aligned
/// to the largest: fold from the right. `None` for an empty run.
fn fold_right(hashes: &[Hash]) -> Option<Hash> {
    let (last, rest) = hashes.split_last()?;
    Some(rest.iter().rev().fold(*last, |acc, h| node_hash(h, &acc)))
}

/// The `(level, index)` nodes making up the compact range of a tree of
/// `size` leaves, largest first (the order of [`CompactRange::hashes`]).
pub fn compact_range_nodes(size: u64) -> Vec<(u8, u64)> {
    (0..64u8)
        .rev()
        .filter(|&level| (size >> level) & 1 == 1)
        .map(|level| (level, (size >> level) - 1))
        .collect()
}

/// Complete subtrees covering `[begin, end)`, largest first, as
/// `(level, index)`. For the ranges used here `begin` is aligned to a power
/// of two at least `end - begin`, so the result is the binary decomposition
/// of the length.
fn decompose(begin: u64, end: u64) -> Vec<(u8, u64)> {
    let mut out = Vec::new();
    let mut pos = begin;
    while pos < end {
        let align = pos.trailing_zeros(); // 64 when pos == 0
        let fits = 63 - (end - pos).leading_zeros(); // floor(log2(end - pos))
        let level = align.min(fits);
        out.push((level as u8, pos >> level));
        pos += 1u64 << level;
    }
    out
}

/// MTH of leaves `[begin, end)` (non-empty) read through `node`.
fn range_hash<E>(
    begin: u64,
    end: u64,
    node: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Hash, ProofError<E>> {
    let mut hashes = Vec::new();
    for (level, index) in decompose(begin, end) {
        hashes.push(read(node, level, index)?);
    }
    // `begin < end` at every call site, so there is at least one node; fall
    // back to the empty root rather than panic should that ever change.
    Ok(fold_right(&hashes).unwrap_or_else(empty_root))
}

fn read<E>(
    node: &mut impl FnMut(u8, u64) -> Result<Hash, E>,
    level: u8,
    index: u64,
) -> Result<Hash, ProofError<E>> {
    node(level, index).map_err(|source| ProofError::Node {
        level,
        index,
        source,
    })
}

/// Root of the tree of `size` leaves, read through `node` (at most 64 node
/// reads: the compact range).
pub fn root_from_nodes<E>(
    size: u64,
    mut node: impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Hash, ProofError<E>> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_hash(0, size, &mut node)
}

/// Inclusion proof (audit path, RFC 9162 §2.1.3.1) for leaf `index` in the
/// tree of `size` leaves, sibling first and the root's child last. Reads
/// O(log size) nodes through `node`, including level 0.
pub fn inclusion_proof<E>(
    index: u64,
    size: u64,
    mut node: impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, ProofError<E>> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Walk down from the root, collecting the sibling at each split; the
    // proof lists them bottom-up.
    let (mut begin, mut end) = (0u64, size);
    let mut top_down = Vec::new();
    while end - begin > 1 {
        let k = split_point(end - begin);
        let mid = begin + k;
        if index < mid {
            top_down.push(range_hash(mid, end, &mut node)?);
            end = mid;
        } else {
            top_down.push(range_hash(begin, mid, &mut node)?);
            begin = mid;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// Consistency proof (RFC 9162 §2.1.4.1) from the tree of `from` leaves to
/// the tree of `to` leaves, deepest first and the root's child last. Equal
/// sizes give an empty proof; `from == 0` or `from > to` is an error.
pub fn consistency_proof<E>(
    from: u64,
    to: u64,
    mut node: impl FnMut(u8, u64) -> Result<Hash, E>,
) -> Result<Vec<Hash>, ProofError<E>> {
    if from == 0 || from > to {
        return Err(ProofError::InvalidSizes { from, to });
    }
    // SUBPROOF(m, D[begin:end], whole) with m = from - begin.
    let (mut begin, mut end) = (0u64, to);
    let mut whole = true;
    let mut top_down = Vec::new();
    loop {
        let m = from - begin;
        let n = end - begin;
        if m == n {
            if !whole {
                top_down.push(range_hash(begin, end, &mut node)?);
            }
            break;
        }
        let k = split_point(n);
        let mid = begin + k;
        if m <= k {
            top_down.push(range_hash(mid, end, &mut node)?);
            end = mid;
        } else {
            top_down.push(range_hash(begin, mid, &mut node)?);
            begin = mid;
            whole = false;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// Verifies that `leaf` (a leaf hash) is leaf `index` of the tree of `size`
/// leaves with root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err(VerifyError::WrongProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongProofLength);
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `from` leaves with root `from_root` is a prefix
/// of the tree of `to` leaves with root `to_root` (RFC 9162 §2.1.4.2).
/// `from == 0` is always an error; equal sizes need an empty proof and
/// equal roots.
pub fn verify_consistency(
    from: u64,
    to: u64,
    proof: &[Hash],
    from_root: &Hash,
    to_root: &Hash,
) -> Result<(), VerifyError> {
    if from == 0 || from > to {
        return Err(VerifyError::InvalidSizes { from, to });
    }
    if from == to {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength);
        }
        if from_root != to_root {
            return Err(VerifyError::RootMismatch);
        }
        return Ok(());
    }
    // When `from` is a power of two its root is a node of the new tree and
    // the proof leaves it out; put it back in front.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if from.is_power_of_two() {
        path.push(from_root);
    }
    path.extend(proof);
    let Some((first, rest)) = path.split_first() else {
        return Err(VerifyError::WrongProofLength);
    };
    let (mut fnode, mut snode) = (from - 1, to - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (**first, **first);
    for c in rest {
        if snode == 0 {
            return Err(VerifyError::WrongProofLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(VerifyError::WrongProofLength);
    }
    if fr != *from_root || sr != *to_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// A node getter over an in-memory list of leaf hashes, computing every
/// node on demand.
#[cfg(test)]
fn nodes_from_leaves(
    leaves: &[Hash],
) -> impl FnMut(u8, u64) -> Result<Hash, std::convert::Infallible> + '_ {
    move |level, index| {
        let start = index.checked_shl(u32::from(level)).unwrap_or(u64::MAX);
        let width = 1u64.checked_shl(u32::from(level)).unwrap_or(u64::MAX);
        let begin = usize::try_from(start)
            .unwrap_or(usize::MAX)
            .min(leaves.len());
        let end = usize::try_from(start.saturating_add(width))
            .unwrap_or(usize::MAX)
            .min(leaves.len());
        Ok(root_of(&leaves[begin..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(u64::MAX), 1 << 63);
    }

    #[test]
    fn compact_range_matches_root_of() {
        let all = leaves(70);
        let mut cr = CompactRange::new();
        assert_eq!(cr.root(), empty_root());
        for (i, leaf) in all.iter().enumerate() {
            cr.append(*leaf);
            assert_eq!(cr.size(), i as u64 + 1);
            assert_eq!(cr.root(), root_of(&all[..=i]));
            assert_eq!(cr.hashes().len(), cr.size().count_ones() as usize);
        }
    }

    #[test]
    fn append_reports_completed_nodes() {
        let mut cr = CompactRange::new();
        let all = leaves(8);
        let mut got = Vec::new();
        for leaf in &all {
            got.push(cr.append(*leaf));
        }
        assert!(got[0].is_empty());
        assert_eq!(got[1], vec![(1, 0, root_of(&all[0..2]))]);
        assert!(got[2].is_empty());
        assert_eq!(
            got[3],
            vec![(1, 1, root_of(&all[2..4])), (2, 0, root_of(&all[0..4]))]
        );
        assert_eq!(got[7].len(), 3);
        assert_eq!(got[7][2], (3, 0, root_of(&all)));
    }

    #[test]
    fn compact_range_nodes_and_from_parts() {
        assert!(compact_range_nodes(0).is_empty());
        assert_eq!(compact_range_nodes(6), vec![(2, 0), (1, 2)]);
        assert_eq!(compact_range_nodes(7), vec![(2, 0), (1, 2), (0, 6)]);
        assert_eq!(compact_range_nodes(u64::MAX).len(), 64);
        let all = leaves(13);
        let mut get = nodes_from_leaves(&all);
        let parts: Vec<Hash> = compact_range_nodes(13)
            .into_iter()
            .map(|(l, i)| get(l, i).unwrap_or_default())
            .collect();
        let mut cr = CompactRange::from_parts(13, parts).expect("right count");
        assert_eq!(cr.root(), root_of(&all));
        cr.append(leaf_hash(b"x"));
        let mut more = all.clone();
        more.push(leaf_hash(b"x"));
        assert_eq!(cr.root(), root_of(&more));
        assert_eq!(
            CompactRange::from_parts(3, vec![[0; 32]]),
            Err(CompactRangeError::WrongHashCount {
                size: 3,
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn decompose_is_binary() {
        assert_eq!(decompose(0, 7), vec![(2, 0), (1, 2), (0, 6)]);
        assert_eq!(decompose(8, 13), vec![(2, 2), (0, 12)]);
        assert_eq!(decompose(0, u64::MAX).len(), 64);
    }

    #[test]
    fn proof_generation_rejects_bad_arguments() {
        let all = leaves(4);
        assert_eq!(
            inclusion_proof(4, 4, nodes_from_leaves(&all)),
            Err(ProofError::IndexOutOfRange { index: 4, size: 4 })
        );
        assert_eq!(
            consistency_proof(0, 4, nodes_from_leaves(&all)),
            Err(ProofError::InvalidSizes { from: 0, to: 4 })
        );
        assert_eq!(
            consistency_proof(5, 4, nodes_from_leaves(&all)),
            Err(ProofError::InvalidSizes { from: 5, to: 4 })
        );
        assert_eq!(consistency_proof(4, 4, nodes_from_leaves(&all)), Ok(vec![]));
    }

    #[test]
    fn getter_errors_carry_the_node() {
        let got = inclusion_proof(0, 2, |level, index| {
            Err::<Hash, _>(format!("missing {level}/{index}"))
        });
        assert_eq!(
            got,
            Err(ProofError::Node {
                level: 0,
                index: 1,
                source: "missing 0/1".to_string()
            })
        );
    }

    #[test]
    fn exhaustive_small_trees() {
        let all = leaves(33);
        for size in 1..=33u64 {
            let root = root_of(&all[..size as usize]);
            assert_eq!(root_from_nodes(size, nodes_from_leaves(&all)), Ok(root));
            for index in 0..size {
                let proof = inclusion_proof(index, size, nodes_from_leaves(&all)).expect("proof");
                assert_eq!(
                    verify_inclusion(&all[index as usize], index, size, &proof, &root),
                    Ok(())
                );
                assert!(
                    verify_inclusion(&all[index as usize], index ^ 1, size, &proof, &root).is_err()
                );
            }
            for from in 1..=size {
                let old = root_of(&all[..from as usize]);
                let proof = consistency_proof(from, size, nodes_from_leaves(&all)).expect("proof");
                assert_eq!(
                    verify_consistency(from, size, &proof, &old, &root),
                    Ok(()),
                    "{from} -> {size}"
                );
                if from < size {
                    assert!(verify_consistency(from, size, &proof, &root, &old).is_err());
                }
            }
        }
    }

    #[test]
    fn verification_edge_cases() {
        let all = leaves(3);
        let root = root_of(&all);
        assert_eq!(
            verify_inclusion(&all[0], 3, 3, &[], &root),
            Err(VerifyError::IndexOutOfRange { index: 3, size: 3 })
        );
        assert_eq!(
            verify_consistency(0, 0, &[], &empty_root(), &empty_root()),
            Err(VerifyError::InvalidSizes { from: 0, to: 0 })
        );
        assert_eq!(
            verify_consistency(3, 3, &[root], &root, &root),
            Err(VerifyError::WrongProofLength)
        );
        assert_eq!(
            verify_consistency(3, 3, &[], &root, &all[0]),
            Err(VerifyError::RootMismatch)
        );
        assert_eq!(verify_consistency(3, 3, &[], &root, &root), Ok(()));
    }
}
