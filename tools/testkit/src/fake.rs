//! A fake one-shard percore node on loopback that refuses every write with
//! one per-operation error: how a client's handling of a refusal a real
//! node gives only in conditions a test cannot cheaply make (a full or
//! failing log disk: `NotDurable`; a full `maxmemory`: `OutOfMemory`) is
//! tested.
//!
//! It speaks the real protocol of this build: it answers a hello with a
//! map of one shard (itself) owning every slot, and a request with one
//! result per operation: a GET finds nothing, a PUT or DELETE gets the
//! chosen error. Nothing is stored. Anything it cannot read closes that
//! connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use wire::Limits;
use wire::buf::RecvBuf;
use wire::codec::{ResponseEncoder, decode_request, encode};
use wire::frame::{Kind, Next, PROTOCOL_VERSION, next_frame};
use wire::msg::{ArchivedOp, HelloReply, OpError, ShardInfo, SlotRange};

/// The fake node: listening until dropped.
pub struct FakeNode {
    addr: String,
    refused: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl FakeNode {
    /// Listens on a free loopback port; every PUT and DELETE it is sent is
    /// answered with `refusal`.
    pub fn start(refusal: OpError) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let addr = format!("127.0.0.1:{port}");
        let refused = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (refused, stop) = (refused.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let refused = refused.clone();
                    std::thread::spawn(move || serve(stream, port, refusal, &refused));
                }
            })
        };
        FakeNode { addr, refused, stop, accept: Some(accept) }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// The handshake reply: one shard, this node, every slot.
fn hello_reply(port: u16) -> HelloReply {
    HelloReply {
        protocol: PROTOCOL_VERSION,
        shard: 0,
        total_shards: 1,
        node: "fake".into(),
        limits: Limits::default().into(),
        map: vec![ShardInfo {
            id: 0,
            node: "fake".into(),
            addr: "127.0.0.1".into(),
            port,
            cpu: 0,
            slots: vec![SlotRange { start: 0, end: (wire::slot::SLOTS - 1) as u16 }],
            replicas: Vec::new(),
            leader: 0,
        }],
    }
}

/// Answers one connection until it closes or sends something unreadable.
fn serve(mut stream: TcpStream, port: u16, refusal: OpError, refused: &AtomicU64) {
    let limits = Limits::default();
    let mut rbuf = RecvBuf::new(64 << 10, limits.max_frame_bytes as usize);
    let (mut out, mut enc) = (Vec::new(), ResponseEncoder::new());
    loop {
        let Ok(next) = next_frame(rbuf.filled(), &limits) else { return };
        match next {
            Next::NeedMore { frame_len } => {
                rbuf.prepare(frame_len);
                match stream.read(rbuf.spare()) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => rbuf.commit(n),
                }
            }
            Next::Frame(frame) => {
                let len = frame.len();
                out.clear();
                match frame.header.kind {
                    Kind::Hello => {
                        if encode(Kind::HelloReply, &hello_reply(port), &mut out).is_err() {
                            return;
                        }
                    }
                    Kind::Request => {
                        let Ok(req) = decode_request(frame.body, &limits) else { return };
                        enc.begin(&mut out, req.batch_id.to_native(), req.ops.len());
                        for op in req.ops.iter() {
                            match op {
                                ArchivedOp::Get { .. } => enc.not_found(),
                                ArchivedOp::Put { .. } | ArchivedOp::Delete { .. } => {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                    enc.error(refusal);
                                }
                            }
                        }
                        enc.finish(&mut out);
                    }
                    _ => return,
                }
                rbuf.consume(len);
                if stream.write_all(&out).is_err() {
                    return;
                }
            }
        }
    }
}
