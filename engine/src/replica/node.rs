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
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot, SnapshotMetadata,
};
use raft::{RawNode, ReadState, SnapshotStatus, StateRole};
use wire::cluster::Member;

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
    /// Where the members the cluster file names run (this one included):
    /// what the shard map shows of the group until a membership change
    /// tells of others. May be empty (the map then names no replica).
    pub book: Vec<Member>,
    /// A new replica joining a running group ([`Replica::joining`]): it
    /// takes no entries until it has installed a leader's snapshot, which
    /// brings the group's membership (its log starts without one).
    pub joining: bool,
}

/// A change to a group's membership, proposed by its leader
/// ([`Replica::change_members`]): one replica at a time, as Raft's single
/// changes are safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    /// A new replica joins as a learner (it receives the log, it does not
    /// vote); the change carries where it runs, so every replica learns it.
    AddLearner(Member),
    /// A learner becomes a voter (once it has caught up).
    Promote(u64),
    /// A replica leaves the group (a dead node's, or a moved one's).
    Remove(u64),
}

/// Why a membership change was not proposed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    /// This replica is not the leader; `leader` is the one it knows of.
    #[error("not the leader (leader: {leader})")]
    NotLeader {
        /// The leader's id (0: none known).
        leader: u64,
    },
    /// A change is proposed and not applied yet: one at a time.
    #[error("a membership change is under way (proposed up to entry {0}): wait for it to apply")]
    Pending(u64),
    /// The change makes no sense for the group as it is.
    #[error("{0}")]
    Invalid(String),
    /// The leader is asked to remove itself: it hands its leadership to
    /// `to` first; the change must be asked of the new leader.
    #[error("this replica leads: its leadership goes to member {to} first; ask the new leader")]
    HandingOver {
        /// The member the leadership goes to.
        to: u64,
    },
}

/// One member of the group as a replica sees it ([`Replica::members`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Its id.
    pub id: u64,
    /// Whether it votes (else a learner).
    pub voter: bool,
    /// Where it runs, when known.
    pub at: Option<Member>,
    /// The highest entry the leader knows it holds (0 on a follower).
    pub matched: u64,
}

/// The context a membership change carries: where the member runs.
pub fn member_context(m: &Member) -> Vec<u8> {
    format!("{} {} {} {} {} {}", m.id, m.node, m.addr, m.port, m.peer_port, m.cpu).into_bytes()
}

/// Reads a [`member_context`] back (`None`: not one).
pub fn parse_member_context(ctx: &[u8]) -> Option<Member> {
    let text = std::str::from_utf8(ctx).ok()?;
    let mut f = text.split(' ');
    let m = Member {
        id: f.next()?.parse().ok()?,
        node: f.next()?.to_string(),
        addr: f.next()?.to_string(),
        port: f.next()?.parse().ok()?,
        peer_port: f.next()?.parse().ok()?,
        cpu: f.next()?.parse().ok()?,
    };
    f.next().is_none().then_some(m)
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
    links: RefCell<HashMap<u64, Rc<Link>>>,
    /// The tasks of links added while the replica runs.
    link_tasks: RefCell<Vec<glommio::Task<()>>>,
    running: Cell<bool>,
    /// Members that may connect: the file's and those changes added.
    members: RefCell<Vec<u64>>,
    /// Where members run: the file's, and what changes told.
    book: RefCell<HashMap<u64, Member>>,
    /// Joining: no entries are taken until a snapshot is installed.
    joining: Cell<bool>,
    /// The hello this replica's links open with (its peer endpoint, when
    /// the book says where it runs).
    hello: Rc<[u8]>,
    /// A membership change was applied since the shard last snapshotted:
    /// a snapshot keeps the new membership for restarts.
    membership_changed: Cell<bool>,
    kicked: Cell<bool>,
    waker: RefCell<Option<Waker>>,
    stopping: Cell<bool>,
    isolated: Cell<bool>,
    preferred: Cell<u64>,
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
        let joining = cfg.joining && raw.store().base().0 == 0 && raw.store().conf_state().voters.is_empty();
        // Members of the group's membership may connect, whether or not
        // the file names them.
        let cs = raw.store().conf_state();
        for &id in cs.voters.iter().chain(&cs.learners) {
            if id != cfg.id && !members.contains(&id) {
                members.push(id);
            }
        }
        let advertise =
            cfg.book.iter().find(|m| m.id == cfg.id).map(|m| format!("{}:{}", m.addr, m.peer_port)).unwrap_or_default();
        let hello: Rc<[u8]> = peer::hello_from(cfg.group, cfg.id, &advertise).into();
        Ok(Replica {
            group: cfg.group,
            id: cfg.id,
            tick: cfg.tick,
            raw: RefCell::new(raw),
            links: RefCell::new(links),
            link_tasks: RefCell::new(Vec::new()),
            running: Cell::new(false),
            members: RefCell::new(members),
            book: RefCell::new(cfg.book.iter().map(|m| (m.id, m.clone())).collect()),
            joining: Cell::new(joining),
            hello,
            membership_changed: Cell::new(false),
            kicked: Cell::new(false),
            waker: RefCell::new(None),
            stopping: Cell::new(false),
            isolated: Cell::new(false),
            preferred: Cell::new(cfg.preferred),
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
            // A peer that holds nothing yet (one that joins) takes the
            // snapshot whatever is kept: keeping the log from its start for
            // it would let it replay entries without the group's first
            // membership.
            let needed = raw
                .raft
                .prs()
                .iter()
                .filter(|(id, p)| **id != self.id && p.matched > 0)
                .map(|(_, p)| p.matched + 1)
                .min();
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
        for l in self.links.borrow().values() {
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
        let mut at = [0u8; peer::MAX_ADVERTISED + 1];
        let hello = futures_lite::future::or(
            async {
                use futures_lite::AsyncReadExt;
                let read = async {
                    stream.read_exact(&mut h).await?;
                    stream.read_exact(&mut at[..1]).await?;
                    let len = usize::from(at[0]);
                    stream.read_exact(&mut at[1..=len]).await?;
                    Ok::<usize, std::io::Error>(len)
                };
                Some(read.await)
            },
            async {
                glommio::timer::sleep(peer::HELLO_TIMEOUT).await;
                None
            },
        );
        let at_len = match hello.await {
            Some(Ok(len)) => len,
            Some(Err(e)) => return e.into(),
            None => return PeerError::HelloTimeout,
        };
        drop(waiting);
        let from = match peer::parse_hello(&h) {
            Ok((group, _)) if group != self.group => return PeerError::WrongGroup { got: group, want: self.group },
            Ok((_, from)) if from == self.id => return PeerError::UnknownPeer(from),
            Ok((_, from)) => from,
            Err(e) => return e,
        };
        if !self.members.borrow().contains(&from) {
            // A joining replica knows no membership yet: it takes the
            // members that reach it (the leader among them) at their word,
            // as many as a group can have (each gets a link).
            if !self.joining.get() || self.members.borrow().len() >= 2 * wire::cluster::MAX_REPLICAS as usize {
                return PeerError::UnknownPeer(from);
            }
            self.members.borrow_mut().push(from);
        }
        // Where the member's peer port is, for a member this replica has no
        // link to (its file does not name it).
        if !self.links.borrow().contains_key(&from)
            && let Ok(text) = std::str::from_utf8(&at[1..=at_len])
            && let Some(addr) = std::net::ToSocketAddrs::to_socket_addrs(text).ok().and_then(|mut a| a.next())
        {
            let l = Rc::new(Link::new(from, addr));
            self.links.borrow_mut().insert(from, l.clone());
            if self.running.get() {
                self.spawn_link(l);
            }
        }
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
            // A joining replica's log starts without the group's
            // membership: it takes the leader's snapshot first, never the
            // log from its start (it refuses later appends as any
            // follower would, which leads the leader back to that start).
            if self.joining.get() && msg.get_msg_type() == MessageType::MsgAppend && msg.index == 0 {
                continue;
            }
            if !self.members.borrow().contains(&from) {
                // Removed by a change applied since it connected.
                return PeerError::UnknownPeer(from);
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
        self.running.set(true);
        let links: Vec<Rc<Link>> = self.links.borrow().values().cloned().collect();
        for l in links {
            self.spawn_link(l);
        }
        let mut next_tick = std::time::Instant::now() + self.tick;
        while !self.stopping.get() {
            let now = std::time::Instant::now();
            if now >= next_tick {
                self.raw.borrow_mut().tick();
                next_tick = now + self.tick;
            }
            let links: Vec<Rc<Link>> = self.links.borrow().values().cloned().collect();
            for l in links {
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
        let tasks = std::mem::take(&mut *self.link_tasks.borrow_mut());
        for t in tasks {
            t.await;
        }
    }

    fn spawn_link(&self, l: Rc<Link>) {
        let hello = self.hello.clone();
        let task = glommio::spawn_local(async move { l.run(&hello, Duration::from_millis(50)).await });
        self.link_tasks.borrow_mut().push(task);
    }

    /// A leader that is not the preferred member hands the leadership to
    /// it once it holds every entry (raft-rs's leadership transfer: the
    /// leader stops taking proposals until the transferee has won, or an
    /// election timeout has passed).
    fn hand_over(&self) {
        let mut raw = self.raw.borrow_mut();
        let to = self.preferred.get();
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
        let links = self.links.borrow();
        for m in msgs {
            if let Some(l) = links.get(&m.to) {
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
                    self.joining.set(false);
                    let cs = raw.store().conf_state().clone();
                    let mut members = self.members.borrow_mut();
                    for &id in cs.voters.iter().chain(&cs.learners) {
                        if id != self.id && !members.contains(&id) {
                            members.push(id);
                        }
                    }
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

    /// Follows an applied membership change: a member added gets a link
    /// (its address comes with the change) and may connect; one removed
    /// loses both. The shard is asked for a snapshot, which keeps the new
    /// membership for a restart.
    fn membership_applied(&self, changes: &[ConfChangeSingle], context: &[u8], cs: &ConfState) {
        let told = parse_member_context(context);
        for c in changes {
            let id = c.node_id;
            match c.get_change_type() {
                ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                    if let Some(m) = told.as_ref().filter(|m| m.id == id) {
                        self.book.borrow_mut().insert(id, m.clone());
                    }
                    if !self.members.borrow().contains(&id) {
                        self.members.borrow_mut().push(id);
                    }
                    if id == self.id || self.links.borrow().contains_key(&id) {
                        continue;
                    }
                    let at = self.book.borrow().get(&id).and_then(|m| {
                        std::net::ToSocketAddrs::to_socket_addrs(&(m.addr.as_str(), m.peer_port)).ok()?.next()
                    });
                    match at {
                        Some(addr) => {
                            let l = Rc::new(Link::new(id, addr));
                            self.links.borrow_mut().insert(id, l.clone());
                            if self.running.get() {
                                self.spawn_link(l);
                            }
                        }
                        None => eprintln!(
                            "group {} replica {}: member {id} joined, but where it runs is not known here (list it in the cluster file)",
                            self.group, self.id
                        ),
                    }
                }
                ConfChangeType::RemoveNode => {
                    if id == self.id {
                        eprintln!("group {} replica {}: this replica was removed from its group", self.group, self.id);
                        continue;
                    }
                    self.members.borrow_mut().retain(|&m| m != id);
                    self.book.borrow_mut().remove(&id);
                    if let Some(l) = self.links.borrow_mut().remove(&id) {
                        l.stop();
                    }
                    // Its served connection ends at its next message.
                    self.by_member.borrow_mut().remove(&id);
                }
            }
        }
        eprintln!(
            "group {} replica {}: membership now: voters {:?}, learners {:?}",
            self.group, self.id, cs.voters, cs.learners
        );
        self.membership_changed.set(true);
    }

    /// Makes `member` the one this replica hands its leadership to when it
    /// leads and `member` has caught up (0: none). The cluster file names
    /// it at start; a membership change that moves it sets it anew on every
    /// replica (else a replica would hand the leadership back to a leader
    /// that is leaving).
    pub fn set_preferred(&self, member: u64) {
        self.preferred.set(member);
    }

    /// Whether a membership change was applied since the last call (the
    /// shard then snapshots, so a restart finds the new membership).
    pub fn take_membership_changed(&self) -> bool {
        self.membership_changed.replace(false)
    }

    /// Whether this replica joins a running group and has not yet
    /// installed the leader's snapshot.
    pub fn joining(&self) -> bool {
        self.joining.get()
    }

    /// The group's members as this replica knows them: the applied
    /// membership (with where each runs, when known) — or, while it knows
    /// none (joining), the cluster file's.
    pub fn members(&self) -> Vec<MemberView> {
        let raw = self.raw.borrow();
        let cs = raw.store().conf_state();
        let book = self.book.borrow();
        let leading = raw.raft.state == StateRole::Leader;
        let matched = |id: u64| if leading { raw.raft.prs().get(id).map_or(0, |p| p.matched) } else { 0 };
        let view = |id: u64, voter: bool| MemberView { id, voter, at: book.get(&id).cloned(), matched: matched(id) };
        if cs.voters.is_empty() && cs.learners.is_empty() {
            let mut all: Vec<MemberView> = book.keys().map(|&id| view(id, true)).collect();
            all.sort_by_key(|m| m.id);
            return all;
        }
        let mut all: Vec<MemberView> = cs.voters.iter().map(|&id| view(id, true)).collect();
        all.extend(cs.learners.iter().map(|&id| view(id, false)));
        all.sort_by_key(|m| m.id);
        all
    }

    /// Proposes a membership change, on the leader; returns the entry's
    /// index (the change holds once that entry is applied: see
    /// [`Replica::status`]'s `applied`).
    pub fn change_members(&self, change: MemberChange) -> Result<u64, MemberError> {
        let mut raw = self.raw.borrow_mut();
        if raw.raft.state != StateRole::Leader {
            return Err(MemberError::NotLeader { leader: raw.raft.leader_id });
        }
        if raw.raft.has_pending_conf() {
            return Err(MemberError::Pending(raw.raft.pending_conf_index));
        }
        let cs = raw.store().conf_state().clone();
        let (kind, id, context) = match &change {
            MemberChange::AddLearner(m) => {
                if m.id == 0 || cs.voters.contains(&m.id) || cs.learners.contains(&m.id) {
                    return Err(MemberError::Invalid(format!("member {} is in the group already", m.id)));
                }
                (ConfChangeType::AddLearnerNode, m.id, member_context(m))
            }
            MemberChange::Promote(id) => {
                if !cs.learners.contains(id) {
                    return Err(MemberError::Invalid(format!("member {id} is not a learner of the group")));
                }
                let context = self.book.borrow().get(id).map(member_context).unwrap_or_default();
                (ConfChangeType::AddNode, *id, context)
            }
            MemberChange::Remove(id) => {
                if !cs.voters.contains(id) && !cs.learners.contains(id) {
                    return Err(MemberError::Invalid(format!("member {id} is not in the group")));
                }
                if cs.voters.contains(id) && cs.voters.len() == 1 {
                    return Err(MemberError::Invalid(format!("member {id} is the group's last voter")));
                }
                if *id == self.id {
                    // A leader does not remove itself: it hands over to the
                    // voter that holds most of the log, which then can.
                    let to = cs
                        .voters
                        .iter()
                        .filter(|&&v| v != self.id)
                        .max_by_key(|&&v| raw.raft.prs().get(v).map_or(0, |p| p.matched))
                        .copied()
                        .ok_or_else(|| MemberError::Invalid("no other voter to hand the leadership to".into()))?;
                    raw.transfer_leader(to);
                    drop(raw);
                    self.kick();
                    return Err(MemberError::HandingOver { to });
                }
                (ConfChangeType::RemoveNode, *id, Vec::new())
            }
        };
        let mut cc = ConfChange::default();
        cc.set_change_type(kind);
        cc.node_id = id;
        raw.propose_conf_change(context, cc).map_err(|e| MemberError::Invalid(e.to_string()))?;
        let index = raw.raft.raft_log.last_index();
        drop(raw);
        self.kick();
        Ok(index)
    }

    fn apply(&self, raw: &mut RawNode<RaftLog>, sm: &impl StateMachine, entries: Vec<Entry>) {
        for e in entries {
            match e.get_entry_type() {
                EntryType::EntryNormal if !e.data.is_empty() => sm.apply(raw.store(), e.index, e.term, &e.data),
                EntryType::EntryNormal => sm.skip(raw.store(), e.index),
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    // A committed membership change, in either encoding.
                    let cc = if e.get_entry_type() == EntryType::EntryConfChange {
                        ConfChange::parse_from_bytes(&e.data).ok().map(|cc| {
                            let mut one = ConfChangeSingle::default();
                            one.set_change_type(cc.get_change_type());
                            one.node_id = cc.node_id;
                            ConfChangeV2 { changes: vec![one].into(), ..Default::default() }
                        })
                    } else {
                        ConfChangeV2::parse_from_bytes(&e.data).ok()
                    };
                    if let Some(cc) = cc
                        && let Ok(cs) = raw.apply_conf_change(&cc)
                    {
                        raw.mut_store().set_conf_state(cs.clone());
                        self.membership_applied(&cc.changes, &e.context, &cs);
                    }
                    sm.skip(raw.store(), e.index);
                }
            }
            self.applied.set(e.index);
        }
    }
}
