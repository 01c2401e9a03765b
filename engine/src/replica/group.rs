//! A replicated shard at run time: its replica of the group, the store's
//! machine, the Raft log's writer, and the peer port, started and stopped
//! with the shard.
//!
//! A replicated shard needs a data directory: its log is the Raft log,
//! and a replica that forgot its votes or entries on a restart could elect
//! two leaders or lose committed writes. At start the snapshot, if any,
//! is loaded into the store and the log after it is replayed into the
//! Raft log ([`crate::log::recover::recover_raft`]); raft-rs then hands
//! the committed entries after the snapshot out again and the machine
//! applies them.
//!
//! # Snapshots and the log's truncation
//!
//! Once the log has grown by the node's `--snapshot-after` bytes since the
//! last snapshot (or on SAVE, BGSAVE, `percore save`), [`Replicated::snapshot`]
//! writes the store at an entry's point (`Machine::snapshot_point`) to the
//! shard's snapshot file, keeps it only once that entry is applied with
//! the term it was proposed in, journals the hard state again, and then
//! drops the log's segments and the in-memory entries it covers — but for
//! up to [`KEEP_FOR_LAGGING`] bytes of entries a lagging peer still needs.
//! A peer further behind (or a new one) is sent the snapshot file in one
//! message (at most `peer::MAX_MESSAGE` bytes: a larger store's replica
//! that falls that far behind cannot catch up, a documented limit).
//!
//! The first leader of each group is the member the cluster file names
//! (the set's servers take turns), which campaigns at once; the others
//! wait an election timeout, so leaders start spread over the servers.

use std::cell::RefCell;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::Duration;

use glommio::net::TcpListener;
use wire::cluster::Member;

use super::machine::Machine;
use super::node::{Replica, ReplicaConfig};
use super::storage::RaftLog;
use crate::log::Durability;
use crate::log::recover::Recovered;
use crate::log::snapshot::{Header, Taken};
use crate::log::writer::{LogState, Writer};
use crate::store::Store;

/// Default time between Raft ticks: elections start after 10 to 20 ticks
/// without a leader's word (1–2 s), heartbeats go every 2 ticks.
pub const TICK: Duration = Duration::from_millis(100);
/// Ticks before a follower stands for election (raft-rs doubles it at random).
pub const ELECTION_TICKS: usize = 10;
/// Ticks between a leader's heartbeats.
pub const HEARTBEAT_TICKS: usize = 2;
/// Bytes of entries a leader keeps in memory past its snapshot for peers
/// that lag (or the node's `--snapshot-after`, if smaller).
pub const KEEP_FOR_LAGGING: usize = 32 << 20;

/// What a replicated shard is started from (built by the server).
#[derive(Debug)]
pub(crate) struct ReplicationSetup {
    /// Every member of the shard's group.
    pub members: Vec<Member>,
    /// This replica's member id.
    pub me: u64,
    /// The member that leads first.
    pub first_leader: u64,
    /// The bound peer port.
    pub peer_listener: std::net::TcpListener,
    /// Time between ticks.
    pub tick: Duration,
    /// Reads on a leader lease instead of ReadIndex rounds.
    pub read_lease: bool,
    /// This replica joins the running group (`--join`): it starts without
    /// a membership and waits for the leader's snapshot.
    pub joining: bool,
}

/// A replicated shard's replication state (see the module comment).
pub(crate) struct Replicated {
    /// The shard's replica of its group.
    pub replica: Rc<Replica>,
    /// The shard's store as the group's state machine.
    pub machine: Rc<Machine>,
    /// The Raft log's marks.
    log: Rc<LogState>,
    recovered: RefCell<Option<Recovered>>,
    peer_listener: RefCell<Option<std::net::TcpListener>>,
    first_leader: bool,
}

/// The tasks a replicated shard runs, until [`Replicated::stop`].
pub(crate) struct Tasks {
    writer: glommio::Task<()>,
    run: glommio::Task<()>,
    proposer: glommio::Task<()>,
    accept: glommio::Task<()>,
}

impl Replicated {
    /// Replays shard `id`'s log in `dir` into its Raft log and builds the
    /// replica and the machine over `store` (which journals its changes).
    pub fn open(
        id: u32,
        dir: &std::path::Path,
        d: &Durability,
        setup: ReplicationSetup,
        store: &Rc<RefCell<Store>>,
    ) -> Result<Replicated, String> {
        // A joining replica knows no membership until the leader's
        // snapshot brings it; a founding one starts from the file's.
        let voters: Vec<u64> = if setup.joining { Vec::new() } else { setup.members.iter().map(|m| m.id).collect() };
        let mut log = RaftLog::new(&voters);
        let r = crate::log::recover::recover_raft(dir, id, &mut log, &mut store.borrow_mut(), d.truncate_corrupt)
            .map_err(|e| e.to_string())?;
        // The snapshot's records went into the store's journal: they are
        // the log's already, not changes to propose.
        store.borrow_mut().journal_take(&mut Vec::new());
        let applied = log.base().0;
        let state = Rc::new(LogState::new(d.fsync, r.next_seq - 1));
        state.adopt(r.chain.clone(), r.spare.clone(), r.replayed_bytes);
        let peers = setup
            .members
            .iter()
            .filter(|m| m.id != setup.me)
            .map(|m| {
                let addr = std::net::ToSocketAddrs::to_socket_addrs(&(m.addr.as_str(), m.peer_port))
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| {
                        format!("replica {} of shard {id}: cannot resolve {}:{}", m.id, m.addr, m.peer_port)
                    })?;
                Ok((m.id, addr))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let cfg = ReplicaConfig {
            group: id,
            id: setup.me,
            peers,
            tick: setup.tick,
            election_ticks: ELECTION_TICKS,
            heartbeat_ticks: HEARTBEAT_TICKS,
            applied,
            preferred: setup.first_leader,
            read_lease: setup.read_lease,
            book: setup.members.clone(),
            joining: setup.joining,
        };
        let replica = Replica::new(&cfg, log, Some((state.clone(), r.next_seq)))
            .map_err(|e| format!("replica {} of shard {id}: {e}", setup.me))?
            .with_snapshot_dir(dir.to_path_buf(), id);
        Ok(Replicated {
            replica: Rc::new(replica),
            machine: Rc::new(Machine::new(store.clone(), applied).with_snapshot_dir(dir.to_path_buf(), id)),
            log: state,
            recovered: RefCell::new(Some(r)),
            peer_listener: RefCell::new(Some(setup.peer_listener)),
            first_leader: setup.first_leader == setup.me && !setup.joining,
        })
    }

    /// Where clients should go instead of this replica: the leader's
    /// `addr:port`, when another member leads and it is known.
    pub fn leader_endpoint(&self) -> Option<String> {
        let leader = self.replica.status().leader;
        if leader == self.replica.id() {
            return None;
        }
        self.members().into_iter().find(|m| m.id == leader).map(|m| format!("{}:{}", m.addr, m.port))
    }

    /// The group's members that this replica knows where to find, by id:
    /// the applied membership (see [`Replica::members`]).
    pub fn members(&self) -> Vec<Member> {
        self.replica.members().into_iter().filter_map(|m| m.at).collect()
    }

    /// The Raft log's marks (for the snapshot trigger and the stats).
    pub fn log(&self) -> &LogState {
        &self.log
    }

    /// Takes a snapshot of the store (shard `shard`, directory `dir`) and
    /// truncates the log behind it (see the module comment); `keep_bytes`
    /// of entries stay in memory for lagging peers. `Err` says why none was
    /// kept (the point's entry was replaced by a new leader, the replica
    /// stopped, the disk failed…): the log stays as it was.
    pub async fn snapshot(&self, shard: u32, dir: &std::path::Path, keep_bytes: usize) -> Result<Taken, String> {
        let (index, term) = self.machine.snapshot_point(&self.replica)?;
        // A snapshot received from the leader meanwhile supersedes this one.
        let installed = self.replica.installed();
        let written =
            crate::log::snapshot::write_records(self.machine.store(), dir, index).await.map_err(|e| e.to_string())?;
        let ready = async {
            if !self.machine.wait_applied(index).await {
                return Err(format!("the replica stopped before entry {index} was applied"));
            }
            let meta = self.replica.snapshot_meta(index, term)?;
            let seq = self
                .replica
                .with_log(|l| l.seq_of(index))
                .ok_or_else(|| format!("entry {index} has no record in the shard's log yet"))?;
            Ok((meta, seq))
        };
        let (meta, seq) = match ready.await {
            Ok(found) => found,
            Err(e) => {
                written.abandon().await;
                return Err(e);
            }
        };
        let header = Header { shard, seq, records: written.records, bytes: written.bytes, raft: Some(meta.clone()) };
        let still = || {
            if self.replica.installed() != installed {
                return Err(format!(
                    "a snapshot from the leader was installed while the one at entry {index} was written"
                ));
            }
            Ok(())
        };
        let taken = written.commit_if(header, still).await.map_err(|e| e.to_string())?;
        if self.replica.installed() != installed {
            // Installed while the directory was synced: the installed one
            // is the shard's now, and this one's file was replaced by it.
            return Err(format!("a snapshot from the leader superseded the one at entry {index}"));
        }
        if let Some(hs) = self.replica.snapshot_taken(dir.to_path_buf(), shard, meta, keep_bytes) {
            self.log.kick();
            self.log.safe_at(hs).await?;
            self.log.truncate(seq);
        }
        Ok(Taken { seq: index, ..taken })
    }

    /// Starts the Raft log's writer, the replica's loop, the proposer and
    /// the peer port's accept loop.
    pub async fn start(self: &Rc<Self>, id: u32, dir: &std::path::Path, d: &Durability) -> Result<Tasks, String> {
        let r = self.recovered.borrow_mut().take().ok_or("the replica was started twice")?;
        let (base, _) = self.replica.with_log(|l| l.base());
        eprintln!(
            "percore-server: shard {id}: replica {} of {}: Raft log recovered from {} in {:.3} s: a snapshot of {} records at entry {base} ({:.1} MB), then {} records ({} segments); fsync {}",
            self.replica.id(),
            self.replica.members().len(),
            dir.display(),
            r.elapsed.as_secs_f64(),
            r.snapshot.records,
            r.snapshot.bytes as f64 / 1e6,
            r.records,
            r.segments,
            d.fsync,
        );
        if let Some(dropped) = &r.dropped {
            eprintln!("percore-server: shard {id}: {dropped}");
        }
        let writer = Writer::open(dir, id, d, r.resume).await.map_err(|e| e.to_string())?;
        let std_listener = self.peer_listener.borrow_mut().take().ok_or("the replica was started twice")?;
        // SAFETY: the descriptor comes from a bound, listening std listener
        // whose ownership `into_raw_fd` hands over.
        let listener = unsafe { TcpListener::from_raw_fd(std_listener.into_raw_fd()) };
        let me = self.clone();
        let writer = glommio::spawn_local(async move {
            crate::log::writer::run(writer, &me.log, |spare| me.replica.journal_take(spare)).await;
        });
        let me = self.clone();
        let run = glommio::spawn_local(async move { me.replica.run(&*me.machine).await });
        let me = self.clone();
        let proposer = glommio::spawn_local(async move { me.machine.run_proposer(&me.replica).await });
        let me = self.clone();
        let accept = glommio::spawn_local(async move {
            loop {
                match listener.accept().await {
                    Ok(stream) => {
                        let me = me.clone();
                        glommio::spawn_local(async move {
                            let _ = me.replica.serve(stream).await;
                        })
                        .detach();
                    }
                    Err(_) => glommio::timer::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        if self.first_leader {
            self.replica.campaign();
        }
        Ok(Tasks { writer, run, proposer, accept })
    }

    /// Stops the replica (peers' connections are shut), the proposer and
    /// the accept loop, then lets the log commit what is left and end.
    pub async fn stop(&self, tasks: Tasks) {
        self.replica.stop();
        self.machine.stop();
        tasks.accept.cancel().await;
        tasks.run.await;
        tasks.proposer.await;
        self.log.stop();
        tasks.writer.await;
    }
}
