//! The Merkle tree of each tenant's log as postgres keeps it: level-0
//! hashes are the records' `leaf_hash` (and, for retired records, level 0 of
//! `tree_nodes`, where retirement moves them: every leaf read takes both),
//! levels 4, 8, ... are in `tree_nodes` (written in the same transaction as
//! their leaves), signed checkpoints in `checkpoints`.
//!
//! A root or proof needs O(log n) nodes. The proof algorithms of
//! `trail_core::merkle` ask for nodes by position only, so a first dry run
//! with placeholder hashes lists the nodes they need; one query then reads
//! every stored node those are folded from, and a second run computes the
//! answer from memory: two round trips whatever the tree size.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use trail_core::merkle::{self, CompactRange, Hash};
use trail_store::tree::{self as shared, Admission};
use trail_store::{StoreError, StoredCheckpoint};

use crate::{clamp, db};

/// Key space of the advisory locks that serialise checkpoint cutting per
/// tenant across servers.
const CHECKPOINT_LOCK: i32 = 0x7472_6c01;

/// Stored nodes of one level with index in `[start, end)`.
pub async fn nodes(
    tx: &Transaction<'_>,
    tenant: i64,
    level: u8,
    start: u64,
    end: u64,
) -> Result<Vec<(u64, Hash)>, StoreError> {
    let (start, end) = (clamp(start), clamp(end));
    let rows = if level == 0 {
        let stmt = tx
            .prepare_cached(
                "SELECT idx, hash FROM tree_nodes WHERE tenant_id = $1 AND level = 0 AND idx >= $2 AND idx < $3 \
                 UNION ALL SELECT seq, leaf_hash FROM records WHERE tenant_id = $1 AND seq >= $2 AND seq < $3 \
                 ORDER BY 1",
            )
            .await
            .map_err(db)?;
        tx.query(&stmt, &[&tenant, &start, &end]).await
    } else {
        let stmt = tx
            .prepare_cached(
                "SELECT idx, hash FROM tree_nodes WHERE tenant_id = $1 AND level = $2 AND idx >= $3 AND idx < $4 ORDER BY idx",
            )
            .await
            .map_err(db)?;
        tx.query(&stmt, &[&tenant, &i16::from(level), &start, &end])
            .await
    }
    .map_err(db)?;
    rows.iter()
        .map(|row| {
            let index: i64 = row.get(0);
            let bytes: Vec<u8> = row.get(1);
            // A hash of the wrong size reads as zeros: it then fails
            // verification at this position, as any changed hash does.
            Ok((index as u64, bytes.try_into().unwrap_or([0; 32])))
        })
        .collect()
}

/// Every node (stored or folded) the positions in `wanted` need, read in one
/// query.
async fn fetch(
    tx: &Transaction<'_>,
    tenant: i64,
    wanted: &[(u8, u64)],
) -> Result<HashMap<(u8, u64), Hash>, StoreError> {
    let mut levels = Vec::new();
    let mut lows = Vec::new();
    let mut highs = Vec::new();
    for &(level, index) in wanted {
        let (base, first, count) = shared::base_of(level, index);
        levels.push(i16::from(base));
        lows.push(clamp(first));
        highs.push(clamp(first.saturating_add(count)));
    }
    // Subtree hashes: one range per wanted node, in one query. A LATERAL
    // subquery the planner may not flatten (OFFSET 0) keeps each range an
    // index scan; a plain join lets it hash the whole table once the ranges
    // are many (70 ms instead of 0.7 ms at 3M records).
    let stmt = tx
        .prepare_cached(
            "SELECT w.level, n.idx, n.hash FROM unnest($2::smallint[], $3::bigint[], $4::bigint[]) AS w(level, lo, hi) \
             CROSS JOIN LATERAL (SELECT t.idx, t.hash FROM tree_nodes t WHERE t.tenant_id = $1 \
             AND t.level = w.level AND t.idx >= w.lo AND t.idx < w.hi OFFSET 0) n",
        )
        .await
        .map_err(db)?;
    let mut stored: HashMap<(u8, u64), Hash> = HashMap::new();
    let (mut node_levels, mut node_lows, mut node_highs) = (Vec::new(), Vec::new(), Vec::new());
    let mut leaves: Vec<i64> = Vec::new();
    for ((level, low), high) in levels.iter().zip(&lows).zip(&highs) {
        if *level == 0 {
            leaves.extend(*low..*high);
        } else {
            node_levels.push(*level);
            node_lows.push(*low);
            node_highs.push(*high);
        }
    }
    if !node_levels.is_empty() {
        let rows = tx
            .query(&stmt, &[&tenant, &node_levels, &node_lows, &node_highs])
            .await
            .map_err(db)?;
        for row in &rows {
            let level: i16 = row.get(0);
            let index: i64 = row.get(1);
            let bytes: Vec<u8> = row.get(2);
            stored.insert(
                (level as u8, index as u64),
                bytes.try_into().unwrap_or([0; 32]),
            );
        }
    }
    // Leaves: by seq, through the primary keys (a range join here lets the
    // planner pick a scan of the whole log), from the records and from the
    // retired leaves, in one statement so that a retirement committing
    // meanwhile is seen whole or not at all.
    if !leaves.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT seq, leaf_hash FROM records WHERE tenant_id = $1 AND seq = ANY($2::bigint[]) \
                 UNION ALL SELECT idx, hash FROM tree_nodes WHERE tenant_id = $1 AND level = 0 \
                 AND idx = ANY($2::bigint[])",
            )
            .await
            .map_err(db)?;
        for row in &tx.query(&stmt, &[&tenant, &leaves]).await.map_err(db)? {
            let seq: i64 = row.get(0);
            let bytes: Vec<u8> = row.get(1);
            stored.insert((0, seq as u64), bytes.try_into().unwrap_or([0; 32]));
        }
    }
    let mut out = HashMap::with_capacity(wanted.len());
    for &(level, index) in wanted {
        let (base, first, count) = shared::base_of(level, index);
        let mut below = Vec::with_capacity(count as usize);
        for at in first..first.saturating_add(count) {
            match stored.get(&(base, at)) {
                Some(hash) => below.push((at, *hash)),
                None => return Err(shared::missing(base, at)),
            }
        }
        out.insert((level, index), shared::fold(level, index, &below)?);
    }
    Ok(out)
}

/// Runs a computation over tree nodes: once to learn which nodes it reads,
/// then again over those nodes, fetched in one query.
async fn with_nodes<T>(
    tx: &Transaction<'_>,
    tenant: i64,
    field: &str,
    run: impl Fn(
        &mut dyn FnMut(u8, u64) -> Result<Hash, StoreError>,
    ) -> Result<T, merkle::ProofError<StoreError>>,
) -> Result<T, StoreError> {
    let mut wanted = Vec::new();
    run(&mut |level, index| {
        wanted.push((level, index));
        Ok([0; 32])
    })
    .map_err(|error| shared::proof_error(error, field))?;
    wanted.sort_unstable();
    wanted.dedup();
    let known = fetch(tx, tenant, &wanted).await?;
    run(&mut |level, index| {
        known
            .get(&(level, index))
            .copied()
            .ok_or_else(|| shared::missing(level, index))
    })
    .map_err(|error| shared::proof_error(error, field))
}

/// The right edge of the tree of `size` leaves, from stored nodes.
pub async fn load_range(
    tx: &Transaction<'_>,
    tenant: i64,
    size: u64,
) -> Result<CompactRange, StoreError> {
    let wanted = merkle::compact_range_nodes(size);
    let known = fetch(tx, tenant, &wanted).await?;
    let hashes = wanted
        .iter()
        .map(|position| known[position])
        .collect::<Vec<_>>();
    CompactRange::from_parts(size, hashes).map_err(|error| StoreError::Corrupt(error.to_string()))
}

async fn check_size(
    tx: &Transaction<'_>,
    tenant: i64,
    size: u64,
    field: &str,
) -> Result<(), StoreError> {
    shared::check_size(crate::read::log_size(tx, tenant).await?, size, field)
}

/// The root at `size`.
pub async fn root(tx: &Transaction<'_>, tenant: i64, size: u64) -> Result<Hash, StoreError> {
    check_size(tx, tenant, size, "size").await?;
    with_nodes(tx, tenant, "size", |node| {
        merkle::root_from_nodes(size, node)
    })
    .await
}

/// Inclusion proof of `seq` in the tree of `size`.
pub async fn inclusion_proof(
    tx: &Transaction<'_>,
    tenant: i64,
    seq: u64,
    size: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(tx, tenant, size, "size").await?;
    shared::check_inclusion(seq, size)?;
    with_nodes(tx, tenant, "size", |node| {
        merkle::inclusion_proof(seq, size, node)
    })
    .await
}

/// Consistency proof from `from` to `to`.
pub async fn consistency_proof(
    tx: &Transaction<'_>,
    tenant: i64,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, StoreError> {
    check_size(tx, tenant, to, "to").await?;
    shared::check_consistency(from, to)?;
    with_nodes(tx, tenant, "size", |node| {
        merkle::consistency_proof(from, to, node)
    })
    .await
}

fn to_checkpoint(row: &tokio_postgres::Row) -> Result<StoredCheckpoint, StoreError> {
    let size: i64 = row.get(0);
    let root: Vec<u8> = row.get(1);
    Ok(StoredCheckpoint {
        size: size as u64,
        root: root
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("checkpoint {size}: root is not 32 bytes")))?,
        note: row.get(2),
        created_at: row.get(3),
    })
}

/// The newest checkpoint, or the one of `size`.
pub async fn checkpoint(
    tx: &Transaction<'_>,
    tenant: i64,
    size: Option<u64>,
) -> Result<Option<StoredCheckpoint>, StoreError> {
    let row = match size {
        None => {
            let stmt = tx
                .prepare_cached(
                    "SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = $1 ORDER BY size DESC LIMIT 1",
                )
                .await
                .map_err(db)?;
            tx.query_opt(&stmt, &[&tenant]).await
        }
        Some(size) => {
            let stmt = tx
                .prepare_cached(
                    "SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = $1 AND size = $2",
                )
                .await
                .map_err(db)?;
            tx.query_opt(&stmt, &[&tenant, &clamp(size)]).await
        }
    }
    .map_err(db)?;
    row.as_ref().map(to_checkpoint).transpose()
}

/// Every checkpoint, oldest first.
pub async fn checkpoints(
    tx: &Transaction<'_>,
    tenant: i64,
) -> Result<Vec<StoredCheckpoint>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT size, root, note, created_at FROM checkpoints WHERE tenant_id = $1 ORDER BY size",
        )
        .await
        .map_err(db)?;
    let rows = tx.query(&stmt, &[&tenant]).await.map_err(db)?;
    rows.iter().map(to_checkpoint).collect()
}

/// Keeps a checkpoint after checking it against the stored tree. A
/// transaction-scoped advisory lock per tenant makes the servers sharing the
/// database cut one at a time: the second sees the first's checkpoint and
/// keeps its own only when it is newer.
pub async fn add_checkpoint(
    tx: &Transaction<'_>,
    tenant: i64,
    checkpoint: &StoredCheckpoint,
) -> Result<(), StoreError> {
    let key = i32::try_from(tenant).unwrap_or(i32::MAX);
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&CHECKPOINT_LOCK, &key],
    )
    .await
    .map_err(db)?;
    let latest = self::checkpoint(tx, tenant, None)
        .await?
        .map(|c| (c.size, c.root));
    if shared::checkpoint_admission(latest, checkpoint.size, &checkpoint.root)?
        == Admission::AlreadyKept
    {
        return Ok(());
    }
    if root(tx, tenant, checkpoint.size).await? != checkpoint.root {
        return Err(shared::wrong_root(checkpoint.size));
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO checkpoints (tenant_id, size, root, note, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(db)?;
    tx.execute(
        &stmt,
        &[
            &tenant,
            &clamp(checkpoint.size),
            &checkpoint.root.as_slice(),
            &checkpoint.note,
            &checkpoint.created_at,
        ],
    )
    .await
    .map_err(db)?;
    Ok(())
}
