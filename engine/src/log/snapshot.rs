//! Fork-less, point-in-time snapshots of a shard's store, and loading them
//! back.
//!
//! A snapshot is taken by the shard's own executor, in steps between
//! batches: [`crate::store::Store::snapshot_begin`] fixes the point (the
//! sequence number of the last change journaled), each
//! [`crate::store::Store::snapshot_step`] hands out the next records, and
//! write hooks in the store save a record's old value before a change to a
//! part not yet written (Dragonfly's scheme), so the file is the store at
//! that one point whatever runs meanwhile. Nothing forks and the shard
//! never stops.
//!
//! # The file
//!
//! `snapshot` in the shard's directory: block 0 is a header (magic, shard,
//! the sequence number the snapshot holds changes up to, its record count
//! and byte length, a CRC over them), records from byte 4096 in the log's
//! format ([`super::record`], each a SET numbered with the snapshot's
//! sequence number). It is written as `snapshot.tmp` through a DMA file,
//! its header last, synced, renamed into place, and the directory synced:
//! a crash leaves the old snapshot or the new one, never half of one.
//! After that the log's segments that hold nothing past the snapshot go
//! back to the writer for reuse.
//!
//! # A replicated shard's snapshot
//!
//! Its header says where in the Raft log the store stands: magic
//! `PCORSNP2`, the same fields, then the Raft [`SnapshotMetadata`] (index,
//! term, membership) as protobuf bytes, and a CRC over the whole block.
//! Its records are numbered with the Raft index (the records of a snapshot
//! a leader sent are kept as they came), and its `seq` is the shard log's
//! last record the snapshot makes unneeded: the log is replayed from the
//! one after. A shard refuses a snapshot of the other kind.

use super::record::{self, Entry};
use super::{BLOCK, LogError};
use crate::store::Store;
use protobuf::Message as _;
use raft::eraftpb::SnapshotMetadata;
use std::path::{Path, PathBuf};

/// Name of a shard's snapshot file.
pub const FILE: &str = "snapshot";
/// Name of the snapshot being written.
pub const TMP: &str = "snapshot.tmp";
/// Name of a snapshot received from a leader while it is written (not
/// [`TMP`]: the shard's own snapshot may be being written meanwhile).
pub const RECEIVED_TMP: &str = "snapshot.received.tmp";
/// Bytes of records a step hands out before the shard runs other tasks.
pub const STEP_BYTES: usize = 1 << 20;
const MAGIC: &[u8; 8] = b"PCORSNP1";
const MAGIC_RAFT: &[u8; 8] = b"PCORSNP2";
/// Where a replicated snapshot's Raft metadata starts in the header block.
const RAFT_AT: usize = 48;
/// Longest Raft metadata a header holds (the membership of a group of
/// hundreds of members fits).
pub const MAX_RAFT_META: usize = BLOCK - RAFT_AT - 4;

/// A snapshot's header fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The shard it belongs to.
    pub shard: u32,
    /// It holds every change up to this sequence number, and none after.
    pub seq: u64,
    /// Records in it.
    pub records: u64,
    /// Bytes of records (from byte 4096 on).
    pub bytes: u64,
    /// A replicated shard's: the Raft index, term and membership the store
    /// holds (its records are numbered with the index).
    pub raft: Option<SnapshotMetadata>,
}

impl Header {
    /// The header block; `None` if the Raft metadata is longer than
    /// [`MAX_RAFT_META`].
    pub fn encode(&self) -> Option<[u8; BLOCK]> {
        let mut h = [0u8; BLOCK];
        h[8..12].copy_from_slice(&self.shard.to_le_bytes());
        h[16..24].copy_from_slice(&self.seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.records.to_le_bytes());
        h[32..40].copy_from_slice(&self.bytes.to_le_bytes());
        let Some(meta) = &self.raft else {
            h[..8].copy_from_slice(MAGIC);
            let crc = crc32c::crc32c(&h[..40]);
            h[40..44].copy_from_slice(&crc.to_le_bytes());
            return Some(h);
        };
        let meta = meta.write_to_bytes().ok().filter(|m| m.len() <= MAX_RAFT_META)?;
        h[..8].copy_from_slice(MAGIC_RAFT);
        h[40..44].copy_from_slice(&(meta.len() as u32).to_le_bytes());
        h[RAFT_AT..RAFT_AT + meta.len()].copy_from_slice(&meta);
        let crc = crc32c::crc32c(&h[..BLOCK - 4]);
        h[BLOCK - 4..].copy_from_slice(&crc.to_le_bytes());
        Some(h)
    }

    /// Reads a header block; `None` if it is not a valid one.
    pub fn decode(h: &[u8]) -> Option<Header> {
        if h.len() < 44 {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().unwrap_or([0; 4]));
        let raft = if &h[..8] == MAGIC {
            if crc32c::crc32c(&h[..40]) != u32_at(40) {
                return None;
            }
            None
        } else if &h[..8] == MAGIC_RAFT && h.len() >= BLOCK {
            if crc32c::crc32c(&h[..BLOCK - 4]) != u32_at(BLOCK - 4) {
                return None;
            }
            let len = u32_at(40) as usize;
            if len > MAX_RAFT_META {
                return None;
            }
            Some(SnapshotMetadata::parse_from_bytes(&h[RAFT_AT..RAFT_AT + len]).ok()?)
        } else {
            return None;
        };
        Some(Header { shard: u32_at(8), seq: u64_at(16), records: u64_at(24), bytes: u64_at(32), raft })
    }

    /// The number every record of the snapshot carries: the Raft index for
    /// a replicated shard's, else the sequence number.
    pub fn stamp(&self) -> u64 {
        self.raft.as_ref().map_or(self.seq, |m| m.index)
    }
}

/// What loading a snapshot did.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The sequence number it holds changes up to (0: no snapshot).
    pub seq: u64,
    /// Records loaded.
    pub records: u64,
    /// Its size in bytes.
    pub bytes: u64,
}

/// Loads shard `shard`'s snapshot from `dir` into `store`, if there is one.
/// A snapshot that is damaged or belongs to another shard is an error that
/// names the file: the log before it may be gone, so starting without it
/// could lose acknowledged data. A replicated shard's snapshot is refused
/// here (see [`load_raft`]).
pub fn load(dir: &Path, shard: u32, store: &mut Store) -> Result<Loaded, LogError> {
    let path = dir.join(FILE);
    let Some((h, bytes)) = read(&path, shard)? else { return Ok(Loaded::default()) };
    if h.raft.is_some() {
        return Err(bad(&path, "it is a replicated shard's snapshot, and this shard is not replicated".into()));
    }
    load_records(&path, &h, &bytes, store)
}

/// Loads a replicated shard's snapshot from `dir` into `store`, if there
/// is one: what was loaded, and where in the Raft log the store now stands.
/// Refuses an unreplicated shard's snapshot and damage as [`load`] does.
pub fn load_raft(dir: &Path, shard: u32, store: &mut Store) -> Result<Option<(Loaded, SnapshotMetadata)>, LogError> {
    let path = dir.join(FILE);
    let Some((h, bytes)) = read(&path, shard)? else { return Ok(None) };
    let Some(meta) = h.raft.clone() else {
        return Err(bad(&path, "it is an unreplicated shard's snapshot, and this shard is replicated".into()));
    };
    Ok(Some((load_records(&path, &h, &bytes, store)?, meta)))
}

/// A replicated shard's snapshot as a leader sends it: its Raft metadata
/// and its records. `None` if there is none.
pub fn read_raft(dir: &Path, shard: u32) -> Result<Option<(SnapshotMetadata, Vec<u8>)>, LogError> {
    let path = dir.join(FILE);
    let Some((h, mut bytes)) = read(&path, shard)? else { return Ok(None) };
    let Some(meta) = h.raft else {
        return Err(bad(&path, "it is an unreplicated shard's snapshot, and this shard is replicated".into()));
    };
    bytes.truncate(BLOCK + h.bytes as usize);
    bytes.drain(..BLOCK);
    Ok(Some((meta, bytes)))
}

fn bad(path: &Path, what: String) -> LogError {
    LogError::io(path, "loading the snapshot", std::io::Error::other(what))
}

/// The snapshot file's header and bytes (`None`: no file), its header
/// checked against the shard and the file's length.
fn read(path: &Path, shard: u32) -> Result<Option<(Header, Vec<u8>)>, LogError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LogError::io(path, "reading the snapshot", e)),
    };
    let Some(h) = Header::decode(&bytes) else {
        return Err(bad(
            path,
            "its header is damaged (restore the file, or remove the data directory to start empty)".into(),
        ));
    };
    if h.shard != shard {
        return Err(bad(path, format!("it belongs to shard {}, not {shard}", h.shard)));
    }
    if (BLOCK as u64).checked_add(h.bytes).is_none_or(|e| e > bytes.len() as u64) {
        let have = bytes.len().saturating_sub(BLOCK);
        return Err(bad(path, format!("its header says {} bytes of records, the file has {have}", h.bytes)));
    }
    Ok(Some((h, bytes)))
}

fn load_records(path: &Path, h: &Header, bytes: &[u8], store: &mut Store) -> Result<Loaded, LogError> {
    let end = BLOCK + h.bytes as usize;
    let stamp = h.stamp();
    store.reserve(usize::try_from(h.records).unwrap_or(0));
    let mut at = BLOCK;
    let mut n = 0u64;
    while at < end {
        let (r, len) =
            record::decode(&bytes[at..end]).map_err(|e| bad(path, format!("record {} at byte {at}: {e}", n + 1)))?;
        let Entry::Set { key, value, expire_at } = r.entry else {
            return Err(bad(path, format!("record {} at byte {at} is not a SET", n + 1)));
        };
        if r.seq != stamp {
            return Err(bad(path, format!("record {} at byte {at} has sequence number {}, not {stamp}", n + 1, r.seq)));
        }
        store.put_expiring(key, value, expire_at).map_err(|source| LogError::Replay {
            path: path.to_path_buf(),
            offset: at as u64,
            seq: r.seq,
            source,
        })?;
        n += 1;
        at += len;
    }
    if n != h.records {
        return Err(bad(path, format!("it holds {n} records, its header says {}", h.records)));
    }
    Ok(Loaded { seq: h.seq, records: n, bytes: bytes.len() as u64 })
}

/// The snapshot file of a shard directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// What a snapshot wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taken {
    /// It holds every change up to this sequence number.
    pub seq: u64,
    /// Records written.
    pub records: u64,
    /// File size, bytes.
    pub bytes: u64,
    /// Time from start to durable, ms.
    pub ms: u64,
}

/// Takes a snapshot of `store` (shard `shard`, directory `dir`) without
/// stopping the shard: the point is fixed now, the records are written in
/// steps of [`STEP_BYTES`] with the executor free to run batches between
/// them, and the file is synced and renamed into place. Fails if a
/// snapshot is running already.
pub async fn take(store: &std::cell::RefCell<Store>, dir: &Path, shard: u32) -> Result<Taken, LogError> {
    let seq = {
        let mut st = store.borrow_mut();
        let seq = st.journal_last_seq();
        if !st.snapshot_begin(seq) {
            return Err(LogError::io(dir, "taking a snapshot", std::io::Error::other("a snapshot is already running")));
        }
        seq
    };
    let written = write_records(store, dir, seq).await?;
    let header = Header { shard, seq, records: written.records, bytes: written.bytes, raft: None };
    written.commit(header).await
}

/// A snapshot's records written to [`TMP`], its header not yet: see
/// [`Written::commit`] and [`Written::abandon`].
pub struct Written {
    file: glommio::io::DmaFile,
    tmp: PathBuf,
    dir: PathBuf,
    /// Records written.
    pub records: u64,
    /// Bytes of records written.
    pub bytes: u64,
    end: u64,
    started: std::time::Instant,
}

/// Writes the records of the snapshot running in `store` (begun with
/// `stamp`: [`Store::snapshot_begin`]) to [`TMP`] in `dir`, in steps of
/// [`STEP_BYTES`] with the executor free to run batches between them. On
/// an error the walk is stopped and the file removed.
pub async fn write_records(store: &std::cell::RefCell<Store>, dir: &Path, stamp: u64) -> Result<Written, LogError> {
    use glommio::io::OpenOptions;
    let started = std::time::Instant::now();
    let tmp = dir.join(TMP);
    let result = async {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .dma_open(&tmp)
            .await
            .map_err(|e| LogError::io(&tmp, "creating the snapshot", e.into()))?;
        let mut pending: Vec<u8> = Vec::with_capacity(2 * STEP_BYTES);
        let mut at = BLOCK as u64;
        let mut bytes = 0u64;
        let mut step = Vec::with_capacity(STEP_BYTES + BLOCK);
        let records = loop {
            step.clear();
            let done = store.borrow_mut().snapshot_step(&mut step, STEP_BYTES);
            if done.is_none() && !store.borrow().snapshot_running() {
                return Err(LogError::io(&tmp, "writing the snapshot", std::io::Error::other("no snapshot runs")));
            }
            record::seal(&mut step, stamp);
            bytes += step.len() as u64;
            pending.extend_from_slice(&step);
            let whole =
                if done.is_some() { pending.len().next_multiple_of(BLOCK) } else { pending.len() / BLOCK * BLOCK };
            if whole > 0 {
                let mut buf = file.alloc_dma_buffer(whole);
                let b = buf.as_bytes_mut();
                let n = whole.min(pending.len());
                b[..n].copy_from_slice(&pending[..n]);
                b[n..].fill(0);
                let written =
                    file.write_at(buf, at).await.map_err(|e| LogError::io(&tmp, "writing the snapshot", e.into()))?;
                if written != whole {
                    return Err(LogError::io(&tmp, "writing the snapshot", std::io::Error::other("short write")));
                }
                pending.drain(..n);
                at += whole as u64;
            }
            if let Some(records) = done {
                break records;
            }
            // Let the shard's connections run between steps.
            futures_lite::future::yield_now().await;
        };
        Ok(Written { file, tmp: tmp.clone(), dir: dir.to_path_buf(), records, bytes, end: at, started })
    }
    .await;
    if result.is_err() {
        // Stop the walk (its hooks cost the writes something) and leave no
        // half file behind; the old snapshot, if any, stays.
        let mut st = store.borrow_mut();
        let mut sink = Vec::new();
        while st.snapshot_running() && st.snapshot_step(&mut sink, usize::MAX).is_none() {}
        drop(st);
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl Written {
    /// Writes `header` (its records and bytes must be these), syncs the
    /// file, renames it into place and syncs the directory: from then on
    /// the snapshot is the shard's.
    pub async fn commit(self, header: Header) -> Result<Taken, LogError> {
        self.commit_if(header, || Ok(())).await
    }

    /// [`Written::commit`], but `still` is asked once the file is synced,
    /// just before the rename (nothing runs between the two): an `Err` from
    /// it (why the snapshot is no longer wanted) drops the file instead.
    pub async fn commit_if(self, header: Header, still: impl Fn() -> Result<(), String>) -> Result<Taken, LogError> {
        let tmp = self.tmp.clone();
        let result = async {
            let block = header.encode().ok_or_else(|| {
                LogError::io(
                    &tmp,
                    "writing the snapshot header",
                    std::io::Error::other("the Raft metadata is too long"),
                )
            })?;
            let mut buf = self.file.alloc_dma_buffer(BLOCK);
            buf.as_bytes_mut().copy_from_slice(&block);
            self.file
                .write_at(buf, 0)
                .await
                .map_err(|e| LogError::io(&tmp, "writing the snapshot header", e.into()))?;
            super::sync_off_core(&self.file, &tmp, "syncing the snapshot").await?;
            still().map_err(|why| LogError::io(&tmp, "keeping the snapshot", std::io::Error::other(why)))?;
            std::fs::rename(&tmp, path(&self.dir))
                .map_err(|e| LogError::io(&tmp, "renaming the snapshot into place", e))?;
            super::sync_dir_off_core(&self.dir, "syncing the shard directory").await?;
            Ok(Taken {
                seq: header.seq,
                records: header.records,
                bytes: self.end,
                ms: self.started.elapsed().as_millis() as u64,
            })
        }
        .await;
        let _ = self.file.close().await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// Drops the written records: the point they hold is no longer wanted.
    pub async fn abandon(self) {
        let _ = self.file.close().await;
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Writes a replicated shard's snapshot as a leader sent it (`records`,
/// numbered with `header`'s Raft index) with blocking calls: written to
/// [`RECEIVED_TMP`], synced, renamed into place, the directory synced. The shard is
/// a follower while it installs one, so it has no client to keep waiting.
pub fn write_received(dir: &Path, header: &Header, records: &[u8]) -> Result<(), LogError> {
    use std::io::Write;
    let tmp = dir.join(RECEIVED_TMP);
    let block = header.encode().ok_or_else(|| {
        LogError::io(&tmp, "writing the snapshot header", std::io::Error::other("the Raft metadata is too long"))
    })?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&block)?;
        f.write_all(records)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path(dir))?;
        super::sync_dir(dir)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        LogError::io(&tmp, "writing a received snapshot", e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// One step of a scenario run against a store with a snapshot running.
    #[derive(Clone, Debug)]
    enum Step {
        Put { key: u8, len: usize },
        PutExpiring { key: u8, len: usize, ttl: u64 },
        Delete { key: u8 },
        Expire { key: u8, ttl: Option<u64> },
        Advance { ms: u64 },
        ExpireCycle,
        Clear,
        Snap { budget: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        let len = prop_oneof![8 => 0usize..200, 2 => 200usize..3000, 1 => Just(600 << 10)];
        prop_oneof![
            6 => (0u8..40, len.clone()).prop_map(|(key, len)| Step::Put { key, len }),
            2 => (0u8..40, len, 1u64..20).prop_map(|(key, len, ttl)| Step::PutExpiring { key, len, ttl }),
            2 => (0u8..40).prop_map(|key| Step::Delete { key }),
            2 => (0u8..40, proptest::option::of(1u64..20)).prop_map(|(key, ttl)| Step::Expire { key, ttl }),
            1 => (1u64..10).prop_map(|ms| Step::Advance { ms }),
            1 => Just(Step::ExpireCycle),
            1 => Just(Step::Clear),
            4 => (0usize..4000).prop_map(|budget| Step::Snap { budget }),
        ]
    }

    fn value(key: u8, len: usize, version: u64) -> Vec<u8> {
        let mut v = vec![key; len];
        for (i, b) in version.to_le_bytes().iter().enumerate().take(len) {
            v[i] = *b;
        }
        v
    }

    type Image = HashMap<Vec<u8>, (Vec<u8>, Option<u64>)>;

    /// The store's live keys with their values and expiries, as a map.
    fn image_of(store: &Store, keys: impl Iterator<Item = Vec<u8>>) -> Image {
        keys.filter_map(|k| {
            let v = store.get(&k)?.to_vec();
            let at = store.expiry(&k).flatten();
            Some((k, (v, at)))
        })
        .collect()
    }

    /// Records handed out by snapshot steps, as a map (expired ones
    /// dropped at `now`, as loading drops them).
    fn image_of_records(bytes: &[u8], seq: u64, now: u64) -> Result<Image, String> {
        let mut out = Image::new();
        let mut at = 0;
        let mut sealed = bytes.to_vec();
        record::seal(&mut sealed, seq);
        while at < sealed.len() {
            let (r, n) = record::decode(&sealed[at..]).map_err(|e| format!("record at {at}: {e}"))?;
            let Entry::Set { key, value, expire_at } = r.entry else { return Err("not a SET".into()) };
            if out.insert(key.to_vec(), (value.to_vec(), expire_at)).is_some() {
                return Err(format!("key {key:?} written twice"));
            }
            at += n;
        }
        out.retain(|_, (_, at)| at.is_none_or(|t| t > now));
        Ok(out)
    }

    fn run(steps: &[Step], begin_at: usize) -> Result<(), String> {
        let mut store = Store::default();
        let mut now = 1_000u64;
        store.set_now(now);
        let keys = || (0u8..40).map(|k| vec![b'k', k]);
        let mut version = 0u64;
        let mut out = Vec::new();
        let mut expected: Option<Image> = None;
        let mut began_at_now = 0;
        for (i, s) in steps.iter().enumerate() {
            if i == begin_at {
                store.snapshot_begin(7);
                expected = Some(image_of(&store, keys()));
                began_at_now = now;
            }
            version += 1;
            match *s {
                Step::Put { key, len } => {
                    let _ = store.put(&[b'k', key], &value(key, len, version));
                }
                Step::PutExpiring { key, len, ttl } => {
                    let _ = store.put_expiring(&[b'k', key], &value(key, len, version), Some(now + ttl));
                }
                Step::Delete { key } => {
                    store.delete(&[b'k', key]);
                }
                Step::Expire { key, ttl } => {
                    let _ = store.set_expiry(&[b'k', key], ttl.map(|t| now + t));
                }
                Step::Advance { ms } => {
                    now += ms;
                    store.set_now(now);
                }
                Step::ExpireCycle => {
                    store.expire_cycle(64);
                }
                Step::Clear => store.clear(),
                Step::Snap { budget } => {
                    let upto = out.len() + budget;
                    if store.snapshot_running() && store.snapshot_step(&mut out, upto).is_some() {
                        break;
                    }
                }
            }
        }
        let Some(expected) = expected else { return Ok(()) };
        while store.snapshot_running() {
            if store.snapshot_step(&mut out, usize::MAX).is_some() {
                break;
            }
        }
        // Judge expiry as of the snapshot's start: a key live then is in it.
        let got = image_of_records(&out, 7, began_at_now)?;
        if got != expected {
            let mut diff: Vec<String> = Vec::new();
            for (k, v) in &expected {
                if got.get(k) != Some(v) {
                    diff.push(format!("{k:?}: expected {:?}, got {:?}", v.1, got.get(k).map(|g| (g.0.len(), g.1))));
                }
            }
            for k in got.keys().filter(|k| !expected.contains_key(*k)) {
                diff.push(format!("{k:?}: not in the store at the snapshot's start"));
            }
            return Err(diff.join("; "));
        }
        // The walk left no flag behind: a second snapshot of the store as
        // it is now holds exactly what it holds.
        let after = image_of(&store, keys());
        store.snapshot_begin(8);
        let mut again = Vec::new();
        while store.snapshot_step(&mut again, usize::MAX).is_none() {}
        let got = image_of_records(&again, 8, now)?;
        if got != after {
            return Err(format!("a second snapshot differs from the store: {} keys vs {}", got.len(), after.len()));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
        ))]
        /// A snapshot taken while every kind of change runs between its
        /// steps holds the store exactly as it was when it began: no key
        /// shows a later write, none misses an earlier one.
        #[test]
        fn a_snapshot_is_one_point_in_time(
            steps in proptest::collection::vec(step(), 1..120),
            begin in 0usize..60,
        ) {
            if let Err(e) = run(&steps, begin.min(steps.len().saturating_sub(1))) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn each_kind_of_shard_refuses_the_others_snapshot() {
        let dir = std::env::temp_dir().join(format!("percore-snapkind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut recs = Vec::new();
        record::encode(&mut recs, 9, &Entry::Set { key: b"k", value: b"v", expire_at: None });
        record::seal(&mut recs, 9);
        let meta = SnapshotMetadata { index: 9, term: 3, ..Default::default() };
        let h = Header { shard: 1, seq: 77, records: 1, bytes: recs.len() as u64, raft: Some(meta.clone()) };
        write_received(&dir, &h, &recs).unwrap();
        let mut store = Store::default();
        let err = load(&dir, 1, &mut store).unwrap_err().to_string();
        assert!(err.contains("replicated shard's snapshot"), "{err}");
        let (loaded, m) = load_raft(&dir, 1, &mut store).unwrap().unwrap();
        assert_eq!((loaded.seq, loaded.records, m), (77, 1, meta.clone()));
        assert_eq!(store.get(b"k"), Some(&b"v"[..]));
        assert_eq!(read_raft(&dir, 1).unwrap(), Some((meta, recs.clone())));
        assert!(load_raft(&dir, 2, &mut Store::default()).unwrap_err().to_string().contains("belongs to shard 1"));
        // Records must carry the Raft index.
        let wrong = Header { seq: 9, raft: None, ..h };
        write_received(
            &dir,
            &Header { raft: Some(SnapshotMetadata { index: 8, ..Default::default() }), ..wrong.clone() },
            &recs,
        )
        .unwrap();
        assert!(load_raft(&dir, 1, &mut Store::default()).unwrap_err().to_string().contains("not 8"));
        write_received(&dir, &wrong, &recs).unwrap();
        let err = load_raft(&dir, 1, &mut Store::default()).unwrap_err().to_string();
        assert!(err.contains("unreplicated shard's snapshot"), "{err}");
        assert_eq!(load(&dir, 1, &mut Store::default()).unwrap().records, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A snapshot no longer wanted when its file is ready (a leader's was
    /// installed meanwhile) is dropped: the shard's file stays as it was,
    /// and no temporary file is left. One still wanted replaces it.
    #[test]
    fn a_snapshot_superseded_before_its_rename_leaves_the_shards_file_alone() {
        let dir = std::env::temp_dir().join(format!("percore-snapif-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let kept = Header { shard: 0, seq: 5, records: 0, bytes: 0, raft: None };
        write_received(&dir, &kept, &[]).unwrap();
        let before = std::fs::read(path(&dir)).unwrap();
        let (d, unchanged) = (dir.clone(), before.clone());
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 << 10)
            .spawn(move || async move {
                let store = std::cell::RefCell::new(Store::default());
                store.borrow_mut().put(b"k", b"v").unwrap();
                let header = |records| Header { shard: 0, seq: 9, records, bytes: 0, raft: None };
                assert!(store.borrow_mut().snapshot_begin(9));
                let w = write_records(&store, &d, 9).await.unwrap();
                let h = Header { bytes: w.bytes, ..header(w.records) };
                let e = w.commit_if(h, || Err("superseded".into())).await.unwrap_err().to_string();
                assert!(e.contains("superseded"), "{e}");
                assert!(!d.join(TMP).exists(), "no temporary file left");
                assert_eq!(std::fs::read(path(&d)).unwrap(), unchanged, "the shard's file is untouched");
                assert!(store.borrow_mut().snapshot_begin(9));
                let w = write_records(&store, &d, 9).await.unwrap();
                let h = Header { bytes: w.bytes, ..header(w.records) };
                w.commit_if(h, || Ok(())).await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        let after = std::fs::read(path(&dir)).unwrap();
        assert_ne!(before, after, "the wanted one replaced the file");
        let mut store = Store::default();
        assert_eq!(load(&dir, 0, &mut store).unwrap().records, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn headers_round_trip_and_reject_damage() {
        let h = Header { shard: 2, seq: 99, records: 5, bytes: 640, raft: None };
        let b = h.encode().expect("fits");
        assert_eq!(Header::decode(&b), Some(h.clone()));
        assert_eq!(h.stamp(), 99);
        for i in 0..44 {
            let mut bad = b;
            bad[i] ^= 1;
            assert_eq!(Header::decode(&bad), None, "byte {i}");
        }
        let mut meta = SnapshotMetadata { index: 1234, term: 7, ..Default::default() };
        meta.mut_conf_state().voters = vec![1, 2, 3];
        let r = Header { raft: Some(meta.clone()), ..h };
        let b = r.encode().expect("fits");
        assert_eq!(Header::decode(&b), Some(r.clone()));
        assert_eq!(r.stamp(), 1234, "a replicated snapshot's records carry its Raft index");
        for i in (0..60).chain([BLOCK - 100, BLOCK - 1]) {
            let mut bad = b;
            bad[i] ^= 1;
            assert_eq!(Header::decode(&bad), None, "byte {i}");
        }
        meta.mut_conf_state().voters = (0..2000).collect();
        assert_eq!(Header { raft: Some(meta), ..r }.encode(), None, "metadata past the block is refused");
    }
}
