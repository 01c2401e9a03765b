//! The RESP door: each core's port also speaks Redis's protocol, as one
//! Redis Cluster node that owns the core's slots.
//!
//! This module is an adapter in the engine's layering (adapter → executor
//! → store): it parses commands (`wire::resp`, arguments are slices of the
//! receive buffer), routes their keys, runs them on the shard's store and
//! encodes Redis's replies into the connection's one reply buffer. A key of
//! a slot that another core owns — on this node or another — gets `-MOVED
//! <slot> <addr>:<port>`; keys of several slots in one command get
//! `-CROSSSLOT`. Pipelined commands are answered in order and their replies
//! written together. Malformed input gets `-ERR Protocol error: …` and the
//! close, as in Redis; nothing else notices.
//!
//! - [`table`]: the commands served, with arity, flags and key positions
//!   (what `COMMAND` answers);
//! - [`keys`]: strings, counters, expiry, `SCAN`…;
//! - [`admin`]: connection, server and `CLUSTER` commands;
//! - [`glob`]: `MATCH` patterns.
//!
//! # Who may connect
//!
//! With `requirepass` set, a connection must `AUTH` (or `HELLO … AUTH`)
//! before anything but `HELLO`, `AUTH` and `QUIT`; until then it is not
//! handshaken (the shard may drop it for a newcomer, it must authenticate
//! within `handshake_timeout`, and a command may be at most 64 KiB). A
//! wrong secret is answered only after [`AUTH_DELAY`], during which the
//! connection reads nothing, so guessing is slow.

pub mod admin;
pub mod glob;
pub mod keys;
pub mod table;

use crate::batch::{self, Op, Results};
use crate::conn::{FLUSH_AT, HANDSHAKE_MAX_FRAME};
use crate::fault::FaultState;
use crate::shard::{ConnSlot, Shard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wire::buf::RecvBuf;
use wire::cluster::node_id;
use wire::msg::OpError;
use wire::msg::ShardInfo;
use wire::resp::reply as resp;
use wire::resp::{ArgScratch, Parsed, Proto, RespLimits};
use wire::slot::{SLOTS, slot_of};

/// How long a wrong secret waits before its answer.
pub const AUTH_DELAY: Duration = Duration::from_millis(200);
/// Most arguments one command may have before the connection is
/// handshaken (authenticated).
const EARLY_ARGS: usize = 64;

/// What every connection of one shard's RESP door shares: the node's shape
/// and settings, built once when the node starts.
pub(crate) struct RespNode {
    /// This shard's id.
    pub shard: u32,
    /// Every shard of the cluster.
    pub shards: Vec<ShardInfo>,
    /// Every shard's node id (same order).
    pub ids: Vec<String>,
    /// Every shard's replicas (same order; empty when not replicated), as
    /// their own addresses with their node ids, by member id.
    pub replicas: Vec<Vec<(ShardInfo, String)>>,
    /// Slot → owning shard.
    pub owner: Box<[u32]>,
    /// Parser limits.
    pub limits: RespLimits,
    /// The secret, if connections must authenticate.
    pub requirepass: Option<Vec<u8>>,
    /// Longest key accepted (the cluster's `max_key_len`).
    pub max_key_len: usize,
    /// Longest value accepted (the cluster's `max_value_len`).
    pub max_value_len: usize,
    /// This process's id for `INFO` (random per start).
    pub run_id: String,
    /// Most connections per shard (`CONFIG GET maxclients`).
    pub max_connections: u32,
    /// The node's `maxmemory` (`CONFIG GET maxmemory`, `INFO memory`).
    pub maxmemory: u64,
    /// Idle timeout in seconds (`CONFIG GET timeout`).
    pub idle_secs: u64,
}

/// Replica `m` of shard `s` as a cluster node: its own address with
/// the shard's slots, and its node id.
pub(crate) fn replica_row(s: &ShardInfo, m: &wire::cluster::Member) -> (ShardInfo, String) {
    let info = ShardInfo {
        id: s.id,
        node: m.node.clone(),
        addr: m.addr.clone(),
        port: m.port,
        cpu: m.cpu,
        slots: s.slots.clone(),
        replicas: Vec::new(),
        leader: 0,
    };
    let id = node_id(&info);
    (info, id)
}

impl RespNode {
    /// Builds the door's settings for shard `shard` of `map`.
    pub fn new(
        shard: u32,
        shards: &[ShardInfo],
        members: &[Vec<wire::cluster::Member>],
        limits: RespLimits,
        opts: &crate::ServerOptions,
        frame: wire::Limits,
    ) -> RespNode {
        let mut owner = vec![0u32; SLOTS].into_boxed_slice();
        for s in shards {
            for r in &s.slots {
                for slot in r.start..=r.end {
                    if let Some(o) = owner.get_mut(slot as usize) {
                        *o = s.id;
                    }
                }
            }
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let run_id = format!("{:032x}{:08x}", nanos ^ u128::from(std::process::id()) << 64, shard);
        let replicas =
            shards.iter().zip(members).map(|(s, ms)| ms.iter().map(|m| replica_row(s, m)).collect()).collect();
        RespNode {
            shard,
            replicas,
            ids: shards.iter().map(node_id).collect(),
            shards: shards.to_vec(),
            owner,
            limits,
            requirepass: opts.requirepass.as_ref().map(|p| p.as_bytes().to_vec()),
            max_key_len: frame.max_key_len as usize,
            max_value_len: frame.max_value_len as usize,
            run_id,
            max_connections: opts.limits.max_connections,
            maxmemory: opts.limits.maxmemory.unwrap_or(0),
            idle_secs: opts.limits.idle_timeout.map_or(0, |d| d.as_secs()),
        }
    }

    /// This shard's entry of the map.
    pub fn me(&self) -> &ShardInfo {
        &self.shards[self.shard as usize]
    }
}

/// One RESP connection's state.
pub(crate) struct Session {
    /// RESP2 or RESP3 (`HELLO`).
    pub proto: Proto,
    /// Authenticated (always, without `requirepass`).
    pub authed: bool,
    /// `CLIENT SETNAME`.
    pub name: Vec<u8>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Vec<u8>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Vec<u8>,
    /// `CLIENT ID`: unique on the node.
    pub id: u64,
    /// When the connection was accepted.
    pub since: Instant,
    /// Argument spans of the command being parsed.
    scratch: ArgScratch,
    /// The arguments' storage, reused from command to command (empty
    /// between commands; see [`recycle`]).
    argv: Vec<&'static [u8]>,
    /// Value scratch for read-modify-write commands.
    tmp: Vec<u8>,
    /// A run of pipelined plain `GET`/`SET` commands (reused).
    ops: Vec<Simple>,
}

/// Most pipelined `GET`/`SET` commands run as one executor batch.
const RUN: usize = 256;

/// A pipelined plain `GET key` or `SET key value`: offsets of its
/// arguments in the receive buffer, and where the command ends there.
#[derive(Clone, Copy)]
struct Simple {
    set: bool,
    key: (u32, u32),
    value: (u32, u32),
    end: u32,
}

/// The RESP door's replies as the shared executor's results.
struct Replies<'r> {
    out: &'r mut Vec<u8>,
    proto: Proto,
    node: &'r RespNode,
    shard: &'r Shard,
    ops: &'r [Simple],
    buf: &'r [u8],
    flush_at: usize,
}

impl Results for Replies<'_> {
    #[inline]
    fn fits(&self, _: usize) -> bool {
        true
    }
    #[inline]
    fn value(&mut self, value: &[u8], faults: &FaultState) {
        resp::bulk(self.out, value);
        if faults.active() {
            let end = self.out.len() - 2;
            faults.on_reply_value(&mut self.out[end - value.len()..end]);
        }
    }
    #[inline]
    fn not_found(&mut self) {
        resp::null(self.out, self.proto);
    }
    #[inline]
    fn done(&mut self) {
        self.out.extend_from_slice(b"+OK\r\n");
    }
    fn error(&mut self, i: usize, e: OpError) {
        match e {
            OpError::WrongShard => {
                let (k, n) = self.ops[i].key;
                let slot = slot_of(&self.buf[k as usize..(k + n) as usize]);
                moved(self.out, slot, self.node, self.shard);
            }
            OpError::OutOfMemory => err(self.out, keys::OOM),
            OpError::NotDurable => err(self.out, MISCONF),
            other => err(self.out, &format!("ERR {other:?}")),
        }
    }
    #[inline]
    fn full(&self) -> bool {
        self.out.len() >= self.flush_at
    }
}

/// Per-pass counts, added to the shard's counters once per pass (MOVED
/// and CROSSSLOT count as `wrong_shard`).
#[derive(Default, Clone, Copy)]
pub(crate) struct Counts {
    pub ops: u64,
    pub gets: u64,
    pub puts: u64,
    pub deletes: u64,
    pub misses: u64,
    pub moved: u64,
    pub out_of_memory: u64,
    pub protocol_errors: u64,
}

/// A write refused because the log's disk is full or failing (Redis's
/// answer when its AOF cannot be written).
pub const MISCONF: &str = "MISCONF Errors writing to the log: its disk is full or failing; writes are refused, reads go on (see the server's messages)";

/// Why the RESP loop stopped answering.
pub(crate) enum Outcome {
    /// Every whole command is answered; read more (the command at the
    /// front needs this many bytes, if known).
    Read(Option<usize>),
    /// The reply buffer is full: write it, then go on.
    Flush,
    /// `QUIT`: write the replies and close.
    Quit,
    /// A wrong secret: wait [`AUTH_DELAY`], write the replies, go on.
    Penalty,
    /// `SAVE`: take a snapshot, append its reply, go on.
    Save,
}

/// What one command asks of the connection loop.
#[derive(PartialEq, Eq)]
pub(crate) enum After {
    Next,
    Quit,
    Penalty,
    Save,
}

/// Everything a command runs with.
pub(crate) struct Cx<'a> {
    pub shard: &'a Shard,
    pub slot: &'a ConnSlot,
    pub node: &'a RespNode,
    pub sess: &'a mut Session,
    pub out: &'a mut Vec<u8>,
    pub tmp: &'a mut Vec<u8>,
    pub counts: &'a mut Counts,
    /// Unix milliseconds, read once per pass: expiry is judged against it.
    pub now: u64,
}

/// Appends an error reply (`s` without the leading `-`).
pub(crate) fn err(out: &mut Vec<u8>, s: &str) {
    resp::error(out, s);
}

/// Sends a key of `slot` where it is served: `-MOVED` to the shard that
/// owns the slot; for this (replicated) shard's own slot on a replica that
/// does not serve it, `-MOVED` to the leader, as Redis Cluster sends a
/// client from a replica to its master, or `-CLUSTERDOWN` while no leader
/// is known (an election).
fn moved(out: &mut Vec<u8>, slot: u16, node: &RespNode, shard: &Shard) {
    let owner = node.owner[slot as usize];
    if owner != node.shard {
        let info = &node.shards[owner as usize];
        err(out, &format!("MOVED {slot} {}:{}", info.addr, info.port));
        return;
    }
    match shard.redirect() {
        Some(leader) => err(out, &format!("MOVED {slot} {leader}")),
        None => err(out, &format!("CLUSTERDOWN shard {} has no leader yet (an election is running)", shard.setup.id)),
    }
}

/// A keyless command on this replicated shard's keys, on a replica that
/// does not serve them.
fn not_leader(out: &mut Vec<u8>, shard: &Shard) {
    match shard.redirect() {
        Some(leader) => err(out, &format!("NOTLEADER shard {} is served by its leader at {leader}", shard.setup.id)),
        None => err(out, &format!("CLUSTERDOWN shard {} has no leader yet (an election is running)", shard.setup.id)),
    }
}

/// Empties `v` and hands its allocation on with another lifetime (an
/// empty vector holds no references; collecting an emptied `vec::IntoIter`
/// into a vector of the same layout reuses its buffer), so the argument
/// list is not allocated per command.
fn recycle<'b>(mut v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter().map(|_| &[][..]).collect()
}

/// Unix time in milliseconds.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Session {
    /// A new connection's state; `token` is its accept order on the shard.
    pub fn new(node: &RespNode, token: u64) -> Session {
        Session {
            proto: Proto::Resp2,
            authed: node.requirepass.is_none(),
            name: Vec::new(),
            lib_name: Vec::new(),
            lib_ver: Vec::new(),
            id: token * node.shards.len() as u64 + u64::from(node.shard) + 1,
            since: Instant::now(),
            scratch: ArgScratch::default(),
            argv: Vec::new(),
            tmp: Vec::new(),
            ops: Vec::new(),
        }
    }

    /// Runs the plain `GET`/`SET` commands at the front of `rbuf` (up to
    /// [`RUN`] of them, multibulk, within the key and value limits) as one
    /// batch of the shared grouped, prefetching executor
    /// ([`batch::run`]), replies in order. Returns false when the front
    /// command is not one of them (the general path answers it).
    fn pipeline(&mut self, shard: &Shard, rbuf: &mut RecvBuf, out: &mut Vec<u8>, counts: &mut Counts) -> bool {
        if shard.faults.follower_reads() && !shard.serving() {
            // The fault switch: the general path answers a follower's GETs.
            return false;
        }
        let node = &shard.setup.resp;
        let buf = rbuf.filled();
        let (base, end) = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
        let in_buf = |b: &[u8]| b.as_ptr() as usize >= base && b.as_ptr() as usize + b.len() <= end;
        let offsets = |b: &[u8]| ((b.as_ptr() as usize - base) as u32, b.len() as u32);
        self.ops.clear();
        let mut at = 0;
        while self.ops.len() < RUN {
            let Ok(Parsed::Command { args, len }) = wire::resp::parse(&buf[at..], &node.limits, &mut self.scratch)
            else {
                break;
            };
            let set = match args.len() {
                2 if args.get(0).eq_ignore_ascii_case(b"get") => false,
                3 if args.get(0).eq_ignore_ascii_case(b"set") => true,
                _ => break,
            };
            let key = args.get(1);
            let value = if set { args.get(2) } else { &buf[..0] };
            // Inline commands' arguments live in the scratch: not here.
            if key.len() > node.max_key_len || value.len() > node.max_value_len || !in_buf(key) || !in_buf(value) {
                break;
            }
            at += len;
            self.ops.push(Simple { set, key: offsets(key), value: offsets(value), end: at as u32 });
        }
        if self.ops.is_empty() {
            return false;
        }
        let slice = |(at, n): (u32, u32)| &buf[at as usize..(at + n) as usize];
        let view = |s: &Simple| if s.set { Op::Put(slice(s.key), slice(s.value)) } else { Op::Get(slice(s.key)) };
        let mut replies = Replies { out, proto: self.proto, node, shard, ops: &self.ops, buf, flush_at: FLUSH_AT };
        let c =
            batch::run(&mut shard.store.borrow_mut(), shard.owned_now(), &shard.faults, &self.ops, view, &mut replies);
        let ran = c.ops as usize;
        let consumed = if ran == 0 { 0 } else { self.ops[ran - 1].end as usize };
        rbuf.consume(consumed);
        counts.ops += c.ops;
        counts.gets += c.gets;
        counts.puts += c.puts;
        counts.misses += c.misses;
        counts.moved += c.wrong_shard;
        counts.out_of_memory += c.out_of_memory;
        ran > 0
    }

    /// Answers every whole command in `rbuf`, appending replies to `out`.
    /// `Err` is a protocol error: its text is the `-ERR` reply to send
    /// before the close.
    /// Until the connection is handshaken (authenticated), a command may
    /// take at most `HANDSHAKE_MAX_FRAME` bytes; replies are flushed once
    /// they pass `FLUSH_AT`, as for frames.
    pub fn answer(
        &mut self,
        shard: &Shard,
        slot: &ConnSlot,
        rbuf: &mut RecvBuf,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, String> {
        self.answer_at(unix_ms(), shard, slot, rbuf, out)
    }

    /// [`Session::answer`] with the clock given: `now` (unix milliseconds)
    /// is what expiry is judged against during this pass (the model tests
    /// drive time themselves).
    pub fn answer_at(
        &mut self,
        now: u64,
        shard: &Shard,
        slot: &ConnSlot,
        rbuf: &mut RecvBuf,
        out: &mut Vec<u8>,
    ) -> Result<Outcome, String> {
        let (node, flush_at, early_max) = (&shard.setup.resp, FLUSH_AT, HANDSHAKE_MAX_FRAME);
        shard.store.borrow_mut().set_now(now);
        let mut counts = Counts::default();
        let result = loop {
            if self.authed && self.pipeline(shard, rbuf, out, &mut counts) {
                if out.len() >= flush_at {
                    break Ok(Outcome::Flush);
                }
                continue;
            }
            let mut scratch = std::mem::take(&mut self.scratch);
            let parsed = wire::resp::parse(rbuf.filled(), &node.limits, &mut scratch);
            let (len, after) = match parsed {
                Err(e) => {
                    self.scratch = scratch;
                    break Err(e.to_string());
                }
                Ok(Parsed::NeedMore { need }) => {
                    self.scratch = scratch;
                    if !self.authed && (rbuf.len() > early_max || need.is_some_and(|n| n > early_max)) {
                        break Err(format!(
                            "Protocol error: a command of more than {early_max} bytes before the connection is authenticated"
                        ));
                    }
                    break Ok(Outcome::Read(need));
                }
                Ok(Parsed::Command { args, len }) => {
                    if args.is_empty() {
                        self.scratch = scratch;
                        (len, After::Next)
                    } else if !self.authed && args.len() > EARLY_ARGS {
                        self.scratch = scratch;
                        break Err(format!(
                            "Protocol error: more than {EARLY_ARGS} arguments before the connection is authenticated"
                        ));
                    } else {
                        let mut argv = recycle(std::mem::take(&mut self.argv));
                        argv.extend(args.iter());
                        let mut tmp = std::mem::take(&mut self.tmp);
                        let after = {
                            let mut cx =
                                Cx { shard, slot, node, sess: self, out, tmp: &mut tmp, counts: &mut counts, now };
                            cx.run(&argv)
                        };
                        self.tmp = tmp;
                        self.argv = recycle(argv);
                        self.scratch = scratch;
                        (len, after)
                    }
                }
            };
            rbuf.consume(len);
            counts.ops += 1;
            match after {
                After::Quit => break Ok(Outcome::Quit),
                After::Penalty => break Ok(Outcome::Penalty),
                After::Save => break Ok(Outcome::Save),
                After::Next => {}
            }
            if out.len() >= flush_at {
                break Ok(Outcome::Flush);
            }
        };
        shard.count(|c| {
            c.ops += counts.ops;
            c.gets += counts.gets;
            c.puts += counts.puts;
            c.deletes += counts.deletes;
            c.misses += counts.misses;
            c.wrong_shard += counts.moved;
            c.out_of_memory += counts.out_of_memory;
            c.protocol_errors += counts.protocol_errors;
        });
        // A client past AUTH (or on a node without a password) has passed
        // the door with its first command, whichever path answered it.
        if self.authed && counts.ops > 0 && !slot.handshaken() {
            shard.handshake_done(slot);
        }
        result
    }
}

impl Cx<'_> {
    /// Routes `keys` (all of one slot, owned by this core): answers
    /// `-CROSSSLOT` or `-MOVED` (or a key-length error) and returns false
    /// when they are not.
    /// `read_only`: the command writes nothing (the follower-reads fault
    /// switch lets those run on a follower).
    fn route<'k>(&mut self, keys: impl IntoIterator<Item = &'k [u8]>, read_only: bool) -> bool {
        let mut first: Option<u16> = None;
        for key in keys {
            if key.len() > self.node.max_key_len {
                err(
                    self.out,
                    &format!("ERR key of {} bytes exceeds max_key_len ({} bytes)", key.len(), self.node.max_key_len),
                );
                return false;
            }
            let slot = slot_of(key);
            match first {
                None => first = Some(slot),
                Some(s) if s != slot => {
                    self.counts.moved += 1;
                    err(self.out, "CROSSSLOT Keys in request don't hash to the same slot");
                    return false;
                }
                Some(_) => {}
            }
        }
        let Some(slot) = first else { return true };
        let owner = self.node.owner[slot as usize];
        if owner == self.node.shard && (self.shard.serving() || (read_only && self.shard.faults.follower_reads())) {
            return true;
        }
        self.counts.moved += 1;
        moved(self.out, slot, self.node, self.shard);
        false
    }

    /// Runs one command.
    fn run(&mut self, argv: &[&[u8]]) -> After {
        let name = argv[0];
        if name.eq_ignore_ascii_case(b"post") || name.eq_ignore_ascii_case(b"host:") {
            // An HTTP request (a browser made to attack a local port), as
            // Redis treats it: no reply, the connection closes.
            self.counts.protocol_errors += 1;
            return After::Quit;
        }
        let Some(spec) = table::find(name) else {
            self.unknown(argv);
            return After::Next;
        };
        if !self.sess.authed && !matches!(spec.name, "auth" | "hello" | "quit") {
            err(self.out, "NOAUTH Authentication required.");
            return After::Next;
        }
        if !spec.arity_ok(argv.len()) {
            err(self.out, &format!("ERR wrong number of arguments for '{}' command", spec.name));
            return After::Next;
        }
        if self.shard.store.borrow().writes_refused() && spec.flags.contains(&"write") {
            err(self.out, MISCONF);
            return After::Next;
        }
        let keyspace = || spec.flags.contains(&"write") || spec.flags.contains(&"readonly");
        if spec.first == 0 && !self.shard.serving() && keyspace() {
            // A keyless command on this shard's keys (DBSIZE, SCAN,
            // FLUSHDB…): only the leader answers it.
            not_leader(self.out, self.shard);
            return After::Next;
        }
        if spec.first > 0 {
            let last = if spec.last < 0 { argv.len() as i32 + spec.last } else { spec.last };
            let keys = (spec.first..=last).step_by(spec.step as usize).filter_map(|i| argv.get(i as usize).copied());
            if !self.route(keys, !spec.flags.contains(&"write")) {
                return After::Next;
            }
        }
        let a = argv;
        match spec.name {
            "get" => self.get(a[1]),
            "set" => self.set(a),
            "setnx" => self.setnx(a[1], a[2]),
            "setex" => self.setex(a, false),
            "psetex" => self.setex(a, true),
            "getset" => self.getset(a[1], a[2]),
            "getdel" => self.getdel(a[1]),
            "getex" => self.getex(a),
            "mget" => self.mget(&a[1..]),
            "mset" => self.mset(a, false),
            "msetnx" => self.mset(a, true),
            "append" => self.append(a[1], a[2]),
            "strlen" => self.strlen(a[1]),
            "getrange" => self.getrange(a[1], a[2], a[3]),
            "setrange" => self.setrange(a[1], a[2], a[3]),
            "incr" => self.incr(a[1], 1),
            "decr" => self.incr(a[1], -1),
            "incrby" => self.incr_by(a[1], a[2], false),
            "decrby" => self.incr_by(a[1], a[2], true),
            "incrbyfloat" => self.incrbyfloat(a[1], a[2]),
            "del" | "unlink" => self.del(&a[1..]),
            "exists" => self.exists(&a[1..]),
            "type" => self.type_of(a[1]),
            "expire" => self.expire(a, "expire", false, false),
            "pexpire" => self.expire(a, "pexpire", true, false),
            "expireat" => self.expire(a, "expireat", false, true),
            "pexpireat" => self.expire(a, "pexpireat", true, true),
            "ttl" => self.ttl(a[1], false),
            "pttl" => self.ttl(a[1], true),
            "persist" => self.persist(a[1]),
            "dbsize" => self.dbsize(),
            "flushdb" | "flushall" => self.flush(a),
            "scan" => self.scan(a),
            _ => return self.admin(spec.name, a),
        }
        After::Next
    }

    /// Redis's answer to a command it does not know.
    fn unknown(&mut self, argv: &[&[u8]]) {
        let mut args = String::new();
        for a in &argv[1..] {
            if args.len() >= 128 {
                break;
            }
            let room = 128 - args.len();
            let text = String::from_utf8_lossy(&a[..a.len().min(room)]);
            args.push_str(&format!("'{text}' "));
        }
        let name = String::from_utf8_lossy(&argv[0][..argv[0].len().min(128)]);
        err(self.out, &format!("ERR unknown command '{name}', with args beginning with: {args}"));
    }
}
