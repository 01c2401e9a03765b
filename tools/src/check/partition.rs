//! Partitioning a history by key, so each key's operations can be checked
//! on their own and the whole check runs in bounded memory.
//!
//! Every file is read once, sequentially. Each operation goes to bucket
//! `hash(key) mod B`. When the whole history fits the memory budget the
//! buckets stay in memory; otherwise each bucket is a file of 40-byte
//! operations in a private temporary directory (removed when the check
//! ends, also on error), sized so that `threads` buckets fit the budget at
//! once. A key's operations all land in one bucket, so a bucket is checked
//! without looking at any other.

use super::CheckError;
use super::op::{OP_BYTES, Op};
use loadgen::history::HistoryReader;
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
    /// The files' names as given.
    pub files: Vec<String>,
    /// Operations to check.
    pub ops: u64,
    /// GETs without a reply (nothing to check).
    pub skipped: u64,
    /// Bytes of the history files.
    pub bytes: u64,
    /// Where the bucket files are (kept alive until the check ends).
    pub _dir: Option<TempDir>,
}

/// The bucket of `key` among `n`.
#[inline]
fn bucket_of(key: u64, n: usize) -> usize {
    ((key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % n as u64) as usize
}

/// Reads `paths` and partitions their operations into buckets.
/// `memory` is the budget in bytes; `threads` buckets are checked at once.
pub(crate) fn partition(paths: &[PathBuf], memory: u64, threads: usize, temp: &Path) -> Result<Partition, CheckError> {
    if paths.len() > u16::MAX as usize {
        return Err(CheckError::Usage(format!("{} files: at most {} can be checked together", paths.len(), u16::MAX)));
    }
    let mut readers = Vec::with_capacity(paths.len());
    let mut bytes = 0;
    for p in paths {
        let r = HistoryReader::open(p)?;
        bytes += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        readers.push(r);
    }
    let total: u64 = readers.iter().map(HistoryReader::len).sum();
    let threads = threads.max(1) as u64;
    let in_memory = total * BYTES_PER_OP <= memory;
    let per_bucket = (memory / threads / BYTES_PER_OP).max(1024);
    let n = if in_memory {
        // Enough buckets to keep every thread busy.
        (threads * 4).min(total.max(1)) as usize
    } else {
        (total.div_ceil(per_bucket).div_ceil(threads) * threads) as usize
    };
    let files: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let mut skipped = 0;
    let mut ops = 0;
    if in_memory {
        let mut buckets: Vec<Vec<Op>> =
            (0..n).map(|_| Vec::with_capacity((total as usize / n) + (total as usize / n) / 4)).collect();
        for (fi, r) in readers.iter_mut().enumerate() {
            read_all(r, fi as u16, |op| {
                buckets[bucket_of(op.key(), n)].push(op);
                Ok(())
            })?
            .tally(&mut ops, &mut skipped);
        }
        return Ok(Partition {
            buckets: buckets.into_iter().map(Bucket::Memory).collect(),
            files,
            ops,
            skipped,
            bytes,
            _dir: None,
        });
    }
    let dir = TempDir::new(temp)?;
    // Write buffers share a quarter of the budget (64 KiB to 1 MiB each).
    let buffer = (memory / 4 / n as u64).clamp(64 << 10, 1 << 20) as usize;
    let mut outs = Vec::with_capacity(n);
    for i in 0..n {
        let path = dir.0.join(format!("bucket-{i}"));
        let f = File::create(&path).map_err(|source| CheckError::Io { what: path.display().to_string(), source })?;
        outs.push((BufWriter::with_capacity(buffer, f), path, 0u64));
    }
    for (fi, r) in readers.iter_mut().enumerate() {
        read_all(r, fi as u16, |op| {
            let (w, path, count) = &mut outs[bucket_of(op.key(), n)];
            *count += 1;
            w.write_all(&op.to_bytes()).map_err(|source| CheckError::Io { what: path.display().to_string(), source })
        })?
        .tally(&mut ops, &mut skipped);
    }
    let mut buckets = Vec::with_capacity(n);
    for (mut w, path, count) in outs {
        w.flush().map_err(|source| CheckError::Io { what: path.display().to_string(), source })?;
        buckets.push(Bucket::File { path, ops: count });
    }
    Ok(Partition { buckets, files, ops, skipped, bytes, _dir: Some(dir) })
}

/// Operations read from one file, and GETs skipped.
struct Counts(u64, u64);

impl Counts {
    fn tally(self, ops: &mut u64, skipped: &mut u64) {
        *ops += self.0;
        *skipped += self.1;
    }
}

/// Feeds every operation of `r` (file number `file`) to `sink`.
fn read_all(
    r: &mut HistoryReader,
    file: u16,
    mut sink: impl FnMut(Op) -> Result<(), CheckError>,
) -> Result<Counts, CheckError> {
    let (mut ops, mut skipped) = (0, 0);
    loop {
        let position = r.position();
        let Some(rec) = r.next_record()? else { break };
        match Op::from_record(&rec, file, position) {
            Ok(Some(op)) => {
                sink(op)?;
                ops += 1;
            }
            Ok(None) => skipped += 1,
            Err(why) => {
                return Err(CheckError::Record {
                    path: r.path().display().to_string(),
                    position,
                    why: why.to_string(),
                });
            }
        }
    }
    Ok(Counts(ops, skipped))
}
