//! `trail verify`: checks a log against its signed checkpoints, from a
//! running server (`--url --key`), straight from a store (`--data-dir` or
//! `--database-url`, opened without ever creating or migrating one), or
//! from an export bundle with nothing but a verifier key (`--bundle FILE
//! --vkey VKEY`). Exit 0 when everything verifies, 1 naming the first bad
//! seq and what is wrong, 2 on usage errors.
//!
//! The checks themselves are `trail_core::verify::LogVerifier`'s; from a
//! store, every subtree hash the records complete is also compared with the
//! stored one, so proofs served later are checked too. Records removed by
//! retention are fed by their kept leaf hashes (from the store's level-0
//! tree nodes, or a bundle's `retired` lines) before the remaining records.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use base64::Engine;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use serde_json::value::RawValue;
use trail_core::hashing::leaf_hash;
use trail_core::merkle::Hash;
use trail_core::note::Verifier;
use trail_core::verify::{Checked, LogError, LogVerifier, VerifySummary};
use trail_store::{EventQuery, Order, ReadScope, Store};

use crate::log_key::LogKeyArgs;
use crate::store_arg::StoreArgs;
use crate::UsageError;

/// Flags of `trail verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Verify an export bundle offline (needs --vkey).
    #[arg(long, conflicts_with_all = ["url"])]
    bundle: Option<PathBuf>,
    /// A trusted verifier key (repeat for rotated keys).
    #[arg(long)]
    vkey: Vec<String>,
    /// Verify through a running server's export.
    #[arg(long, requires = "key")]
    url: Option<String>,
    /// API key for --url (read or admin, not user-bound).
    #[arg(long, env = "TRAIL_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Verify a store directly (the default when neither --bundle nor --url).
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    log_key: LogKeyArgs,
    /// Only this tenant (store mode).
    #[arg(long)]
    tenant: Option<String>,
    /// Print one JSON object per tenant.
    #[arg(long)]
    json: bool,
}

/// Records read per store page.
const PAGE: u32 = 4000;

/// A failed verification: exit 1.
#[derive(Debug)]
pub struct VerifyFailed(pub String);

impl std::fmt::Display for VerifyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for VerifyFailed {}

fn verifiers(vkeys: &[String]) -> anyhow::Result<Vec<Verifier>> {
    vkeys
        .iter()
        .map(|vkey| {
            Verifier::parse_vkey(vkey)
                .map_err(|e| UsageError(format!("--vkey {vkey:?}: {e}")).into())
        })
        .collect()
}

/// Runs `trail verify`.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.bundle {
        if args.vkey.is_empty() {
            return Err(UsageError("--bundle needs --vkey (the log's verifier key)".into()).into());
        }
        let trusted = verifiers(&args.vkey)?;
        let file =
            std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let report = verify_bundle(
            || Ok(BufReader::new(std::fs::File::open(path)?)),
            file.metadata()?.len(),
            trusted,
        )?;
        return finish(&args, vec![report]);
    }
    if let Some(url) = &args.url {
        let key = args.key.clone().unwrap_or_default();
        let api = crate::client::Client::new(url, &key)?;
        let log = api.call(reqwest::Method::GET, "/v1/log", &[], None).await?;
        let client = api.http();
        let mut vkeys = args.vkey.clone();
        if vkeys.is_empty() {
            let vkey = log["vkey"]
                .as_str()
                .ok_or_else(|| anyhow!("the server sent no vkey"))?;
            eprintln!("trail verify: trusting the server's own vkey {vkey}; pin it with --vkey");
            vkeys.push(vkey.to_owned());
        }
        let response = client
            .get(format!("{}/v1/export", api.base()))
            .bearer_auth(&key)
            .send()
            .await?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.bytes().await?;
            return Err(crate::client::problem(status, &body));
        }
        let bytes = response.bytes().await?;
        let trusted = verifiers(&vkeys)?;
        let report = verify_bundle(
            || Ok(BufReader::new(std::io::Cursor::new(bytes.clone()))),
            bytes.len() as u64,
            trusted,
        )?;
        return finish(&args, vec![report]);
    }
    // The log key of the data dir is trusted, with any --vkey; the origin
    // prefix is the key's name (or --log-origin when only --vkey is given).
    let key = args.log_key.load_existing(&args.store.data_dir)?;
    let mut vkeys = args.vkey.clone();
    if let Some(key) = &key {
        vkeys.push(key.verifier().to_vkey());
    }
    if vkeys.is_empty() {
        return Err(UsageError(format!(
            "no log key in {} and no --vkey: nothing to verify signatures with",
            args.store.data_dir.display()
        ))
        .into());
    }
    let prefix = key
        .as_ref()
        .map_or(args.log_key.log_origin.clone(), |key| key.name().to_owned());
    let trusted = verifiers(&vkeys)?;
    // Never creates a store: none there is a usage error.
    let store = args.store.open_existing().await?;
    let mut reports = Vec::new();
    for tenant in store.tenants().await? {
        if args
            .tenant
            .as_ref()
            .is_some_and(|only| *only != tenant.name)
        {
            continue;
        }
        let origin = format!("{prefix}/{}", tenant.name);
        reports.push(verify_store(&store, &tenant, &origin, trusted.clone()).await?);
    }
    store.shutdown().await;
    finish(&args, reports)
}

/// The outcome for one log.
struct Report {
    tenant: String,
    outcome: Result<VerifySummary, LogError>,
    size: u64,
}

fn finish(args: &VerifyArgs, reports: Vec<Report>) -> anyhow::Result<()> {
    let mut failed = None;
    for report in &reports {
        match &report.outcome {
            Ok(summary) => {
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"tenant": report.tenant, "ok": true, "records": summary.records,
                            "retired": summary.retired, "sweeps": summary.sweeps,
                            "retired_unrecorded": summary.retired_unrecorded,
                            "checkpoints": summary.checkpoints, "with_content": summary.with_content,
                            "content_absent": summary.content_absent})
                    );
                } else {
                    println!(
                        "tenant {}: verified {} records against {} signed checkpoints ({} with content checked, {} whose content is erased); {} retired records checked by their leaf hashes alone, accounted for by {} retention sweeps in the log",
                        report.tenant, summary.records, summary.checkpoints, summary.with_content, summary.content_absent, summary.retired, summary.sweeps
                    );
                    if summary.retired_unrecorded > 0 {
                        println!(
                            "tenant {}: WARNING: {} of the retired records were retired without a sweep recorded at the time; a later sweep recorded them as `unrecorded` (an interrupted sweep, or records deleted behind trail's back: look for the retention.sweep events with `unrecorded` and the server's logs)",
                            report.tenant, summary.retired_unrecorded
                        );
                    }
                }
            }
            Err(error) => {
                let seq = error.first_bad_seq();
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"tenant": report.tenant, "ok": false, "first_bad_seq": seq, "error": error.to_string(), "records_read": report.size})
                    );
                } else {
                    println!("tenant {}: FAILED: {error}", report.tenant);
                }
                failed.get_or_insert_with(|| match seq {
                    Some(seq) => format!("tenant {}: first bad seq {seq}: {error}", report.tenant),
                    None => format!("tenant {}: {error}", report.tenant),
                });
            }
        }
    }
    match failed {
        Some(message) => Err(VerifyFailed(message).into()),
        None => Ok(()),
    }
}

fn progress(total: u64) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// Verifies one tenant's log straight from the store.
async fn verify_store(
    store: &std::sync::Arc<dyn Store>,
    tenant: &trail_store::Tenant,
    origin: &str,
    trusted: Vec<Verifier>,
) -> anyhow::Result<Report> {
    let size = store.log_size(tenant).await?;
    let bar = progress(size);
    let mut verifier = LogVerifier::new(&tenant.name, origin, trusted);
    let report = |outcome, size| Report {
        tenant: tenant.name.clone(),
        outcome,
        size,
    };
    for checkpoint in store.checkpoints(tenant).await? {
        if let Err(error) = verifier.expect_checkpoint(&checkpoint.note) {
            return Ok(report(Err(error), 0));
        }
        let signed_root = trail_core::note::parse_note(&checkpoint.note)
            .ok()
            .and_then(|note| trail_core::checkpoint::Checkpoint::parse_body(&note.text).ok())
            .map(|body| body.root);
        if signed_root != Some(checkpoint.root) {
            return Ok(report(
                Err(LogError::Checkpoint {
                    size: checkpoint.size,
                    first_bad: 0,
                    what: "the stored root column differs from the signed note".into(),
                }),
                0,
            ));
        }
    }
    // Retired records left only their leaf hashes: those come first.
    let retired = store.retired(tenant).await?;
    let mut start = 0;
    while start < retired {
        let end = retired.min(start + u64::from(PAGE));
        let leaves = trail_store::retention::retired_leaves(&**store, tenant, start, end).await?;
        let mut completed: HashMap<(u8, u64), Hash> = HashMap::new();
        for (seq, leaf) in (start..).zip(&leaves) {
            match verifier.retired(seq, leaf) {
                Ok(nodes) => completed.extend(nodes.into_iter().map(|(l, i, h)| ((l, i), h))),
                Err(error) => return Ok(report(Err(error), verifier.size())),
            }
        }
        if leaves.len() as u64 != end - start {
            let error = LogError::Record {
                seq: start + leaves.len() as u64,
                what: "the record was retired but its leaf hash is missing".into(),
            };
            return Ok(report(Err(error), verifier.size()));
        }
        if let Some(error) = compare_nodes(&**store, tenant, &completed).await? {
            return Ok(report(Err(error), verifier.size()));
        }
        bar.inc(end - start);
        start = end;
    }
    let scope = ReadScope {
        tenant: tenant.clone(),
        bound_user: None,
    };
    // The next page is read (on the store's blocking pool) while this one
    // is hashed, so reading and hashing overlap on two cores.
    let fetch = |after: Option<u64>| {
        let (store, scope) = (std::sync::Arc::clone(store), scope.clone());
        tokio::spawn(async move {
            let query = EventQuery {
                order: Order::Asc,
                limit: PAGE,
                after_seq: after,
                ..EventQuery::default()
            };
            store.query(&scope, &query).await
        })
    };
    let mut next = Some(fetch(None));
    while let Some(pending) = next.take() {
        let page = pending.await.context("reading records")??;
        if let Some(seq) = page.next_cursor {
            next = Some(fetch(Some(seq)));
        }
        let mut completed: HashMap<(u8, u64), Hash> = HashMap::new();
        // Each record is checked on its own (hashing dominates) on every
        // core, then appended to the tree in order.
        let first = verifier.size();
        let checks = check_in_parallel(&verifier, first, &page.records);
        for checked in checks {
            let appended = checked.and_then(|checked| verifier.append(checked));
            match appended {
                Ok(nodes) => completed.extend(nodes.into_iter().map(|(l, i, h)| ((l, i), h))),
                Err(error) => return Ok(report(Err(error), verifier.size())),
            }
        }
        if let Some(error) = compare_nodes(&**store, tenant, &completed).await? {
            return Ok(report(Err(error), verifier.size()));
        }
        bar.inc(page.records.len() as u64);
    }
    bar.finish_and_clear();
    let read = verifier.size();
    Ok(report(verifier.finish(), read))
}

/// [`LogVerifier::check`] of a page of records, split over the cores;
/// results in record order.
fn check_in_parallel(
    verifier: &LogVerifier,
    first: u64,
    records: &[trail_store::StoredRecord],
) -> Vec<Result<Checked, LogError>> {
    let check =
        |offset: usize, chunk: &[trail_store::StoredRecord]| -> Vec<Result<Checked, LogError>> {
            chunk
                .iter()
                .enumerate()
                .map(|(i, record)| {
                    let content = match (&record.content, &record.content_salt) {
                        (Some(content), Some(salt)) => Some((content.as_slice(), salt)),
                        _ => None,
                    };
                    let position = first + (offset + i) as u64;
                    verifier.check(
                        position,
                        record.seq,
                        &record.envelope,
                        &record.leaf_hash,
                        content,
                    )
                })
                .collect()
        };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(1);
    let size = records.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = records
            .chunks(size)
            .enumerate()
            .map(|(index, chunk)| scope.spawn(move || check(index * size, chunk)))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_default())
            .collect()
    })
}

/// Compares recomputed subtree hashes with the stored ones.
async fn compare_nodes(
    store: &dyn Store,
    tenant: &trail_store::Tenant,
    completed: &HashMap<(u8, u64), Hash>,
) -> anyhow::Result<Option<LogError>> {
    let mut by_level: HashMap<u8, (u64, u64)> = HashMap::new();
    for &(level, index) in completed
        .keys()
        .filter(|(level, _)| store.keeps_tree_level(*level))
    {
        let range = by_level.entry(level).or_insert((index, index));
        range.0 = range.0.min(index);
        range.1 = range.1.max(index);
    }
    let mut first: Option<LogError> = None;
    for (level, (start, end)) in by_level {
        let stored: HashMap<u64, Hash> = store
            .tree_nodes(tenant, level, start, end + 1)
            .await?
            .into_iter()
            .collect();
        for index in start..=end {
            let Some(expected) = completed.get(&(level, index)) else {
                continue;
            };
            if stored.get(&index) != Some(expected) {
                let seq = index << level;
                let error = LogError::Record {
                    seq,
                    what: format!("the stored subtree hash (level {level}, index {index}) is missing or differs from the records"),
                };
                if first
                    .as_ref()
                    .and_then(LogError::first_bad_seq)
                    .is_none_or(|s| seq < s)
                {
                    first = Some(error);
                }
            }
        }
    }
    Ok(first)
}

/// One line of a bundle.
#[derive(Deserialize)]
struct Line<'a> {
    kind: &'a str,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    leaf_hash: Option<&'a str>,
    #[serde(default, borrow)]
    envelope: Option<&'a RawValue>,
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default)]
    content_salt: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
    #[serde(default)]
    first_seq: Option<u64>,
    #[serde(default)]
    leaf_hashes: Option<Vec<String>>,
}

/// The canonical bytes of embedded JSON: the text itself when it is already
/// canonical (as trail writes it), else its JCS re-encoding.
fn canonical(raw: &RawValue) -> anyhow::Result<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_str(raw.get())?;
    let encoded = trail_core::jcs::to_vec(&value)?;
    Ok(encoded)
}

fn parse_hash(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    bytes.try_into().ok()
}

/// Verifies a bundle; `open` reopens it (it is read twice: checkpoints
/// first, then records).
fn verify_bundle<R: BufRead>(
    open: impl Fn() -> std::io::Result<R>,
    bytes: u64,
    trusted: Vec<Verifier>,
) -> anyhow::Result<Report> {
    let mut origin = None;
    let mut tenant = None;
    let mut notes = Vec::new();
    for (number, line) in open()?.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Line<'_> = serde_json::from_str(&line).map_err(|e| {
            VerifyFailed(format!(
                "bundle line {}: not a bundle line: {e}",
                number + 1
            ))
        })?;
        match parsed.kind {
            "log" if number == 0 => {
                origin = parsed.origin.clone();
                tenant = parsed.tenant_id.clone();
            }
            "checkpoint" => notes.push(parsed.note.unwrap_or_default()),
            "record" | "retired" => {}
            other => {
                return Err(VerifyFailed(format!(
                    "bundle line {}: unexpected kind {other:?}",
                    number + 1
                ))
                .into())
            }
        }
    }
    let origin =
        origin.ok_or_else(|| VerifyFailed("the bundle does not start with a log line".into()))?;
    let tenant = tenant.unwrap_or_else(|| origin.rsplit('/').next().unwrap_or_default().to_owned());
    let mut verifier = LogVerifier::new(&tenant, &origin, trusted);
    let report = |outcome, size| Report {
        tenant: tenant.clone(),
        outcome,
        size,
    };
    if notes.is_empty() {
        return Err(VerifyFailed("the bundle holds no checkpoint".into()).into());
    }
    for note in &notes {
        if let Err(error) = verifier.expect_checkpoint(note) {
            return Ok(report(Err(error), 0));
        }
    }
    let bar = progress(bytes);
    for line in open()?.lines() {
        let line = line?;
        bar.inc(line.len() as u64 + 1);
        let Ok(parsed) = serde_json::from_str::<Line<'_>>(&line) else {
            continue;
        };
        if parsed.kind == "retired" {
            let first = parsed.first_seq.unwrap_or(u64::MAX);
            for (offset, text) in parsed.leaf_hashes.iter().flatten().enumerate() {
                let seq = first.saturating_add(offset as u64);
                let Some(leaf) = parse_hash(text) else {
                    let error = LogError::Record {
                        seq: verifier.size(),
                        what: format!("retired leaf hash of seq {seq} is not 64 hex"),
                    };
                    return Ok(report(Err(error), verifier.size()));
                };
                if let Err(error) = verifier.retired(seq, &leaf) {
                    return Ok(report(Err(error), verifier.size()));
                }
            }
            continue;
        }
        if parsed.kind != "record" {
            continue;
        }
        let seq = parsed.seq.unwrap_or(u64::MAX);
        let bad = |what: &str| LogError::Record {
            seq: verifier.size(),
            what: what.to_owned(),
        };
        let (Some(envelope), Some(stored)) =
            (parsed.envelope, parsed.leaf_hash.and_then(parse_hash))
        else {
            return Ok(report(
                Err(bad("the line lacks an envelope or a 64-hex leaf_hash")),
                verifier.size(),
            ));
        };
        let raw = envelope.get().as_bytes();
        let envelope_bytes = if leaf_hash(raw) == stored {
            raw.to_vec()
        } else {
            canonical(envelope)?
        };
        let content = match (
            parsed.content.filter(|c| c.get() != "null"),
            &parsed.content_salt,
        ) {
            (Some(content), Some(salt)) => {
                let salt: [u8; 32] = base64::engine::general_purpose::STANDARD
                    .decode(salt)
                    .ok()
                    .and_then(|s| s.try_into().ok())
                    .ok_or_else(|| anyhow!("seq {seq}: content_salt is not 32 bytes of base64"))?;
                Some((canonical(content)?, salt))
            }
            (Some(_), None) => {
                return Ok(report(
                    Err(bad("content without content_salt")),
                    verifier.size(),
                ))
            }
            _ => None,
        };
        let content_ref = content.as_ref().map(|(c, s)| (c.as_slice(), s));
        if let Err(error) = verifier.record(seq, &envelope_bytes, &stored, content_ref) {
            return Ok(report(Err(error), verifier.size()));
        }
    }
    bar.finish_and_clear();
    let read = verifier.size();
    Ok(report(verifier.finish(), read))
}
