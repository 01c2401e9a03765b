//! Recovery: replaying a shard's log into its store at start, and telling
//! a torn tail (the crash cut the last commit: resume there) from damage
//! in the middle (refuse to start, or drop it with `--truncate-corrupt-log`).
//!
//! Segments are ordered by the first sequence number in their headers, not
//! by their names. Replay starts at the segment holding the first record it
//! needs and expects sequence numbers one by one. It stops at the first
//! record that is not the expected one: bad length, bad CRC, zeroes, or a
//! valid record with another number (a stale block of an earlier use of the
//! space). Then it looks past that point, in this segment and the later
//! ones, for a valid record of a *later commit* (`group` past the expected
//! number): one is proof that the commit holding the bad record had been
//! written whole, so acknowledged data is damaged. Without one, the bad
//! bytes are the tail of the last commit, which no reply in `always` mode
//! acknowledged: they are zeroed (so that a later crash cannot bring them
//! back) and the log resumes there.
//!
//! Files are read with plain buffered reads: recovery runs before the
//! shard serves, and it is bounded by the disk's read speed and the
//! store's insert speed.

use super::record::{self, Entry, Invalid};
use super::{BLOCK, LogError, parse_segment_header};
use crate::store::Store;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where the writer resumes: the segment, the offset of the next record,
/// and the bytes of its block before that offset.
#[derive(Debug)]
pub struct Resume {
    /// The segment file.
    pub path: PathBuf,
    /// Its first sequence number.
    pub base: u64,
    /// Offset of the next record.
    pub offset: u64,
    /// The block holding `offset`, up to it.
    pub tail: Vec<u8>,
}

/// What recovery did.
#[derive(Debug)]
pub struct Recovered {
    /// The next sequence number to hand out.
    pub next_seq: u64,
    /// Where to go on writing (`None`: start a new segment).
    pub resume: Option<Resume>,
    /// Records replayed.
    pub records: u64,
    /// Log bytes read.
    pub bytes: u64,
    /// Bytes of the records replayed.
    pub replayed_bytes: u64,
    /// Segments read.
    pub segments: usize,
    /// Time taken.
    pub elapsed: Duration,
    /// What was found and dropped, for the start message (a torn tail, or
    /// corruption accepted by `--truncate-corrupt-log`).
    pub dropped: Option<String>,
    /// The snapshot loaded first, if any.
    pub snapshot: super::snapshot::Loaded,
    /// The segments replayed, in order: first sequence number and path.
    pub chain: Vec<(u64, PathBuf)>,
    /// Segment files holding nothing needed (older than the snapshot, or
    /// freed before): space for the writer to reuse.
    pub spare: Vec<PathBuf>,
}

/// A segment found on disk.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    base: u64,
}

/// Lists the valid segments of shard `shard` in `dir`, ordered by their
/// first sequence number (a file with a bad header holds nothing that was
/// acknowledged: its first commit, which wrote the header, was torn).
fn segments(dir: &Path, shard: u32) -> Result<Vec<Segment>, LogError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, "listing the log", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io(dir, "listing the log", e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("log-") || name.starts_with("free-")) || !name.ends_with(".seg") {
            continue;
        }
        let mut head = [0u8; BLOCK];
        let n = read_up_to(&path, &mut head)?;
        match parse_segment_header(&head[..n]) {
            Some((owner, base)) if owner == shard && name.starts_with("log-") => out.push(Segment { path, base }),
            // Freed space, or a segment whose first commit was torn.
            _ => out.push(Segment { path, base: 0 }),
        }
    }
    out.sort_by_key(|s| s.base);
    Ok(out)
}

fn read_up_to(path: &Path, buf: &mut [u8]) -> Result<usize, LogError> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| LogError::io(path, "opening a segment", e))?;
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(LogError::io(path, "reading a segment", e)),
        }
    }
    Ok(n)
}

/// Why a replayed record was not taken.
#[derive(Debug)]
pub enum Refusal {
    /// The store refused it.
    Store(crate::store::StoreError),
    /// It does not belong in this log, or does not continue it.
    Other(String),
}

/// Applies one replayed change to the store (the store's clock is the
/// recovery's start: keys whose expiry has passed end absent).
pub fn replay_into(store: &mut Store, entry: &Entry<'_>) -> Result<(), Refusal> {
    match *entry {
        Entry::Set { key, value, expire_at } => {
            store.put_expiring(key, value, expire_at).map(|_| ()).map_err(Refusal::Store)
        }
        Entry::Delete { key } => {
            store.delete(key);
            Ok(())
        }
        Entry::Expire { key, at } => store.set_expiry(key, at).map(|_| ()).map_err(Refusal::Store),
        Entry::Clear => {
            store.clear();
            Ok(())
        }
        Entry::RaftEntry(_) | Entry::RaftState(_) => Err(Refusal::Other(
            "a Raft record: this log belongs to a replicated shard (start the node with its replicated cluster file)"
                .into(),
        )),
    }
}

/// A valid record of a commit later than the one holding `expected`,
/// found at or after `from` in `bytes` (8-byte steps): its sequence number
/// and offset. Also returns the end of the last valid record of that
/// commit or an earlier one with a number from `expected` on (the torn
/// commit's leftovers, to zero).
fn look_past(bytes: &[u8], from: usize, expected: u64) -> (Option<(u64, usize)>, usize) {
    let mut at = from;
    let mut leftovers = from;
    while at + record::HEADER <= bytes.len() {
        if let Ok((r, n)) = record::decode(&bytes[at..]) {
            if r.group > expected {
                return (Some((r.seq, at)), leftovers);
            }
            if r.seq >= expected {
                leftovers = at + n;
            }
            at += n;
        } else {
            at += record::ALIGN;
        }
    }
    (None, leftovers)
}

/// Replays shard `shard`'s log in `dir` into `store`, from the first record
/// (snapshots, when they come, start it later). See the module doc for
/// what is accepted, dropped and refused.
pub fn recover(dir: &Path, shard: u32, store: &mut Store, truncate_corrupt: bool) -> Result<Recovered, LogError> {
    let started = Instant::now();
    store.set_now(crate::store::unix_ms());
    let snapshot = super::snapshot::load(dir, shard, store)?;
    replay(dir, shard, snapshot, truncate_corrupt, started, |_, entry| replay_into(store, entry))
}

/// Replays a replicated shard's log in `dir` into `log`, its Raft log, from
/// its snapshot on when it has one: the snapshot's records go into `store`
/// and its Raft index, term and membership become the log's start (the
/// store is rebuilt by applying the committed entries after it). Torn
/// tails and corruption are handled as in [`recover`].
pub fn recover_raft(
    dir: &Path,
    shard: u32,
    log: &mut crate::replica::storage::RaftLog,
    store: &mut Store,
    truncate_corrupt: bool,
) -> Result<Recovered, LogError> {
    let started = Instant::now();
    store.set_now(crate::store::unix_ms());
    let loaded = match super::snapshot::load_raft(dir, shard, store)? {
        Some((loaded, meta)) => {
            let mut snap = raft::eraftpb::Snapshot::default();
            snap.set_metadata(meta.clone());
            log.apply_snapshot(snap).map_err(|e| {
                LogError::io(
                    dir,
                    "loading the snapshot",
                    std::io::Error::other(format!("the Raft log refused it: {e}")),
                )
            })?;
            log.offer_snapshot_file(dir.to_path_buf(), shard, meta);
            loaded
        }
        None => super::snapshot::Loaded::default(),
    };
    replay(dir, shard, loaded, truncate_corrupt, started, |seq, entry| log.replay(seq, entry).map_err(Refusal::Other))
}

/// The replay both recoveries share: every record from the one after
/// `snapshot`'s on goes to `apply`, in order.
fn replay(
    dir: &Path,
    shard: u32,
    snapshot: super::snapshot::Loaded,
    truncate_corrupt: bool,
    started: Instant,
    mut apply: impl FnMut(u64, &Entry<'_>) -> Result<(), Refusal>,
) -> Result<Recovered, LogError> {
    let mut segs = segments(dir, shard)?;
    let mut expected = snapshot.seq + 1;
    let mut out = Recovered {
        next_seq: expected,
        resume: None,
        records: 0,
        bytes: 0,
        replayed_bytes: 0,
        segments: 0,
        elapsed: Duration::ZERO,
        dropped: None,
        snapshot,
        chain: Vec::new(),
        spare: Vec::new(),
    };
    // Free space (no valid header) is spare; the chain starts at the last
    // segment whose first record is at or before the first one needed, and
    // the ones before it hold only what the snapshot holds.
    let (free, used): (Vec<Segment>, Vec<Segment>) = segs.drain(..).partition(|s| s.base == 0);
    out.spare.extend(free.into_iter().map(|s| s.path));
    let segs = used;
    let start = segs.iter().rposition(|s| s.base <= expected).unwrap_or(0);
    out.spare.extend(segs[..start].iter().map(|s| s.path.clone()));
    let mut i = start;
    while i < segs.len() {
        let seg = &segs[i];
        out.chain.push((seg.base, seg.path.clone()));
        let bytes = std::fs::read(&seg.path).map_err(|e| LogError::io(&seg.path, "reading a segment", e))?;
        out.segments += 1;
        out.bytes += bytes.len() as u64;
        let mut at = BLOCK;
        // The records of the first segment that the snapshot holds already.
        let mut skip = seg.base;
        let stop = loop {
            if at + record::HEADER > bytes.len() {
                break None;
            }
            match record::decode(&bytes[at..]) {
                Ok((r, n)) if r.seq == expected => {
                    apply(r.seq, &r.entry).map_err(|refusal| {
                        let (path, offset, seq) = (seg.path.clone(), at as u64, r.seq);
                        match refusal {
                            Refusal::Store(source) => LogError::Replay { path, offset, seq, source },
                            Refusal::Other(why) => LogError::Refused { path, offset, seq, why },
                        }
                    })?;
                    expected += 1;
                    out.records += 1;
                    out.replayed_bytes += n as u64;
                    at += n;
                    // Only a prefix of the segment is skipped.
                    skip = 0;
                }
                Ok((r, n)) if r.seq == skip && r.seq < expected => {
                    skip += 1;
                    at += n;
                }
                Ok((r, _)) => break Some((at, format!("a valid record with sequence number {} instead", r.seq))),
                Err(Invalid::Empty) => break None,
                Err(e) => break Some((at, e.to_string())),
            }
        };
        let (bad, why) = match stop {
            Some(found) => found,
            // A clean end of this segment: the next one goes on, if it
            // starts with the next record.
            None if segs.get(i + 1).is_some_and(|n| n.base == expected) => {
                i += 1;
                continue;
            }
            None if i + 1 == segs.len() => {
                out.resume = Some(resume_at(seg, at, &bytes));
                break;
            }
            None => (at, format!("the segment ends, and the next one starts at {}", segs[i + 1].base)),
        };
        // Something other than the next record at `bad`: torn, or corrupt?
        let (later, leftovers) = look_past(&bytes, bad, expected);
        let later = later.map(|(seq, off)| (seq, seg.path.clone(), off)).or_else(|| {
            segs[i + 1..].iter().find_map(|s| {
                let b = std::fs::read(&s.path).ok()?;
                look_past(&b, BLOCK, expected).0.map(|(seq, off)| (seq, s.path.clone(), off))
            })
        });
        if let Some((later, later_path, later_offset)) = later {
            if !truncate_corrupt {
                return Err(LogError::Corrupt {
                    path: seg.path.clone(),
                    offset: bad as u64,
                    expected,
                    why,
                    later,
                    later_path,
                    later_offset: later_offset as u64,
                });
            }
            out.dropped = Some(format!(
                "dropped everything from {} byte {bad} on ({why}; valid records of later commits followed, from sequence number {later}): --truncate-corrupt-log",
                seg.path.display()
            ));
            zero(&seg.path, bad as u64, bytes.len() as u64)?;
            for s in &segs[i + 1..] {
                std::fs::remove_file(&s.path).map_err(|e| LogError::io(&s.path, "removing a dropped segment", e))?;
            }
        } else {
            // Later segments hold nothing of a later commit: a segment
            // whose first commit was torn after its header landed.
            for s in &segs[i + 1..] {
                std::fs::remove_file(&s.path).map_err(|e| LogError::io(&s.path, "removing a dropped segment", e))?;
            }
            if leftovers > bad {
                zero(&seg.path, bad as u64, leftovers as u64)?;
            }
            out.dropped = Some(format!(
                "a torn tail at {} byte {bad} ({why}): the last commit was cut short; {} bytes zeroed",
                seg.path.display(),
                leftovers.saturating_sub(bad)
            ));
        }
        out.resume = Some(resume_at(seg, bad, &bytes));
        break;
    }
    // Spare segments keep their names and headers: their records are all
    // older than the snapshot (numbers no new record will have), so a
    // later recovery sets them aside again until the writer reuses them.
    if out.dropped.is_some() {
        super::sync_dir(dir).map_err(|e| LogError::io(dir, "syncing the log directory", e))?;
    }
    out.next_seq = expected;
    out.elapsed = started.elapsed();
    Ok(out)
}

fn resume_at(seg: &Segment, offset: usize, bytes: &[u8]) -> Resume {
    let block = offset - offset % BLOCK;
    Resume { path: seg.path.clone(), base: seg.base, offset: offset as u64, tail: bytes[block..offset].to_vec() }
}

/// Writes zeroes over `[from, to)` of `path` and syncs it.
fn zero(path: &Path, from: u64, to: u64) -> Result<(), LogError> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| LogError::io(path, "opening", e))?;
    f.seek(SeekFrom::Start(from)).map_err(|e| LogError::io(path, "seeking", e))?;
    let zeroes = vec![0u8; 1 << 16];
    let mut left = to.saturating_sub(from);
    while left > 0 {
        let n = left.min(zeroes.len() as u64) as usize;
        f.write_all(&zeroes[..n]).map_err(|e| LogError::io(path, "zeroing dropped records", e))?;
        left -= n as u64;
    }
    f.sync_data().map_err(|e| LogError::io(path, "syncing", e))
}
