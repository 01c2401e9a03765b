//! A small blocking client: the handshake, single batches, stats, and
//! routing across every shard of a cluster.
//!
//! This is the simple client the `percore` CLI and the tests use; the load
//! generator has its own pipelined, multiplexed one built on the same
//! encoders and decoders. [`Connection`] is one shard; [`Client`] routes
//! operations to shards with [`crate::cluster::ShardMap`].

use crate::buf::RecvBuf;
use crate::cluster::{Cluster, ShardMap};
use crate::codec::{RequestEncoder, decode, decode_response, encode};
use crate::error::Error;
use crate::frame::{FrameError, Kind, Next, PROTOCOL_VERSION, next_frame};
use crate::limits::Limits;
use crate::msg::{
    ArchivedErrorBody, ArchivedHelloReply, ArchivedStatsReply, Hello, HelloReply, Op, OpResult, ReplicaInfo, Response,
    StatsReply,
};
use rkyv::rancor;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// What the client expects to find on a port, and the secret it presents.
/// `None` shard fields are discovered. Its `Debug` never shows the secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// The shard id expected on this port.
    pub shard: Option<u32>,
    /// The total shard count expected.
    pub total_shards: Option<u32>,
    /// The node's secret, sent in the hello; `None` when the client has
    /// none (a node with a `requirepass` then refuses it with `AuthFailed`).
    /// [`crate::cluster::client_password`] is how every percore client
    /// finds it.
    pub password: Option<String>,
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expect")
            .field("shard", &self.shard)
            .field("total_shards", &self.total_shards)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// One handshaken connection to one shard.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    rbuf: RecvBuf,
    wbuf: Vec<u8>,
    enc: RequestEncoder,
    hello: HelloReply,
    next_batch: u64,
}

fn io_err(addr: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { addr: addr.to_string(), source }
}

/// Limits a client accepts on frames it *receives* before the server's
/// own limits are known (the handshake reply is small).
fn receive_limits() -> Limits {
    Limits { max_frame_bytes: crate::limits::MAX_FRAME_BYTES, ..Limits::default() }
}

impl Connection {
    /// Connects to `addr` and performs the handshake. The server checks
    /// `expect` and refuses a mismatch with an error naming both sides, and
    /// a missing or wrong password with [`crate::msg::ErrorCode::AuthFailed`].
    pub fn connect(addr: &str, expect: Expect, timeout: Duration) -> Result<Connection, Error> {
        let sockaddr = addr
            .to_socket_addrs()
            .map_err(io_err(addr))?
            .next()
            .ok_or_else(|| Error::Protocol { addr: addr.into(), message: "address resolves to nothing".into() })?;
        let stream = TcpStream::connect_timeout(&sockaddr, timeout).map_err(io_err(addr))?;
        stream.set_nodelay(true).map_err(io_err(addr))?;
        stream.set_read_timeout(Some(timeout)).map_err(io_err(addr))?;
        stream.set_write_timeout(Some(timeout)).map_err(io_err(addr))?;
        let mut conn = Connection {
            addr: addr.to_string(),
            stream,
            rbuf: RecvBuf::new(64 << 10, crate::limits::MAX_FRAME_BYTES as usize),
            wbuf: Vec::with_capacity(64 << 10),
            enc: RequestEncoder::new(),
            hello: HelloReply {
                protocol: 0,
                shard: 0,
                total_shards: 0,
                node: String::new(),
                limits: Limits::default().into(),
                map: Vec::new(),
            },
            next_batch: 1,
        };
        let hello = Hello {
            protocol: PROTOCOL_VERSION,
            shard: expect.shard,
            total_shards: expect.total_shards,
            client: format!("percore-cli/{}", std::process::id()),
            password: expect.password,
        };
        conn.wbuf.clear();
        encode(Kind::Hello, &hello, &mut conn.wbuf)
            .map_err(|e| Error::Protocol { addr: addr.into(), message: e.to_string() })?;
        conn.flush()?;
        let reply = conn.recv(Kind::HelloReply, |body| {
            let a = decode::<ArchivedHelloReply>(Kind::HelloReply, body)?;
            rkyv::deserialize::<HelloReply, rancor::Error>(a)
                .map_err(|_| FrameError::Corrupt { kind: Kind::HelloReply })
        })?;
        let mismatch = |what: &str, client: u32, server: u32| Error::Mismatch {
            addr: addr.to_string(),
            message: format!("client expects {what} {client}, server has {server}"),
        };
        if let Some(s) = expect.shard
            && s != reply.shard
        {
            return Err(mismatch("shard", s, reply.shard));
        }
        if let Some(t) = expect.total_shards
            && t != reply.total_shards
        {
            return Err(mismatch("total shards", t, reply.total_shards));
        }
        conn.hello = reply;
        Ok(conn)
    }

    /// The server's handshake reply: its shard, its limits, the shard map.
    pub fn hello(&self) -> &HelloReply {
        &self.hello
    }

    /// The server's limits.
    pub fn limits(&self) -> Limits {
        self.hello.limits.into()
    }

    /// The socket, for a caller that drives it itself after the handshake
    /// (the server sends nothing unprompted, so no bytes are left behind).
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn flush(&mut self) -> Result<(), Error> {
        self.stream.write_all(&self.wbuf).map_err(io_err(&self.addr))?;
        self.wbuf.clear();
        Ok(())
    }

    /// Reads one frame of `kind` and hands its body to `f`. An error frame
    /// becomes [`Error::Server`]; any other kind is a protocol error.
    fn recv<R>(&mut self, kind: Kind, f: impl FnOnce(&[u8]) -> Result<R, FrameError>) -> Result<R, Error> {
        let limits = receive_limits();
        loop {
            let next = next_frame(self.rbuf.filled(), &limits)
                .map_err(|source| Error::Frame { addr: self.addr.clone(), source })?;
            match next {
                Next::Frame(frame) => {
                    let len = frame.len();
                    let result = if frame.header.kind == kind {
                        f(frame.body).map_err(|source| Error::Frame { addr: self.addr.clone(), source })
                    } else if frame.header.kind == Kind::Error {
                        Err(server_error(&self.addr, frame.body))
                    } else {
                        Err(Error::Protocol {
                            addr: self.addr.clone(),
                            message: format!("expected a {kind} frame, got {}", frame.header.kind),
                        })
                    };
                    self.rbuf.consume(len);
                    return result;
                }
                Next::NeedMore { frame_len } => {
                    self.rbuf.prepare(frame_len);
                    let n = self.stream.read(self.rbuf.spare()).map_err(io_err(&self.addr))?;
                    if n == 0 {
                        return Err(Error::Closed { addr: self.addr.clone() });
                    }
                    self.rbuf.commit(n);
                }
            }
        }
    }

    /// Sends one batch and waits for its results (in operation order).
    pub fn execute(&mut self, ops: &[Op]) -> Result<Vec<OpResult>, Error> {
        let limits = self.limits();
        if ops.len() > limits.max_ops_per_frame as usize {
            return Err(Error::Limit(format!(
                "{} operations exceed the server's max_ops_per_frame {}",
                ops.len(),
                limits.max_ops_per_frame
            )));
        }
        for op in ops {
            check_op(op, &limits)?;
        }
        let batch_id = self.next_batch;
        self.next_batch += 1;
        self.wbuf.clear();
        self.enc.begin(&mut self.wbuf, batch_id);
        for op in ops {
            match op {
                Op::Get { key } => self.enc.get(&mut self.wbuf, key),
                Op::Put { key, value } => self.enc.put(&mut self.wbuf, key, value),
                Op::Delete { key } => self.enc.delete(&mut self.wbuf, key),
            }
        }
        if self.enc.frame_len() > limits.max_frame_bytes as usize {
            return Err(Error::Limit(format!(
                "batch of {} bytes exceeds the server's max_frame_bytes {}",
                self.enc.frame_len(),
                limits.max_frame_bytes
            )));
        }
        self.enc.finish(&mut self.wbuf);
        self.flush()?;
        let resp = self.recv(Kind::Response, |body| {
            let a = decode_response(body)?;
            rkyv::deserialize::<Response, rancor::Error>(a).map_err(|_| FrameError::Corrupt { kind: Kind::Response })
        })?;
        if resp.batch_id != batch_id || resp.results.len() != ops.len() {
            return Err(Error::Protocol {
                addr: self.addr.clone(),
                message: format!(
                    "response to batch {} with {} results answers batch {batch_id} of {} operations",
                    resp.batch_id,
                    resp.results.len(),
                    ops.len()
                ),
            });
        }
        Ok(resp.results)
    }

    /// Asks the shard for its counters.
    pub fn stats(&mut self) -> Result<StatsReply, Error> {
        self.wbuf.clear();
        encode(Kind::StatsRequest, &(), &mut self.wbuf)
            .map_err(|e| Error::Protocol { addr: self.addr.clone(), message: e.to_string() })?;
        self.flush()?;
        self.recv(Kind::StatsReply, |body| {
            let a = decode::<ArchivedStatsReply>(Kind::StatsReply, body)?;
            rkyv::deserialize::<StatsReply, rancor::Error>(a)
                .map_err(|_| FrameError::Corrupt { kind: Kind::StatsReply })
        })
    }

    /// Writes raw bytes to the server (tests use it to send bad input).
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.stream.write_all(bytes).map_err(io_err(&self.addr))
    }
}

/// Checks one operation against a server's limits before it is sent.
pub fn check_op(op: &Op, limits: &Limits) -> Result<(), Error> {
    let key = op.key();
    if key.len() > limits.max_key_len as usize {
        return Err(Error::Limit(format!(
            "key of {} bytes exceeds the server's max_key_len {}",
            key.len(),
            limits.max_key_len
        )));
    }
    if let Op::Put { value, .. } = op
        && value.len() > limits.max_value_len as usize
    {
        return Err(Error::Limit(format!(
            "value of {} bytes exceeds the server's max_value_len {}",
            value.len(),
            limits.max_value_len
        )));
    }
    Ok(())
}

/// Turns an error frame's body into [`Error::Server`].
pub fn server_error(addr: &str, body: &[u8]) -> Error {
    match decode::<ArchivedErrorBody>(Kind::Error, body) {
        Ok(e) => match rkyv::deserialize::<crate::msg::ErrorBody, rancor::Error>(e) {
            Ok(e) => Error::Server { addr: addr.to_string(), code: e.code, message: e.message },
            Err(_) => Error::Frame { addr: addr.to_string(), source: FrameError::Corrupt { kind: Kind::Error } },
        },
        Err(source) => Error::Frame { addr: addr.to_string(), source },
    }
}

/// A client for a whole cluster: routes each key to its shard.
pub struct Client {
    map: ShardMap,
    conns: Vec<Option<Connection>>,
    timeout: Duration,
    /// Sent in every connection's hello.
    password: Option<String>,
}

impl Client {
    /// Connects to one server address and learns the rest of the cluster
    /// from its handshake reply. Every hello carries `password`
    /// ([`crate::cluster::client_password`] finds it).
    pub fn discover(addr: &str, password: Option<String>, timeout: Duration) -> Result<Client, Error> {
        let expect = Expect { password: password.clone(), ..Expect::default() };
        let conn = Connection::connect(addr, expect, timeout)?;
        let map = ShardMap::new(conn.hello.map.clone()).map_err(|message| Error::Protocol {
            addr: addr.to_string(),
            message: format!("bad shard map: {message}"),
        })?;
        let mut conns: Vec<Option<Connection>> = (0..map.len()).map(|_| None).collect();
        let id = conn.hello.shard as usize;
        if id < conns.len() {
            conns[id] = Some(conn);
        }
        Ok(Client { map, conns, timeout, password })
    }

    /// A client for the shards a cluster file describes (connections open
    /// on first use, each checking shard id and count in its handshake,
    /// and presenting `password`: [`crate::cluster::client_password`] finds
    /// it).
    pub fn from_cluster(cluster: &Cluster, password: Option<String>, timeout: Duration) -> Client {
        let conns = (0..cluster.map.len()).map(|_| None).collect();
        Client { map: cluster.map.clone(), conns, timeout, password }
    }

    /// The shard map in use.
    pub fn map(&self) -> &ShardMap {
        &self.map
    }

    /// The connection to shard `id`, opened and handshaken on first use.
    pub fn conn(&mut self, id: u32) -> Result<&mut Connection, Error> {
        let total = self.map.len() as u32;
        let info = &self.map.shards()[id as usize];
        let slot = &mut self.conns[id as usize];
        if slot.is_none() {
            let addr = format!("{}:{}", info.addr, info.port);
            let expect = Expect { shard: Some(id), total_shards: Some(total), password: self.password.clone() };
            *slot = Some(Connection::connect(&addr, expect, self.timeout)?);
        }
        Ok(slot.as_mut().expect("just connected"))
    }

    fn one(&mut self, op: Op) -> Result<OpResult, Error> {
        let shard = self.map.shard_of(op.key());
        if self.map.shards()[shard as usize].replicas.is_empty() {
            let conn = self.conn(shard)?;
            let addr = conn.addr.clone();
            let mut results = conn.execute(std::slice::from_ref(&op))?;
            return match results.pop() {
                Some(OpResult::Error(code)) => Err(Error::Op { addr, code }),
                Some(OpResult::NotLeader(_)) => {
                    Err(Error::Protocol { addr, message: "NotLeader from a shard that is not replicated".into() })
                }
                Some(r) => Ok(r),
                None => Err(Error::Protocol { addr, message: "empty response".into() }),
            };
        }
        self.follow(shard, &op)
    }

    /// Runs `op` on replicated shard `shard`'s leader, following it: a
    /// replica that answers NotLeader names the leader, which is tried next;
    /// one that cannot be reached (or closes the connection) is passed
    /// over, and while no leader is known the client waits (50 ms, doubling
    /// to 500 ms) and asks the replicas again, for as long as the client's
    /// timeout. An operation that was answered NotLeader was not done, so
    /// sending it again is safe; one whose connection failed after it was
    /// sent may have been done, and a PUT or DELETE sent again is done
    /// again (with the same value: no harm to the key's final state).
    fn follow(&mut self, shard: u32, op: &Op) -> Result<OpResult, Error> {
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        let mut last;
        let mut tried = 0usize;
        loop {
            let info = self.map.shards()[shard as usize].clone();
            let at = info
                .replica(info.leader)
                .cloned()
                .unwrap_or_else(|| info.replicas[tried % info.replicas.len()].clone());
            tried += 1;
            let outcome = self.on_replica(shard, &at, op);
            match outcome {
                Ok(OpResult::Error(code)) => return Err(Error::Op { addr: format!("{}:{}", at.addr, at.port), code }),
                Ok(OpResult::NotLeader(leader)) => {
                    last = format!("{}:{} answered NotLeader (leader: {leader})", at.addr, at.port);
                    self.set_leader(shard, if leader == at.id { 0 } else { leader });
                    if leader != 0 && leader != at.id {
                        continue;
                    }
                }
                Ok(r) => return Ok(r),
                Err(e @ (Error::Mismatch { .. } | Error::Server { .. } | Error::Limit(_))) => return Err(e),
                Err(e) => {
                    last = e.to_string();
                    self.set_leader(shard, 0);
                }
            }
            let waited = started.elapsed();
            if waited >= self.timeout {
                return Err(Error::NoLeader { shard, waited, last });
            }
            std::thread::sleep(pause.min(self.timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Runs `op` on replica `at` of `shard` (connecting to it if the shard's
    /// connection is elsewhere); a failed connection is dropped.
    fn on_replica(&mut self, shard: u32, at: &ReplicaInfo, op: &Op) -> Result<OpResult, Error> {
        let addr = format!("{}:{}", at.addr, at.port);
        let slot = &mut self.conns[shard as usize];
        if slot.as_ref().is_some_and(|c| c.addr != addr) {
            *slot = None;
        }
        if slot.is_none() {
            let expect = Expect {
                shard: Some(shard),
                total_shards: Some(self.map.len() as u32),
                password: self.password.clone(),
            };
            let conn = Connection::connect(&addr, expect, self.timeout)?;
            // The replica says who leads as far as it knows.
            let leader = conn.hello.map.get(shard as usize).map_or(0, |s| s.leader);
            *slot = Some(conn);
            if leader != 0 && leader != at.id {
                self.set_leader(shard, leader);
                return Ok(OpResult::NotLeader(leader));
            }
        }
        let conn = self.conns[shard as usize].as_mut().expect("just connected");
        match conn.execute(std::slice::from_ref(op)) {
            Ok(mut results) => results.pop().ok_or_else(|| Error::Protocol { addr, message: "empty response".into() }),
            Err(e) => {
                self.conns[shard as usize] = None;
                Err(e)
            }
        }
    }

    fn set_leader(&mut self, shard: u32, leader: u32) {
        let mut shards = self.map.shards().to_vec();
        if shards[shard as usize].leader == leader {
            return;
        }
        shards[shard as usize].leader = leader;
        if let Ok(map) = ShardMap::new(shards) {
            self.map = map;
        }
    }

    /// Reads a key.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        match self.one(Op::Get { key: key.to_vec() })? {
            OpResult::Value(v) => Ok(Some(v)),
            _ => Ok(None),
        }
    }

    /// Writes a key.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.one(Op::Put { key: key.to_vec(), value: value.to_vec() }).map(|_| ())
    }

    /// Deletes a key.
    pub fn delete(&mut self, key: &[u8]) -> Result<(), Error> {
        self.one(Op::Delete { key: key.to_vec() }).map(|_| ())
    }

    /// Every shard's counters, by shard id.
    pub fn stats(&mut self) -> Result<Vec<StatsReply>, Error> {
        (0..self.map.len() as u32).map(|id| self.conn(id)?.stats()).collect()
    }
}
