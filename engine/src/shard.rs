//! One shard: its executor's state, its accept loop, its connection budget,
//! and its orderly stop.
//!
//! A [`Shard`] is created inside its executor thread and never leaves it
//! (`Rc`, `Cell`, `RefCell`: single-threaded by construction). It owns the
//! store, the counters, the set of slots it serves and the registry of its
//! open connections. [`run`] is the executor's main future: it accepts
//! connections, publishes counters, and on stop closes the listener, lets
//! every connection finish the frames it has read, and returns — within
//! `shutdown_timeout`, whatever its peers do.
//!
//! # The connection budget
//!
//! A shard keeps at most `max_connections` open. When a new connection
//! arrives at a full shard, the oldest connection that has not finished its
//! handshake is dropped to make room (it gets a `TooManyConnections` error
//! frame if its socket takes it at once, and is shut). Only when every open
//! connection is past its handshake is the new one refused. So a peer that
//! opens thousands of silent connections cannot lock well-behaved clients
//! out: each new client displaces the attacker's oldest. Refusals are
//! answered by at most [`MAX_REFUSING`] short-lived tasks at a time, each
//! done within about a second; past that, a refused connection gets its
//! error frame only if the socket takes it at once, and is closed.

use crate::conn;
use crate::log::record::Journal;
use crate::log::writer::{LogState, Writer};
use crate::options::ServerOptions;
use crate::stats::{PUBLISH_EVERY, Published};
use crate::store::{Store, StoreError, StoreLimits};
use futures_lite::future::or;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Gate;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wire::Limits;
use wire::cluster::SlotSet;
use wire::codec::encode;
use wire::frame::Kind;
use wire::msg::{ErrorBody, ErrorCode, ShardCounters};

/// Table buckets active expiry looks at per publish tick (every
/// `PUBLISH_EVERY`, 50 ms): about 330 k buckets a second, a few tens of
/// microseconds of work per tick; a table of a million keys is swept in
/// about six seconds.
pub const EXPIRE_BUDGET: usize = 16 << 10;
/// Refusal tasks (error frame, then a short drain) a shard runs at once.
pub const MAX_REFUSING: usize = 32;
/// After the shutdown deadline has cut every connection, how long the shard
/// waits for their tasks to notice before it returns anyway.
const CUT_GRACE: Duration = Duration::from_millis(500);

/// How long after a failed snapshot the log's size may start another.
const SNAPSHOT_RETRY: Duration = Duration::from_secs(1);

/// A durable shard's snapshots: who asked for one, whether one runs, how
/// the last ended.
pub(crate) struct Snapshots {
    /// Set by SAVE, BGSAVE, `percore save`: the main loop starts one.
    requested: Cell<bool>,
    /// Set while one runs.
    running: Cell<bool>,
    /// Snapshots ended so far (each one that started after a request
    /// answers it).
    ended: Cell<u64>,
    /// How the last one ended.
    last: RefCell<Option<Result<crate::log::snapshot::Taken, String>>>,
    /// Unix seconds of the last one that succeeded (LASTSAVE).
    last_ok: Cell<u64>,
    /// Size of the last snapshot (the log may grow to as much before the
    /// next is taken by size).
    size: Cell<u64>,
    /// Connections waiting for one to end.
    waiters: RefCell<Vec<std::task::Waker>>,
    /// After a snapshot failed, none is started by size before this (one
    /// asked for still starts at once).
    retry_at: Cell<Option<Instant>>,
}

impl Snapshots {
    fn new(size: u64) -> Snapshots {
        Snapshots {
            requested: Cell::new(false),
            running: Cell::new(false),
            ended: Cell::new(0),
            last: RefCell::new(None),
            last_ok: Cell::new(0),
            size: Cell::new(size),
            waiters: RefCell::new(Vec::new()),
            retry_at: Cell::new(None),
        }
    }

    /// Asks for a snapshot that starts after now; returns the count of
    /// ended snapshots to wait for ([`Snapshots::wait`]).
    pub fn request(&self) -> u64 {
        self.requested.set(true);
        self.ended.get() + if self.running.get() { 2 } else { 1 }
    }

    /// True while one runs.
    pub fn running(&self) -> bool {
        self.running.get()
    }

    /// Unix seconds of the last snapshot that succeeded (0: none).
    pub fn last_ok(&self) -> u64 {
        self.last_ok.get()
    }

    /// Waits until `ended` snapshots have ended; how the last one did.
    pub async fn wait(&self, ended: u64) -> Result<crate::log::snapshot::Taken, String> {
        std::future::poll_fn(|cx| {
            if self.ended.get() >= ended {
                let last = self.last.borrow().clone();
                return std::task::Poll::Ready(last.unwrap_or_else(|| Err("no snapshot was taken".into())));
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    fn finish(&self, result: Result<crate::log::snapshot::Taken, String>) {
        match &result {
            Ok(t) => {
                self.size.set(t.bytes);
                self.last_ok.set(crate::store::unix_ms() / 1000);
                self.retry_at.set(None);
            }
            // Whatever made it fail (a leader not caught up yet, a new
            // leader replacing the point's entry, a full disk) is given a
            // second before the log's size starts another.
            Err(_) => self.retry_at.set(Some(Instant::now() + SNAPSHOT_RETRY)),
        }
        *self.last.borrow_mut() = Some(result);
        self.running.set(false);
        self.ended.set(self.ended.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }
}

/// What a held reply waits for before it may leave (see [`Shard::need_now`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Need {
    /// The store's journal sequence number that must be safe.
    pub seq: u64,
    /// The read round that must be confirmed (replicated shards; 0: none).
    pub round: u64,
    /// The leadership epoch the reply was made in (replicated shards).
    pub epoch: u64,
}

/// Everything one shard needs, owned by its executor thread: what it was
/// built from (`shard.setup`: id, limits, options, slots) and its mutable
/// state.
pub(crate) struct Shard {
    /// Identity, limits, options, slots, handshake reply.
    pub setup: ShardSetup,
    /// The map (shared with the replication machine of a replicated shard).
    pub store: Rc<RefCell<Store>>,
    /// Counters, updated once per batch.
    pub counters: Cell<ShardCounters>,
    /// Open connections, by accept order.
    conns: RefCell<Registry>,
    /// Refusal tasks running now (at most [`MAX_REFUSING`]).
    refusing: Cell<usize>,
    /// Set when the node stops: connections finish what they have read and close.
    pub stopping: Cell<bool>,
    /// When the shard started.
    pub started: Instant,
    /// Fault-switch state (see [`crate::options::Fault`]).
    pub faults: crate::fault::FaultState,
    /// The durable log's marks and waiters (`None`: in memory only, or
    /// replicated: the Raft log is `replicated`'s).
    pub log: Option<LogState>,
    /// The shard's replication (`None`: not replicated).
    pub replicated: Option<Rc<crate::replica::group::Replicated>>,
    /// No slot: what [`Shard::owned_now`] gives while the shard does not serve.
    none_owned: SlotSet,
    /// What recovery found, until the writer task starts from it.
    recovered: RefCell<Option<crate::log::recover::Recovered>>,
    /// Snapshot requests and results.
    pub snapshots: Snapshots,
    /// The error frame a connection dropped to make room gets.
    evicted_frame: Vec<u8>,
    /// The error frame a refused connection gets.
    busy_frame: Vec<u8>,
}

/// What a shard is built from, handed to its executor thread.
pub(crate) struct ShardSetup {
    /// Global shard id.
    pub id: u32,
    /// Total shards in the cluster.
    pub total_shards: u32,
    /// CPU it is pinned to.
    pub cpu: u32,
    /// Node name (for stats replies and messages).
    pub node: String,
    /// `addr:port` it serves (for messages).
    pub endpoint: String,
    /// Limits enforced on every frame.
    pub limits: Limits,
    /// Node options.
    pub opts: ServerOptions,
    /// This shard's share of the node's `maxmemory`.
    pub memory_limit: Option<usize>,
    /// Slots this shard serves; other keys get WrongShard.
    pub owned: SlotSet,
    /// The handshake reply frame, encoded once (it is the same for every client).
    pub hello_reply: Vec<u8>,
    /// The handshake reply, as a value (a replicated shard's names its
    /// leader of the moment: [`Shard::hello_reply`]).
    pub hello: wire::msg::HelloReply,
    /// The RESP door's view of the node.
    pub resp: crate::resp::RespNode,
    /// The cluster layout this shard serves, as its data directory's
    /// `LAYOUT` file records it.
    pub layout: String,
    /// Its replication, when the cluster's `replicas` is more than 1.
    pub replication: Option<crate::replica::group::ReplicationSetup>,
}

/// One open connection, as the shard's registry sees it.
pub(crate) struct ConnSlot {
    /// Its socket (valid while the slot is registered: a connection task
    /// unregisters before it drops its stream).
    fd: RawFd,
    /// Accept order.
    token: u64,
    /// Set once its hello has been answered: from then on it is never
    /// dropped to make room.
    handshaken: Cell<bool>,
    /// Set when the shard dropped it to make room: its socket is shut, and
    /// its task ends without another word.
    evicted: Cell<bool>,
}

impl ConnSlot {
    /// True once the shard dropped this connection to make room.
    pub fn evicted(&self) -> bool {
        self.evicted.get()
    }

    /// True once the connection's hello was answered.
    pub fn handshaken(&self) -> bool {
        self.handshaken.get()
    }

    /// The connection's socket.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Its accept order on the shard.
    pub fn token(&self) -> u64 {
        self.token
    }
}

/// The open connections, and which of them have not finished a handshake.
#[derive(Default)]
struct Registry {
    open: BTreeMap<u64, Rc<ConnSlot>>,
    /// Tokens of open connections without an answered hello, oldest first.
    unshaken: BTreeSet<u64>,
    next: u64,
}

/// What the accept loop does with a new connection.
enum Admission {
    /// Serve it.
    Serve(Rc<ConnSlot>),
    /// Refuse it: every open connection is past its handshake.
    Refuse,
}

/// Sends `bytes` if the socket takes them now, without waiting (best
/// effort: an error frame to a peer that is about to be cut off).
fn send_now(fd: RawFd, bytes: &[u8]) {
    // SAFETY: `fd` is an open socket owned by a live stream; send(2) with
    // MSG_DONTWAIT never blocks and MSG_NOSIGNAL never raises SIGPIPE.
    unsafe {
        libc::send(fd, bytes.as_ptr().cast(), bytes.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    }
}

/// shutdown(2) on a socket of a live connection.
fn shut(fd: RawFd, how: libc::c_int) {
    // SAFETY: `fd` belongs to a live connection (registered, so its stream
    // has not been dropped); shutdown(2) does not free it.
    unsafe {
        libc::shutdown(fd, how);
    }
}

fn error_frame(code: ErrorCode, message: String) -> Vec<u8> {
    let mut out = Vec::new();
    // An error body always encodes; if it did not, the peer would get no frame, only the close.
    let _ = encode(Kind::Error, &ErrorBody { code, message }, &mut out);
    out
}

impl Shard {
    /// Builds the shard and its store (which may be refused: a `capacity`
    /// whose table alone passes the shard's memory limit); a durable shard
    /// claims its data directory and replays its log into the store.
    pub(crate) fn new(mut setup: ShardSetup) -> Result<Shard, String> {
        let mut store = Store::with_limits(
            setup.opts.capacity,
            StoreLimits { max_bytes: setup.memory_limit, ..StoreLimits::default() },
        )
        .map_err(|e: StoreError| format!("cannot build the store: {e}"))?;
        let replication = setup.replication.take();
        if let (None, Some(_)) = (&setup.opts.durability, &replication) {
            return Err(format!(
                "shard {} is replicated: it needs a data directory (--data-dir, or data_dir in the cluster file), where its Raft log lives",
                setup.id
            ));
        }
        let dir = setup.opts.durability.as_ref().map(|d| crate::log::shard_dir(&d.data_dir, setup.id));
        if let Some(dir) = &dir {
            crate::log::claim(dir, &setup.layout).map_err(|e| e.to_string())?;
        }
        let mut log = None;
        let mut recovered = None;
        if let (Some(d), Some(dir), None) = (&setup.opts.durability, &dir, &replication) {
            let r = crate::log::recover::recover(dir, setup.id, &mut store, d.truncate_corrupt)
                .map_err(|e| e.to_string())?;
            store.attach_journal(Journal::new(r.next_seq));
            let state = LogState::new(d.fsync, r.next_seq - 1);
            // Room kept back: two of the largest inputs one pass of a
            // connection can turn into records (a frame or a RESP
            // command, and a record header per operation or argument).
            let input = (setup.limits.max_frame_bytes as u64).max(setup.resp.limits.max_command_bytes as u64);
            let items = u64::from(setup.limits.max_ops_per_frame).max(setup.resp.limits.max_multibulk_len as u64);
            state.set_margin(2 * (input + items * (crate::log::record::HEADER as u64 + 8)));
            state.adopt(r.chain.clone(), r.spare.clone(), r.replayed_bytes);
            log = Some(state);
            recovered = Some(r);
        }
        if replication.is_some() {
            // The replica's machine takes the leader's changes from here.
            store.attach_journal(Journal::new(1));
        }
        let store = Rc::new(RefCell::new(store));
        let replicated = match (&setup.opts.durability, &dir, replication) {
            (Some(d), Some(dir), Some(r)) => {
                Some(Rc::new(crate::replica::group::Replicated::open(setup.id, dir, d, r, &store)?))
            }
            _ => None,
        };
        let max = setup.opts.limits.max_connections;
        let evicted_frame = error_frame(
            ErrorCode::TooManyConnections,
            format!(
                "shard {} on {} has {max} connections open (max_connections): this one had not finished its \
                 handshake and was dropped to make room",
                setup.id, setup.endpoint
            ),
        );
        let busy_frame = error_frame(
            ErrorCode::TooManyConnections,
            format!(
                "shard {} on {} already has {max} connections open, all past their handshake (max_connections)",
                setup.id, setup.endpoint
            ),
        );
        let counters = ShardCounters { memory_limit: setup.memory_limit.unwrap_or(0) as u64, ..Default::default() };
        Ok(Shard {
            store,
            replicated,
            none_owned: SlotSet::empty(),
            faults: crate::fault::FaultState::new(setup.opts.fault),
            setup,
            counters: Cell::new(counters),
            conns: RefCell::new(Registry::default()),
            refusing: Cell::new(0),
            stopping: Cell::new(false),
            started: Instant::now(),
            snapshots: Snapshots::new(recovered.as_ref().map_or(0, |r| r.snapshot.bytes)),
            log,
            recovered: RefCell::new(recovered),
            evicted_frame,
            busy_frame,
        })
    }

    /// Whether client operations may run here now: always, unless the
    /// shard is replicated and this replica does not serve (it does not
    /// lead, has not caught up since it was elected, or is handing its
    /// leadership to the preferred member).
    #[inline]
    pub fn serving(&self) -> bool {
        self.replicated.as_ref().is_none_or(|r| r.machine.serving() && !r.replica.transferring())
    }

    /// The slots operations may run on now: the shard's own while it
    /// serves, none otherwise (every key is then sent elsewhere).
    #[inline]
    pub fn owned_now(&self) -> &SlotSet {
        if self.serving() { &self.setup.owned } else { &self.none_owned }
    }

    /// Where a client should send this shard's keys when it does not serve:
    /// `Some(addr:port)` of the leader, `None` while no leader is known.
    pub fn redirect(&self) -> Option<String> {
        self.replicated.as_ref().and_then(|r| r.leader_endpoint())
    }

    /// The member id of the replica percore clients should go to instead
    /// of this one, which does not serve: the leader, 0 while none is
    /// known or this replica leads but cannot serve yet (catching up,
    /// handing over). `None` when the shard is not replicated.
    pub fn leader_hint(&self) -> Option<u32> {
        let r = self.replicated.as_ref()?;
        let st = r.replica.status();
        Some(if st.leader == st.id { 0 } else { u32::try_from(st.leader).unwrap_or(0) })
    }

    /// The handshake reply for a percore client: the node's, with this
    /// shard's current leader in the map when the shard is replicated.
    pub fn hello_reply(&self) -> std::borrow::Cow<'_, [u8]> {
        let Some(r) = &self.replicated else { return std::borrow::Cow::Borrowed(&self.setup.hello_reply) };
        let mut reply = self.setup.hello.clone();
        // A leader that cannot serve yet (catching up after its election,
        // handing over) names none: clients wait instead of being refused.
        let st = r.replica.status();
        let leader = if st.leader == st.id && !self.serving() { 0 } else { st.leader };
        if let Some(me) = reply.map.get_mut(self.setup.id as usize) {
            me.leader = u32::try_from(leader).unwrap_or(0);
            // The group's applied membership, not the file's.
            me.replicas = r
                .members()
                .into_iter()
                .filter_map(|m| {
                    Some(wire::msg::ReplicaInfo {
                        id: u32::try_from(m.id).ok()?,
                        node: m.node,
                        addr: m.addr,
                        port: m.port,
                    })
                })
                .collect();
        }
        let mut out = Vec::new();
        match wire::codec::encode(wire::frame::Kind::HelloReply, &reply, &mut out) {
            Ok(_) => std::borrow::Cow::Owned(out),
            // The node's own reply encoded at start; this one differs by
            // a number only.
            Err(_) => std::borrow::Cow::Borrowed(&self.setup.hello_reply),
        }
    }

    /// Whether replies wait before they leave: the shard keeps a durable
    /// log, or is replicated.
    #[inline]
    pub fn holds_replies(&self) -> bool {
        self.log.is_some() || self.replicated.is_some()
    }

    /// What a reply made now needs before it may leave: everything the
    /// store journaled so far safe (durable, or committed by the group),
    /// and, replicated, a read round issued after now confirmed under the
    /// same leadership.
    pub fn need_now(&self) -> Need {
        let seq = self.store.borrow().journal_last_seq();
        match &self.replicated {
            // A replica that does not serve ran nothing on its store: its
            // replies (redirections, errors) show nothing that could be
            // taken back.
            Some(r) if !r.machine.serving() => Need { seq: 0, round: 0, epoch: r.machine.epoch() },
            Some(r) => Need { seq, round: r.machine.read_round(), epoch: r.machine.epoch() },
            None => Need { seq, round: 0, epoch: 0 },
        }
    }

    /// Wakes whoever makes `need` safe: the log writer, or the proposer.
    pub fn nudge(&self, need: Need) {
        if let Some(r) = &self.replicated {
            r.machine.kick();
        } else if let Some(log) = &self.log
            && need.seq > log.written()
        {
            log.kick();
        }
    }

    /// Whether a reply that needs `need` may leave now; `None` if it never
    /// may (the log failed, or the leadership it was made under is gone).
    pub fn safe_for(&self, need: Need) -> Option<bool> {
        if let Some(r) = &self.replicated {
            let m = &r.machine;
            if m.epoch() != need.epoch || m.failure().is_some() {
                return None;
            }
            return Some(m.committed() >= need.seq && m.confirmed_round() >= need.round);
        }
        let log = self.log.as_ref()?;
        if need.seq <= log.safe() {
            Some(true)
        } else if log.failure().is_some() {
            None
        } else {
            Some(false)
        }
    }

    /// Waits until a reply that needs `need` may leave (`Ok`), or never
    /// will (`Err`).
    pub async fn wait_safe(&self, need: Need) -> Result<(), ()> {
        if let Some(r) = &self.replicated {
            let ok =
                r.machine.wait(need.epoch, |m| m.committed() >= need.seq && m.confirmed_round() >= need.round).await;
            return if ok { Ok(()) } else { Err(()) };
        }
        match &self.log {
            Some(log) => log.safe_at(need.seq).await.map_err(|_| ()),
            None => Ok(()),
        }
    }

    /// Applies `f` to the counters.
    #[inline]
    pub fn count(&self, f: impl FnOnce(&mut ShardCounters)) {
        let mut c = self.counters.get();
        f(&mut c);
        self.counters.set(c);
    }

    /// The counters with the gauges filled in.
    pub fn snapshot(&self) -> ShardCounters {
        let mut c = self.counters.get();
        let store = self.store.borrow();
        c.keys = store.len() as u64;
        c.store_bytes = store.memory().used() as u64;
        c.connections_open = self.conns.borrow().open.len() as u64;
        c.expired_keys = store.expired_total();
        c
    }

    /// Admits a new connection: registers it, dropping the oldest one
    /// without a finished handshake if the shard is full; or says to refuse it.
    fn admit(&self, fd: RawFd) -> Admission {
        let mut reg = self.conns.borrow_mut();
        if reg.open.len() >= self.setup.opts.limits.max_connections as usize {
            let Some(oldest) = reg.unshaken.pop_first() else { return Admission::Refuse };
            if let Some(victim) = reg.open.remove(&oldest) {
                victim.evicted.set(true);
                send_now(victim.fd, &self.evicted_frame);
                shut(victim.fd, libc::SHUT_RDWR);
                self.count(|c| c.connections_evicted += 1);
            }
        }
        let token = reg.next;
        reg.next += 1;
        let slot = Rc::new(ConnSlot { fd, token, handshaken: Cell::new(false), evicted: Cell::new(false) });
        reg.open.insert(token, slot.clone());
        reg.unshaken.insert(token);
        self.count(|c| c.connections_total += 1);
        Admission::Serve(slot)
    }

    /// Registers a connection without a socket (descriptor -1), as the
    /// accept loop registers a real one; `None` if the shard is full. The
    /// RESP model checks (`crate::resp_model`) drive the door through it.
    #[cfg(any(test, feature = "model"))]
    pub(crate) fn admit_detached(&self) -> Option<Rc<ConnSlot>> {
        match self.admit(-1) {
            Admission::Serve(slot) => Some(slot),
            Admission::Refuse => None,
        }
    }

    /// Marks a connection's handshake done: it is no longer dropped to make room.
    pub fn handshake_done(&self, slot: &ConnSlot) {
        if !slot.handshaken.replace(true) {
            self.conns.borrow_mut().unshaken.remove(&slot.token);
        }
    }

    /// Forgets a closed connection (before its stream is dropped).
    pub fn unregister(&self, slot: &ConnSlot) {
        let mut reg = self.conns.borrow_mut();
        reg.open.remove(&slot.token);
        reg.unshaken.remove(&slot.token);
    }

    /// Shuts `how` on every open connection's socket.
    fn shut_all(&self, how: libc::c_int) {
        for slot in self.conns.borrow().open.values() {
            shut(slot.fd, how);
        }
    }

    /// Refuses a connection to a full shard: its error frame and a short
    /// drain in a task while fewer than [`MAX_REFUSING`] run, else the frame
    /// if the socket takes it at once, and the close.
    fn refuse(self: &Rc<Shard>, stream: TcpStream, gate: &Gate) {
        self.count(|c| c.connections_refused += 1);
        if self.refusing.get() < MAX_REFUSING {
            self.refusing.set(self.refusing.get() + 1);
            let shard = self.clone();
            let refused = gate.spawn(async move {
                conn::refuse_busy(&shard, stream).await;
                shard.refusing.set(shard.refusing.get() - 1);
            });
            if let Ok(task) = refused {
                task.detach();
                return;
            }
            self.refusing.set(self.refusing.get() - 1);
            return;
        }
        send_now(stream.as_raw_fd(), &self.busy_frame);
    }

    /// The frame a refused connection gets.
    pub fn busy_frame(&self) -> &[u8] {
        &self.busy_frame
    }

    /// Starts a snapshot in a task of its own if one was asked for, or the
    /// log has grown past the threshold, and none runs; none for a shard
    /// in memory only.
    fn maybe_snapshot(self: &Rc<Shard>) {
        let Some(d) = &self.setup.opts.durability else { return };
        let since = match (&self.log, &self.replicated) {
            (Some(log), _) => log.since_snapshot(),
            (None, Some(r)) => r.log().since_snapshot(),
            (None, None) => return,
        };
        let s = &self.snapshots;
        if s.running.get() {
            return;
        }
        let due = s.retry_at.get().is_none_or(|at| Instant::now() >= at);
        let by_size = due && d.snapshot_after > 0 && since >= d.snapshot_after.max(s.size.get());
        // A replicated shard snapshots after a membership change (a restart
        // then starts from the new membership) and when a peer needs a
        // snapshot none offered covers (a member that joined).
        let for_group = self.replicated.as_ref().is_some_and(|r| {
            let changed = r.replica.take_membership_changed();
            changed || (due && r.replica.with_log(|l| l.snapshot_wanted()) > 0)
        });
        if !(s.requested.get() || by_size || for_group) {
            return;
        }
        s.requested.set(false);
        s.running.set(true);
        let shard = self.clone();
        glommio::spawn_local(async move { shard.snapshot_now().await }).detach();
    }

    /// Takes a snapshot now, truncates the log behind it, says so, and
    /// answers whoever waits.
    async fn snapshot_now(&self) {
        let Some(d) = &self.setup.opts.durability else { return };
        self.snapshots.running.set(true);
        let id = self.setup.id;
        let dir = crate::log::shard_dir(&d.data_dir, id);
        let result = match (&self.log, &self.replicated) {
            (Some(log), _) => {
                let result = crate::log::snapshot::take(&self.store, &dir, id).await.map_err(|e| e.to_string());
                if let Ok(t) = &result {
                    log.truncate(t.seq);
                    let (used, spare) = log.segments();
                    eprintln!(
                        "percore-server: shard {id}: snapshot at sequence number {}: {} records, {:.1} MB, {} ms; log segments: {used} in use, {spare} spare",
                        t.seq,
                        t.records,
                        t.bytes as f64 / 1e6,
                        t.ms
                    );
                }
                result
            }
            (None, Some(r)) => {
                let keep = match usize::try_from(d.snapshot_after) {
                    Ok(0) | Err(_) => crate::replica::group::KEEP_FOR_LAGGING,
                    Ok(n) => n.min(crate::replica::group::KEEP_FOR_LAGGING),
                };
                let result = r.snapshot(id, &dir, keep).await;
                if let Ok(t) = &result {
                    let (used, spare) = r.log().segments();
                    let (first, last) = r.replica.with_log(|l| (l.first(), l.last()));
                    eprintln!(
                        "percore-server: shard {id}: snapshot at Raft entry {}: {} records, {:.1} MB, {} ms; log segments: {used} in use, {spare} spare; entries {first}..={last} kept in memory",
                        t.seq,
                        t.records,
                        t.bytes as f64 / 1e6,
                        t.ms
                    );
                }
                result
            }
            (None, None) => return,
        };
        if let Err(e) = &result {
            eprintln!("percore-server: shard {id}: snapshot failed: {e}");
        }
        self.snapshots.finish(result);
    }

    /// Active expiry, once per publish tick: looks at up to
    /// [`EXPIRE_BUDGET`] table buckets and removes the expired records
    /// found there (nothing at all when no key has a TTL).
    fn expire_some(&self) {
        let mut store = self.store.borrow_mut();
        if store.volatile_len() > 0 {
            store.set_now(crate::resp::unix_ms());
            store.expire_cycle(EXPIRE_BUDGET);
        }
    }
}

/// The executor's main future. `started` hears once whether the shard could
/// be built (its store may be refused); the node waits for every shard's word.
pub(crate) async fn run(
    setup: ShardSetup,
    listener: std::net::TcpListener,
    published: Arc<Published>,
    stop: Arc<AtomicBool>,
    started: impl FnOnce(Result<(), String>),
) {
    let shard = match Shard::new(setup) {
        Ok(shard) => Rc::new(shard),
        Err(e) => {
            started(Err(e));
            published.finish();
            return;
        }
    };
    let writer = match start_log(&shard).await {
        Ok(writer) => writer,
        Err(e) => {
            started(Err(e));
            published.finish();
            return;
        }
    };
    let replication = match (&shard.replicated, &shard.setup.opts.durability) {
        (Some(r), Some(d)) => {
            let dir = crate::log::shard_dir(&d.data_dir, shard.setup.id);
            match r.start(shard.setup.id, &dir, d).await {
                Ok(tasks) => Some(tasks),
                Err(e) => {
                    started(Err(e));
                    published.finish();
                    return;
                }
            }
        }
        _ => None,
    };
    started(Ok(()));
    // SAFETY: the descriptor comes from a bound, listening std listener
    // whose ownership `into_raw_fd` hands over.
    let listener = unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) };
    let gate = Gate::new();
    let accept = glommio::spawn_local(accept_loop(listener, shard.clone(), gate.clone()));
    while !stop.load(Ordering::Relaxed) {
        shard.expire_some();
        shard.maybe_snapshot();
        published.store(&shard.snapshot());
        glommio::timer::sleep(PUBLISH_EVERY).await;
    }
    shard.stopping.set(true);
    accept.cancel().await;
    // Every connection sees the end of its input after the bytes it has,
    // answers the whole frames among them, writes its replies and closes…
    shard.shut_all(libc::SHUT_RD);
    let mut closed = std::pin::pin!(gate.close());
    let finished = or(
        async {
            let _ = closed.as_mut().await;
            true
        },
        async {
            glommio::timer::sleep(shard.setup.opts.limits.shutdown_timeout).await;
            false
        },
    )
    .await;
    if !finished {
        // …unless its peer does not read or its frame never completes: at
        // the deadline every socket is cut, and the tasks end at once.
        shard.shut_all(libc::SHUT_RDWR);
        let _ = or(
            async {
                let _ = closed.as_mut().await;
            },
            glommio::timer::sleep(CUT_GRACE),
        )
        .await;
    }
    if let (Some(r), Some(tasks)) = (&shard.replicated, replication) {
        r.stop(tasks).await;
    }
    // A durable shard snapshots what the connections left (after any
    // snapshot still running), then the log commits the rest, syncs, and
    // ends.
    if let (Some(log), Some(writer)) = (&shard.log, writer) {
        if shard.snapshots.running() {
            let ended = shard.snapshots.ended.get() + 1;
            let _ = shard.snapshots.wait(ended).await;
        }
        if log.failure().is_none() {
            shard.snapshot_now().await;
        }
        log.stop();
        writer.await;
    }
    published.store(&shard.snapshot());
    published.finish();
}

/// Opens a durable shard's log writer where recovery left the log, says
/// what recovery did, and starts the writer task; `None` for a shard in
/// memory only.
async fn start_log(shard: &Rc<Shard>) -> Result<Option<glommio::Task<()>>, String> {
    let (Some(d), Some(_)) = (&shard.setup.opts.durability, &shard.log) else { return Ok(None) };
    let Some(r) = shard.recovered.borrow_mut().take() else { return Ok(None) };
    let id = shard.setup.id;
    let dir = crate::log::shard_dir(&d.data_dir, id);
    let secs = r.elapsed.as_secs_f64();
    let records = r.snapshot.records + r.records;
    eprintln!(
        "percore-server: shard {id}: recovered from {} in {:.3} s: a snapshot of {} records up to sequence number {} ({:.1} MB), then {} log records ({} segments, {:.1} MB read): {:.2} M records/s; next sequence number {}; fsync {}",
        dir.display(),
        secs,
        r.snapshot.records,
        r.snapshot.seq,
        r.snapshot.bytes as f64 / 1e6,
        r.records,
        r.segments,
        r.bytes as f64 / 1e6,
        if secs > 0.0 { records as f64 / secs / 1e6 } else { 0.0 },
        r.next_seq,
        d.fsync,
    );
    if let Some(dropped) = &r.dropped {
        eprintln!("percore-server: shard {id}: {dropped}");
    }
    let writer = Writer::open(&dir, id, d, r.resume).await.map_err(|e| e.to_string())?;
    let s = shard.clone();
    Ok(Some(glommio::spawn_local(async move {
        if let Some(log) = s.log.as_ref() {
            crate::log::writer::run(writer, log, |spare| s.store.borrow_mut().journal_take(spare)).await;
        }
    })))
}

async fn accept_loop(listener: TcpListener, shard: Rc<Shard>, gate: Gate) {
    let mut warned = false;
    loop {
        match listener.accept().await {
            Ok(stream) => match shard.admit(stream.as_raw_fd()) {
                Admission::Serve(slot) => match gate.spawn(conn::serve(shard.clone(), stream, slot.clone())) {
                    Ok(task) => {
                        task.detach();
                    }
                    // The gate closes only when the node stops.
                    Err(_) => shard.unregister(&slot),
                },
                Admission::Refuse => shard.refuse(stream, &gate),
            },
            Err(e) => {
                // Out of descriptors and the like: say so once, back off, go on.
                if !warned {
                    eprintln!(
                        "percore-server: shard {} ({}): accept failed: {e}",
                        shard.setup.id, shard.setup.endpoint
                    );
                    warned = true;
                }
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
