//! The durable per-shard log: one directory per shard, segments of
//! records written through glommio's DMA files, recovery on start.
//!
//! # On disk
//!
//! `data_dir/shard-<id>/` holds:
//! - `LAYOUT`: the cluster layout this data belongs to (shard count, this
//!   shard's id and slots). A node started with another layout refuses to
//!   start and names both ([`LogError::Layout`]): it never serves mixed data.
//! - `log-<first seq, 20 digits>.seg`: segments of [`SEGMENT_DEFAULT`]
//!   bytes (or the node's `log_segment_bytes`), pre-allocated when created.
//!   Block 0 (4 KiB) is a header: magic, shard id, the sequence number of
//!   the segment's first record, a CRC. Records ([`record`]) follow from
//!   byte 4096. A commit is one write and never spans two segments.
//!
//! # Writing (see [`writer`])
//!
//! A store with a journal ([`record::Journal`]) appends a record for every
//! change it makes. The shard's writer task takes all the records made
//! since its last commit (group commit: every batch that ran while a commit
//! was in flight goes into the next), stamps them, and writes them with one
//! `write_at` — exactly one write in flight per shard, since two
//! overlapping writes to one block complete in an undefined order. The
//! last, partial block is kept in memory and written again, with more
//! records, by the next commit (its earlier bytes rewritten unchanged).
//!
//! # Durability modes ([`Fsync`], as Redis's `appendfsync`)
//!
//! - `always`: each commit's write is followed by an `fdatasync`, and the
//!   commit completes when both have. The shard keeps a "durable up to"
//!   sequence number, and no reply — to a read or a write — leaves while it
//!   could have observed a record above it (see `conn`): a GET never shows
//!   a value a crash can take back.
//! - `everysec`: a reply waits until what it could have observed is
//!   *written* (the O_DIRECT write completed, not synced), as Redis writes
//!   its AOF to the kernel before it replies: a crash of the process loses
//!   nothing acknowledged; the writer `fdatasync`s once a second, so a
//!   crash of the machine may lose up to that second.
//! - `no`: as `everysec`, but never synced by percore (the disk decides).
//!
//! # The log's I/O on a busy core
//!
//! glommio reaps io_uring completions only when its task queue is preempted
//! (the node's `--preempt-us`, 100 ms) or runs out of runnable tasks. A
//! connection whose replies wait for a commit reads and executes what its
//! client has sent and then parks, so the commit's completion is reaped
//! as soon as no connection has input left (when `everysec` replied at
//! once, a `kill -9` test lost writes acknowledged up to ~100 ms earlier:
//! commits waited a preempt period behind busy connections). A shorter
//! timer is not the fix: glommio 0.9 executors with timers of a
//! millisecond or less were seen to stop for seconds under CPU contention
//! (a durable node in this crate's tests once did not start within 30 s
//! with a 1 ms timer), and 0.5 ms and 2 ms timers made YCSB-B in `always`
//! mode slower here, not faster.
//!
//! Syncs do not run on the shard's CPU. Through io_uring (an `fsync` op,
//! or an `O_DSYNC` write on a disk without FUA) the kernel hands the
//! blocking part to an io-wq worker, which inherits the shard thread's
//! CPU and runs only when the executor — busy, or spinning on its polled
//! ring while a DMA write is in flight — lets it: commits took 3.4 ms at
//! 50 k ops/s on this crate's test VM (GET p50 8.8 ms). The writer calls
//! `fdatasync` on glommio's blocking thread pool instead, which the
//! executors are built to leave unpinned (342 µs per commit at the same
//! rate, GET p50 0.31 ms).
//!
//! # Recovery (see [`recover`])
//!
//! Replay runs from the first record to the first record that is not the
//! next one. What comes after it decides: nothing valid of a *later*
//! commit (a torn tail: the last commit was cut by the crash and never
//! acknowledged in `always` mode) → the log resumes there, after the torn
//! bytes are zeroed; a valid record of a later commit (corruption in the
//! middle of what was acknowledged) → the node refuses to start, naming the
//! file and offset, unless `--truncate-corrupt-log` accepts the loss.

pub mod record;
pub mod recover;
pub mod snapshot;
pub mod writer;

use std::path::{Path, PathBuf};

/// Bytes of the blocks the log writes (and of a segment's header).
pub const BLOCK: usize = 4096;
/// Default segment size: 64 MiB.
pub const SEGMENT_DEFAULT: u64 = 64 << 20;
/// Smallest segment size accepted (tests use small segments to switch often).
pub const SEGMENT_MIN: u64 = 64 << 10;
/// Segment header magic.
const SEGMENT_MAGIC: &[u8; 8] = b"PCORLOG1";

pub use wire::cluster::Fsync;

/// A node's durability settings (`--data-dir` switches the log on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durability {
    /// Where the shards' directories go.
    pub data_dir: PathBuf,
    /// When the log syncs.
    pub fsync: Fsync,
    /// Bytes per log segment.
    pub segment_bytes: u64,
    /// Start even when valid records follow a corrupt one, dropping them.
    pub truncate_corrupt: bool,
    /// Take a snapshot (and truncate the log) once this many log bytes
    /// were written since the last one, or as many as the last snapshot's
    /// size if that is more; 0: only on request and at shutdown.
    pub snapshot_after: u64,
}

/// What went wrong with a shard's log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("{path}: {what}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The data directory belongs to another cluster layout.
    #[error(
        "{path} belongs to another cluster layout: it holds {found}, this node is {expected}; start with that layout, or give a new --data-dir"
    )]
    Layout {
        /// The layout file.
        path: PathBuf,
        /// What the file says.
        found: String,
        /// What this node is.
        expected: String,
    },
    /// Valid records follow a corrupt one: acknowledged data is damaged.
    #[error(
        "{path}: corrupt record at byte {offset} (expected sequence number {expected}: {why}), followed by valid records of later commits (sequence number {later} at {later_path} byte {later_offset}); refusing to start: restore the file, or start with --truncate-corrupt-log to drop everything from byte {offset} on"
    )]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the bad record starts.
        offset: u64,
        /// The sequence number it should have had.
        expected: u64,
        /// What is wrong with it.
        why: String,
        /// A valid later record's sequence number.
        later: u64,
        /// Its segment.
        later_path: PathBuf,
        /// Its offset.
        later_offset: u64,
    },
    /// The store refused a replayed record (a `maxmemory` too small for the data).
    #[error("{path} byte {offset}: replaying record {seq}: {source}")]
    Replay {
        /// The segment.
        path: PathBuf,
        /// The record's offset.
        offset: u64,
        /// Its sequence number.
        seq: u64,
        /// The store's refusal.
        source: crate::store::StoreError,
    },
    /// A record that what the log rebuilds cannot take: a Raft record in a
    /// shard that is not replicated or the other way round, or a Raft
    /// entry that does not continue the Raft log.
    #[error("{path} byte {offset}: record {seq}: {why}")]
    Refused {
        /// The segment.
        path: PathBuf,
        /// The record's offset.
        offset: u64,
        /// Its sequence number.
        seq: u64,
        /// Why.
        why: String,
    },
}

impl LogError {
    /// An I/O error on `path` while doing `what`.
    pub fn io(path: &Path, what: &'static str, source: std::io::Error) -> LogError {
        LogError::Io { path: path.to_path_buf(), what, source }
    }
}

/// The directory of shard `id` under `data_dir`.
pub fn shard_dir(data_dir: &Path, id: u32) -> PathBuf {
    data_dir.join(format!("shard-{id}"))
}

/// The path of the segment whose first record is `base`.
pub fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("log-{base:020}.seg"))
}

/// A segment's header block.
pub fn segment_header(shard: u32, base: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&shard.to_le_bytes());
    h[16..24].copy_from_slice(&base.to_le_bytes());
    let crc = crc32c::crc32c(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads a segment header: the shard and first sequence number, if valid.
pub fn parse_segment_header(h: &[u8]) -> Option<(u32, u64)> {
    if h.len() < 28 || &h[..8] != SEGMENT_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(h[24..28].try_into().ok()?);
    if crc32c::crc32c(&h[..24]) != crc {
        return None;
    }
    let shard = u32::from_le_bytes(h[8..12].try_into().ok()?);
    let base = u64::from_le_bytes(h[16..24].try_into().ok()?);
    (base > 0).then_some((shard, base))
}

/// The layout line a shard's `LAYOUT` file holds.
pub fn layout_text(total_shards: u32, shard: u32, slots: &str) -> String {
    format!("percore data v1: {total_shards} shards; this is shard {shard}, slots {slots}")
}

/// Makes sure `dir` exists and belongs to `layout`: writes the layout file
/// (durably) into a new directory, refuses one that names another layout.
pub fn claim(dir: &Path, layout: &str) -> Result<(), LogError> {
    std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, "creating the shard directory", e))?;
    let path = dir.join("LAYOUT");
    match std::fs::read_to_string(&path) {
        Ok(found) => {
            let found = found.trim_end();
            if found != layout {
                return Err(LogError::Layout { path, found: found.to_string(), expected: layout.to_string() });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join("LAYOUT.tmp");
            let write = || -> std::io::Result<()> {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                writeln!(f, "{layout}")?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                sync_dir(dir)
            };
            write().map_err(|e| LogError::io(&path, "writing the layout file", e))
        }
        Err(e) => Err(LogError::io(&path, "reading the layout file", e)),
    }
}

/// fsync(2) on a directory, so that the names created in it are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// `fdatasync(file)` on the executor's blocking thread pool, which is not
/// pinned to the shard's CPU. Through io_uring the sync would be handed to
/// an io-wq worker that inherits the shard thread's CPU and waits there
/// until the executor (busy, or spinning on its polled ring) lets it run:
/// commits took 3.4 ms at 50 k ops/s that way (see the module comment).
pub(crate) async fn sync_off_core(
    file: &glommio::io::DmaFile,
    path: &std::path::Path,
    what: &'static str,
) -> Result<(), LogError> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // The file stays open until this returns: the writer awaits it.
    let r = glommio::executor()
        .spawn_blocking(move || {
            // SAFETY: `fd` is the open segment's descriptor, kept open by the
            // caller for the whole call.
            let rc = unsafe { libc::fdatasync(fd) };
            if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        })
        .await;
    r.map_err(|e| LogError::io(path, what, e))
}

/// Syncs directory `dir` (its entries: a created or renamed file) on the
/// blocking thread pool, for the reason [`sync_off_core`] gives.
pub(crate) async fn sync_dir_off_core(dir: &std::path::Path, what: &'static str) -> Result<(), LogError> {
    let owned = dir.to_path_buf();
    let r = glommio::executor().spawn_blocking(move || std::fs::File::open(&owned).and_then(|d| d.sync_all())).await;
    r.map_err(|e| LogError::io(dir, what, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_headers_round_trip_and_reject_damage() {
        let h = segment_header(3, 1234);
        assert_eq!(parse_segment_header(&h), Some((3, 1234)));
        for i in 0..28 {
            let mut bad = h;
            bad[i] ^= 0x10;
            assert_eq!(parse_segment_header(&bad), None, "byte {i} flipped");
        }
        assert_eq!(parse_segment_header(&[0u8; BLOCK]), None);
    }

    #[test]
    fn a_directory_of_another_layout_is_refused_with_both_named() {
        let dir = std::env::temp_dir().join(format!("percore-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = layout_text(2, 0, "0-8191");
        claim(&dir, &a).expect("a new directory is claimed");
        claim(&dir, &a).expect("the same layout again");
        let b = layout_text(4, 0, "0-4095");
        let err = claim(&dir, &b).expect_err("another layout").to_string();
        assert!(err.contains(&a) && err.contains(&b), "{err}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
