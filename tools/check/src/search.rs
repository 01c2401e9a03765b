//! Keys whose identities are ambiguous: with a DELETE in the history, a
//! NOT_FOUND read no longer names the operation it observed (any DELETE,
//! or the initial absence). Such a key is checked in two steps:
//!
//! 1. **Guess and certify.** Map each NOT_FOUND read to a likely DELETE
//!    (the latest one of its own file invoked before the read returned; if
//!    there is none, the initial absence — unless its file had already
//!    written or seen a value of the key, an earlier era had, or the key
//!    was loaded: then a DELETE of another file, of its own era if there
//!    is one, else of the latest earlier era), make each DELETE a cluster
//!    of its own, and run the near-linear zone check ([`super::register`]).
//!    If it passes, the mapping is a certificate: the key is linearizable.
//! 2. **Search.** Otherwise, an exhaustive search for a linearization
//!    (Wing & Gong's algorithm with Lowe's memoisation of (linearized set,
//!    register value) states), bounded by `--timeout-per-key` and a state
//!    budget: it proves linearizable, proves a violation, or reports
//!    "unknown". A violation is then shrunk to a minimal witness: reads,
//!    and PUTs together with their reads, are dropped while the rest still
//!    has no linearization (dropping those keeps a linearizable history
//!    linearizable, so what remains is still a proof).
//!
//! With eras (restarts), the search linearizes era after era: an operation
//! may go next only if it is of the earliest era with operations left;
//! once only unanswered writes are left in that era, it may also move on
//! to the next era, leaving them out for good (they were lost in the
//! restart). Reads are closed greedily only within the current era.
//!
//! The search also serves the tests as an independent oracle for the zone
//! check, on small histories with or without DELETEs.

use super::op::{Kind, NEVER, NOT_FOUND, Op, Values};
use super::register::{self, KeyVerdict, Span};
use super::witness;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// States the search may remember, in 64-bit words, per key (64 MiB).
const STATE_WORDS: usize = 8 << 20;

/// What a search found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A linearization exists.
    Linearizable,
    /// None exists.
    Violation,
    /// Out of time or memory.
    GaveUp,
}

/// Checks a key that has DELETEs (see the module docs).
pub fn check_with_deletes(ops: &mut [Op], values: &Values, timeout: Duration) -> KeyVerdict {
    let deadline = Instant::now() + timeout;
    let Some(key) = ops.first().map(Op::key) else { return KeyVerdict::Linearizable };
    // Every value read but NOT_FOUND must be written once (or be the load value).
    let mut named: Vec<Op> = ops.iter().filter(|o| o.kind() != Kind::Delete && o.value != NOT_FOUND).copied().collect();
    named.sort_unstable_by_key(|o| (o.value, o.kind() != Kind::Put, o.file(), o.invoke));
    let mut spans = match register::group(&named, key, values) {
        Ok(s) => s,
        Err(v) => return v,
    };
    let loaded = spans.iter().any(|s| !s.write);
    let initial = if loaded { values.initial(key).unwrap_or(NOT_FOUND) } else { NOT_FOUND };

    // 1. Guess a mapping of NOT_FOUND reads to DELETEs and certify it.
    let deletes: Vec<Op> = ops.iter().filter(|o| o.kind() == Kind::Delete).copied().collect();
    // Per file, the earliest response of an operation that wrote or saw a
    // value: a NOT_FOUND read of that file invoked after it cannot be the
    // initial absence; nor can one of a later era than such an operation
    // (an answered one: an unanswered write may never have happened).
    let mut first_value: Vec<(u16, i64)> = Vec::new();
    let mut first_value_era = u8::MAX;
    for o in ops.iter().filter(|o| o.kind() != Kind::Delete && o.value != NOT_FOUND) {
        match first_value.iter_mut().find(|(f, _)| *f == o.file()) {
            Some((_, t)) => *t = (*t).min(o.response),
            None => first_value.push((o.file(), o.response)),
        }
        if o.response != NEVER {
            first_value_era = first_value_era.min(o.era());
        }
    }
    let mut mapped: Vec<Vec<Op>> = vec![Vec::new(); deletes.len() + 1]; // last: the initial absence
    for r in ops.iter().filter(|o| o.kind() == Kind::Get && o.value == NOT_FOUND) {
        let own = deletes
            .iter()
            .enumerate()
            .filter(|(_, d)| d.file() == r.file() && d.invoke <= r.response)
            .max_by_key(|(_, d)| d.invoke)
            .map(|(i, _)| i);
        let after_a_value =
            first_value_era < r.era() || first_value.iter().any(|&(f, t)| f == r.file() && t < r.invoke);
        // No DELETE of its own file explains it: one of another file's (whose
        // times cannot be compared with the read's) — the first of its own
        // era, else the latest of the latest earlier era: a guess the zone
        // check then certifies or not.
        let foreign = || {
            deletes.iter().position(|d| d.file() != r.file() && d.era() == r.era()).or_else(|| {
                let earlier = deletes.iter().enumerate().filter(|(_, d)| d.era() < r.era());
                earlier.max_by_key(|(_, d)| (d.era(), d.invoke)).map(|(i, _)| i)
            })
        };
        let slot = match own {
            Some(i) => i,
            None if loaded || after_a_value => foreign().unwrap_or(0),
            None => deletes.len(),
        };
        mapped[slot].push(*r);
    }
    let mut laid = named;
    for (i, d) in deletes.iter().enumerate() {
        let start = laid.len() as u32;
        laid.push(*d);
        laid.extend_from_slice(&mapped[i]);
        spans.push(Span { start, end: laid.len() as u32, write: true });
    }
    if !mapped[deletes.len()].is_empty() {
        let start = laid.len() as u32;
        laid.extend_from_slice(&mapped[deletes.len()]);
        spans.push(Span { start, end: laid.len() as u32, write: false });
    }
    if register::check_spans(&laid, &spans, values).is_ok() {
        return KeyVerdict::Linearizable;
    }

    // 2. Search, then shrink a violation.
    match search(ops, initial, deadline) {
        Found::Linearizable => KeyVerdict::Linearizable,
        Found::GaveUp => KeyVerdict::Unknown(format!(
            "key {key}: no linearization found and none ruled out within {} ms ({} operations, DELETEs make \
             NOT_FOUND ambiguous)",
            timeout.as_millis(),
            ops.len()
        )),
        Found::Violation => {
            let minimal = shrink(ops.to_vec(), initial, deadline);
            KeyVerdict::Violation(Box::new(witness::search(values, key, &minimal)))
        }
    }
}

/// Drops operations while the rest still has no linearization, until the
/// deadline: a PUT with every read of its value, or one read, at a time.
fn shrink(mut ops: Vec<Op>, initial: u64, deadline: Instant) -> Vec<Op> {
    let mut i = 0;
    while i < ops.len() && Instant::now() < deadline {
        let o = ops[i];
        let trial: Vec<Op> = match o.kind() {
            Kind::Delete => {
                i += 1;
                continue;
            }
            Kind::Put => ops.iter().filter(|p| p.value != o.value).copied().collect(),
            Kind::Get => {
                ops.iter().filter(|p| !(p.file() == o.file() && p.position() == o.position())).copied().collect()
            }
        };
        match search(&trial, initial, deadline) {
            Found::Violation => ops = trial,
            Found::Linearizable => i += 1,
            Found::GaveUp => break,
        }
    }
    ops
}

/// Searches for a linearization of `ops` (one key) starting from the
/// register value `initial` (an identity, or [`NOT_FOUND`] for absent).
/// PUTs and DELETEs that were never answered may be left out.
pub fn search(ops: &[Op], initial: u64, deadline: Instant) -> Found {
    let mut s = Search::new(ops, initial);
    s.run(deadline)
}

/// A choice that is not a write: move on to the next era, leaving out the
/// current era's unanswered writes.
const NEXT_ERA: u32 = u32::MAX;

/// How the search got to a frame.
enum Step {
    /// The start.
    Start,
    /// Linearized this write, which replaced this value.
    Write(u32, u64),
    /// Moved on to the next era, leaving out these unanswered writes.
    NextEra(Vec<u32>),
}

struct Frame {
    /// Writes that may go next (or [`NEXT_ERA`]), and how many have been
    /// tried.
    choices: Vec<u32>,
    next: usize,
    /// What led here.
    entered_by: Step,
    /// Reads linearized on arrival here.
    reads: Vec<u32>,
}

struct Search {
    ops: Vec<Op>,
    /// Dense file index of each operation.
    file: Vec<usize>,
    files: usize,
    done: Vec<u64>,
    value: u64,
    /// Operations that must be linearized and are not yet.
    left: usize,
    seen: HashSet<(Box<[u64]>, u64)>,
}

impl Search {
    fn new(ops: &[Op], initial: u64) -> Search {
        let mut ops = ops.to_vec();
        ops.sort_by_key(|o| (o.invoke, o.file()));
        let mut ids: Vec<u16> = ops.iter().map(Op::file).collect();
        ids.sort_unstable();
        ids.dedup();
        let file = ops.iter().map(|o| ids.binary_search(&o.file()).unwrap_or(0)).collect();
        let left = ops.iter().filter(|o| o.response != NEVER).count();
        Search {
            done: vec![0; ops.len().div_ceil(64)],
            ops,
            file,
            files: ids.len(),
            value: initial,
            left,
            seen: HashSet::new(),
        }
    }

    fn is_done(&self, i: usize) -> bool {
        self.done[i / 64] & (1 << (i % 64)) != 0
    }

    fn flip(&mut self, i: usize) {
        self.done[i / 64] ^= 1 << (i % 64);
        if self.ops[i].response != NEVER {
            if self.is_done(i) {
                self.left -= 1;
            } else {
                self.left += 1;
            }
        }
    }

    /// Per file, the earliest response among operations not yet linearized
    /// (an operation may go next only if it began no later than that), and
    /// the current era: the earliest with operations left.
    fn horizon(&self) -> (Vec<i64>, u8) {
        let mut h = vec![NEVER; self.files];
        let mut era = u8::MAX;
        for (i, o) in self.ops.iter().enumerate() {
            if !self.is_done(i) {
                era = era.min(o.era());
                if o.response < h[self.file[i]] {
                    h[self.file[i]] = o.response;
                }
            }
        }
        (h, era)
    }

    /// Whether operation `i` (not yet linearized) may go next.
    fn may_go(&self, i: usize, (h, era): &(Vec<i64>, u8)) -> bool {
        let o = &self.ops[i];
        o.era() == *era && o.invoke <= h[self.file[i]]
    }

    /// Linearizes every read that may go next and returns the current
    /// value (always safe: a read changes nothing and only relaxes the
    /// constraints on the rest).
    fn close_reads(&mut self) -> Vec<u32> {
        let mut taken = Vec::new();
        loop {
            let h = self.horizon();
            let before = taken.len();
            for i in 0..self.ops.len() {
                let o = self.ops[i];
                if !self.is_done(i) && o.kind() == Kind::Get && o.value == self.value && self.may_go(i, &h) {
                    self.flip(i);
                    taken.push(i as u32);
                }
            }
            if taken.len() == before {
                return taken;
            }
        }
    }

    fn choices(&self) -> Vec<u32> {
        let h = self.horizon();
        let mut choices: Vec<u32> = (0..self.ops.len())
            .filter(|&i| !self.is_done(i) && self.ops[i].is_write() && self.may_go(i, &h))
            .map(|i| i as u32)
            .collect();
        // Only unanswered writes left in this era, and a later era to go to.
        let left_here = |i: usize| !self.is_done(i) && self.ops[i].era() == h.1;
        let answered_here = (0..self.ops.len()).any(|i| left_here(i) && self.ops[i].response != NEVER);
        if !answered_here && (0..self.ops.len()).any(|i| !self.is_done(i) && self.ops[i].era() > h.1) {
            choices.push(NEXT_ERA);
        }
        choices
    }

    /// Leaves out the current era's remaining (unanswered) writes.
    fn next_era(&mut self) -> Vec<u32> {
        let (_, era) = self.horizon();
        let left: Vec<u32> =
            (0..self.ops.len()).filter(|&i| !self.is_done(i) && self.ops[i].era() == era).map(|i| i as u32).collect();
        for &i in &left {
            self.flip(i as usize);
        }
        left
    }

    /// Remembers the current state; false if it was seen before.
    fn remember(&mut self) -> bool {
        self.seen.insert((self.done.clone().into_boxed_slice(), self.value))
    }

    fn undo(&mut self, reads: &[u32]) {
        for &r in reads {
            self.flip(r as usize);
        }
    }

    /// Undoes `step`.
    fn back(&mut self, step: Step) {
        match step {
            Step::Start => {}
            Step::Write(w, before) => {
                self.flip(w as usize);
                self.value = before;
            }
            Step::NextEra(left) => self.undo(&left),
        }
    }

    fn run(&mut self, deadline: Instant) -> Found {
        let budget = STATE_WORDS / (self.done.len() + 4);
        let reads = self.close_reads();
        if self.left == 0 {
            return Found::Linearizable;
        }
        self.remember();
        let mut stack = vec![Frame { choices: self.choices(), next: 0, entered_by: Step::Start, reads }];
        let mut steps = 0u64;
        while let Some(top) = stack.last_mut() {
            steps += 1;
            if steps.is_multiple_of(256) && (Instant::now() >= deadline || self.seen.len() > budget) {
                return Found::GaveUp;
            }
            if top.next < top.choices.len() {
                let choice = top.choices[top.next];
                top.next += 1;
                let step = if choice == NEXT_ERA {
                    Step::NextEra(self.next_era())
                } else {
                    let w = choice as usize;
                    let before = self.value;
                    self.flip(w);
                    self.value = if self.ops[w].kind() == Kind::Delete { NOT_FOUND } else { self.ops[w].value };
                    Step::Write(choice, before)
                };
                let reads = self.close_reads();
                if self.left == 0 {
                    return Found::Linearizable;
                }
                if self.remember() {
                    let choices = self.choices();
                    stack.push(Frame { choices, next: 0, entered_by: step, reads });
                } else {
                    self.undo(&reads);
                    self.back(step);
                }
            } else {
                let Some(f) = stack.pop() else { break };
                self.undo(&f.reads);
                self.back(f.entered_by);
            }
        }
        Found::Violation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u16, kind: Kind, value: u64, invoke: i64, response: i64, position: u64) -> Op {
        Op::new(1, kind, client, value, invoke, response, 0, position)
    }

    #[test]
    fn a_violation_is_shrunk_to_the_operations_that_prove_it() {
        let far = Instant::now() + Duration::from_secs(10);
        let ops = vec![
            op(0, Kind::Put, 11, 0, 10, 0),
            op(1, Kind::Get, 11, 12, 14, 1),
            op(0, Kind::Delete, 0, 20, 30, 2),
            op(1, Kind::Get, NOT_FOUND, 31, 35, 3),
            op(0, Kind::Put, 12, 40, 50, 4),
            op(1, Kind::Get, 12, 51, 55, 5),
            // Stale: 11 was deleted and overwritten long before.
            op(2, Kind::Get, 11, 60, 70, 6),
        ];
        assert_eq!(search(&ops, NOT_FOUND, far), Found::Violation);
        let minimal = shrink(ops.clone(), NOT_FOUND, far);
        assert!(minimal.len() < ops.len(), "{minimal:?}");
        assert_eq!(search(&minimal, NOT_FOUND, far), Found::Violation);
        // The stale GET is in it, and dropping any read or PUT group heals it.
        assert!(minimal.iter().any(|o| o.position() == 6));
        for o in minimal.iter().filter(|o| o.kind() == Kind::Get) {
            let rest: Vec<Op> = minimal.iter().filter(|p| p.position() != o.position()).copied().collect();
            assert_eq!(search(&rest, NOT_FOUND, far), Found::Linearizable, "without {o:?}");
        }
        // Without the stale read the history is fine.
        assert_eq!(search(&ops[..6], NOT_FOUND, far), Found::Linearizable);
    }

    #[test]
    fn eras_are_linearized_one_after_the_other() {
        let far = Instant::now() + Duration::from_secs(10);
        // Era 0 (file 0): PUT 11 answered, a PUT 12 and a DELETE never
        // answered; era 1 (file 1) reads.
        let put = op(0, Kind::Put, 11, 0, 10, 0);
        let pending = op(1, Kind::Put, 12, 20, NEVER, 1);
        let del = op(2, Kind::Delete, 0, 20, NEVER, 2);
        let read =
            |value: u64, at: i64, position: u64| Op::new(1, Kind::Get, 0, value, at, at + 1, 1, position).with_era(1);
        // The DELETE may be left out for good (and must be, for 11).
        for value in [11, 12, NOT_FOUND] {
            assert_eq!(search(&[put, pending, del, read(value, 5, 0)], NOT_FOUND, far), Found::Linearizable);
        }
        // NOT_FOUND then 11: the DELETE cannot take effect after the restart.
        let h = [put, del, read(NOT_FOUND, 5, 0), read(11, 7, 1)];
        assert_eq!(search(&h, NOT_FOUND, far), Found::Violation);
        // 12 then NOT_FOUND: the same (whatever reads go first).
        let h = [put, pending, del, read(12, 5, 0), read(NOT_FOUND, 7, 1)];
        assert_eq!(search(&h, NOT_FOUND, far), Found::Violation);
        // In one era, both are fine: the DELETE may come last.
        let flat = h.map(|o| o.with_era(0));
        assert_eq!(search(&flat, NOT_FOUND, far), Found::Linearizable);
        // A read of era 0 of a value written only in era 1.
        let h = [op(0, Kind::Get, 11, 0, 10, 0), Op::new(1, Kind::Put, 0, 11, 0, 1, 1, 0).with_era(1)];
        assert_eq!(search(&h, NOT_FOUND, far), Found::Violation);
    }

    #[test]
    fn unanswered_writes_are_optional() {
        let far = Instant::now() + Duration::from_secs(10);
        let pending = op(0, Kind::Put, 11, 0, NEVER, 0);
        assert_eq!(search(&[pending], NOT_FOUND, far), Found::Linearizable);
        assert_eq!(search(&[pending, op(1, Kind::Get, NOT_FOUND, 5, 6, 1)], NOT_FOUND, far), Found::Linearizable);
        assert_eq!(search(&[pending, op(1, Kind::Get, 11, 5, 6, 1)], NOT_FOUND, far), Found::Linearizable);
    }
}
