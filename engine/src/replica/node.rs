//! One replica of a shard's group, driven inside the shard's executor:
//! raft-rs's `RawNode` with a timer that ticks it, the peer connections
//! that feed it (`step`), and the loop that takes each `Ready`, persists it,
//! sends its messages, applies what is committed, and `advance`s.
//!
//! # One `Ready`, in order
//!
//! 1. Messages that may leave before the entries are stable (a leader's
//!    appends: the leader counts itself only once its own log has them).
//! 2. A snapshot received from the leader replaces the log and the state.
//! 3. Committed entries are applied, in index order.
//! 4. New entries and the hard state are made stable in the [`RaftLog`].
//! 5. Messages that must follow stability (votes, append answers) leave.
//! 6. `advance`, then what it hands back: a commit index, more messages,
//!    more committed entries.
//!
//! Every wait — a tick due, a message in, a proposal, a read — wakes the
//! one loop; it never blocks the shard (the log and peer writes are tasks
//! of their own).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use glommio::net::TcpStream;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, Snapshot, SnapshotMetadata};
use raft::{RawNode, ReadState, SnapshotStatus, StateRole};

use super::peer::{self, Link, PeerError};
use super::storage::RaftLog;
use crate::log::record::{Entry as Record, Journal};
use crate::log::writer::LogState;

/// What a replica applies committed entries to (the shard's store). The
/// replica calls it from its loop; it shares its state with the shard's
/// connections, hence `&self`.
pub trait StateMachine {
    /// Applies a committed entry's data, in index order. Every replica
    /// applies the same entries in the same order; `log` holds every entry
    /// before it that was not compacted.
    fn apply(&self, log: &RaftLog, index: u64, term: u64, data: &[u8]);
    /// A committed entry without data (a new leader's first entry, a
    /// membership change) at `index`.
    fn skip(&self, log: &RaftLog, index: u64);
    /// A read index confirmed: reads asked with `ctx` may be served once
    /// entries up to `index` are applied.
    fn read_ready(&self, state: ReadState);
    /// Replaces the state with a snapshot's (a replica far behind).
    fn restore(&self, snapshot: &Snapshot);
    /// This replica became leader (`true`; its log ends at `last_index`,
    /// its own first entry included) or stopped leading.
    fn role(&self, leading: bool, last_index: u64);
}

/// A replica's settings.
#[derive(Clone, Debug)]
pub struct ReplicaConfig {
    /// The group (the shard's index); every replica of it uses the same.
    pub group: u32,
    /// This replica's id within the group (not 0).
    pub id: u64,
    /// Every other member: its id and its peer address.
    pub peers: Vec<(u64, SocketAddr)>,
    /// Time between ticks.
    pub tick: Duration,
    /// Ticks without a leader's word before a follower stands for election
    /// (raft-rs randomises it between this and twice this).
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// The last entry the state machine already holds (from a snapshot).
    pub applied: u64,
    /// The member that should lead when it is up and caught up (0: any):
    /// another leader hands it the leadership, so that the groups' leaders
    /// stay spread over the servers as the cluster file spreads them.
    pub preferred: u64,
    /// Confirm reads on the leader's lease (raft-rs's `LeaseBased`: no
    /// round trip, but it rests on clocks and on the leader never pausing)
    /// instead of a heartbeat round answered by a majority (`Safe`).
    pub read_lease: bool,
}

/// Why a proposal was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This replica is not the leader; `leader` is the one it knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader's id, when known.
        leader: Option<u64>,
    },
    /// The leader refused it (a leadership transfer is under way).
    #[error("the leader is not taking proposals now")]
    Dropped,
}

/// Where a proposal went: it succeeded if the entry applied at `index`
/// has this `term`, and failed for good if another term's entry is applied
/// there (a new leader replaced it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// The entry's index.
    pub index: u64,
    /// The term it was proposed in.
    pub term: u64,
}

/// What the node's status shows of a replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// This replica's id.
    pub id: u64,
    /// The leader it knows of (0: none).
    pub leader: u64,
    /// The current term.
    pub term: u64,
    /// Whether it leads.
    pub leading: bool,
    /// Highest committed index it knows of.
    pub commit: u64,
    /// Highest index applied to its state machine.
    pub applied: u64,
}

/// One replica (see the module comment). Clone-free: share it in an `Rc`.
pub struct Replica {
    group: u32,
    id: u64,
    tick: Duration,
    raw: RefCell<RawNode<RaftLog>>,
    links: HashMap<u64, Rc<Link>>,
    members: Vec<u64>,
    kicked: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    stopping: Cell<bool>,
    isolated: Cell<bool>,
    preferred: u64,
    read_lease: bool,
    applied: Cell<u64>,
    /// The shard's log, when durable: entries and hard states are journaled
    /// and a `Ready`'s persisted messages wait until they are safe.
    durable: Option<(Rc<LogState>, RefCell<Journal>)>,
    /// Sockets of the connections peers dialled, shut down by [`Replica::stop`].
    inbound: RefCell<HashMap<u64, RawFd>>,
    next_inbound: Cell<u64>,
    /// Connections served that have not named their sender yet.
    unidentified: Cell<usize>,
    /// The connection each member is served on (its newest).
    by_member: RefCell<HashMap<u64, u64>>,
    /// Where a snapshot received from the leader is kept (the shard's
    /// directory and index), when durable.
    snapshot_dir: Option<(PathBuf, u32)>,
    /// Snapshots installed from the leader so far.
    installed: Cell<u64>,
}

/// Removes a served connection from [`Replica::stop`]'s list.
struct Served<'a>(&'a Replica, u64);

impl Drop for Served<'_> {
    fn drop(&mut self) {
        self.0.inbound.borrow_mut().remove(&self.1);
        self.0.by_member.borrow_mut().retain(|_, conn| *conn != self.1);
    }
}

/// Counts a connection among those not identified yet, while it lives.
struct Unidentified<'a>(&'a Cell<usize>);

impl Drop for Unidentified<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

impl Replica {
    /// A replica over `log` (empty for a new group, or what was persisted).
    /// With `durable` (the shard's log state and the sequence number of its
    /// next record, from recovery), what a `Ready` asks to persist goes
    /// into the shard's log, and the writer task takes it from
    /// [`Replica::journal_take`]; without, it is kept in memory only.
    pub fn new(cfg: &ReplicaConfig, log: RaftLog, durable: Option<(Rc<LogState>, u64)>) -> raft::Result<Replica> {
        let raft_cfg = raft::Config {
            id: cfg.id,
            election_tick: cfg.election_ticks,
            heartbeat_tick: cfg.heartbeat_ticks,
            applied: cfg.applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader cut off from a majority steps down after an election
            // timeout; a partitioned replica does not disturb the others'
            // term when it comes back (pre-vote).
            check_quorum: true,
            pre_vote: true,
            // Reads are confirmed by a heartbeat round (ReadIndex), unless
            // the node was told to trust a lease (which rests on clocks).
            read_only_option: if cfg.read_lease {
                raft::ReadOnlyOption::LeaseBased
            } else {
                raft::ReadOnlyOption::Safe
            },
            ..raft::Config::default()
        };
        raft_cfg.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_cfg, log, &logger)?;
        let links = cfg.peers.iter().map(|&(id, addr)| (id, Rc::new(Link::new(id, addr)))).collect();
        let mut members: Vec<u64> = cfg.peers.iter().map(|p| p.0).collect();
        members.push(cfg.id);
        Ok(Replica {
            group: cfg.group,
            id: cfg.id,
            tick: cfg.tick,
            raw: RefCell::new(raw),
            links,
            members,
            kicked: Cell::new(false),
            waker: RefCell::new(None),
            stopping: Cell::new(false),
            isolated: Cell::new(false),
            preferred: cfg.preferred,
            read_lease: cfg.read_lease,
            applied: Cell::new(cfg.applied),
            durable: durable.map(|(state, next)| (state, RefCell::new(Journal::new(next)))),
            inbound: RefCell::new(HashMap::new()),
            next_inbound: Cell::new(0),
            unidentified: Cell::new(0),
            by_member: RefCell::new(HashMap::new()),
            snapshot_dir: None,
            installed: Cell::new(0),
        })
    }

    /// Keeps snapshots received from the leader in shard `shard`'s
    /// directory `dir` (made durable before the replica acknowledges one),
    /// and lets its log's records before them be dropped.
    pub fn with_snapshot_dir(mut self, dir: PathBuf, shard: u32) -> Replica {
        self.snapshot_dir = Some((dir, shard));
        self
    }

    /// Whether reads are confirmed on a leader lease (else by ReadIndex).
    pub fn read_lease(&self) -> bool {
        self.read_lease
    }

    /// Snapshots installed from the leader since the start.
    pub fn installed(&self) -> u64 {
        self.installed.get()
    }

    /// The Raft metadata of a snapshot of the store at entry `index`, which
    /// must have been proposed in `term` and must be applied: `Err` (why
    /// not) if the log no longer holds it with that term, or a membership
    /// change was applied after it (the membership at `index` is then not
    /// known here).
    pub fn snapshot_meta(&self, index: u64, term: u64) -> Result<SnapshotMetadata, String> {
        let raw = self.raw.borrow();
        let log = raw.store();
        match raft::Storage::term(log, index) {
            Ok(t) if t == term => {}
            Ok(t) => return Err(format!("entry {index} is of term {t} now, not {term}: a new leader replaced it")),
            Err(e) => return Err(format!("entry {index} is no longer in the log ({e})")),
        }
        // The log's membership is the one applied; it is the one at
        // `index` unless a change between the two was applied.
        let applied = self.applied.get();
        if applied < index {
            return Err(format!("entry {index} is not applied yet (applied: {applied})"));
        }
        let changed_after =
            (index + 1..=applied).filter_map(|i| log.entry(i)).any(|e| e.get_entry_type() != EntryType::EntryNormal);
        if changed_after {
            return Err(format!("the membership changed after entry {index} (applied: {applied})"));
        }
        Ok(SnapshotMetadata { index, term, conf_state: Some(log.conf_state().clone()).into(), ..Default::default() })
    }

    /// After a snapshot of the store at `meta` became the shard's (its file
    /// durable in `dir`): peers that need the entries it holds are sent it,
    /// the entries it holds leave memory — but for those a lagging peer
    /// still needs, up to `keep_bytes` of them — and the hard state is
    /// journaled again, so that no record the log's truncation drops is
    /// needed. Returns the sequence number of that record (`None`: not
    /// durable).
    pub fn snapshot_taken(&self, dir: PathBuf, shard: u32, meta: SnapshotMetadata, keep_bytes: usize) -> Option<u64> {
        let index = meta.index;
        let mut raw = self.raw.borrow_mut();
        let leading = raw.raft.state == StateRole::Leader;
        // Entries from the lowest a peer still needs on are kept, while
        // they are few enough; a peer further behind is sent the snapshot.
        let mut from = index + 1;
        if leading {
            let needed = raw.raft.prs().iter().filter(|(id, _)| **id != self.id).map(|(_, p)| p.matched + 1).min();
            if let Some(needed) = needed.filter(|&n| n <= index) {
                let log = raw.store();
                let mut kept = 0usize;
                while from > needed.max(log.first()) {
                    let Some(e) = log.entry(from - 1) else { break };
                    kept += e.data.len() + e.context.len();
                    if kept > keep_bytes {
                        break;
                    }
                    from -= 1;
                }
            }
        }
        let store = raw.mut_store();
        store.offer_snapshot_file(dir, shard, meta);
        store.compact(from);
        let hs = store.hard_state().clone();
        drop(raw);
        let (_, journal) = self.durable.as_ref()?;
        let mut j = journal.borrow_mut();
        j.append(&Record::RaftState(&hs.write_to_bytes().expect("a hard state always encodes")));
        Some(j.last_seq())
    }
    /// This replica's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where the group stands, as this replica sees it.
    pub fn status(&self) -> ReplicaStatus {
        let raw = self.raw.borrow();
        ReplicaStatus {
            id: self.id,
            leader: raw.raft.leader_id,
            term: raw.raft.term,
            leading: raw.raft.state == StateRole::Leader,
            commit: raw.raft.raft_log.committed,
            applied: self.applied.get(),
        }
    }

    /// Whether this leader is handing its leadership over (it takes no
    /// proposals meanwhile).
    pub fn transferring(&self) -> bool {
        self.raw.borrow().raft.lead_transferee.is_some()
    }

    /// The persisted log (read-only: the replica owns it).
    pub fn with_log<R>(&self, f: impl FnOnce(&RaftLog) -> R) -> R {
        f(self.raw.borrow().store())
    }

    /// Proposes `data` (one client batch) as the next entry, on the leader.
    pub fn propose(&self, data: Vec<u8>) -> Result<Proposal, ProposeError> {
        let mut raw = self.raw.borrow_mut();
        if raw.raft.state != StateRole::Leader {
            let leader = raw.raft.leader_id;
            return Err(ProposeError::NotLeader { leader: (leader != 0).then_some(leader) });
        }
        raw.propose(Vec::new(), data).map_err(|_| ProposeError::Dropped)?;
        let p = Proposal { index: raw.raft.raft_log.last_index(), term: raw.raft.term };
        drop(raw);
        self.kick();
        Ok(p)
    }

    /// Stands for election now, instead of waiting for an election
    /// timeout (the group's first leader does, at start).
    pub fn campaign(&self) {
        let _ = self.raw.borrow_mut().campaign();
        self.kick();
    }

    /// Asks the leader to confirm it still leads (ReadIndex); the answer
    /// reaches [`StateMachine::read_ready`] with `ctx`. A follower forwards
    /// the request to the leader it knows of; with none, nothing answers
    /// and the caller times out.
    pub fn read_index(&self, ctx: Vec<u8>) {
        self.raw.borrow_mut().read_index(ctx);
        self.kick();
    }

    /// Hands the records journaled since the last call to the log writer
    /// (see `log::writer::run`).
    pub fn journal_take(&self, spare: &mut Vec<u8>) -> Option<(u64, u64)> {
        self.durable.as_ref()?.1.borrow_mut().take(spare)
    }

    /// Takes the persisted log out, once [`Replica::run`] has ended (to start
    /// the replica again over it).
    pub fn take_log(&self) -> RaftLog {
        std::mem::take(self.raw.borrow_mut().mut_store())
    }

    /// Asks the loop ([`Replica::run`]) to end, and closes the connections
    /// peers dialled (so they notice at once and redial later).
    pub fn stop(&self) {
        self.stopping.set(true);
        for &fd in self.inbound.borrow().values() {
            // SAFETY: `fd` is the socket of a stream `serve` still owns
            // (it leaves the list before the stream is dropped); shutdown
            // does not close it, it ends the reads `serve` waits in.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        for l in self.links.values() {
            l.stop();
        }
        self.kick();
    }

    /// Serves one connection a peer dialled: its hello, then its messages,
    /// each stepped into the group. Returns why it ended.
    pub async fn serve(&self, mut stream: TcpStream) -> PeerError {
        if self.stopping.get() {
            return PeerError::Io(std::io::ErrorKind::ConnectionAborted.into());
        }
        if self.unidentified.get() >= peer::MAX_UNIDENTIFIED {
            return PeerError::TooManyUnidentified;
        }
        let conn = self.next_inbound.replace(self.next_inbound.get() + 1);
        self.inbound.borrow_mut().insert(conn, stream.as_raw_fd());
        let _served = Served(self, conn);
        self.unidentified.set(self.unidentified.get() + 1);
        let waiting = Unidentified(&self.unidentified);
        let mut h = [0u8; peer::HELLO];
        let hello = futures_lite::future::or(
            async { Some(futures_lite::AsyncReadExt::read_exact(&mut stream, &mut h).await) },
            async {
                glommio::timer::sleep(peer::HELLO_TIMEOUT).await;
                None
            },
        );
        match hello.await {
            Some(Ok(())) => {}
            Some(Err(e)) => return e.into(),
            None => return PeerError::HelloTimeout,
        }
        drop(waiting);
        let from = match peer::parse_hello(&h) {
            Ok((group, _)) if group != self.group => return PeerError::WrongGroup { got: group, want: self.group },
            Ok((_, from)) if from == self.id || !self.members.contains(&from) => return PeerError::UnknownPeer(from),
            Ok((_, from)) => from,
            Err(e) => return e,
        };
        // One connection per member: a newer one means the member redialled
        // and the older is dead on its side.
        if let Some(old) = self.by_member.borrow_mut().insert(from, conn)
            && let Some(&fd) = self.inbound.borrow().get(&old)
        {
            // SAFETY: `fd` is the socket of a stream another `serve` still
            // owns (it leaves `inbound` before the stream is dropped);
            // shutdown does not close it, it ends that task's reads.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        let mut buf = Vec::new();
        loop {
            let msg = match peer::read_message(&mut stream, &mut buf).await {
                Ok(m) => m,
                Err(_) if self.by_member.borrow().get(&from) != Some(&conn) => return PeerError::Replaced,
                Err(e) => return e,
            };
            if msg.from != from || msg.to != self.id {
                return PeerError::Misaddressed { from: msg.from, to: msg.to, peer: from, me: self.id };
            }
            if self.isolated.get() {
                continue;
            }
            if let Err(e) = self.raw.borrow_mut().step(msg) {
                return PeerError::Refused(e.to_string());
            }
            self.kick();
        }
    }

    /// Runs the replica until [`Replica::stop`]: ticks, and handles every
    /// `Ready` (see the module comment). Starts the links to the peers.
    pub async fn run(&self, sm: &impl StateMachine) {
        let tasks: Vec<_> = self
            .links
            .values()
            .map(|l| {
                let (l, group, me) = (l.clone(), self.group, self.id);
                glommio::spawn_local(async move { l.run(group, me, Duration::from_millis(50)).await })
            })
            .collect();
        let mut next_tick = std::time::Instant::now() + self.tick;
        while !self.stopping.get() {
            let now = std::time::Instant::now();
            if now >= next_tick {
                self.raw.borrow_mut().tick();
                next_tick = now + self.tick;
            }
            for l in self.links.values() {
                if l.take_unreachable() {
                    self.raw.borrow_mut().report_unreachable(l.peer);
                }
                if let Some(sent) = l.take_snapshot_sent() {
                    let status = if sent { SnapshotStatus::Finish } else { SnapshotStatus::Failure };
                    self.raw.borrow_mut().report_snapshot(l.peer, status);
                }
            }
            self.handle_ready(sm).await;
            self.hand_over();
            let wait = next_tick.saturating_duration_since(std::time::Instant::now());
            futures_lite::future::or(glommio::timer::sleep(wait), self.kicked()).await;
        }
        for t in tasks {
            t.await;
        }
    }

    /// A leader that is not the preferred member hands the leadership to
    /// it once it holds every entry (raft-rs's leadership transfer: the
    /// leader stops taking proposals until the transferee has won, or an
    /// election timeout has passed).
    fn hand_over(&self) {
        let mut raw = self.raw.borrow_mut();
        let to = self.preferred;
        if to == 0 || to == self.id || raw.raft.state != StateRole::Leader || raw.raft.lead_transferee.is_some() {
            return;
        }
        let last = raw.raft.raft_log.last_index();
        if raw.raft.prs().get(to).is_some_and(|p| p.matched == last) {
            raw.transfer_leader(to);
            drop(raw);
            self.kick();
        }
    }

    fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    async fn kicked(&self) {
        std::future::poll_fn(|cx| {
            if self.kicked.replace(false) {
                return std::task::Poll::Ready(());
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Cuts this replica off from its peers, or heals it: while isolated,
    /// every message in or out is dropped, as in a network partition (the
    /// connections stay up). A fault switch for tests and fault runs.
    pub fn set_isolated(&self, isolated: bool) {
        self.isolated.set(isolated);
    }

    fn send(&self, msgs: Vec<Message>) {
        if self.isolated.get() {
            return;
        }
        for m in msgs {
            if let Some(l) = self.links.get(&m.to) {
                l.send(m);
            }
        }
    }

    async fn handle_ready(&self, sm: &impl StateMachine) {
        let (number, persisted, seq, drop_upto) = {
            let mut raw = self.raw.borrow_mut();
            if !raw.has_ready() {
                return;
            }
            let mut rd = raw.ready();
            if let Some(ss) = rd.ss() {
                sm.role(ss.raft_state == StateRole::Leader, raw.raft.raft_log.last_index());
            }
            self.send(rd.take_messages());
            // The log's records before a snapshot received now are of no use
            // once it and the next hard state are durable.
            let mut drop_upto = None;
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                if let Err(e) = self.keep_snapshot(&snap) {
                    // It must be durable before it is acknowledged: the
                    // replica stops, its peers go on without it.
                    eprintln!("group {} replica {}: {e}; replica stopped", self.group, self.id);
                    drop(raw);
                    self.stop();
                    return;
                }
                drop_upto = self.durable.as_ref().map(|(_, j)| j.borrow().last_seq());
                sm.restore(&snap);
                let index = snap.get_metadata().index;
                let meta = snap.get_metadata().clone();
                // raft-rs hands a snapshot out only when it is newer than
                // the log, so the log takes it.
                if raw.mut_store().apply_snapshot(snap).is_ok() {
                    self.applied.set(index);
                    self.installed.set(self.installed.get() + 1);
                    if let Some((dir, shard)) = &self.snapshot_dir {
                        raw.mut_store().offer_snapshot_file(dir.clone(), *shard, meta);
                    }
                }
            }
            for s in rd.take_read_states() {
                sm.read_ready(s);
            }
            self.apply(&mut raw, sm, rd.take_committed_entries());
            // A snapshot installed now counts as applied once it counts as
            // persisted (after `on_persist_ready`): raft-rs refuses an
            // applied index past what is persisted.
            let persisted = raw.raft.raft_log.persisted;
            raw.advance_apply_to(self.applied.get().min(persisted));
            let hs = rd.hs().cloned().or_else(|| drop_upto.map(|_| raw.store().hard_state().clone()));
            let (first_seq, seq) = self.journal(rd.entries(), hs.as_ref()).unwrap_or((0, None));
            if let Err(gap) = raw.mut_store().append_at(rd.entries(), first_seq) {
                // raft-rs hands out entries that continue its stable log, so
                // a gap is a bug; going on would fork the group, so the
                // replica stops (its peers elect without it).
                eprintln!("group {} replica {}: raft log: {gap}; replica stopped", self.group, self.id);
                drop(raw);
                self.stop();
                return;
            }
            if let Some(hs) = rd.hs() {
                raw.mut_store().set_hard_state(hs.clone());
            }
            let number = rd.number();
            let persisted = rd.take_persisted_messages();
            // The entries are readable from the storage already, as
            // raft-rs asks; they count as persisted once the log says so.
            raw.advance_append_async(rd);
            (number, persisted, seq, drop_upto)
        };
        if let (Some((state, _)), Some(seq)) = (&self.durable, seq) {
            state.kick();
            if let Err(failed) = state.safe_at(seq).await {
                // Votes and acknowledgements must not leave unpersisted:
                // the replica stops, and its peers go on without it.
                eprintln!("group {} replica {}: the log failed ({failed}); replica stopped", self.group, self.id);
                self.stop();
                return;
            }
            if let Some(upto) = drop_upto {
                state.truncate(upto);
            }
        }
        let mut raw = self.raw.borrow_mut();
        raw.on_persist_ready(number);
        let applied = self.applied.get();
        if raw.raft.raft_log.applied < applied && applied <= raw.raft.raft_log.persisted {
            raw.advance_apply_to(applied);
        }
        drop(raw);
        self.send(persisted);
        // What persisting made possible (a leader's commit) is in the
        // next Ready.
        self.kick();
    }

    /// Journals a `Ready`'s entries and hard state, when durable: the
    /// sequence number of the first entry's record (0: no entry) and of the
    /// last record (`None`: nothing to wait for). `None` when not durable.
    fn journal(&self, entries: &[Entry], hs: Option<&raft::eraftpb::HardState>) -> Option<(u64, Option<u64>)> {
        let (_, journal) = self.durable.as_ref()?;
        let mut j = journal.borrow_mut();
        if entries.is_empty() && hs.is_none() {
            return Some((0, None));
        }
        let first = if entries.is_empty() { 0 } else { j.last_seq() + 1 };
        for e in entries {
            j.append(&Record::RaftEntry(&e.write_to_bytes().expect("a raft entry always encodes")));
        }
        if let Some(hs) = hs {
            j.append(&Record::RaftState(&hs.write_to_bytes().expect("a hard state always encodes")));
        }
        Some((first, Some(j.last_seq())))
    }

    /// Makes a snapshot received from the leader durable as the shard's
    /// snapshot file, when the replica keeps one.
    fn keep_snapshot(&self, snap: &Snapshot) -> Result<(), String> {
        let (Some((dir, shard)), Some((_, journal))) = (&self.snapshot_dir, &self.durable) else { return Ok(()) };
        let meta = snap.get_metadata();
        let data: &[u8] = &snap.data;
        let mut records = 0u64;
        let mut at = 0;
        while at < data.len() {
            match crate::log::record::decode(&data[at..]) {
                Ok((r, n)) if r.seq == meta.index && matches!(r.entry, Record::Set { .. }) => {
                    records += 1;
                    at += n;
                }
                _ => return Err(format!("the snapshot at {} from the leader is damaged at byte {at}", meta.index)),
            }
        }
        let header = crate::log::snapshot::Header {
            shard: *shard,
            seq: journal.borrow().last_seq(),
            records,
            bytes: data.len() as u64,
            raft: Some(meta.clone()),
        };
        crate::log::snapshot::write_received(dir, &header, data).map_err(|e| e.to_string())
    }

    fn apply(&self, raw: &mut RawNode<RaftLog>, sm: &impl StateMachine, entries: Vec<Entry>) {
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryNormal if !e.data.is_empty() => sm.apply(raw.store(), e.index, e.term, &e.data),
                EntryType::EntryNormal => sm.skip(raw.store(), e.index),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    // A committed membership change, in either encoding.
                    let cs = if e.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&e.data).ok().and_then(|cc| raw.apply_conf_change(&cc).ok())
                    } else {
                        ConfChangeV2::parse_from_bytes(&e.data).ok().and_then(|cc| raw.apply_conf_change(&cc).ok())
                    };
                    if let Some(cs) = cs {
                        raw.mut_store().set_conf_state(cs);
                    }
                    sm.skip(raw.store(), e.index);
                }
            }
            self.applied.set(e.index);
        }
    }
}
