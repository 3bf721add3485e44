//! The Merkle tree of each tenant's log as sqlite keeps it: level-0 hashes
//! are the records' `leaf_hash`, complete subtrees at level 1 and up are in
//! `tree_nodes` (written by the writer in the same transaction as their
//! leaves), and signed checkpoints in `checkpoints`. Roots and proofs are
//! computed by `trail_core::merkle` from O(log n) stored nodes; nothing on a
//! request path rebuilds a tree.

use rusqlite::{params, Connection, OptionalExtension};
use trail_core::merkle::{self, CompactRange, Hash};
use trail_store::{StoreError, StoredCheckpoint};

use crate::schema::rid;

/// Stores one completed subtree hash (of a stored level).
pub fn insert_node(
    conn: &Connection,
    tenant: i64,
    level: u8,
    index: u64,
    hash: &Hash,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO tree_nodes (tenant_id, level, idx, hash) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut stmt| stmt.execute(params![tenant, level, index as i64, hash.as_slice()]))
    .map_err(StoreError::backend)?;
    Ok(())
}

/// Levels of complete subtrees that are stored: every fourth (4, 8, 12,
/// ...). The others are computed from at most 16 stored nodes one stored
/// level down, read in one range scan, which keeps a proof under a
/// millisecond while the writer inserts one node per 16 leaves instead of
/// one per leaf.
pub const LEVEL_STEP: u8 = 4;

/// Whether nodes of `level` are kept in `tree_nodes` (level 0, the leaves,
/// are in `records`).
pub fn is_stored_level(level: u8) -> bool {
    level > 0 && level.is_multiple_of(LEVEL_STEP)
}

/// Any complete subtree hash: read when stored, else folded up from the
/// stored level below it.
pub fn node(conn: &Connection, tenant: i64, level: u8, index: u64) -> Result<Hash, StoreError> {
    let base = level - level % LEVEL_STEP;
    let span = u32::from(level - base);
    let first = index << span;
    let count = 1u64 << span;
    let mut hashes: Vec<Hash> = nodes(conn, tenant, base, first, first + count)?
        .into_iter()
        .enumerate()
        .map(|(offset, (at, hash))| {
            if at == first + offset as u64 {
                Ok(hash)
            } else {
                Err(missing(base, first + offset as u64))
            }
        })
        .collect::<Result<_, _>>()?;
    if hashes.len() as u64 != count {
        return Err(missing(base, first + hashes.len() as u64));
    }
    while hashes.len() > 1 {
        hashes = hashes
            .chunks_exact(2)
            .map(|pair| merkle::node_hash(&pair[0], &pair[1]))
            .collect();
    }
    hashes.pop().ok_or_else(|| missing(level, index))
}

fn missing(level: u8, index: u64) -> StoreError {
    StoreError::Corrupt(format!(
        "tree node (level {level}, index {index}) is missing"
    ))
}

/// The right edge of the tree of `size` leaves, from stored nodes.
pub fn load_range(conn: &Connection, tenant: i64, size: u64) -> Result<CompactRange, StoreError> {
    let hashes = merkle::compact_range_nodes(size)
        .into_iter()
        .map(|(level, index)| node(conn, tenant, level, index))
        .collect::<Result<Vec<_>, _>>()?;
    CompactRange::from_parts(size, hashes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn proof_error<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::Invalid {
        field: "size".into(),
        message: error.to_string(),
    }
}

/// Checks a tree size against the log; `field` names the parameter.
fn check_size(conn: &Connection, tenant: i64, size: u64, field: &str) -> Result<(), StoreError> {
    let log = crate::read::log_size(conn, tenant)?;
    if size > log {
        return Err(StoreError::Invalid {
            field: field.into(),
            message: format!("the log holds {log} records; {field} {size} is beyond it"),
        });
    }
    Ok(())
}

/// The root at `size`.
pub fn root(conn: &Connection, tenant: i64, size: u64) -> Result<Hash, StoreError> {
    check_size(conn, tenant, size, "size")?;
    merkle::root_from_nodes(size, |level, index| node(conn, tenant, level, index)).map_err(
        |error| match error {
            merkle::ProofError::Node { source, .. } => source,
            other => proof_error(other),
        },
    )
}

/// Inclusion proof of `seq` in the tree of `size`.
pub fn inclusion_proof(
    conn: &Connection,
    tenant: i64,
    seq: u64,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(conn, tenant, size, "size")?;
    if seq >= size {
        return Err(StoreError::Invalid {
            field: "seq".into(),
            message: format!("seq {seq} is not in a tree of size {size}"),
        });
    }
    merkle::inclusion_proof(seq, size, |level, index| node(conn, tenant, level, index)).map_err(
        |error| match error {
            merkle::ProofError::Node { source, .. } => source,
            other => proof_error(other),
        },
    )
}

/// Consistency proof from `from` to `to`.
pub fn consistency_proof(
    conn: &Connection,
    tenant: i64,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(conn, tenant, to, "to")?;
    if from == 0 || from > to {
        return Err(StoreError::Invalid {
            field: "from".into(),
            message: format!("a consistency proof needs 0 < from <= to (from {from}, to {to})"),
        });
    }
    merkle::consistency_proof(from, to, |level, index| node(conn, tenant, level, index)).map_err(
        |error| match error {
            merkle::ProofError::Node { source, .. } => source,
            other => proof_error(other),
        },
    )
}

/// Stored nodes of one level with index in `[start, end)`.
pub fn nodes(
    conn: &Connection,
    tenant: i64,
    level: u8,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Hash)>, StoreError> {
    let mut out = Vec::new();
    let (sql, low, high) = if level == 0 {
        (
            "SELECT seq, leaf_hash FROM records WHERE rid >= ?1 AND rid < ?2 ORDER BY rid",
            rid(tenant, start as i64),
            rid(tenant, end as i64),
        )
    } else {
        (
            "SELECT idx, hash FROM tree_nodes WHERE tenant_id = ?3 AND level = ?4 AND idx >= ?1 AND idx < ?2 ORDER BY idx",
            start as i64,
            end as i64,
        )
    };
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::backend)?;
    let mut rows = if level == 0 {
        stmt.query(params![low, high])
    } else {
        stmt.query(params![low, high, tenant, level])
    }
    .map_err(StoreError::backend)?;
    while let Some(row) = rows.next().map_err(StoreError::backend)? {
        let index: i64 = row.get(0).map_err(StoreError::backend)?;
        let bytes: Vec<u8> = row.get(1).map_err(StoreError::backend)?;
        let hash: Hash = bytes
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("node {level}/{index} is not 32 bytes")))?;
        out.push((index as u64, hash));
    }
    Ok(out)
}

fn checkpoint_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Vec<u8>, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn to_checkpoint(
    (size, root, note, created_at): (i64, Vec<u8>, String, i64),
) -> Result<StoredCheckpoint, StoreError> {
    Ok(StoredCheckpoint {
        size: size as u64,
        root: root
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("checkpoint {size}: root is not 32 bytes")))?,
        note,
        created_at,
    })
}

/// The newest checkpoint, or the one of `size`.
pub fn checkpoint(
    conn: &Connection,
    tenant: i64,
    size: Option<u64>,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row = match size {
        None => conn
            .prepare_cached(
                "SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = ?1 ORDER BY size DESC LIMIT 1",
            )
            .and_then(|mut stmt| stmt.query_row([tenant], checkpoint_from_row).optional()),
        Some(size) => conn
            .prepare_cached(
                "SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = ?1 AND size = ?2",
            )
            .and_then(|mut stmt| stmt.query_row(params![tenant, size as i64], checkpoint_from_row).optional()),
    }
    .map_err(StoreError::backend)?;
    row.map(to_checkpoint).transpose()
}

/// Every checkpoint, oldest first.
pub fn checkpoints(conn: &Connection, tenant: i64) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = ?1 ORDER BY size")
        .map_err(StoreError::backend)?;
    let rows = stmt
        .query_map([tenant], checkpoint_from_row)
        .map_err(StoreError::backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(StoreError::backend)?;
    rows.into_iter().map(to_checkpoint).collect()
}

/// Keeps a checkpoint after checking it against the stored tree, under the
/// write lock so two cutters cannot interleave.
pub fn add_checkpoint(
    conn: &Connection,
    tenant: i64,
    checkpoint: &StoredCheckpoint,
) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::backend)?;
    let outcome = (|| {
        if let Some(latest) = self::checkpoint(conn, tenant, None)? {
            if latest.size == checkpoint.size && latest.root == checkpoint.root {
                return Ok(());
            }
            if latest.size >= checkpoint.size {
                return Err(StoreError::Conflict {
                    id: format!("checkpoint of size {}", checkpoint.size),
                    seq: latest.size,
                });
            }
        }
        let actual = root(conn, tenant, checkpoint.size)?;
        if actual != checkpoint.root {
            return Err(StoreError::Conflict {
                id: format!(
                    "checkpoint of size {} with a root that is not the log's",
                    checkpoint.size
                ),
                seq: checkpoint.size,
            });
        }
        conn.prepare_cached(
            "INSERT INTO checkpoints (tenant_id, size, root, note, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                tenant,
                checkpoint.size as i64,
                checkpoint.root.as_slice(),
                checkpoint.note,
                checkpoint.created_at
            ])
        })
        .map_err(StoreError::backend)?;
        Ok(())
    })();
    let end = if outcome.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    conn.execute_batch(end).map_err(StoreError::backend)?;
    outcome
}
