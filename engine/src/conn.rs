//! One client connection: read frames in place, answer them in order,
//! coalesce the replies into one write — within deadlines a peer cannot
//! reset.
//!
//! The loop is: read what the socket has into the aligned [`RecvBuf`];
//! answer every whole frame in it (a batch runs start to end with no await,
//! so it is atomic with respect to every other connection of the shard);
//! write all the replies at once; read again. A client that pipelines many
//! frames gets its replies in request order, in as few writes as possible.
//! Each connection is its own task, so one that stalls (half a frame, or a
//! peer that does not read) blocks only itself.
//!
//! # Deadlines
//!
//! Every wait has a deadline fixed when the wait's reason began, so trickling
//! bytes does not move it:
//! - the hello must be answered within `handshake_timeout` of the accept;
//! - a frame must be complete within `frame_timeout` of the read that
//!   brought its first byte;
//! - a handshaken connection with nothing buffered may wait for its next
//!   byte `idle_timeout` (if set) after its last;
//! - a batch of replies must be written within `write_timeout` of the
//!   flush's start.
//!
//! # Durable shards
//!
//! On a shard with a log, a reply may leave only once what it could have
//! observed is safe (see [`Conn::hold_for_log`]). Each reply range in the
//! reply buffer is tagged with the sequence number it needs; the
//! connection goes on reading and executing its next frames while earlier
//! replies wait for a commit, and writes each range, in order, as the log's
//! mark passes it. A commit's latency thus does not idle the connection:
//! frames that arrive during one commit run and go into the next.
//!
//! Bad input ends the connection, never the shard: the peer gets an error
//! frame (after the replies to its earlier good frames), the write side is
//! shut, and the socket is drained for at most [`LINGER`] so the error is
//! not lost to a reset. Nothing of a refused frame is executed.
//!
//! # Memory
//!
//! Per connection, bounded: the receive buffer starts at [`INITIAL_RECV`]
//! and grows only as bytes arrive (at most twice what is buffered), up to
//! one frame beyond what has been answered (≤ `max_frame_bytes`; before the
//! handshake ≤ [`HANDSHAKE_MAX_FRAME`]); the reply buffer is flushed
//! whenever it passes [`FLUSH_AT`] (so it stays below `FLUSH_AT +
//! max_frame_bytes`), and both return to a small size when idle after a
//! large frame.

use crate::batch::execute;
use crate::resp::{AUTH_DELAY, Outcome, Session};
use crate::shard::{ConnSlot, Need, Shard};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};
use wire::buf::RecvBuf;
use wire::codec::{ResponseEncoder, decode, decode_request, encode, explain};
use wire::frame::{FrameError, Kind, MAGIC, Next, next_frame};
use wire::msg::{ArchivedHello, ArchivedRequest, ErrorBody, ErrorCode, StatsReply};

/// Replies are written once this many bytes are pending, even if more
/// whole frames are buffered.
pub const FLUSH_AT: usize = 1 << 20;
/// Initial receive buffer per connection (it doubles as bytes arrive).
pub const INITIAL_RECV: usize = 2 << 10;
/// Largest frame accepted before the hello is answered (a hello is a few
/// hundred bytes).
pub const HANDSHAKE_MAX_FRAME: usize = 64 << 10;
/// Reply buffers larger than this are released after a flush.
const KEEP_REPLY: usize = 1 << 20;
/// A connection yields to the shard's other tasks after this many
/// read-answer-write turns in a row.
const FAIR_TURNS: u32 = 8;
/// How long a connection closed with an error frame is drained, in all.
pub const LINGER: Duration = Duration::from_millis(200);
/// How long a refused connection's error frame may take to write.
const REFUSAL_WRITE: Duration = Duration::from_secs(1);

/// Why a connection is being closed with an error frame.
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal { code, message: message.into() }
    }
}

/// How a connection ends, other than by its peer closing it cleanly.
enum Close {
    /// Answer with an error frame, then close.
    Refuse(Refusal),
    /// The replies could not be written within the write timeout.
    WriteTimeout,
    /// The socket failed (reset, or cut by the shard): nothing more to say.
    Gone,
}

/// What to do after answering the buffered frames.
enum Step {
    /// Read more; the frame at the front of the buffer, if its header is in, is this long.
    Read(Option<usize>),
    /// Write the replies first: the reply buffer is full.
    Flush,
    /// Write the replies and close (RESP `QUIT`).
    Quit,
    /// Wait [`AUTH_DELAY`], then write the replies (a wrong secret).
    Penalty,
    /// RESP `SAVE`: wait for a snapshot, append its reply, go on.
    Save,
}

/// Which protocol a connection speaks, told by its first bytes: a percore
/// frame begins with `PCOR`, anything else is RESP.
enum Door {
    /// Nothing (or only a prefix of `PCOR`) has arrived yet.
    Unknown,
    /// percore frames.
    Frames,
    /// RESP, with the connection's state.
    Resp(Box<Session>),
}

/// Which deadline a wait for input runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Handshake,
    Frame,
    Idle,
}

struct Conn<'a> {
    shard: &'a Shard,
    slot: &'a ConnSlot,
    rbuf: RecvBuf,
    wbuf: Vec<u8>,
    enc: ResponseEncoder,
    /// When the connection was accepted (the handshake deadline runs from here).
    accepted: Instant,
    /// When the last read that brought bytes returned.
    last_input: Instant,
    /// When the first byte of the partial frame at the front of the buffer
    /// arrived (the read that brought it), if there is one.
    partial_since: Option<Instant>,
    /// Whole frames were consumed since the last read.
    consumed: bool,
    /// The protocol, once known.
    door: Door,
    /// Durable or replicated shards: the reply buffer's ranges not yet
    /// written, as (end offset in `wbuf`, what must be safe before the
    /// range may leave), in order; the last one ends at `wbuf.len()`.
    held: std::collections::VecDeque<(usize, Need)>,
}

/// Serves one admitted connection until it closes.
pub(crate) async fn serve(shard: Rc<Shard>, mut stream: TcpStream, slot: Rc<ConnSlot>) {
    let _ = stream.set_nodelay(true);
    let now = Instant::now();
    let max_frame = shard.setup.limits.max_frame_bytes as usize;
    let mut conn = Conn {
        shard: &shard,
        slot: &slot,
        rbuf: RecvBuf::new(INITIAL_RECV, max_frame.max(shard.setup.resp.limits.max_command_bytes)),
        wbuf: Vec::new(),
        enc: ResponseEncoder::new(),
        accepted: now,
        last_input: now,
        partial_since: None,
        consumed: false,
        door: Door::Unknown,
        held: std::collections::VecDeque::new(),
    };
    let result = conn.run(&mut stream).await;
    if !slot.evicted() {
        match result {
            Ok(()) | Err(Close::Gone) => {}
            Err(Close::WriteTimeout) => shard.count(|c| c.write_timeouts += 1),
            Err(Close::Refuse(refusal)) => {
                shard.count(|c| match refusal.code {
                    ErrorCode::HandshakeTimeout => c.handshake_timeouts += 1,
                    ErrorCode::IdleTimeout => c.idle_timeouts += 1,
                    ErrorCode::ShuttingDown => {}
                    code => {
                        c.protocol_errors += 1;
                        if code == ErrorCode::Timeout {
                            c.frame_timeouts += 1;
                        }
                    }
                });
                if refusal.code == ErrorCode::AuthFailed {
                    // As the RESP door's wrong AUTH: nothing is read meanwhile.
                    glommio::timer::sleep(AUTH_DELAY).await;
                }
                conn.refuse(&mut stream, refusal).await;
            }
        }
    }
    shard.unregister(&slot);
}

/// Answers a connection refused by a full shard with an error frame, drains
/// it briefly and closes it: done within about [`REFUSAL_WRITE`] + [`LINGER`].
pub(crate) async fn refuse_busy(shard: &Shard, mut stream: TcpStream) {
    if write_within(&mut stream, shard.busy_frame(), REFUSAL_WRITE).await.is_ok() {
        linger(&mut stream, &mut [0u8; 256]).await;
    }
}

/// Writes all of `bytes` within `limit` (one deadline for the whole write,
/// however slowly the peer reads).
async fn write_within(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> Result<(), Close> {
    let deadline = Instant::now() + limit;
    let mut written = 0;
    while written < bytes.len() {
        let now = Instant::now();
        if now >= deadline {
            return Err(Close::WriteTimeout);
        }
        let _ = stream.set_write_timeout(Some(deadline - now));
        match stream.write(&bytes[written..]).await {
            Ok(0) => return Err(Close::Gone),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Close::WriteTimeout),
            Err(_) => return Err(Close::Gone),
        }
    }
    Ok(())
}

/// Shuts the write side and reads (into `sink`, discarded) until the peer
/// closes, for at most [`LINGER`] in all (so an error frame just written is
/// not lost to a reset, and a trickling peer cannot stretch it).
async fn linger(stream: &mut TcpStream, sink: &mut [u8]) {
    let _ = stream.shutdown(Shutdown::Write).await;
    let deadline = Instant::now() + LINGER;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let _ = stream.set_read_timeout(Some(deadline - now));
        match stream.read(sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

impl Conn<'_> {
    /// Runs until the peer closes (`Ok`) or the connection must end (`Err`).
    async fn run(&mut self, stream: &mut TcpStream) -> Result<(), Close> {
        let mut turns = 0u32;
        loop {
            if let Some(log) = &self.shard.log {
                if self.shard.store.borrow().journal_pending() >= crate::log::writer::MAX_PENDING {
                    // The disk is behind the clients: wait for the writer
                    // before running more writes.
                    log.room(|| self.shard.store.borrow().journal_pending()).await.map_err(|_| Close::Gone)?;
                }
                // Writes are refused before they run while the log's disk
                // is full (NotDurable; RESP -MISCONF); reads go on.
                let mut store = self.shard.store.borrow_mut();
                let pending = store.journal_pending();
                store.refuse_writes(log.refuses_writes(pending));
            }
            let step = self.answer_buffered().map_err(Close::Refuse)?;
            if let Step::Penalty = step {
                glommio::timer::sleep(AUTH_DELAY).await;
            }
            if let Step::Save = step {
                // SAVE: a snapshot that starts after the command, and its reply.
                let ended = self.shard.snapshots.request();
                match self.shard.snapshots.wait(ended).await {
                    Ok(_) => wire::resp::reply::simple(&mut self.wbuf, "OK"),
                    Err(e) => wire::resp::reply::error(&mut self.wbuf, &format!("ERR snapshot failed: {e}")),
                }
            }
            if !self.shard.holds_replies() {
                if !self.wbuf.is_empty() {
                    self.flush(stream).await?;
                }
            } else {
                self.mark();
                self.release(stream).await?;
                if let Step::Flush = step
                    && self.wbuf.len() >= FLUSH_AT
                {
                    // The reply buffer is full of replies waiting for a
                    // commit: no more frames run until some leave.
                    self.wait_for_front().await?;
                    self.release(stream).await?;
                }
            }
            let frame_len = match step {
                Step::Flush | Step::Penalty | Step::Save => continue,
                Step::Quit => return self.drain_held(stream).await,
                Step::Read(frame_len) => frame_len,
            };
            if self.rbuf.is_empty() {
                self.partial_since = None;
            } else if self.consumed || self.partial_since.is_none() {
                // The partial frame's first byte came with the last read.
                self.partial_since = Some(self.last_input);
            }
            self.consumed = false;
            if self.shard.stopping.get() && self.rbuf.is_empty() {
                return self.drain_held(stream).await;
            }
            let read = if self.held.is_empty() {
                self.read(stream, frame_len).await
            } else {
                // Replies wait for a commit: read the next frames meanwhile,
                // and come back to write them as soon as the log moves.
                match self.read_or_log(stream, frame_len).await {
                    Some(read) => read,
                    None => continue,
                }
            };
            match read {
                Ok(()) => {}
                // The peer closed its side: it may still read what it is owed.
                Err(Close::Gone) if !self.wbuf.is_empty() => return self.drain_held(stream).await,
                Err(e) => return Err(e),
            }
            // Let the shard's other connections run now and then: a client
            // that always has frames waiting would otherwise keep this task
            // running (glommio does not preempt a running task).
            turns += 1;
            if turns.is_multiple_of(FAIR_TURNS) {
                futures_lite::future::yield_now().await;
            }
        }
    }

    /// Durable or replicated shards: tags the replies appended since the
    /// last mark with what they need (everything journaled so far, this
    /// connection's or another's; and, replicated, a read round), and
    /// wakes the writer or the proposer.
    fn mark(&mut self) {
        let end = self.wbuf.len();
        if !self.shard.holds_replies() || end == 0 || self.held.back().is_some_and(|&(e, _)| e == end) {
            return;
        }
        let need = self.shard.need_now();
        match self.held.back_mut() {
            Some(last) if last.1 == need => last.0 = end,
            _ => self.held.push_back((end, need)),
        }
        self.shard.nudge(need);
    }

    /// Writes the held replies that may leave, in order.
    async fn release(&mut self, stream: &mut TcpStream) -> Result<(), Close> {
        if !self.shard.holds_replies() {
            return Ok(());
        }
        let mut end = 0;
        while let Some(&(e, need)) = self.held.front() {
            match self.shard.safe_for(need) {
                Some(true) => {}
                Some(false) => break,
                // Nothing more is acknowledged once the log failed (the
                // node said what failed), or once the leadership these
                // replies were made under is gone (they may show changes
                // that never commit): the connection closes without them.
                None => return Err(Close::Gone),
            }
            end = e;
            self.held.pop_front();
        }
        if end == 0 {
            return Ok(());
        }
        write_within(stream, &self.wbuf[..end], self.shard.setup.opts.limits.write_timeout).await?;
        self.shard.count(|c| c.bytes_out += end as u64);
        self.wbuf.drain(..end);
        for h in &mut self.held {
            h.0 -= end;
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > KEEP_REPLY {
            self.wbuf = Vec::new();
        }
        Ok(())
    }

    /// Waits until the first held reply range may leave (or never will).
    async fn wait_for_front(&self) -> Result<(), Close> {
        let Some(&(_, need)) = self.held.front() else { return Ok(()) };
        self.shard.wait_safe(need).await.map_err(|_| Close::Gone)
    }

    /// Reads once, unless the first held reply range may leave first:
    /// `None` then (nothing was read; the read's deadline is untouched).
    async fn read_or_log(&mut self, stream: &mut TcpStream, frame_len: Option<usize>) -> Option<Result<(), Close>> {
        let shard = self.shard;
        let Some(&(_, need)) = self.held.front() else {
            return Some(self.read(stream, frame_len).await);
        };
        let logged = async move {
            // A failed log or a lost leadership is answered by `release`
            // on the next turn.
            let _ = shard.wait_safe(need).await;
            None
        };
        // A glommio socket read is a readiness wait and then a recv: when the
        // log wins, the dropped read has taken no bytes.
        futures_lite::future::or(async { Some(self.read(stream, frame_len).await) }, logged).await
    }

    /// Writes every held reply once it may leave (before a close).
    async fn drain_held(&mut self, stream: &mut TcpStream) -> Result<(), Close> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.hold_for_log().await?;
        self.held.clear();
        self.flush(stream).await
    }

    /// The earliest deadline the next read runs against, if any.
    fn deadline(&self) -> Option<(Instant, Wait)> {
        let limits = &self.shard.setup.opts.limits;
        let mut best: Option<(Instant, Wait)> = None;
        let mut consider = |at: Instant, why: Wait| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, why));
            }
        };
        if !self.slot.handshaken() {
            consider(self.accepted + limits.handshake_timeout, Wait::Handshake);
        }
        match (self.partial_since, limits.idle_timeout) {
            (Some(since), _) => consider(since + limits.frame_timeout, Wait::Frame),
            // A connection whose replies wait for the log is not idle.
            (None, Some(idle)) if self.slot.handshaken() && self.held.is_empty() => {
                consider(self.last_input + idle, Wait::Idle)
            }
            _ => {}
        }
        best
    }

    /// Reads once into the receive buffer, within the current deadline.
    async fn read(&mut self, stream: &mut TcpStream, frame_len: Option<usize>) -> Result<(), Close> {
        if !self.rbuf.prepare(frame_len) {
            // Frame lengths are checked against the limits before this, so
            // the buffer always has room: a bug, answered without a panic.
            return Err(Close::Refuse(Refusal::new(ErrorCode::FrameTooLarge, "receive buffer full")));
        }
        let deadline = self.deadline();
        let timeout = match deadline {
            None => None,
            Some((at, why)) => match at.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Err(Close::Refuse(self.expired(why, frame_len))),
            },
        };
        let _ = stream.set_read_timeout(timeout);
        match stream.read(self.rbuf.spare()).await {
            Ok(0) => {
                if self.rbuf.is_empty() {
                    return Err(Close::Gone);
                }
                let (code, why) = if self.shard.stopping.get() {
                    (ErrorCode::ShuttingDown, "server is shutting down")
                } else {
                    (ErrorCode::Corrupt, "connection closed mid-frame")
                };
                Err(Close::Refuse(Refusal::new(code, self.partial_message(why, frame_len))))
            }
            Ok(n) => {
                self.rbuf.commit(n);
                self.last_input = Instant::now();
                self.shard.count(|c| c.bytes_in += n as u64);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => match deadline {
                Some((_, why)) => Err(Close::Refuse(self.expired(why, frame_len))),
                None => Err(Close::Gone),
            },
            Err(_) => Err(Close::Gone),
        }
    }

    /// The refusal for a deadline that passed.
    fn expired(&self, why: Wait, frame_len: Option<usize>) -> Refusal {
        let limits = &self.shard.setup.opts.limits;
        let fmt = |d: Duration| humantime::format_duration(d).to_string();
        match why {
            Wait::Handshake => Refusal::new(
                ErrorCode::HandshakeTimeout,
                format!("hello not answered within {} of the connection being accepted", fmt(limits.handshake_timeout)),
            ),
            Wait::Frame => Refusal::new(
                ErrorCode::Timeout,
                self.partial_message(
                    &format!("frame not completed within {} of its first byte", fmt(limits.frame_timeout)),
                    frame_len,
                ),
            ),
            Wait::Idle => Refusal::new(
                ErrorCode::IdleTimeout,
                format!("no request for {} (idle_timeout)", fmt(limits.idle_timeout.unwrap_or_default())),
            ),
        }
    }

    fn partial_message(&self, why: &str, frame_len: Option<usize>) -> String {
        match frame_len {
            Some(len) => format!("{why}: got {} of {len} bytes", self.rbuf.len()),
            None => format!("{why}: got {} bytes of a 16-byte header", self.rbuf.len()),
        }
    }

    /// Waits until every change the replies in `wbuf` could have observed
    /// — everything the store has journaled so far, this connection's or
    /// another's — is as safe as the mode promises: durable in `fsync
    /// always` (no reply shows what a crash can take back), written to the
    /// device in `everysec` and `no` (a crash of the process alone loses
    /// nothing acknowledged; the machine's may lose what was not synced).
    /// If the log has failed, nothing more is acknowledged: the connection
    /// closes without these replies (the node said why).
    async fn hold_for_log(&self) -> Result<(), Close> {
        if !self.shard.holds_replies() {
            return Ok(());
        }
        let need = self.shard.need_now();
        self.shard.nudge(need);
        self.shard.wait_safe(need).await.map_err(|_| Close::Gone)
    }

    async fn flush(&mut self, stream: &mut TcpStream) -> Result<(), Close> {
        write_within(stream, &self.wbuf, self.shard.setup.opts.limits.write_timeout).await?;
        self.shard.count(|c| c.bytes_out += self.wbuf.len() as u64);
        self.wbuf.clear();
        if self.wbuf.capacity() > KEEP_REPLY {
            self.wbuf = Vec::new();
        }
        Ok(())
    }

    /// Answers every whole frame (or RESP command) in the receive buffer,
    /// appending replies.
    fn answer_buffered(&mut self) -> Result<Step, Refusal> {
        if let Door::Unknown = self.door {
            let seen = self.rbuf.filled();
            if seen.is_empty() || (seen.len() < MAGIC.len() && MAGIC.starts_with(seen)) {
                return Ok(Step::Read(None));
            }
            self.door = if seen.starts_with(&MAGIC) {
                Door::Frames
            } else {
                Door::Resp(Box::new(Session::new(&self.shard.setup.resp, self.slot.token())))
            };
        }
        if let Door::Resp(session) = &mut self.door {
            let s = self.shard;
            let before = self.rbuf.len();
            let outcome = session
                .answer(s, self.slot, &mut self.rbuf, &mut self.wbuf)
                .map_err(|message| Refusal::new(ErrorCode::Corrupt, message))?;
            // The partial command's deadline runs from its first byte: it
            // restarts only when whole commands were consumed.
            if self.rbuf.len() != before {
                self.consumed = true;
            }
            return Ok(match outcome {
                Outcome::Read(need) => Step::Read(need),
                Outcome::Flush => Step::Flush,
                Outcome::Quit => Step::Quit,
                Outcome::Penalty => Step::Penalty,
                Outcome::Save => Step::Save,
            });
        }
        loop {
            let next = next_frame(self.rbuf.filled(), &self.shard.setup.limits).map_err(frame_refusal)?;
            let frame = match next {
                Next::Frame(frame) => frame,
                Next::NeedMore { frame_len } => {
                    if let Some(len) = frame_len {
                        self.check_early_frame(len)?;
                    }
                    return Ok(Step::Read(frame_len));
                }
            };
            let len = frame.len();
            self.check_early_frame(len)?;
            let (kind, body) = (frame.header.kind, frame.body);
            match kind {
                Kind::Request => {
                    if !self.slot.handshaken() {
                        return Err(Refusal::new(
                            ErrorCode::Unexpected,
                            "request before the handshake: send a hello frame first",
                        ));
                    }
                    let req = decode_request(body, &self.shard.setup.limits)
                        .map_err(|e| body_refusal::<ArchivedRequest>(e, body))?;
                    let s = self.shard;
                    if !s.serving()
                        && let Some(leader) = s.leader_hint()
                    {
                        // A replica that does not serve runs nothing: every
                        // operation goes to the leader.
                        let n = req.ops.len();
                        self.enc.begin(&mut self.wbuf, req.batch_id.to_native(), n);
                        for _ in 0..n {
                            self.enc.not_leader(leader);
                        }
                        self.enc.finish(&mut self.wbuf);
                        s.count(|c| {
                            c.ops += n as u64;
                            c.wrong_shard += n as u64;
                        });
                    } else {
                        s.faults.before_batch();
                        let counts = execute(
                            &mut s.store.borrow_mut(),
                            crate::store::unix_ms(),
                            s.owned_now(),
                            s.setup.limits.max_frame_bytes as usize,
                            &s.faults,
                            req,
                            &mut self.wbuf,
                            &mut self.enc,
                        );
                        s.count(|c| counts.add_to(c));
                    }
                }
                Kind::Hello => {
                    let hello = decode::<ArchivedHello>(Kind::Hello, body)
                        .map_err(|e| body_refusal::<ArchivedHello>(e, body))?;
                    self.check_hello(hello)?;
                    self.wbuf.extend_from_slice(&self.shard.hello_reply());
                    self.shard.handshake_done(self.slot);
                }
                Kind::StatsRequest => {
                    if !self.slot.handshaken() {
                        // Counters are for a client that passed the hello (and its secret).
                        return Err(Refusal::new(
                            ErrorCode::Unexpected,
                            "stats request before the handshake: send a hello frame first",
                        ));
                    }
                    let s = self.shard;
                    let reply = StatsReply {
                        shard: s.setup.id,
                        node: s.setup.node.clone(),
                        cpu: s.setup.cpu,
                        uptime_ms: s.started.elapsed().as_millis() as u64,
                        counters: s.snapshot(),
                    };
                    encode(Kind::StatsReply, &reply, &mut self.wbuf)
                        .map_err(|e| Refusal::new(ErrorCode::Corrupt, e.to_string()))?;
                }
                other => {
                    return Err(frame_refusal(FrameError::Unexpected { kind: other }));
                }
            }
            self.rbuf.consume(len);
            self.consumed = true;
            // Each frame's replies wait only for what it could observe.
            self.mark();
            if self.wbuf.len() >= FLUSH_AT {
                return Ok(Step::Flush);
            }
        }
    }

    /// Before the handshake, frames are small: a peer that has not said
    /// hello cannot make the server buffer a large frame.
    fn check_early_frame(&self, len: usize) -> Result<(), Refusal> {
        if self.slot.handshaken() || len <= HANDSHAKE_MAX_FRAME {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::FrameTooLarge,
            format!(
                "frame of {len} bytes before the handshake: at most {HANDSHAKE_MAX_FRAME} until a hello is answered"
            ),
        ))
    }

    fn check_hello(&self, hello: &ArchivedHello) -> Result<(), Refusal> {
        let s = self.shard;
        if hello.protocol != wire::frame::PROTOCOL_VERSION {
            return Err(Refusal::new(
                ErrorCode::UnsupportedVersion,
                format!("client speaks protocol {}, server speaks {}", hello.protocol, wire::frame::PROTOCOL_VERSION),
            ));
        }
        if let Some(want) = &s.setup.opts.requirepass {
            // Before anything about the node is told. The refusal waits
            // AUTH_DELAY (in `serve`), so guessing is slow.
            match hello.password.as_ref() {
                None => {
                    return Err(Refusal::new(
                        ErrorCode::AuthFailed,
                        "this node requires a password: pass it with --password, the cluster file's requirepass or PERCORE_PASSWORD",
                    ));
                }
                Some(got) if !crate::resp::admin::same_secret(got.as_bytes(), want.as_bytes()) => {
                    return Err(Refusal::new(ErrorCode::AuthFailed, "wrong password"));
                }
                Some(_) => {}
            }
        }
        if let Some(want) = hello.shard.as_ref().map(|v| v.to_native())
            && want != s.setup.id
        {
            return Err(Refusal::new(
                ErrorCode::ShardMismatch,
                format!("client expects shard {want} on {}, server has shard {} there", s.setup.endpoint, s.setup.id),
            ));
        }
        if let Some(want) = hello.total_shards.as_ref().map(|v| v.to_native())
            && want != s.setup.total_shards
        {
            return Err(Refusal::new(
                ErrorCode::ShardCountMismatch,
                format!("client expects {want} shards in total, server's cluster has {}", s.setup.total_shards),
            ));
        }
        Ok(())
    }

    /// Sends the error frame after any pending replies (within the write
    /// timeout), shuts the write side, and drains briefly so the peer can
    /// read it before the close.
    async fn refuse(&mut self, stream: &mut TcpStream, refusal: Refusal) {
        // Replies to the good frames before the bad one are acknowledgements too.
        if !self.wbuf.is_empty() && self.hold_for_log().await.is_err() {
            return;
        }
        if let Door::Resp(_) = self.door {
            // Redis's way: one error reply, then the close.
            let message = match refusal.message.strip_prefix("ERR ") {
                Some(m) => m.to_string(),
                None => refusal.message,
            };
            wire::resp::reply::error(&mut self.wbuf, &format!("ERR {message}"));
        } else {
            let body = ErrorBody { code: refusal.code, message: refusal.message };
            if encode(Kind::Error, &body, &mut self.wbuf).is_err() {
                return;
            }
        }
        let limit = self.shard.setup.opts.limits.write_timeout;
        if write_within(stream, &self.wbuf, limit).await.is_ok() {
            // The receive buffer is done with: drain into it.
            self.rbuf.consume(self.rbuf.len());
            self.rbuf.prepare(None);
            linger(stream, self.rbuf.spare()).await;
        }
    }
}

fn frame_refusal(e: FrameError) -> Refusal {
    Refusal::new(e.code(), e.to_string())
}

fn body_refusal<T>(e: FrameError, body: &[u8]) -> Refusal
where
    T: rkyv::Portable + for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::low::LowValidator<'a, rkyv::rancor::BoxedError>>,
{
    match e {
        FrameError::Corrupt { kind } => {
            Refusal::new(ErrorCode::Corrupt, format!("corrupt {kind} body: {}", explain::<T>(body)))
        }
        other => frame_refusal(other),
    }
}
