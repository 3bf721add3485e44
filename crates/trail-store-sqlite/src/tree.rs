//! The Merkle tree of each tenant's log as sqlite keeps it: level-0 hashes
//! are the records' `leaf_hash` (and, for retired records, level-0 rows of
//! `tree_nodes`), complete subtrees at level 1 and up are in
//! `tree_nodes` (written by the writer in the same transaction as their
//! leaves), and signed checkpoints in `checkpoints`. Roots and proofs are
//! computed by `trail_core::merkle` from O(log n) stored nodes; nothing on a
//! request path rebuilds a tree.

use rusqlite::{params, Connection, OptionalExtension};
use trail_core::merkle::{self, CompactRange, Hash};
use trail_store::{tree, StoreError, StoredCheckpoint};

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

pub use trail_store::tree::is_stored_level;

/// Any complete subtree hash: read when stored, else folded up from the
/// stored level below it.
pub fn node(conn: &Connection, tenant: i64, level: u8, index: u64) -> Result<Hash, StoreError> {
    let (base, first, count) = tree::base_of(level, index);
    tree::fold(
        level,
        index,
        &nodes(conn, tenant, base, first, first + count)?,
    )
}

/// The right edge of the tree of `size` leaves, from stored nodes.
pub fn load_range(conn: &Connection, tenant: i64, size: u64) -> Result<CompactRange, StoreError> {
    let hashes = merkle::compact_range_nodes(size)
        .into_iter()
        .map(|(level, index)| node(conn, tenant, level, index))
        .collect::<Result<Vec<_>, _>>()?;
    CompactRange::from_parts(size, hashes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

/// Checks a tree size against the log; `field` names the parameter.
fn check_size(conn: &Connection, tenant: i64, size: u64, field: &str) -> Result<(), StoreError> {
    tree::check_size(crate::read::log_size(conn, tenant)?, size, field)
}

/// The root at `size`.
pub fn root(conn: &Connection, tenant: i64, size: u64) -> Result<Hash, StoreError> {
    check_size(conn, tenant, size, "size")?;
    merkle::root_from_nodes(size, |level, index| node(conn, tenant, level, index))
        .map_err(|error| tree::proof_error(error, "size"))
}

/// Inclusion proof of `seq` in the tree of `size`.
pub fn inclusion_proof(
    conn: &Connection,
    tenant: i64,
    seq: u64,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(conn, tenant, size, "size")?;
    tree::check_inclusion(seq, size)?;
    merkle::inclusion_proof(seq, size, |level, index| node(conn, tenant, level, index))
        .map_err(|error| tree::proof_error(error, "size"))
}

/// Consistency proof from `from` to `to`.
pub fn consistency_proof(
    conn: &Connection,
    tenant: i64,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(conn, tenant, to, "to")?;
    tree::check_consistency(from, to)?;
    merkle::consistency_proof(from, to, |level, index| node(conn, tenant, level, index))
        .map_err(|error| tree::proof_error(error, "size"))
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
    // Level 0: the records' leaf hashes, and those of retired records
    // (kept in `tree_nodes` at level 0; the two never overlap).
    let (sql, low, high) = if level == 0 {
        (
            "SELECT idx, hash FROM tree_nodes WHERE tenant_id = ?3 AND level = 0 \
             AND idx >= ?4 AND idx < ?5 \
             UNION ALL SELECT seq, leaf_hash FROM records WHERE rid >= ?1 AND rid < ?2 ORDER BY 1",
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
        stmt.query(params![
            low,
            high,
            tenant,
            start.min(i64::MAX as u64) as i64,
            end.min(i64::MAX as u64) as i64
        ])
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
        let latest = self::checkpoint(conn, tenant, None)?.map(|c| (c.size, c.root));
        if tree::checkpoint_admission(latest, checkpoint.size, &checkpoint.root)?
            == tree::Admission::AlreadyKept
        {
            return Ok(());
        }
        if root(conn, tenant, checkpoint.size)? != checkpoint.root {
            return Err(tree::wrong_root(checkpoint.size));
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
