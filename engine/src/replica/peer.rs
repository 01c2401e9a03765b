//! The wire between the replicas of one group: a hello that names the
//! group, the sender and where the sender's own peer port is (so that a
//! replica learns how to answer a member its cluster file does not name:
//! one that joined, or a leader that is moving away), then raft-rs
//! messages, each a little-endian `u32` length and the message's protobuf
//! bytes.
//!
//! A replica dials each peer once ([`Link`]) and sends on that connection
//! only; it receives on the connections its peers dialled. Messages queue
//! in a bounded [`Link`] while the connection is down or slow: Raft
//! tolerates lost messages (a heartbeat, an append or a vote is sent again
//! when needed), so a full queue drops the newest and the node is told the
//! peer is unreachable, never blocked.
//!
//! # Limits and trust
//!
//! A message longer than [`MAX_MESSAGE`] closes the connection before its
//! bytes are read. A replica serves at most [`MAX_UNIDENTIFIED`]
//! connections that have not sent their hello yet, each for at most
//! [`HELLO_TIMEOUT`], and one connection per fellow member: a member that
//! dials again (its old connection died on its side) replaces its old one,
//! which is closed. What a peer port holds is thus bounded by the group's
//! size, whoever connects to it. A joining replica (no membership yet)
//! also takes members it does not know, at most twice the largest group
//! (`wire::cluster::MAX_REPLICAS`) in all, each with a link to the endpoint
//! its hello advertises. The peer port serves a node's fellow replicas only:
//! raft-rs assumes its peers run raft-rs (a forged message claiming a
//! commit beyond a replica's log makes raft-rs panic), so a deployment
//! must keep it unreachable from clients, as Redis Cluster does its bus.
//! What is checked here: the hello's group and sender, that every message
//! comes from the sender the hello named and is addressed to this replica,
//! and that its type is one peers send (raft-rs refuses local types).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::task::Waker;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use protobuf::Message as _;
use raft::eraftpb::Message;

/// Bytes that open a peer connection.
pub const PEER_MAGIC: &[u8; 4] = b"PCRP";
/// Version of this wire.
pub const PEER_VERSION: u16 = 2;
/// Bytes of the hello's fixed part: magic, version (`u16`), zero (`u16`),
/// the group (`u32`, the shard's index) and the sender's replica id
/// (`u64`). A length byte and the sender's peer endpoint (`addr:port`, at
/// most [`MAX_ADVERTISED`] bytes, none if 0) follow.
pub const HELLO: usize = 20;
/// Longest peer endpoint a hello advertises.
pub const MAX_ADVERTISED: usize = 255;
/// Longest message accepted (a snapshot travels in one message).
pub const MAX_MESSAGE: usize = 256 << 20;
/// Messages a link holds for a peer it cannot reach (or that reads slowly).
pub const MAX_QUEUED: usize = 4096;

/// Connections a replica serves at once that have not named their sender.
pub const MAX_UNIDENTIFIED: usize = 16;
/// How long a connection may take to send its hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a write to a peer may wait before the link redials.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a peer connection was closed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The socket failed or closed.
    #[error("peer connection: {0}")]
    Io(#[from] std::io::Error),
    /// The first bytes are not a peer hello of this version.
    #[error("not a percore peer hello (want {PEER_MAGIC:?} version {PEER_VERSION})")]
    BadHello,
    /// The hello names another group than the one this replica is in.
    #[error("hello for group {got}, this replica serves group {want}")]
    WrongGroup {
        /// The group named.
        got: u32,
        /// This replica's group.
        want: u32,
    },
    /// The hello names a replica that is not a member.
    #[error("replica {0} is not a member of this group")]
    UnknownPeer(u64),
    /// [`MAX_UNIDENTIFIED`] connections are waiting for their hello already.
    #[error("{MAX_UNIDENTIFIED} peer connections have not sent their hello yet")]
    TooManyUnidentified,
    /// No hello came within [`HELLO_TIMEOUT`].
    #[error("no hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    /// The same member dialled again; this older connection gave way.
    #[error("replaced by a newer connection from the same member")]
    Replaced,
    /// A message's length is over [`MAX_MESSAGE`].
    #[error("message of {0} bytes (at most {MAX_MESSAGE})")]
    TooLarge(usize),
    /// A message's bytes are not a raft message.
    #[error("undecodable raft message: {0}")]
    Decode(String),
    /// A message claims another sender or receiver than the connection's.
    #[error("message from {from} to {to} on a connection from {peer} to {me}")]
    Misaddressed {
        /// The message's sender.
        from: u64,
        /// The message's receiver.
        to: u64,
        /// The connection's sender.
        peer: u64,
        /// This replica.
        me: u64,
    },
    /// raft-rs refused the message.
    #[error("raft refused the message: {0}")]
    Refused(String),
}

/// The hello a replica `from` of `group` opens its connections with,
/// advertising no endpoint.
pub fn hello(group: u32, from: u64) -> Vec<u8> {
    hello_from(group, from, "")
}

/// The hello of replica `from` of `group` whose peer port is at
/// `advertise` (`addr:port`; cut to [`MAX_ADVERTISED`] bytes).
pub fn hello_from(group: u32, from: u64, advertise: &str) -> Vec<u8> {
    let mut h = vec![0u8; HELLO];
    h[..4].copy_from_slice(PEER_MAGIC);
    h[4..6].copy_from_slice(&PEER_VERSION.to_le_bytes());
    h[8..12].copy_from_slice(&group.to_le_bytes());
    h[12..20].copy_from_slice(&from.to_le_bytes());
    let at = if advertise.len() <= MAX_ADVERTISED { advertise.as_bytes() } else { &[] };
    h.push(at.len() as u8);
    h.extend_from_slice(at);
    h
}

/// The group and sender a hello names.
pub fn parse_hello(h: &[u8; HELLO]) -> Result<(u32, u64), PeerError> {
    if &h[..4] != PEER_MAGIC || h[4..6] != PEER_VERSION.to_le_bytes() || h[6..8] != [0, 0] {
        return Err(PeerError::BadHello);
    }
    let group = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    let from = u64::from_le_bytes(h[12..20].try_into().expect("8 bytes"));
    Ok((group, from))
}

/// Appends `msg`, framed, to `out`.
pub fn encode(msg: &Message, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    msg.write_to_vec(out).expect("a raft message always encodes");
    let len = u32::try_from(out.len() - at - 4).expect("a raft message is under 4 GiB");
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}

fn is_snapshot(m: &Message) -> bool {
    m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot
}

/// Reads one framed message, reusing `buf` for its bytes.
pub async fn read_message(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Message, PeerError> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(PeerError::TooLarge(len));
    }
    // The buffer grows with the bytes that arrive, not with the length a
    // peer announces: a length alone makes the replica hold nothing.
    buf.clear();
    (&mut *stream).take(len as u64).read_to_end(buf).await?;
    if buf.len() < len {
        return Err(PeerError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Message::parse_from_bytes(buf).map_err(|e| PeerError::Decode(e.to_string()))
}

/// The sending side towards one peer: a bounded queue and the task that
/// keeps a connection to the peer and writes the queue to it.
#[derive(Debug)]
pub struct Link {
    /// The peer's replica id.
    pub peer: u64,
    addr: SocketAddr,
    queue: RefCell<VecDeque<Message>>,
    waker: RefCell<Option<Waker>>,
    /// Set when a message was dropped or the connection failed since the
    /// node last looked ([`Link::take_unreachable`]).
    unreachable: Cell<bool>,
    /// Whether the last snapshot queued was written out (`Some(true)`) or
    /// lost (`Some(false)`), since the node last looked.
    snapshot_sent: Cell<Option<bool>>,
    stopping: Cell<bool>,
}

impl Link {
    /// A link to replica `peer` at `addr` (not yet connected: see [`Link::run`]).
    pub fn new(peer: u64, addr: SocketAddr) -> Link {
        Link {
            peer,
            addr,
            queue: RefCell::new(VecDeque::new()),
            waker: RefCell::new(None),
            unreachable: Cell::new(false),
            snapshot_sent: Cell::new(None),
            stopping: Cell::new(false),
        }
    }

    /// Queues `msg`; a full queue drops it and marks the peer unreachable.
    pub fn send(&self, msg: Message) {
        let mut q = self.queue.borrow_mut();
        if q.len() >= MAX_QUEUED {
            self.unreachable.set(true);
            if is_snapshot(&msg) {
                self.snapshot_sent.set(Some(false));
            }
            return;
        }
        q.push_back(msg);
        drop(q);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Whether messages were lost since the last call (raft-rs is then told,
    /// so it probes the peer instead of streaming to it).
    pub fn take_unreachable(&self) -> bool {
        self.unreachable.replace(false)
    }

    /// Whether a snapshot was written to the peer (`Some(true)`) or lost
    /// (`Some(false)`) since the last call: raft-rs waits for this word
    /// before it sends the peer anything else.
    pub fn take_snapshot_sent(&self) -> Option<bool> {
        self.snapshot_sent.take()
    }

    /// Ends [`Link::run`].
    pub fn stop(&self) {
        self.stopping.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Keeps a connection to the peer and writes queued messages to it,
    /// all that are queued in one write; redials after a failure, backing
    /// off from `retry` up to a second. Messages queued while no connection
    /// is up are dropped (the peer is unreachable; raft-rs sends again).
    pub async fn run(&self, hello: &[u8], retry: Duration) {
        let mut backoff = retry;
        let mut out = Vec::new();
        while !self.stopping.get() {
            let conn = TcpStream::connect_timeout(self.addr, Duration::from_secs(1)).await;
            let mut stream = match conn {
                Ok(s) => s,
                Err(_) => {
                    self.drop_queued();
                    glommio::timer::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // A peer cut off by a partition leaves writes hanging until TCP
            // gives up (minutes): redial instead.
            let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
            backoff = retry;
            if stream.write_all(hello).await.is_err() {
                self.drop_queued();
                continue;
            }
            loop {
                self.wait_queued().await;
                if self.stopping.get() {
                    return;
                }
                out.clear();
                let mut snapshot = false;
                for m in self.queue.borrow_mut().drain(..) {
                    snapshot |= is_snapshot(&m);
                    encode(&m, &mut out);
                }
                let written = stream.write_all(&out).await.is_ok();
                if snapshot {
                    self.snapshot_sent.set(Some(written));
                }
                if !written {
                    self.drop_queued();
                    break;
                }
            }
        }
    }

    fn drop_queued(&self) {
        let mut q = self.queue.borrow_mut();
        if !q.is_empty() {
            if q.iter().any(is_snapshot) {
                self.snapshot_sent.set(Some(false));
            }
            q.clear();
            self.unreachable.set(true);
        }
    }

    async fn wait_queued(&self) {
        std::future::poll_fn(|cx| {
            if self.stopping.get() || !self.queue.borrow().is_empty() {
                return std::task::Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, MessageType};

    #[test]
    fn a_hello_round_trips_and_a_wrong_one_is_refused() {
        let fixed = |h: &[u8]| -> [u8; HELLO] { h[..HELLO].try_into().expect("a whole hello") };
        let h = hello_from(7, 3, "10.0.0.1:17000");
        assert_eq!(parse_hello(&fixed(&h)).unwrap(), (7, 3));
        assert_eq!(&h[HELLO..], b"\x0e10.0.0.1:17000", "the sender's peer endpoint follows, length first");
        assert_eq!(&hello(7, 3)[HELLO..], &[0], "none advertised");
        assert_eq!(hello_from(7, 3, &"x".repeat(MAX_ADVERTISED + 1))[HELLO..], [0], "too long: none");
        let mut bad = fixed(&h);
        bad[0] = b'X';
        assert!(matches!(parse_hello(&bad), Err(PeerError::BadHello)));
        let mut other_version = fixed(&h);
        other_version[4] = 1;
        assert!(matches!(parse_hello(&other_version), Err(PeerError::BadHello)), "version 1 is refused");
    }

    #[test]
    fn messages_are_framed_back_to_back() {
        let mut a = Message::default();
        a.set_msg_type(MessageType::MsgAppend);
        a.from = 1;
        a.to = 2;
        a.entries = vec![Entry { index: 5, term: 2, data: b"batch".to_vec().into(), ..Entry::default() }].into();
        let mut b = Message::default();
        b.set_msg_type(MessageType::MsgHeartbeat);
        let mut out = Vec::new();
        encode(&a, &mut out);
        encode(&b, &mut out);
        let first = u32::from_le_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(Message::parse_from_bytes(&out[4..4 + first]).unwrap(), a);
        let rest = &out[4 + first..];
        let second = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        assert_eq!(rest.len(), 4 + second);
        assert_eq!(Message::parse_from_bytes(&rest[4..]).unwrap(), b);
    }
}
