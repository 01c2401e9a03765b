//! Partitioning a history by key, so each key's operations can be checked
//! on their own and the whole check runs in bounded memory.
//!
//! Every source is read once, sequentially, era after era; each operation
//! is stamped with its source's index (in that order) and its era. Each
//! operation goes to bucket
//! `hash(key) mod B`. When the whole history fits the memory budget the
//! buckets stay in memory; otherwise each bucket is a file of 40-byte
//! operations in a private temporary directory (removed when the check
//! ends, also on error), sized so that `threads` buckets fit the budget at
//! once. A key's operations all land in one bucket, so a bucket is checked
//! without looking at any other.

use super::op::{MAX_ERAS, OP_BYTES, Op, Operation};
use super::{CheckError, Source};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes of memory a bucket's operation costs while it is checked (the
/// operation, plus sorting and per-key scratch).
pub(crate) const BYTES_PER_OP: u64 = 64;

/// The operations of some keys.
pub(crate) enum Bucket {
    /// Held in memory.
    Memory(Vec<Op>),
    /// Written to a bucket file.
    File {
        /// The file.
        path: PathBuf,
        /// Operations in it.
        ops: u64,
    },
}

impl Bucket {
    /// The bucket's operations (a bucket file is removed once read).
    pub(crate) fn load(self) -> Result<Vec<Op>, CheckError> {
        match self {
            Bucket::Memory(v) => Ok(v),
            Bucket::File { path, ops } => {
                let io = |source: std::io::Error| CheckError::Io { what: path.display().to_string(), source };
                let mut f = File::open(&path).map_err(io)?;
                let mut v = Vec::with_capacity(ops as usize);
                let mut buf = vec![0u8; 4 << 20];
                let mut have = 0;
                loop {
                    let n = f.read(&mut buf[have..]).map_err(io)?;
                    if n == 0 {
                        break;
                    }
                    have += n;
                    let whole = have / OP_BYTES * OP_BYTES;
                    v.extend(buf[..whole].chunks_exact(OP_BYTES).map(Op::from_bytes));
                    buf.copy_within(whole..have, 0);
                    have -= whole;
                }
                drop(f);
                let _ = std::fs::remove_file(&path);
                Ok(v)
            }
        }
    }
}

/// A private temporary directory, removed with everything in it on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    fn new(under: &Path) -> Result<TempDir, CheckError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let path = under.join(format!("percore-check-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|source| CheckError::Io { what: format!("temporary directory {}", path.display()), source })?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A partitioned history.
pub(crate) struct Partition {
    /// The buckets.
    pub buckets: Vec<Bucket>,
    /// The sources' names as given, era after era.
    pub files: Vec<String>,
    /// Eras.
    pub eras: usize,
    /// Operations to check.
    pub ops: u64,
    /// GETs without a reply (nothing to check).
    pub skipped: u64,
    /// Where the bucket files are (kept alive until the check ends).
    pub _dir: Option<TempDir>,
}

/// The bucket of `key` among `n`.
#[inline]
fn bucket_of(key: u64, n: usize) -> usize {
    ((key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n as u64) as usize
}

/// Where operations go while the sources are read.
enum Sink {
    /// Everything so far fits the budget: in memory.
    Memory(Vec<Vec<Op>>),
    /// Bucket files.
    Files { dir: TempDir, outs: Vec<(BufWriter<File>, PathBuf, u64)> },
}

impl Sink {
    fn push(&mut self, op: Op) -> Result<(), CheckError> {
        match self {
            Sink::Memory(buckets) => {
                let n = buckets.len();
                buckets[bucket_of(op.key(), n)].push(op);
                Ok(())
            }
            Sink::Files { outs, .. } => {
                let n = outs.len();
                let (w, path, count) = &mut outs[bucket_of(op.key(), n)];
                *count += 1;
                w.write_all(&op.to_bytes())
                    .map_err(|source| CheckError::Io { what: path.display().to_string(), source })
            }
        }
    }

    /// Bucket files for `expected` operations in all, `memory` and
    /// `threads` as for [`partition`], holding what `self` held so far.
    fn spill(&mut self, expected: u64, memory: u64, threads: u64, temp: &Path) -> Result<(), CheckError> {
        let per_bucket = (memory / threads / BYTES_PER_OP).max(1024);
        let n = (expected.div_ceil(per_bucket).div_ceil(threads) * threads) as usize;
        let dir = TempDir::new(temp)?;
        // Write buffers share a quarter of the budget (64 KiB to 1 MiB each).
        let buffer = (memory / 4 / n as u64).clamp(64 << 10, 1 << 20) as usize;
        let mut outs = Vec::with_capacity(n);
        for i in 0..n {
            let path = dir.0.join(format!("bucket-{i}"));
            let f =
                File::create(&path).map_err(|source| CheckError::Io { what: path.display().to_string(), source })?;
            outs.push((BufWriter::with_capacity(buffer, f), path, 0u64));
        }
        let held = std::mem::replace(self, Sink::Files { dir, outs });
        if let Sink::Memory(buckets) = held {
            for op in buckets.into_iter().flatten() {
                self.push(op)?;
            }
        }
        Ok(())
    }
}

/// Reads the sources of every era (`eras[k]`: era `k`'s sources) and
/// partitions their operations into buckets. `memory` is the budget in
/// bytes; `threads` buckets are checked at once.
/// The sources' size hints (their lower bounds) plan the buckets; a
/// history that outgrows the memory budget goes to bucket files sized for
/// the larger of the hints and twice what was read by then.
pub(crate) fn partition<I, E>(
    eras: Vec<Vec<Source<I>>>,
    memory: u64,
    threads: usize,
    temp: &Path,
) -> Result<Partition, CheckError>
where
    I: Iterator<Item = Result<Operation, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if eras.len() > MAX_ERAS {
        return Err(CheckError::Usage(format!("{} eras: at most {MAX_ERAS} can be checked together", eras.len())));
    }
    if let Some(k) = eras.iter().position(Vec::is_empty) {
        return Err(CheckError::Usage(format!("era {k} has no sources")));
    }
    let era_count = eras.len();
    let sources: Vec<(u8, Source<I>)> =
        eras.into_iter().enumerate().flat_map(|(k, era)| era.into_iter().map(move |s| (k as u8, s))).collect();
    if sources.is_empty() {
        return Err(CheckError::Usage("no sources given".into()));
    }
    if sources.len() > u16::MAX as usize {
        return Err(CheckError::Usage(format!(
            "{} sources: at most {} can be checked together",
            sources.len(),
            u16::MAX
        )));
    }
    let hinted: u64 = sources.iter().map(|(_, s)| s.ops.size_hint().0 as u64).sum();
    let threads = threads.max(1) as u64;
    let budget_ops = (memory / BYTES_PER_OP).max(1);
    let mut sink = if hinted <= budget_ops {
        // Enough buckets to keep every thread busy (a source without a size
        // hint says 0: plan for many operations, not for none).
        let n = if hinted == 0 { threads * 4 } else { (threads * 4).min(hinted) } as usize;
        let each = (hinted as usize / n) + (hinted as usize / n) / 4;
        Sink::Memory((0..n).map(|_| Vec::with_capacity(each)).collect())
    } else {
        let mut s = Sink::Memory(Vec::new());
        s.spill(hinted, memory, threads, temp)?;
        s
    };
    let files: Vec<String> = sources.iter().map(|(_, s)| s.name.clone()).collect();
    let (mut ops, mut skipped) = (0u64, 0u64);
    for (fi, (era, source)) in sources.into_iter().enumerate() {
        for (position, item) in source.ops.enumerate() {
            let position = position as u64;
            let operation =
                item.map_err(|e| CheckError::Source { source_name: source.name.clone(), position, error: e.into() })?;
            match Op::from_operation(&operation, fi as u16, position) {
                Ok(Some(op)) => {
                    sink.push(op.with_era(era))?;
                    ops += 1;
                    if ops > budget_ops && matches!(sink, Sink::Memory(_)) {
                        sink.spill(hinted.max(2 * ops), memory, threads, temp)?;
                    }
                }
                Ok(None) => skipped += 1,
                Err(why) => {
                    return Err(CheckError::Record { path: source.name.clone(), position, why: why.to_string() });
                }
            }
        }
    }
    match sink {
        Sink::Memory(buckets) => Ok(Partition {
            buckets: buckets.into_iter().map(Bucket::Memory).collect(),
            files,
            eras: era_count,
            ops,
            skipped,
            _dir: None,
        }),
        Sink::Files { dir, outs } => {
            let mut buckets = Vec::with_capacity(outs.len());
            for (mut w, path, count) in outs {
                w.flush().map_err(|source| CheckError::Io { what: path.display().to_string(), source })?;
                buckets.push(Bucket::File { path, ops: count });
            }
            Ok(Partition { buckets, files, eras: era_count, ops, skipped, _dir: Some(dir) })
        }
    }
}
