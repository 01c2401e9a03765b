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

use super::record::{self, Entry};
use super::{BLOCK, LogError};
use crate::store::Store;
use std::path::{Path, PathBuf};

/// Name of a shard's snapshot file.
pub const FILE: &str = "snapshot";
/// Name of the snapshot being written.
pub const TMP: &str = "snapshot.tmp";
/// Bytes of records a step hands out before the shard runs other tasks.
pub const STEP_BYTES: usize = 1 << 20;
const MAGIC: &[u8; 8] = b"PCORSNP1";

/// A snapshot's header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The shard it belongs to.
    pub shard: u32,
    /// It holds every change up to this sequence number, and none after.
    pub seq: u64,
    /// Records in it.
    pub records: u64,
    /// Bytes of records (from byte 4096 on).
    pub bytes: u64,
}

impl Header {
    /// The header block.
    pub fn encode(&self) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&self.shard.to_le_bytes());
        h[16..24].copy_from_slice(&self.seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.records.to_le_bytes());
        h[32..40].copy_from_slice(&self.bytes.to_le_bytes());
        let crc = crc32c::crc32c(&h[..40]);
        h[40..44].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Reads a header block; `None` if it is not a valid one.
    pub fn decode(h: &[u8]) -> Option<Header> {
        if h.len() < 44 || &h[..8] != MAGIC {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().unwrap_or([0; 8]));
        let crc = u32::from_le_bytes(h[40..44].try_into().ok()?);
        if crc32c::crc32c(&h[..40]) != crc {
            return None;
        }
        let shard = u32::from_le_bytes(h[8..12].try_into().ok()?);
        Some(Header { shard, seq: u64_at(16), records: u64_at(24), bytes: u64_at(32) })
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
/// could lose acknowledged data.
pub fn load(dir: &Path, shard: u32, store: &mut Store) -> Result<Loaded, LogError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
        Err(e) => return Err(LogError::io(&path, "reading the snapshot", e)),
    };
    let bad = |what: String| LogError::io(&path, "loading the snapshot", std::io::Error::other(what));
    let Some(h) = Header::decode(&bytes) else {
        return Err(
            bad("its header is damaged (restore the file, or remove the data directory to start empty)".into()),
        );
    };
    if h.shard != shard {
        return Err(bad(format!("it belongs to shard {}, not {shard}", h.shard)));
    }
    let end = (BLOCK as u64).checked_add(h.bytes).filter(|&e| e <= bytes.len() as u64).ok_or_else(|| {
        bad(format!("its header says {} bytes of records, the file has {}", h.bytes, bytes.len().saturating_sub(BLOCK)))
    })? as usize;
    store.reserve(usize::try_from(h.records).unwrap_or(0));
    let mut at = BLOCK;
    let mut n = 0u64;
    while at < end {
        let (r, len) =
            record::decode(&bytes[at..end]).map_err(|e| bad(format!("record {} at byte {at}: {e}", n + 1)))?;
        let Entry::Set { key, value, expire_at } = r.entry else {
            return Err(bad(format!("record {} at byte {at} is not a SET", n + 1)));
        };
        if r.seq != h.seq {
            return Err(bad(format!("record {} at byte {at} has sequence number {}, not {}", n + 1, r.seq, h.seq)));
        }
        store.put_expiring(key, value, expire_at).map_err(|source| LogError::Replay {
            path: path.clone(),
            offset: at as u64,
            seq: r.seq,
            source,
        })?;
        n += 1;
        at += len;
    }
    if n != h.records {
        return Err(bad(format!("it holds {n} records, its header says {}", h.records)));
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
    use glommio::io::OpenOptions;
    let started = std::time::Instant::now();
    let seq = {
        let mut st = store.borrow_mut();
        let seq = st.journal_last_seq();
        if !st.snapshot_begin(seq) {
            return Err(LogError::io(dir, "taking a snapshot", std::io::Error::other("a snapshot is already running")));
        }
        seq
    };
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
            record::seal(&mut step, seq);
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
        let header = Header { shard, seq, records, bytes };
        let mut buf = file.alloc_dma_buffer(BLOCK);
        buf.as_bytes_mut().copy_from_slice(&header.encode());
        file.write_at(buf, 0).await.map_err(|e| LogError::io(&tmp, "writing the snapshot header", e.into()))?;
        super::sync_off_core(&file, &tmp, "syncing the snapshot").await?;
        let _ = file.close().await;
        std::fs::rename(&tmp, path(dir)).map_err(|e| LogError::io(&tmp, "renaming the snapshot into place", e))?;
        super::sync_dir_off_core(dir, "syncing the shard directory").await?;
        Ok(Taken { seq, records, bytes: at, ms: started.elapsed().as_millis() as u64 })
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
    fn headers_round_trip_and_reject_damage() {
        let h = Header { shard: 2, seq: 99, records: 5, bytes: 640 };
        let b = h.encode();
        assert_eq!(Header::decode(&b), Some(h));
        for i in 0..44 {
            let mut bad = b;
            bad[i] ^= 1;
            assert_eq!(Header::decode(&bad), None, "byte {i}");
        }
    }
}
