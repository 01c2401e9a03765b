//! One client connection: read frames in place, answer them in order,
//! coalesce the replies into one write.
//!
//! The loop is: read as much as the socket has into the aligned
//! [`RecvBuf`]; answer every whole frame in it (a batch runs start to end
//! with no await, so it is atomic with respect to every other connection
//! of the shard); write all the replies at once; read again. A client that
//! pipelines many frames gets its replies in request order, in as few
//! writes as possible. Each connection is its own task, so one that stalls
//! (half a frame, or a peer that does not read) blocks only itself.
//!
//! Bad input ends the connection, never the shard: the peer gets an error
//! frame (after the replies to its earlier good frames), the write side is
//! shut, and the socket is drained briefly so the error is not lost to a
//! reset. Nothing of a refused frame is executed.
//!
//! Memory per connection is bounded: the receive buffer holds at most one
//! frame beyond what has been answered (≤ `max_frame_bytes`), the reply
//! buffer is flushed whenever it passes [`FLUSH_AT`] (so it stays below
//! `FLUSH_AT + max_frame_bytes`), and both return to their small initial
//! size when idle after a large frame.

use crate::batch::execute_with;
use crate::shard::Shard;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;
use wire::buf::RecvBuf;
use wire::codec::{ResponseEncoder, decode, decode_request, encode, explain};
use wire::frame::{FrameError, Kind, Next, next_frame};
use wire::msg::{ArchivedHello, ArchivedRequest, ErrorBody, ErrorCode, StatsReply};

/// Replies are written once this many bytes are pending, even if more
/// whole frames are buffered.
pub const FLUSH_AT: usize = 1 << 20;
/// Initial receive buffer per connection.
pub const INITIAL_RECV: usize = 16 << 10;
/// Reply buffers larger than this are released after a flush.
const KEEP_REPLY: usize = 1 << 20;
/// A connection yields to the shard's other tasks after this many
/// read-answer-write turns in a row.
const FAIR_TURNS: u32 = 8;
/// How long a refused connection is drained before it is closed.
const LINGER: Duration = Duration::from_millis(200);

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

/// What to do after answering the buffered frames.
enum Step {
    /// Read more; the frame at the front of the buffer, if its header is in, is this long.
    Read(Option<usize>),
    /// Write the replies first: the reply buffer is full.
    Flush,
}

struct Conn<'a> {
    shard: &'a Shard,
    rbuf: RecvBuf,
    wbuf: Vec<u8>,
    enc: ResponseEncoder,
    handshaken: bool,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve(shard: Rc<Shard>, mut stream: TcpStream) {
    let token = shard.register(stream.as_raw_fd());
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shard.opts.write_timeout));
    let mut conn = Conn {
        shard: &shard,
        rbuf: RecvBuf::new(INITIAL_RECV, shard.limits.max_frame_bytes as usize),
        wbuf: Vec::with_capacity(INITIAL_RECV),
        enc: ResponseEncoder::new(),
        handshaken: false,
    };
    if let Err(Some(refusal)) = conn.run(&mut stream).await {
        shard.count(|c| c.protocol_errors += 1);
        conn.refuse(&mut stream, refusal).await;
    }
    shard.unregister(token);
}

/// Answers a connection over the shard's cap with an error frame and closes it.
pub(crate) async fn refuse_busy(shard: Rc<Shard>, mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let mut conn = Conn {
        shard: &shard,
        rbuf: RecvBuf::new(1024, 1024),
        wbuf: Vec::new(),
        enc: ResponseEncoder::new(),
        handshaken: false,
    };
    let message = format!(
        "shard {} on {} already has {} connections open (max_connections)",
        shard.id, shard.endpoint, shard.opts.max_connections
    );
    conn.refuse(&mut stream, Refusal::new(ErrorCode::TooManyConnections, message)).await;
}

impl Conn<'_> {
    /// Runs until the peer closes (`Ok`), the socket fails (`Err(None)`), or
    /// the peer breaks the protocol (`Err(Some(refusal))`).
    async fn run(&mut self, stream: &mut TcpStream) -> Result<(), Option<Refusal>> {
        let mut turns = 0u32;
        loop {
            let step = self.answer_buffered().map_err(Some)?;
            if !self.wbuf.is_empty() {
                self.flush(stream).await.map_err(|_| None)?;
            }
            let frame_len = match step {
                Step::Flush => continue,
                Step::Read(frame_len) => frame_len,
            };
            if self.shard.stopping.get() && self.rbuf.is_empty() {
                return Ok(());
            }
            self.rbuf.prepare(frame_len);
            // A frame in progress must complete within the frame timeout.
            let timeout = if self.rbuf.is_empty() { None } else { Some(self.shard.opts.frame_timeout) };
            let _ = stream.set_read_timeout(timeout);
            match stream.read(self.rbuf.spare()).await {
                Ok(0) => {
                    if self.rbuf.is_empty() {
                        return Ok(());
                    }
                    let (code, why) = if self.shard.stopping.get() {
                        (ErrorCode::ShuttingDown, "server is shutting down")
                    } else {
                        (ErrorCode::Corrupt, "connection closed mid-frame")
                    };
                    return Err(Some(Refusal::new(code, self.partial_message(why, frame_len))));
                }
                Ok(n) => {
                    self.rbuf.commit(n);
                    self.shard.count(|c| c.bytes_in += n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    let why = format!("frame not completed within {:?}", self.shard.opts.frame_timeout);
                    return Err(Some(Refusal::new(ErrorCode::Timeout, self.partial_message(&why, frame_len))));
                }
                Err(_) => return Err(None),
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

    fn partial_message(&self, why: &str, frame_len: Option<usize>) -> String {
        match frame_len {
            Some(len) => format!("{why}: got {} of {len} bytes", self.rbuf.len()),
            None => format!("{why}: got {} bytes of a 16-byte header", self.rbuf.len()),
        }
    }

    async fn flush(&mut self, stream: &mut TcpStream) -> io::Result<()> {
        stream.write_all(&self.wbuf).await?;
        self.shard.count(|c| c.bytes_out += self.wbuf.len() as u64);
        self.wbuf.clear();
        if self.wbuf.capacity() > KEEP_REPLY {
            self.wbuf = Vec::with_capacity(INITIAL_RECV);
        }
        Ok(())
    }

    /// Answers every whole frame in the receive buffer, appending replies.
    fn answer_buffered(&mut self) -> Result<Step, Refusal> {
        loop {
            let next = next_frame(self.rbuf.filled(), &self.shard.limits).map_err(frame_refusal)?;
            let frame = match next {
                Next::Frame(frame) => frame,
                Next::NeedMore { frame_len } => return Ok(Step::Read(frame_len)),
            };
            let len = frame.len();
            let (kind, body) = (frame.header.kind, frame.body);
            match kind {
                Kind::Request => {
                    if !self.handshaken {
                        return Err(Refusal::new(
                            ErrorCode::Unexpected,
                            "request before the handshake: send a hello frame first",
                        ));
                    }
                    let req = decode_request(body, &self.shard.limits)
                        .map_err(|e| body_refusal::<ArchivedRequest>(e, body))?;
                    let s = self.shard;
                    let counts = execute_with(
                        &mut s.store.borrow_mut(),
                        &s.owned,
                        s.limits.max_frame_bytes as usize,
                        &s.faults,
                        req,
                        &mut self.wbuf,
                        &mut self.enc,
                    );
                    s.count(|c| counts.add_to(c));
                }
                Kind::Hello => {
                    let hello = decode::<ArchivedHello>(Kind::Hello, body)
                        .map_err(|e| body_refusal::<ArchivedHello>(e, body))?;
                    self.check_hello(hello)?;
                    self.wbuf.extend_from_slice(&self.shard.hello_reply);
                    self.handshaken = true;
                }
                Kind::StatsRequest => {
                    let s = self.shard;
                    let reply = StatsReply {
                        shard: s.id,
                        node: s.node.clone(),
                        cpu: s.cpu,
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
            if self.wbuf.len() >= FLUSH_AT {
                return Ok(Step::Flush);
            }
        }
    }

    fn check_hello(&self, hello: &ArchivedHello) -> Result<(), Refusal> {
        let s = self.shard;
        if hello.protocol != wire::frame::PROTOCOL_VERSION {
            return Err(Refusal::new(
                ErrorCode::UnsupportedVersion,
                format!("client speaks protocol {}, server speaks {}", hello.protocol, wire::frame::PROTOCOL_VERSION),
            ));
        }
        if let Some(want) = hello.shard.as_ref().map(|v| v.to_native())
            && want != s.id
        {
            return Err(Refusal::new(
                ErrorCode::ShardMismatch,
                format!("client expects shard {want} on {}, server has shard {} there", s.endpoint, s.id),
            ));
        }
        if let Some(want) = hello.total_shards.as_ref().map(|v| v.to_native())
            && want != s.total_shards
        {
            return Err(Refusal::new(
                ErrorCode::ShardCountMismatch,
                format!("client expects {want} shards in total, server's cluster has {}", s.total_shards),
            ));
        }
        Ok(())
    }

    /// Sends the error frame after any pending replies, shuts the write
    /// side, and drains briefly so the peer can read it before the close.
    async fn refuse(&mut self, stream: &mut TcpStream, refusal: Refusal) {
        let body = ErrorBody { code: refusal.code, message: refusal.message };
        if encode(Kind::Error, &body, &mut self.wbuf).is_err() {
            return;
        }
        if self.flush(stream).await.is_err() {
            return;
        }
        let _ = stream.shutdown(Shutdown::Write).await;
        let _ = stream.set_read_timeout(Some(LINGER));
        let mut sink = [0u8; 4096];
        let mut drained = 0usize;
        while drained < (1 << 20) {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
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
