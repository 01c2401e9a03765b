//! The shard's store as its group's state machine.
//!
//! # Results are replicated, not commands
//!
//! The leader runs client batches on its store at once, as an unreplicated
//! shard does, and the store journals each change's *result* (the records
//! of `log::record`: a SET with the expiry the key ended with, a DELETE, …).
//! [`Machine::propose`] hands everything journaled since the last proposal
//! to raft-rs as one entry — every batch that ran while the previous
//! proposal was being replicated goes into the next (group commit, across
//! connections). Followers apply committed entries' records to their
//! stores, exactly as recovery replays a log, so no command runs twice and
//! no clock or memory state has to agree between replicas.
//!
//! A reply leaves only when what it could have observed is safe, as with
//! the durable log, with two marks instead of one (see `conn`):
//!
//! - [`Machine::committed`]: the store's journal sequence number up to
//!   which the leader's changes are committed (on a majority's logs).
//! - [`Machine::confirmed_round`]: reads need leadership confirmed after
//!   they ran — a ReadIndex round (a heartbeat answered by a majority)
//!   issued after the read. A connection asks for [`Machine::read_round`]
//!   after running a batch; one round in flight covers every read that ran
//!   before it was issued.
//!
//! # A leader that loses its leadership
//!
//! Its store holds changes that may never commit (a new leader's entries
//! replace them). Every held reply that observed the store is then
//! unknown: [`Machine::epoch`] moves on and connections close instead of
//! answering. The store itself is rebuilt before it takes another
//! entry: cleared, and every committed entry re-applied from the Raft log.
//! A new leader serves only once it has applied every entry of earlier
//! terms ([`Machine::serving`]).
//!
//! # Snapshots
//!
//! [`Machine::snapshot_point`] fixes the store's point for a snapshot
//! (`log::snapshot`, fork-less): on a follower, the last entry applied; on
//! the leader, whose store runs ahead of what is committed, the last entry
//! it proposed, once everything the store journaled is proposed. The
//! snapshot is the shard's only once that entry is applied with the term
//! it was proposed in (the group's `snapshot`). When the log no longer
//! holds the entries a rebuild needs, the store is rebuilt from the
//! snapshot file and the entries after it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::Waker;

use raft::ReadState;
use raft::eraftpb::Snapshot;

use super::node::{ProposeError, Replica, StateMachine};
use super::storage::RaftLog;
use crate::log::record;
use crate::store::Store;

/// One of this leader's proposals, not yet applied.
#[derive(Clone, Copy, Debug)]
struct Inflight {
    index: u64,
    term: u64,
    /// The last store journal sequence number its records carry.
    seq: u64,
}

/// The store of one replica, driven by its group (see the module comment).
pub struct Machine {
    store: Rc<RefCell<Store>>,
    inflight: RefCell<VecDeque<Inflight>>,
    committed: Cell<u64>,
    /// Whether this replica leads, and from which index it may serve.
    leading: Cell<bool>,
    serve_from: Cell<u64>,
    applied: Cell<u64>,
    /// The store holds changes no committed entry has: rebuild before the
    /// next entry is applied.
    dirty: Cell<bool>,
    epoch: Cell<u64>,
    rounds_wanted: Cell<u64>,
    rounds_issued: Cell<u64>,
    rounds_confirmed: Cell<u64>,
    /// Confirmed rounds waiting for the store to apply their read index.
    confirmed_at: RefCell<Vec<(u64, u64)>>,
    rebuilds: Cell<u64>,
    failure: RefCell<Option<String>>,
    spare: RefCell<Vec<u8>>,
    waiters: RefCell<Vec<Waker>>,
    kicked: Cell<bool>,
    proposer: RefCell<Option<Waker>>,
    stopping: Cell<bool>,
    /// The shard's directory and index, where its snapshot file is.
    snapshot_dir: Option<(PathBuf, u32)>,
}

impl Machine {
    /// The machine over `store`, which must journal its changes (the
    /// proposals are taken from its journal) and hold what the Raft log
    /// applied up to `applied`.
    pub fn new(store: Rc<RefCell<Store>>, applied: u64) -> Machine {
        let committed = store.borrow().journal_last_seq();
        Machine {
            committed: Cell::new(committed),
            store,
            inflight: RefCell::new(VecDeque::new()),
            leading: Cell::new(false),
            serve_from: Cell::new(u64::MAX),
            applied: Cell::new(applied),
            dirty: Cell::new(false),
            epoch: Cell::new(0),
            rounds_wanted: Cell::new(0),
            rounds_issued: Cell::new(0),
            rounds_confirmed: Cell::new(0),
            confirmed_at: RefCell::new(Vec::new()),
            rebuilds: Cell::new(0),
            failure: RefCell::new(None),
            spare: RefCell::new(Vec::new()),
            waiters: RefCell::new(Vec::new()),
            kicked: Cell::new(false),
            proposer: RefCell::new(None),
            stopping: Cell::new(false),
            snapshot_dir: None,
        }
    }

    /// Rebuilds the store from shard `shard`'s snapshot file in `dir` when
    /// the Raft log no longer holds the entries it needs.
    pub fn with_snapshot_dir(mut self, dir: PathBuf, shard: u32) -> Machine {
        self.snapshot_dir = Some((dir, shard));
        self
    }

    /// The store, shared with the shard's connections.
    pub fn store(&self) -> &RefCell<Store> {
        &self.store
    }

    /// Highest entry applied to the store.
    pub fn applied(&self) -> u64 {
        self.applied.get()
    }

    /// Fixes the point of a snapshot of the store and begins it
    /// ([`Store::snapshot_begin`], numbered with the entry's index): the
    /// entry whose application the store stands at, and the term it must
    /// have once applied (see the module comment). `Err` says why not now.
    pub fn snapshot_point(&self, replica: &Replica) -> Result<(u64, u64), String> {
        if let Some(f) = self.failure() {
            return Err(f);
        }
        if self.dirty.get() {
            return Err("the store is to be rebuilt".into());
        }
        if self.leading.get() {
            if !self.serving() {
                return Err("this leader has not applied the entries of earlier terms yet".into());
            }
            self.propose(replica).map_err(|e| e.to_string())?;
        } else if self.store.borrow().journal_pending() > 0 {
            return Err("the store holds changes no entry has".into());
        }
        let last = self.inflight.borrow().back().copied();
        let (index, term) = match last {
            Some(p) => (p.index, p.term),
            None => {
                let a = self.applied.get();
                (a, replica.with_log(|l| raft::Storage::term(l, a)).map_err(|e| e.to_string())?)
            }
        };
        if index == 0 {
            return Err("nothing is applied yet".into());
        }
        if !self.store.borrow_mut().snapshot_begin(index) {
            return Err("a snapshot is already running".into());
        }
        Ok((index, term))
    }

    /// Waits until the entry at `index` is applied: `false` if the machine
    /// failed or stopped first.
    pub async fn wait_applied(&self, index: u64) -> bool {
        std::future::poll_fn(|cx| {
            if self.failure.borrow().is_some() || self.stopping.get() {
                return std::task::Poll::Ready(false);
            }
            if self.applied.get() >= index {
                return std::task::Poll::Ready(true);
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    /// Whether client batches may run here now: this replica leads, has
    /// applied every entry of earlier terms, and its store is clean.
    pub fn serving(&self) -> bool {
        self.leading.get() && !self.dirty.get() && self.applied.get() >= self.serve_from.get()
    }

    /// Runs `f` on the store.
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.store.borrow())
    }

    /// Runs `f` on the store, to change it (a client batch, on the leader
    /// while [`Machine::serving`]; then [`Machine::kick`]).
    pub fn with_store_mut<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.store.borrow_mut())
    }

    /// The store journal sequence number up to which changes are committed.
    pub fn committed(&self) -> u64 {
        self.committed.get()
    }

    /// Leadership changes so far: a reply held in an earlier epoch must
    /// not be sent (what it observed may be gone).
    pub fn epoch(&self) -> u64 {
        self.epoch.get()
    }

    /// Times the store was rebuilt from the Raft log.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.get()
    }

    /// Why the machine stopped applying (a record the store refused, or
    /// an entry the log no longer holds); `None` while it works.
    pub fn failure(&self) -> Option<String> {
        self.failure.borrow().clone()
    }

    /// The read round a batch that just ran needs confirmed before its
    /// replies leave.
    pub fn read_round(&self) -> u64 {
        let r = self.rounds_issued.get() + 1;
        self.rounds_wanted.set(self.rounds_wanted.get().max(r));
        r
    }

    /// The highest read round confirmed.
    pub fn confirmed_round(&self) -> u64 {
        self.rounds_confirmed.get()
    }

    /// Proposes what the store journaled since the last proposal, and
    /// issues a read round if one is wanted and none is in flight. A
    /// proposal refused because leadership just went leaves the store
    /// dirty (it is rebuilt).
    pub fn propose(&self, replica: &Replica) -> Result<(), ProposeError> {
        if !self.serving() {
            return Err(ProposeError::NotLeader { leader: None });
        }
        let mut spare = self.spare.borrow_mut();
        let taken = self.store.borrow_mut().journal_take(&mut spare);
        if let Some((first, last)) = taken {
            record::seal(&mut spare, first);
            match replica.propose(spare.clone()) {
                Ok(p) => self.inflight.borrow_mut().push_back(Inflight { index: p.index, term: p.term, seq: last }),
                Err(e) => {
                    self.lose_leadership();
                    return Err(e);
                }
            }
        }
        let issued = self.rounds_issued.get();
        if self.rounds_wanted.get() > issued && self.rounds_confirmed.get() == issued {
            self.rounds_issued.set(issued + 1);
            replica.read_index((issued + 1).to_le_bytes().to_vec());
        }
        Ok(())
    }

    /// Waits until `done` holds or the epoch moves past `epoch`: `false`
    /// then (what the caller waited for will not come).
    pub async fn wait(&self, epoch: u64, done: impl Fn(&Machine) -> bool) -> bool {
        std::future::poll_fn(|cx| {
            if self.epoch.get() != epoch || self.failure.borrow().is_some() {
                return std::task::Poll::Ready(false);
            }
            if done(self) {
                return std::task::Poll::Ready(true);
            }
            self.waiters.borrow_mut().push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }

    fn wake(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    fn lose_leadership(&self) {
        let unapplied = !self.inflight.borrow().is_empty() || self.store.borrow().journal_pending() > 0;
        if unapplied {
            self.dirty.set(true);
        }
        self.inflight.borrow_mut().clear();
        self.leading.set(false);
        self.serve_from.set(u64::MAX);
        self.confirmed_at.borrow_mut().clear();
        self.rounds_wanted.set(self.rounds_issued.get());
        self.rounds_confirmed.set(self.rounds_issued.get());
        self.epoch.set(self.epoch.get() + 1);
        self.wake();
    }

    /// Applies the records of an entry's data to the store; false if the
    /// store refused one (the machine has failed).
    fn apply_records(&self, store: &mut Store, data: &[u8]) -> bool {
        let mut at = 0;
        while at < data.len() {
            let (r, n) = match record::decode(&data[at..]) {
                Ok(found) => found,
                Err(e) => return self.fail(format!("an undecodable record in a committed entry: {e}")),
            };
            if let Err(e) = crate::log::recover::replay_into(store, &r.entry) {
                return self.fail(format!("a committed record was refused: {e:?}"));
            }
            at += n;
        }
        true
    }

    fn fail(&self, why: String) -> bool {
        eprintln!("percore-server: replicated store stopped applying: {why}");
        *self.failure.borrow_mut() = Some(why);
        self.wake();
        false
    }

    /// Clears the store and applies every committed entry before `upto`:
    /// from the snapshot file on, when the log starts after a snapshot.
    fn rebuild(&self, log: &RaftLog, upto: u64) -> bool {
        let mut store = self.store.borrow_mut();
        store.set_now(crate::store::unix_ms());
        store.clear();
        let mut from = log.first();
        let (base, _) = log.base();
        if base > 0 {
            // Rare (a leader deposed with changes in flight): the file is
            // read on the shard's executor.
            let Some((dir, shard)) = &self.snapshot_dir else {
                return self
                    .fail(format!("the store must be rebuilt from the snapshot at entry {base}, and none is kept"));
            };
            match crate::log::snapshot::load_raft(dir, *shard, &mut store) {
                Ok(Some((_, meta))) if meta.index >= base && meta.index < upto => from = meta.index + 1,
                Ok(found) => {
                    let at = found.map(|(_, m)| m.index);
                    return self.fail(format!(
                        "the store must be rebuilt from a snapshot between entries {base} and {upto}, and the snapshot file holds {at:?}"
                    ));
                }
                Err(e) => return self.fail(format!("rebuilding the store: {e}")),
            }
        }
        for i in from..upto {
            let Some(e) = log.entry(i) else {
                return self.fail(format!("entry {i} is needed to rebuild the store, and the log no longer has it"));
            };
            let normal = !e.data.is_empty() && e.get_entry_type() == raft::eraftpb::EntryType::EntryNormal;
            if normal && !self.apply_records(&mut store, &e.data) {
                return false;
            }
        }
        self.discard_journal(&mut store);
        self.dirty.set(false);
        self.rebuilds.set(self.rebuilds.get() + 1);
        true
    }

    /// Drops the journal's records of changes that come from the log, and
    /// moves the committed mark past them.
    fn discard_journal(&self, store: &mut Store) {
        let mut spare = self.spare.borrow_mut();
        store.journal_take(&mut spare);
        spare.clear();
        self.committed.set(store.journal_last_seq());
    }

    /// Whether the store holds changes no applied entry has.
    fn unclean(&self) -> bool {
        let pending = self.store.borrow().journal_pending() > 0;
        self.dirty.get() || pending
    }

    fn confirm_reads(&self) {
        let applied = self.applied.get();
        let mut at = self.confirmed_at.borrow_mut();
        at.retain(|&(round, index)| {
            if index <= applied {
                self.rounds_confirmed.set(self.rounds_confirmed.get().max(round));
                false
            } else {
                true
            }
        });
        drop(at);
        if self.rounds_wanted.get() > self.rounds_issued.get() {
            self.kick();
        }
    }

    /// Asks the proposer ([`Machine::run_proposer`]) to propose what the
    /// store journaled and issue a wanted read round: a connection calls it
    /// after each batch it ran. The proposer runs once the caller yields,
    /// so every batch run in between goes into one proposal.
    pub fn kick(&self) {
        self.kicked.set(true);
        if let Some(w) = self.proposer.borrow_mut().take() {
            w.wake();
        }
    }

    /// Ends [`Machine::run_proposer`] and [`Machine::wait_applied`].
    pub fn stop(&self) {
        self.stopping.set(true);
        self.kick();
        self.wake();
    }

    /// The shard's proposer task: [`Machine::propose`] whenever kicked,
    /// until [`Machine::stop`].
    pub async fn run_proposer(&self, replica: &Replica) {
        while !self.stopping.get() {
            std::future::poll_fn(|cx| {
                if self.kicked.replace(false) || self.stopping.get() {
                    return std::task::Poll::Ready(());
                }
                *self.proposer.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::Pending
            })
            .await;
            let _ = self.propose(replica);
        }
    }
}

impl StateMachine for Machine {
    fn apply(&self, log: &RaftLog, index: u64, term: u64, data: &[u8]) {
        if self.failure.borrow().is_some() {
            return;
        }
        let own = self.inflight.borrow().front().copied();
        match own {
            // This leader's own proposal: its changes are in the store.
            Some(p) if p.index == index && p.term == term => {
                self.inflight.borrow_mut().pop_front();
                self.committed.set(p.seq);
            }
            _ => {
                if own.is_some_and(|p| p.index <= index) {
                    // A new leader replaced this one's proposal.
                    self.lose_leadership();
                }
                if self.unclean() && !self.rebuild(log, index) {
                    return;
                }
                let mut store = self.store.borrow_mut();
                store.set_now(crate::store::unix_ms());
                if !self.apply_records(&mut store, data) {
                    return;
                }
                self.discard_journal(&mut store);
            }
        }
        self.applied.set(index);
        self.confirm_reads();
        self.wake();
    }

    fn skip(&self, log: &RaftLog, index: u64) {
        if self.unclean() && !self.rebuild(log, index) {
            return;
        }
        self.applied.set(index);
        self.confirm_reads();
        self.wake();
    }

    fn read_ready(&self, state: ReadState) {
        let Ok(round) = <[u8; 8]>::try_from(state.request_ctx.as_slice()).map(u64::from_le_bytes) else { return };
        if round <= self.rounds_issued.get() && self.leading.get() {
            self.confirmed_at.borrow_mut().push((round, state.index));
            self.confirm_reads();
            self.wake();
        }
    }

    fn restore(&self, snapshot: &Snapshot) {
        let mut store = self.store.borrow_mut();
        store.set_now(crate::store::unix_ms());
        store.clear();
        if self.apply_records(&mut store, &snapshot.data) {
            self.discard_journal(&mut store);
            self.dirty.set(false);
            self.inflight.borrow_mut().clear();
            self.applied.set(snapshot.get_metadata().index);
        }
    }

    fn role(&self, leading: bool, last_index: u64) {
        if leading && !self.leading.get() {
            self.leading.set(true);
            self.serve_from.set(last_index);
            self.epoch.set(self.epoch.get() + 1);
            self.wake();
        } else if !leading && self.leading.get() {
            self.lose_leadership();
        }
    }
}
