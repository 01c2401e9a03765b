//! A shard's Raft log as raft-rs reads it: the entries not yet folded into
//! a snapshot, the hard state (term, vote, commit), the membership, and the
//! snapshot the shard last prepared for peers that fell behind.
//!
//! raft-rs asks its [`Storage`] only for what is *stable* (persisted);
//! what it has not yet handed out in a `Ready` it keeps itself. The replica
//! driver (`replica::node`) appends a `Ready`'s entries and hard state here
//! when it persists them, and applies received snapshots here.
//!
//! Nothing here panics on a request raft-rs or a peer can make: an append
//! that would leave a gap or rewrite compacted entries is refused with a
//! [`LogGap`], and reads outside the log get raft-rs's own errors.

use std::cell::Cell;
use std::collections::VecDeque;
use std::path::PathBuf;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{Error, GetEntriesContext, RaftState, Result, Storage, StorageError};

/// An append that does not continue the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("entries from index {first} do not continue a log holding {have_first}..={have_last}")]
pub struct LogGap {
    /// Index of the first entry offered.
    pub first: u64,
    /// First index the log holds (or would hold next).
    pub have_first: u64,
    /// Last index the log holds.
    pub have_last: u64,
}

/// A snapshot peers are offered: held whole, or read from the shard's
/// snapshot file when a peer needs it.
#[derive(Debug)]
enum Offered {
    Held(Snapshot),
    File { dir: PathBuf, shard: u32, meta: SnapshotMetadata },
}

impl Offered {
    fn index(&self) -> u64 {
        match self {
            Offered::Held(s) => s.get_metadata().index,
            Offered::File { meta, .. } => meta.index,
        }
    }
}

/// One replica's Raft log, in memory (see the module comment).
#[derive(Debug, Default)]
pub struct RaftLog {
    hard: HardState,
    conf: ConfState,
    /// Index and term of the last entry folded into a snapshot (0, 0: none).
    base: SnapshotMetadata,
    /// Entries `base.index + 1 ..= last`.
    entries: VecDeque<Entry>,
    /// The shard log's sequence number of each entry's record (0: kept in
    /// memory only), parallel to `entries`.
    seqs: VecDeque<u64>,
    /// Bytes of the entries' data and context.
    bytes: usize,
    /// The snapshot offered to peers that need compacted entries.
    offered: Option<Offered>,
    /// The highest index a peer asked a snapshot for while none was
    /// offered at or above it (0: none asked).
    wanted: Cell<u64>,
}

impl RaftLog {
    /// A new group's log: empty, with `voters` as its members. Every
    /// replica of a group must start from the same voters.
    pub fn new(voters: &[u64]) -> RaftLog {
        RaftLog { conf: ConfState::from((voters.to_vec(), Vec::new())), ..RaftLog::default() }
    }

    /// First index a read can return.
    pub fn first(&self) -> u64 {
        self.base.index + 1
    }

    /// Index of the last entry (the snapshot's when no entry follows it).
    pub fn last(&self) -> u64 {
        self.base.index + self.entries.len() as u64
    }

    /// Bytes of the entries held (data and context).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The hard state last persisted.
    pub fn hard_state(&self) -> &HardState {
        &self.hard
    }

    /// The membership.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let at = index.checked_sub(self.first())?;
        self.entries.get(usize::try_from(at).ok()?)
    }

    /// The index and term of the last entry folded into the snapshot (0, 0:
    /// none).
    pub fn base(&self) -> (u64, u64) {
        (self.base.index, self.base.term)
    }

    /// The shard log's sequence number of the record that holds entry
    /// `index` (`None`: not held, or held in memory only).
    pub fn seq_of(&self, index: u64) -> Option<u64> {
        let at = index.checked_sub(self.first())?;
        self.seqs.get(usize::try_from(at).ok()?).copied().filter(|&s| s > 0)
    }

    /// Appends `ents` (consecutive indices), first dropping every held entry
    /// from `ents[0].index` on: a new leader's entries replace a deposed
    /// one's uncommitted tail. Kept in memory only (see [`RaftLog::append_at`]).
    pub fn append(&mut self, ents: &[Entry]) -> std::result::Result<(), LogGap> {
        self.append_at(ents, 0)
    }

    /// [`RaftLog::append`], for entries whose records the shard's log holds
    /// from sequence number `first_seq` on, one each.
    pub fn append_at(&mut self, ents: &[Entry], first_seq: u64) -> std::result::Result<(), LogGap> {
        let Some(head) = ents.first() else { return Ok(()) };
        let gap = LogGap { first: head.index, have_first: self.first(), have_last: self.last() };
        if head.index < self.first() || head.index > self.last() + 1 {
            return Err(gap);
        }
        if ents.windows(2).any(|w| w[1].index != w[0].index + 1) {
            return Err(gap);
        }
        let keep = (head.index - self.first()) as usize;
        for dropped in self.entries.drain(keep..) {
            self.bytes -= dropped.data.len() + dropped.context.len();
        }
        self.seqs.truncate(keep);
        for (i, e) in ents.iter().enumerate() {
            self.bytes += e.data.len() + e.context.len();
            self.entries.push_back(e.clone());
            self.seqs.push_back(if first_seq == 0 { 0 } else { first_seq + i as u64 });
        }
        Ok(())
    }

    /// Records the hard state a `Ready` handed out.
    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard = hs;
    }

    /// Records a commit index a `LightReady` handed out.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard.commit = commit;
    }

    /// Records a membership change applied at the state machine.
    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf = cs;
    }

    /// Drops the entries before `index`, which the state machine must have
    /// applied and a snapshot must cover (raft-rs answers requests for them
    /// from [`Storage::snapshot`]). Indices at or before the first held
    /// entry change nothing; an index past the log is limited to it.
    pub fn compact(&mut self, index: u64) {
        let index = index.min(self.last() + 1);
        if index <= self.first() {
            return;
        }
        let new_base = index - 1;
        let term = self.entry(new_base).map(|e| e.term).unwrap_or(self.base.term);
        let n = (index - self.first()) as usize;
        for dropped in self.entries.drain(..n) {
            self.bytes -= dropped.data.len() + dropped.context.len();
        }
        self.seqs.drain(..n);
        self.base.index = new_base;
        self.base.term = term;
    }

    /// Replaces the log with a snapshot received from the leader: every
    /// held entry goes, the membership and commit become the snapshot's.
    /// A snapshot older than the log's first entry is refused.
    pub fn apply_snapshot(&mut self, mut snap: Snapshot) -> Result<()> {
        let mut meta = snap.take_metadata();
        if meta.index < self.first() {
            return Err(Error::Store(StorageError::SnapshotOutOfDate));
        }
        self.hard.term = self.hard.term.max(meta.term);
        self.hard.commit = meta.index;
        self.entries.clear();
        self.seqs.clear();
        self.bytes = 0;
        self.conf = meta.take_conf_state();
        self.base = meta;
        Ok(())
    }

    /// Offers `snap` (data included) to peers that need entries it covers.
    pub fn offer_snapshot(&mut self, snap: Snapshot) {
        self.offer(Offered::Held(snap));
    }

    /// Offers the snapshot file of shard `shard` in `dir`, which holds the
    /// store at `meta`, to peers that need entries it covers: it is read
    /// when one does.
    pub fn offer_snapshot_file(&mut self, dir: PathBuf, shard: u32, meta: SnapshotMetadata) {
        self.offer(Offered::File { dir, shard, meta });
    }

    fn offer(&mut self, offered: Offered) {
        if offered.index() >= self.wanted.get() {
            self.wanted.set(0);
        }
        self.offered = Some(offered);
    }

    /// Takes one record of the shard's log back at recovery: an entry
    /// (replacing every entry from its index on, as when it was first
    /// appended) or a hard state, `seq` its sequence number. An entry the
    /// snapshot the log starts from holds already is passed over. Anything
    /// else does not belong here.
    pub fn replay(&mut self, seq: u64, record: &crate::log::record::Entry<'_>) -> std::result::Result<(), String> {
        use crate::log::record::Entry as Record;
        use protobuf::Message as _;
        match *record {
            Record::RaftEntry(bytes) => {
                let e = Entry::parse_from_bytes(bytes).map_err(|e| format!("an undecodable Raft entry: {e}"))?;
                if e.index <= self.base.index {
                    return Ok(());
                }
                self.append_at(std::slice::from_ref(&e), seq).map_err(|gap| gap.to_string())
            }
            Record::RaftState(bytes) => {
                let mut hs =
                    HardState::parse_from_bytes(bytes).map_err(|e| format!("an undecodable hard state: {e}"))?;
                // A snapshot holds committed entries only: a hard state
                // written before it was taken may name an older commit.
                hs.commit = hs.commit.max(self.base.index);
                hs.term = hs.term.max(self.base.term);
                self.hard = hs;
                Ok(())
            }
            _ => Err("a store record: this log belongs to a shard that is not replicated".into()),
        }
    }

    /// The highest index a peer asked a snapshot for that none offered
    /// covers yet (0: none): the shard should prepare one.
    pub fn snapshot_wanted(&self) -> u64 {
        self.wanted.get()
    }
}

impl Storage for RaftLog {
    fn initial_state(&self) -> Result<RaftState> {
        Ok(RaftState::new(self.hard.clone(), self.conf.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _: GetEntriesContext,
    ) -> Result<Vec<Entry>> {
        if low < self.first() {
            return Err(Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(Error::Store(StorageError::Unavailable));
        }
        let (lo, hi) = ((low - self.first()) as usize, (high - self.first()) as usize);
        let mut ents: Vec<Entry> = self.entries.range(lo..hi).cloned().collect();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> Result<u64> {
        if idx == self.base.index {
            return Ok(self.base.term);
        }
        if idx < self.first() {
            return Err(Error::Store(StorageError::Compacted));
        }
        self.entry(idx).map(|e| e.term).ok_or(Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> Result<Snapshot> {
        // A snapshot from before `to` joined would not make it a member
        // (raft-rs refuses to install it): a newer one is wanted.
        let names = |meta: &SnapshotMetadata| {
            let cs = meta.get_conf_state();
            cs.voters.contains(&to) || cs.learners.contains(&to)
        };
        let meta = match &self.offered {
            Some(Offered::Held(s)) => Some(s.get_metadata()),
            Some(Offered::File { meta, .. }) => Some(meta),
            None => None,
        };
        if let Some(meta) = meta
            && !names(meta)
        {
            self.wanted.set(self.wanted.get().max(request_index.max(meta.index + 1)));
            return Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable));
        }
        match &self.offered {
            Some(Offered::Held(s)) if s.get_metadata().index >= request_index => Ok(s.clone()),
            Some(Offered::File { dir, shard, meta }) if meta.index >= request_index => {
                // Read when a peer needs it (rarely: a replica far behind),
                // not held in memory meanwhile.
                match crate::log::snapshot::read_raft(dir, *shard) {
                    Ok(Some((m, data))) if m.index == meta.index => {
                        let mut s = Snapshot::default();
                        s.set_metadata(m);
                        s.data = data.into();
                        Ok(s)
                    }
                    _ => Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable)),
                }
            }
            _ => {
                self.wanted.set(self.wanted.get().max(request_index.max(1)));
                Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raft::storage::MemStorage;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry { index, term, data: data.to_vec().into(), ..Entry::default() }
    }

    /// An operation on both logs, as fractions of what the log holds, so
    /// every generated operation is one MemStorage accepts (it panics on
    /// the others, which `refuses_gaps_without_panicking` covers).
    #[derive(Clone, Debug)]
    enum Op {
        Append { at: u8, n: u8, term: u64, size: u8 },
        Compact { at: u8 },
        Snapshot { ahead: u8, term: u64 },
        Commit { at: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (any::<u8>(), 1u8..6, 1u64..5, 0u8..40).prop_map(|(at, n, term, size)| Op::Append { at, n, term, size }),
            1 => any::<u8>().prop_map(|at| Op::Compact { at }),
            1 => (0u8..5, 1u64..9).prop_map(|(ahead, term)| Op::Snapshot { ahead, term }),
            1 => any::<u8>().prop_map(|at| Op::Commit { at }),
        ]
    }

    fn pick(lo: u64, hi: u64, at: u8) -> u64 {
        lo + (hi - lo) * u64::from(at) / 255
    }

    proptest! {
        /// The shard's storage answers every Storage query as raft-rs's own
        /// MemStorage does after the same appends, compactions, snapshots
        /// and commits: the contract raft-rs 0.7 was written against.
        #[test]
        fn answers_as_raft_rs_memstorage(ops in proptest::collection::vec(op(), 1..40)) {
            let mem = MemStorage::new_with_conf_state((vec![1, 2, 3], vec![]));
            let mut ours = RaftLog::new(&[1, 2, 3]);
            let mut terms = std::collections::BTreeMap::new();
            for op in ops {
                let (first, last) = (ours.first(), ours.last());
                match op {
                    Op::Append { at, n, term, size } => {
                        let start = pick(first, last + 1, at);
                        let ents: Vec<Entry> = (0..u64::from(n))
                            .map(|i| entry(start + i, term, &vec![b'x'; usize::from(size)]))
                            .collect();
                        mem.wl().append(&ents).unwrap();
                        terms.split_off(&start);
                        terms.extend(ents.iter().map(|e| (e.index, e.term)));
                        ours.append(&ents).unwrap();
                    }
                    // (Compacting every entry loses MemStorage's first index,
                    // which it derives from its first entry: the unit test
                    // `compacting_everything_keeps_the_last_term` covers it.)
                    Op::Compact { at } if last >= first => {
                        let idx = pick(first, last, at);
                        mem.wl().compact(idx).unwrap();
                        ours.compact(idx);
                    }
                    Op::Compact { .. } => {}
                    Op::Snapshot { ahead, term } => {
                        let mut s = Snapshot::default();
                        s.mut_metadata().index = last + u64::from(ahead);
                        s.mut_metadata().term = term;
                        s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3, 4];
                        let a = mem.wl().apply_snapshot(s.clone()).is_ok();
                        prop_assert_eq!(a, ours.apply_snapshot(s).is_ok());
                        if a {
                            terms.clear();
                            terms.insert(last + u64::from(ahead), term);
                        }
                    }
                    Op::Commit { at } => {
                        if last >= first {
                            let idx = pick(first, last, at);
                            mem.wl().commit_to(idx).unwrap();
                            let term = ours.entry(idx).unwrap().term;
                            ours.set_commit(idx);
                            ours.hard.term = term;
                        }
                    }
                }
                let (first, last) = (ours.first(), ours.last());
                prop_assert_eq!(mem.first_index().unwrap(), first);
                prop_assert_eq!(mem.last_index().unwrap(), last);
                let (m, o) = (mem.initial_state().unwrap(), ours.initial_state().unwrap());
                prop_assert_eq!((m.hard_state, m.conf_state), (o.hard_state, o.conf_state));
                for i in first..=last + 2 {
                    let (m, o) = (mem.term(i), ours.term(i));
                    prop_assert_eq!(format!("{m:?}"), format!("{o:?}"), "term({})", i);
                }
                // Below the first entry MemStorage forgets terms a compaction
                // dropped; the contract (and raft-rs's log matching) needs
                // the one just before it, which this log keeps.
                prop_assert_eq!(ours.term(first - 1).ok(), Some(terms.get(&(first - 1)).copied().unwrap_or(0)));
                for i in 0..first.saturating_sub(1) {
                    prop_assert!(matches!(ours.term(i), Err(Error::Store(StorageError::Compacted))));
                }
                // (MemStorage indexes its first entry for any range it does
                // not call compacted, so an empty log is asked nothing.)
                let queried = first - 1..=last + 1;
                for lo in queried.filter(|_| last >= first) {
                    for hi in lo.max(first)..=last + 1 {
                        for max in [None, Some(0), Some(30), Some(u64::MAX)] {
                            let ctx = || GetEntriesContext::empty(false);
                            let (m, o) = (mem.entries(lo, hi, max, ctx()), ours.entries(lo, hi, max, ctx()));
                            prop_assert_eq!(format!("{m:?}"), format!("{o:?}"), "entries({}, {}, {:?})", lo, hi, max);
                        }
                    }
                }
                let held: usize = (first..=last).map(|i| ours.entry(i).unwrap().data.len()).sum();
                prop_assert_eq!(ours.bytes(), held);
            }
        }
    }

    #[test]
    fn refuses_gaps_without_panicking() {
        let mut log = RaftLog::new(&[1]);
        log.append(&[entry(1, 1, b"a"), entry(2, 1, b"b")]).unwrap();
        assert_eq!(log.append(&[entry(4, 1, b"d")]), Err(LogGap { first: 4, have_first: 1, have_last: 2 }));
        assert!(log.append(&[entry(3, 1, b"c"), entry(5, 1, b"e")]).is_err(), "a gap inside the entries");
        log.compact(2);
        assert!(log.append(&[entry(1, 2, b"z")]).is_err(), "rewrites a compacted entry");
        assert_eq!(log.last(), 2);
        assert!(matches!(
            log.entries(1, 2, None, GetEntriesContext::empty(false)),
            Err(Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            log.entries(2, 9, None, GetEntriesContext::empty(false)),
            Err(Error::Store(StorageError::Unavailable))
        ));
    }

    #[test]
    fn compacting_everything_keeps_the_last_term() {
        let mut log = RaftLog::new(&[1]);
        log.append(&[entry(1, 1, b"a"), entry(2, 3, b"b")]).unwrap();
        log.compact(99);
        assert_eq!((log.first(), log.last(), log.bytes()), (3, 2, 0));
        assert_eq!(log.term(2).unwrap(), 3, "the term before the first index stays known");
        log.append(&[entry(3, 3, b"c")]).unwrap();
        assert_eq!(log.entries(3, 4, None, GetEntriesContext::empty(false)).unwrap().len(), 1);
    }

    #[test]
    fn replay_rebuilds_the_log_a_deposed_leaders_tail_included() {
        use crate::log::record::Entry as Record;
        use protobuf::Message as _;
        let bytes = |e: &Entry| e.write_to_bytes().unwrap();
        let mut log = RaftLog::new(&[1, 2, 3]);
        // Term 1 wrote 1..=3; a leader of term 2 replaced 3 and added 4.
        let written = [entry(1, 1, b"a"), entry(2, 1, b"b"), entry(3, 1, b"c"), entry(3, 2, b"C"), entry(4, 2, b"d")];
        for (seq, e) in (10..).zip(written) {
            log.replay(seq, &Record::RaftEntry(&bytes(&e))).unwrap();
        }
        let hs = HardState { term: 2, vote: 3, commit: 4, ..HardState::default() };
        log.replay(15, &Record::RaftState(&hs.write_to_bytes().unwrap())).unwrap();
        assert_eq!((log.first(), log.last(), log.hard_state()), (1, 4, &hs));
        assert_eq!(log.entry(3).unwrap().data.as_ref(), b"C");
        assert_eq!([1, 2, 3, 4].map(|i| log.seq_of(i)), [Some(10), Some(11), Some(13), Some(14)]);
        assert!(
            log.replay(16, &Record::RaftEntry(&bytes(&entry(9, 2, b"gap")))).unwrap_err().contains("do not continue")
        );
        assert!(log.replay(16, &Record::RaftEntry(b"\xff\xff")).unwrap_err().contains("undecodable"));
        assert!(log.replay(16, &Record::Delete { key: b"k" }).unwrap_err().contains("not replicated"));
    }

    #[test]
    fn replay_after_a_snapshot_passes_over_what_it_holds_and_keeps_its_commit() {
        use crate::log::record::Entry as Record;
        use protobuf::Message as _;
        let mut log = RaftLog::new(&[1, 2, 3]);
        let mut s = Snapshot::default();
        s.mut_metadata().index = 5;
        s.mut_metadata().term = 2;
        log.apply_snapshot(s).unwrap();
        let bytes = |e: &Entry| e.write_to_bytes().unwrap();
        // Records the truncation left before the snapshot's point: entries
        // it holds, and a hard state written before it was taken.
        log.replay(40, &Record::RaftEntry(&bytes(&entry(4, 2, b"old")))).unwrap();
        log.replay(41, &Record::RaftEntry(&bytes(&entry(5, 2, b"old")))).unwrap();
        let stale = HardState { term: 2, vote: 1, commit: 3, ..HardState::default() };
        log.replay(42, &Record::RaftState(&stale.write_to_bytes().unwrap())).unwrap();
        log.replay(43, &Record::RaftEntry(&bytes(&entry(6, 2, b"new")))).unwrap();
        assert_eq!((log.first(), log.last(), log.base()), (6, 6, (5, 2)));
        assert_eq!(log.hard_state().commit, 5, "a snapshot holds committed entries only");
        assert_eq!((log.seq_of(5), log.seq_of(6)), (None, Some(43)));
        assert_eq!(log.term(5).unwrap(), 2);
    }

    #[test]
    fn a_peer_that_needs_compacted_entries_gets_the_offered_snapshot() {
        let mut log = RaftLog::new(&[1, 2, 3]);
        log.append(&(1..=10).map(|i| entry(i, 1, b"v")).collect::<Vec<_>>()).unwrap();
        log.compact(8);
        assert!(matches!(log.snapshot(7, 2), Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable))));
        assert_eq!(log.snapshot_wanted(), 7, "the shard is told to prepare one");
        let mut s = Snapshot::default();
        s.mut_metadata().index = 7;
        s.mut_metadata().term = 1;
        s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        s.data = b"store at 7".to_vec().into();
        log.offer_snapshot(s.clone());
        assert_eq!(log.snapshot_wanted(), 0);
        assert_eq!(log.snapshot(7, 2).unwrap(), s);
        assert!(log.snapshot(9, 2).is_err(), "a snapshot older than asked is not served");
        assert_eq!(log.snapshot_wanted(), 9);
    }

    #[test]
    fn a_member_that_joined_after_the_offered_snapshot_waits_for_a_newer_one() {
        let mut log = RaftLog::new(&[1, 2, 3]);
        let mut s = Snapshot::default();
        s.mut_metadata().index = 7;
        s.mut_metadata().term = 1;
        s.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        log.offer_snapshot(s.clone());
        // Member 4 joined after entry 7: raft-rs would refuse to install a
        // snapshot whose membership does not name it.
        assert!(matches!(log.snapshot(1, 4), Err(Error::Store(StorageError::SnapshotTemporarilyUnavailable))));
        assert_eq!(log.snapshot_wanted(), 8, "the shard is told to prepare a newer one");
        s.mut_metadata().index = 9;
        s.mut_metadata().mut_conf_state().learners = vec![4];
        log.offer_snapshot(s.clone());
        assert_eq!(log.snapshot(1, 4).unwrap(), s);
    }
}
