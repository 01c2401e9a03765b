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
use super::{BLOCK, Durability, Fsync, LogError, segment_header, segment_path, sync_off_core};
use glommio::io::{DmaFile, OpenOptions};
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
    /// Bytes the log can still take without creating a file: what is left
    /// of the open segment and the spare segments.
    room: Cell<u64>,
    /// Set while no spare segment could be made (the disk is full): then
    /// writes are refused once `room` runs low, before they run.
    no_space: RefCell<Option<String>>,
    /// Bytes of room kept back (two of the largest batches: records of
    /// batches already run, not yet taken by the writer, come on top of
    /// the journal's pending bytes).
    margin: Cell<u64>,
    /// Bytes of the commit in flight (taken from the journal, not yet in
    /// the segment).
    inflight: Cell<u64>,
}

impl LogState {
    /// State for a log in `mode` whose records up to `recovered` are on disk.
    pub fn new(mode: Fsync, recovered: u64) -> LogState {
        let s = LogState { mode, ..LogState::default() };
        s.written.set(recovered);
        s.durable.set(recovered);
        s
    }

    /// True while writes must be refused: the log has failed, or its disk
    /// is full and the room left (less `pending` journaled bytes) is
    /// within the margin.
    #[inline]
    pub fn refuses_writes(&self, pending: usize) -> bool {
        (self.no_space.borrow().is_some() && self.room.get() < pending as u64 + self.inflight.get() + self.margin.get())
            || self.failed.borrow().is_some()
    }

    /// Why the log has no room, if it has none.
    pub fn no_space(&self) -> Option<String> {
        self.no_space.borrow().clone()
    }

    /// Sets the room kept back for batches already run (two of the
    /// largest frames).
    pub fn set_margin(&self, bytes: u64) {
        self.margin.set(bytes);
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

    /// The mark a reply waits for in this mode: durable in `always` (no
    /// reply shows what a crash can take back), written in `everysec` and
    /// `no` (a crash of the process alone loses nothing acknowledged, as
    /// Redis writes its AOF to the kernel before replying).
    #[inline]
    pub fn safe(&self) -> u64 {
        self.safe_mark().get()
    }

    /// Waits until records up to `seq` are [`LogState::safe`] (`Ok`), or the
    /// log has failed (`Err`, with what failed).
    pub async fn safe_at(&self, seq: u64) -> Result<(), String> {
        let mark = self.safe_mark();
        self.wait_until(|| mark.get() >= seq).await
    }

    fn safe_mark(&self) -> &Cell<u64> {
        if self.mode == Fsync::Always { &self.durable } else { &self.written }
    }

    /// Waits until the writer has taken the journal below [`MAX_PENDING`]
    /// (`pending` reads it), or the log has failed.
    pub async fn room(&self, pending: impl Fn() -> usize) -> Result<(), String> {
        self.wait_until(|| pending() < MAX_PENDING).await
    }

    /// Waits, with the writer kicked, until `done` holds (`Ok`) or the log
    /// has failed (`Err`, with what failed); woken after every commit.
    async fn wait_until(&self, done: impl Fn() -> bool) -> Result<(), String> {
        std::future::poll_fn(|cx| {
            if done() {
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
    /// When a spare segment was last tried for.
    last_try: Instant,
    /// A new spare segment being filled with zeroes, and how far: the
    /// writer writes a chunk whenever it has no records to commit, so
    /// that later synced writes land on written blocks (fallocated,
    /// unwritten ones make each write a metadata change too).
    filling: Option<(DmaFile, PathBuf, u64)>,
}

fn open_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(true).create(true);
    o
}

impl Writer {
    /// A writer for shard `shard` in `dir`, going on from `resume` (what
    /// recovery found), or starting a new segment at its first commit.
    pub async fn open(dir: &Path, shard: u32, d: &Durability, resume: Option<Resume>) -> Result<Writer, LogError> {
        let open = match resume {
            Some(r) => {
                let file = open_options()
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
            last_try: Instant::now(),
            filling: None,
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
            sync_off_core(&old.file, &path, "syncing the log").await?;
        }
        let path = segment_path(&self.dir, base);
        // Reuse spare space first: its blocks are written already, so
        // synced writes to it need no metadata change. Its old records are
        // older than any this segment will hold.
        let reused = state.spare.borrow_mut().pop();
        if let Some(old) = reused {
            std::fs::rename(&old, &path).map_err(|e| LogError::io(&old, "reusing a spare log segment", e))?;
        }
        let file = open_options()
            .dma_open(&path)
            .await
            .map_err(|e| LogError::io(&path, "creating a log segment", e.into()))?;
        file.pre_allocate(self.segment_bytes, false)
            .await
            .map_err(|e| LogError::io(&path, "pre-allocating a log segment", e.into()))?;
        super::sync_dir_off_core(&self.dir, "syncing the log directory").await?;
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

    /// Keeps a spare segment ready before the open one fills: when none is
    /// spare and the open segment is half used (or none is open), creates
    /// and pre-allocates one. If the disk has no room for it, says so once
    /// and marks the log short of space (writes are then refused before the
    /// room left runs out; retried at most once a second). Updates `room`.
    async fn keep_room(&mut self, state: &LogState) {
        let left = self.open.as_ref().map_or(0, |o| self.segment_bytes.saturating_sub(o.offset));
        let spares = state.spare.borrow().len() as u64 + self.filling.is_some() as u64;
        state.room.set(left + spares * self.segment_bytes);
        if spares > 0 {
            if state.no_space.borrow_mut().take().is_some() {
                eprintln!("percore-server: shard {}: the log has room again: writes are accepted", self.shard);
            }
            return;
        }
        let short = state.no_space.borrow().is_some();
        if (!short && self.open.is_some() && left > self.segment_bytes / 2)
            || (short && self.last_try.elapsed() < EVERYSEC)
        {
            return;
        }
        self.last_try = Instant::now();
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = self.dir.join(format!("free-{nanos}.seg"));
        let made = async {
            let file = open_options().dma_open(&path).await?;
            match file.pre_allocate(self.segment_bytes, false).await {
                Ok(()) => Ok(file),
                Err(e) => {
                    let _ = file.close().await;
                    Err(e)
                }
            }
        }
        .await;
        match made {
            Ok(file) => {
                self.filling = Some((file, path, 0));
                state.room.set(left + self.segment_bytes);
                if state.no_space.borrow_mut().take().is_some() {
                    eprintln!("percore-server: shard {}: the log has room again: writes are accepted", self.shard);
                }
            }
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                let why = format!(
                    "{}: no room for the next log segment ({} bytes): {e}",
                    self.dir.display(),
                    self.segment_bytes
                );
                if !short {
                    eprintln!(
                        "percore-server: shard {}: {why}; writes will be refused (NotDurable, RESP -MISCONF) before the open segment is full; reads go on",
                        self.shard
                    );
                }
                *state.no_space.borrow_mut() = Some(why);
            }
        }
    }

    /// Writes the next chunk of zeroes into the spare segment being
    /// filled; when it is full, syncs it and hands it to the spares. True
    /// if there was something to do. A failure drops the file (the room
    /// is looked for again).
    async fn fill_some(&mut self, state: &LogState) -> bool {
        const CHUNK: u64 = 1 << 20;
        let Some((file, path, at)) = self.filling.take() else { return false };
        let n = CHUNK.min(self.segment_bytes - at) as usize;
        let mut buf = file.alloc_dma_buffer(n);
        buf.as_bytes_mut().fill(0);
        match file.write_at(buf, at).await {
            Ok(w) if w == n && at + (n as u64) < self.segment_bytes => self.filling = Some((file, path, at + n as u64)),
            Ok(w) if w == n => {
                let synced = sync_off_core(&file, &path, "syncing a spare log segment").await;
                let _ = file.close().await;
                if synced.is_ok() {
                    state.spare.borrow_mut().push(path);
                } else {
                    let _ = std::fs::remove_file(&path);
                }
            }
            _ => {
                let _ = file.close().await;
                let _ = std::fs::remove_file(&path);
            }
        }
        true
    }

    async fn sync(&mut self) -> Result<(), LogError> {
        if let Some(o) = &self.open {
            let path = segment_path(&self.dir, o.base);
            sync_off_core(&o.file, &path, "syncing the log").await?;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// The writer task: commits what `journal` (borrowed through `take`) holds
/// whenever it holds something, until `state.stop()`; then commits the
/// rest, syncs, and ends.
pub async fn run(mut w: Writer, state: &LogState, mut take: impl FnMut(&mut Vec<u8>) -> Option<(u64, u64)>) {
    w.keep_room(state).await;
    loop {
        let mut group = std::mem::take(&mut w.group);
        let taken = take(&mut group);
        w.group = group;
        if let Some((first, last)) = taken {
            state.inflight.set(w.group.len() as u64);
            let t = Instant::now();
            if let Err(e) = w.commit(first, state).await {
                eprintln!("percore-server: shard {}: the durable log failed: {e}", w.shard);
                state.fail(&e);
                return;
            }
            if w.mode == Fsync::Always
                && let Err(e) = w.sync().await
            {
                eprintln!("percore-server: shard {}: the durable log failed: {e}", w.shard);
                state.fail(&e);
                return;
            }
            state.inflight.set(0);
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
            w.keep_room(state).await;
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
        // Idle: zero the next chunk of a spare segment, if one is filling.
        let filled = taken.is_none() && !due && !state.stopping.get() && w.fill_some(state).await;
        if taken.is_some() || due || filled {
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
        } else if state.no_space.borrow().is_some() {
            // Short of space: look again in a second (a snapshot or the
            // operator may have made room).
            futures_lite::future::or(wait, glommio::timer::sleep(EVERYSEC)).await;
            w.keep_room(state).await;
        } else {
            wait.await;
        }
    }
}
