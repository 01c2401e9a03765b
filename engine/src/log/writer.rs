//! The shard's log writer: one task per durable shard that takes what the
//! store journaled, writes it as one commit, and moves the shard's
//! "written" and "durable" marks, which connections wait on.
//!
//! Exactly one write is in flight per shard: the task awaits each write
//! before it takes the next group. Everything journaled while a write was
//! in flight goes into the next one (group commit), so the commit rate
//! bounds latency, not throughput. A group that does not fit in what is
//! left of the segment is split at a record boundary; its rest starts a new
//! segment (created, pre-allocated and made durable in its directory before
//! anything is written to it). A commit never spans two segments.

use super::record;
use super::recover::Resume;
use super::{BLOCK, Durability, Fsync, LogError, segment_header, segment_path};
use glommio::io::{Directory, DmaFile, OpenOptions};
use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::task::Waker;
use std::time::{Duration, Instant};

/// How often `everysec` syncs.
pub const EVERYSEC: Duration = Duration::from_secs(1);
/// Spare segments kept for reuse after a snapshot; more are removed.
pub const MAX_SPARE: usize = 4;
/// Journal bytes past which new writes wait for the writer (so a disk
/// slower than the clients cannot make the shard hold unbounded memory).
pub const MAX_PENDING: usize = 64 << 20;

/// What a shard's connections and its writer share: the marks and who is
/// waiting on them. Lives in the shard, touched only by its executor.
#[derive(Debug, Default)]
pub struct LogState {
    /// The mode (only `Always` holds replies).
    pub mode: Fsync,
    /// Highest sequence number written to the device.
    written: Cell<u64>,
    /// Highest sequence number known durable.
    durable: Cell<u64>,
    /// Set when the log cannot go on: what failed and where.
    failed: RefCell<Option<String>>,
    /// Connections waiting for a mark to move.
    waiters: RefCell<Vec<Waker>>,
    /// The writer, waiting for records.
    writer: RefCell<Option<Waker>>,
    /// Set by [`LogState::kick`]: the writer looks at the journal again.
    kicked: Cell<bool>,
    /// Set when the shard stops: the writer commits what is left and ends.
    stopping: Cell<bool>,
    /// Commits so far, and their total time from take to completion (for
    /// the stats and the benchmarks).
    commits: Cell<u64>,
    commit_ns: Cell<u64>,
    /// Longest commit so far, ns.
    commit_max_ns: Cell<u64>,
    /// The log's segments in order: first sequence number and path (the
    /// last one is being written).
    chain: RefCell<std::collections::VecDeque<(u64, PathBuf)>>,
    /// Segment files whose records are all older than the snapshot: space
    /// the writer reuses before it creates a file.
    spare: RefCell<Vec<PathBuf>>,
    /// Log bytes written since the last snapshot.
    since_snapshot: Cell<u64>,
}

impl LogState {
    /// State for a log in `mode` whose records up to `recovered` are on disk.
    pub fn new(mode: Fsync, recovered: u64) -> LogState {
        let s = LogState { mode, ..LogState::default() };
        s.written.set(recovered);
        s.durable.set(recovered);
        s
    }

    /// Takes what recovery found: the segments in use and the spare ones.
    pub fn adopt(&self, chain: Vec<(u64, PathBuf)>, spare: Vec<PathBuf>, log_bytes: u64) {
        *self.chain.borrow_mut() = chain.into();
        *self.spare.borrow_mut() = spare;
        self.since_snapshot.set(log_bytes);
    }

    /// Log bytes written since the last snapshot (or since the start, for
    /// a node that has taken none).
    pub fn since_snapshot(&self) -> u64 {
        self.since_snapshot.get()
    }

    /// After a snapshot holding every change up to `seq` is durable: the
    /// segments that hold nothing later become spare space.
    pub fn truncate(&self, seq: u64) {
        let mut chain = self.chain.borrow_mut();
        let mut spare = self.spare.borrow_mut();
        while chain.len() >= 2 && chain[1].0 <= seq + 1 {
            if let Some((_, path)) = chain.pop_front() {
                if spare.len() < MAX_SPARE {
                    spare.push(path);
                } else {
                    // More space than the log needs again soon: back to the
                    // file system (an old segment is worthless once the
                    // snapshot is durable, so a failed removal costs only space).
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        self.since_snapshot.set(0);
    }

    /// Segments in use and spare (for the stats).
    pub fn segments(&self) -> (usize, usize) {
        (self.chain.borrow().len(), self.spare.borrow().len())
    }

    /// Highest sequence number known durable.
    pub fn durable(&self) -> u64 {
        self.durable.get()
    }

    /// Highest sequence number written.
    pub fn written(&self) -> u64 {
        self.written.get()
    }

    /// Why the log stopped, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Commits made, their mean and their longest time (ns).
    pub fn commit_stats(&self) -> (u64, u64, u64) {
        let n = self.commits.get();
        (n, self.commit_ns.get().checked_div(n).unwrap_or(0), self.commit_max_ns.get())
    }

    /// Wakes the writer if it waits for records.
    #[inline]
    pub fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.writer.borrow_mut().take() {
            w.wake();
        }
    }

    /// Waits until records up to `seq` are durable (`Ok`), or the log has
    /// failed (`Err`, with what failed).
    pub async fn durable_at(&self, seq: u64) -> Result<(), String> {
        std::future::poll_fn(|cx| {
            if self.durable.get() >= seq {
                return std::task::Poll::Ready(Ok(()));
            }
            if let Some(f) = self.failed.borrow().as_ref() {
                return std::task::Poll::Ready(Err(f.clone()));
            }
            self.kick();
            self.waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Waits until the writer has taken the journal below [`MAX_PENDING`]
    /// (`pending` reads it), or the log has failed.
    pub async fn room(&self, pending: impl Fn() -> usize) -> Result<(), String> {
        std::future::poll_fn(|cx| {
            if pending() < MAX_PENDING {
                return std::task::Poll::Ready(Ok(()));
            }
            if let Some(f) = self.failed.borrow().as_ref() {
                return std::task::Poll::Ready(Err(f.clone()));
            }
            self.kick();
            self.waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    fn wake_all(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Asks the writer to commit what is left and end.
    pub fn stop(&self) {
        self.stopping.set(true);
        self.kick();
    }

    fn fail(&self, e: &LogError) {
        *self.failed.borrow_mut() = Some(e.to_string());
        self.wake_all();
    }
}

/// The open segment and where the next record goes.
struct Open {
    file: DmaFile,
    /// Its first sequence number.
    base: u64,
    /// Offset of the next record.
    offset: u64,
    /// The bytes of the block holding `offset`, before it.
    tail: Vec<u8>,
}

/// The writer's own state (its task owns it).
pub struct Writer {
    dir: PathBuf,
    shard: u32,
    mode: Fsync,
    segment_bytes: u64,
    open: Option<Open>,
    /// Records taken from the journal, being written.
    group: Vec<u8>,
    /// Highest sequence number written since the last sync.
    unsynced: u64,
    last_sync: Instant,
}

fn open_options(mode: Fsync) -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true);
    if mode == Fsync::Always {
        o.custom_flags(libc::O_DSYNC);
    }
    o
}

impl Writer {
    /// A writer for shard `shard` in `dir`, going on from `resume` (what
    /// recovery found), or starting a new segment at its first commit.
    pub async fn open(dir: &Path, shard: u32, d: &Durability, resume: Option<Resume>) -> Result<Writer, LogError> {
        let open = match resume {
            Some(r) => {
                let file = open_options(d.fsync)
                    .dma_open(&r.path)
                    .await
                    .map_err(|e| LogError::io(&r.path, "opening the log segment", e.into()))?;
                Some(Open { file, base: r.base, offset: r.offset, tail: r.tail })
            }
            None => None,
        };
        Ok(Writer {
            dir: dir.to_path_buf(),
            shard,
            mode: d.fsync,
            segment_bytes: d.segment_bytes,
            open,
            group: Vec::new(),
            unsynced: 0,
            last_sync: Instant::now(),
        })
    }

    /// Creates the segment whose first record is `base`: pre-allocated,
    /// its name durable, its header written with its first commit.
    async fn start_segment(&mut self, base: u64, state: &LogState) -> Result<(), LogError> {
        if let Some(old) = self.open.take()
            && self.mode != Fsync::Always
        {
            // Everything in the old segment is synced before it is left.
            let path = segment_path(&self.dir, old.base);
            old.file.fdatasync().await.map_err(|e| LogError::io(&path, "syncing the log", e.into()))?;
        }
        let path = segment_path(&self.dir, base);
        // Reuse spare space first: its blocks are written already, so
        // O_DSYNC writes to it need no metadata change. Its old records are
        // older than any this segment will hold.
        let reused = state.spare.borrow_mut().pop();
        if let Some(old) = reused {
            std::fs::rename(&old, &path).map_err(|e| LogError::io(&old, "reusing a spare log segment", e))?;
        }
        let file = open_options(self.mode)
            .dma_open(&path)
            .await
            .map_err(|e| LogError::io(&path, "creating a log segment", e.into()))?;
        file.pre_allocate(self.segment_bytes, false)
            .await
            .map_err(|e| LogError::io(&path, "pre-allocating a log segment", e.into()))?;
        let dir = Directory::open(&self.dir)
            .await
            .map_err(|e| LogError::io(&self.dir, "opening the log directory", e.into()))?;
        dir.sync().await.map_err(|e| LogError::io(&self.dir, "syncing the log directory", e.into()))?;
        let _ = dir.close().await;
        self.open = Some(Open { file, base, offset: BLOCK as u64, tail: segment_header(self.shard, base).to_vec() });
        state.chain.borrow_mut().push_back((base, path));
        Ok(())
    }

    /// Writes `chunk` (whole unsealed records, the first numbered `first`)
    /// as one commit at the open segment's end.
    async fn write(&mut self, chunk: &mut [u8], first: u64) -> Result<(), LogError> {
        record::seal(chunk, first);
        let open = self
            .open
            .as_mut()
            .ok_or_else(|| LogError::io(&self.dir, "writing the log", std::io::Error::other("no open segment")))?;
        let block_start = open.offset - open.tail.len() as u64;
        let total = open.tail.len() + chunk.len();
        let size = total.next_multiple_of(BLOCK);
        let mut buf = open.file.alloc_dma_buffer(size);
        let bytes = buf.as_bytes_mut();
        bytes[..open.tail.len()].copy_from_slice(&open.tail);
        bytes[open.tail.len()..total].copy_from_slice(chunk);
        // DMA buffers are not zeroed: the padding must be, or old bytes
        // would land after the last record.
        bytes[total..].fill(0);
        let keep = total % BLOCK;
        let new_tail = bytes[total - keep..total].to_vec();
        let path = segment_path(&self.dir, open.base);
        let n =
            open.file.write_at(buf, block_start).await.map_err(|e| LogError::io(&path, "writing the log", e.into()))?;
        if n != size {
            return Err(LogError::io(
                &path,
                "writing the log",
                std::io::Error::other(format!("short write: {n} of {size} bytes")),
            ));
        }
        open.offset = block_start + total as u64;
        open.tail = new_tail;
        Ok(())
    }

    /// Commits the records in `self.group` (numbered `first` on): split
    /// where a segment ends.
    async fn commit(&mut self, first: u64, state: &LogState) -> Result<(), LogError> {
        let mut group = std::mem::take(&mut self.group);
        state.since_snapshot.set(state.since_snapshot.get() + group.len() as u64);
        let result = self.commit_all(&mut group, first, state).await;
        self.group = group;
        result
    }

    async fn commit_all(&mut self, group: &mut [u8], first: u64, state: &LogState) -> Result<(), LogError> {
        let mut from = 0;
        let mut seq = first;
        while from < group.len() {
            let room = match &self.open {
                Some(o) => self.segment_bytes.saturating_sub(o.offset) as usize,
                None => 0,
            };
            // Whole records that fit.
            let (mut end, mut n) = (from, 0u64);
            while end + record::HEADER <= group.len() {
                let len = u32::from_le_bytes([group[end + 4], group[end + 5], group[end + 6], group[end + 7]]) as usize;
                let next = end + record::padded(len);
                if next - from > room {
                    break;
                }
                end = next;
                n += 1;
            }
            if end == from {
                if self.open.as_ref().is_some_and(|o| o.offset == BLOCK as u64) {
                    return Err(LogError::io(
                        &self.dir,
                        "writing the log",
                        std::io::Error::other("a record larger than a whole log segment (raise log_segment_bytes)"),
                    ));
                }
                self.start_segment(seq, state).await?;
                continue;
            }
            self.write(&mut group[from..end], seq).await?;
            from = end;
            seq += n;
        }
        Ok(())
    }

    async fn sync(&mut self) -> Result<(), LogError> {
        if let Some(o) = &self.open {
            let path = segment_path(&self.dir, o.base);
            o.file.fdatasync().await.map_err(|e| LogError::io(&path, "syncing the log", e.into()))?;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// The writer task: commits what `journal` (borrowed through `take`) holds
/// whenever it holds something, until `state.stop()`; then commits the
/// rest, syncs, and ends.
pub async fn run(mut w: Writer, state: &LogState, mut take: impl FnMut(&mut Vec<u8>) -> Option<(u64, u64)>) {
    loop {
        let mut group = std::mem::take(&mut w.group);
        let taken = take(&mut group);
        w.group = group;
        if let Some((first, last)) = taken {
            let t = Instant::now();
            if let Err(e) = w.commit(first, state).await {
                eprintln!("percore-server: shard {}: the durable log failed: {e}", w.shard);
                state.fail(&e);
                return;
            }
            state.written.set(last);
            w.unsynced = last;
            if w.mode == Fsync::Always {
                state.durable.set(last);
            }
            let ns = t.elapsed().as_nanos() as u64;
            state.commits.set(state.commits.get() + 1);
            state.commit_ns.set(state.commit_ns.get() + ns);
            state.commit_max_ns.set(state.commit_max_ns.get().max(ns));
            state.wake_all();
        }
        let due = w.mode == Fsync::Everysec && w.unsynced > state.durable.get() && w.last_sync.elapsed() >= EVERYSEC;
        if due {
            let upto = w.unsynced;
            if let Err(e) = w.sync().await {
                eprintln!("percore-server: shard {}: the durable log failed: {e}", w.shard);
                state.fail(&e);
                return;
            }
            state.durable.set(upto);
            state.wake_all();
        }
        if taken.is_some() || due {
            // Records may have come in during the awaits: take again
            // before waiting (the wait below is registered with no await
            // between the empty take and it).
            continue;
        }
        if state.stopping.get() {
            if w.mode != Fsync::Always
                && let Err(e) = w.sync().await
            {
                eprintln!("percore-server: shard {}: the durable log failed at shutdown: {e}", w.shard);
                state.fail(&e);
                return;
            }
            state.durable.set(state.written.get());
            state.wake_all();
            return;
        }
        // Nothing to write: wait for a kick, or for the next sync.
        state.kicked.set(false);
        let wait = std::future::poll_fn(|cx| {
            if state.stopping.get() || state.kicked.get() {
                return std::task::Poll::Ready(());
            }
            *state.writer.borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        });
        if w.mode == Fsync::Everysec && w.unsynced > state.durable.get() {
            let left = EVERYSEC.saturating_sub(w.last_sync.elapsed());
            futures_lite::future::or(wait, glommio::timer::sleep(left)).await;
        } else {
            wait.await;
        }
    }
}
