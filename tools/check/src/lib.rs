//! A linearizability checker for key-value histories that scales to tens
//! of millions of operations: each key is a register, values are unique,
//! and the check is near-linear instead of a search exponential in
//! concurrency.
//!
//! It is the checker behind `percore check`, as a library with no
//! dependency on the rest of percore: feed it [`Operation`]s from any
//! store's history, one [`Source`] per clock ([`check`]), and across a
//! crash and restart one group of sources per era ([`check_eras`]).
//!
//! ```
//! use check::{Kind, Operation, Options, Source, Verdict};
//!
//! let put = Operation { key: 7, kind: Kind::Put, client: 0, value: 42, invoke: 10, response: Some(20) };
//! let get = Operation { key: 7, kind: Kind::Get, client: 1, value: 42, invoke: 30, response: Some(40) };
//! let ops = [put, get].into_iter().map(Ok::<_, std::convert::Infallible>);
//! let outcome = check::check(vec![Source { name: "run-1".into(), ops }], &Options::default())?;
//! assert_eq!(outcome.verdict(), Verdict::Linearizable);
//! # Ok::<(), check::CheckError>(())
//! ```
//!
//! # What is checked
//!
//! The model is a register per key: a PUT writes a value, a GET returns the
//! value of the latest write ([`NOT_FOUND`] if there is none, or after a
//! DELETE), a DELETE removes it. A history is *linearizable* if its
//! operations can be put in one order that respects the model and in which
//! an operation that completed before another began (in real time) comes
//! first. Linearizability is local (Herlihy & Wing), so each key is checked
//! on its own, keys in parallel.
//!
//! * Every PUT of a key writes a value of its own, and every GET names the
//!   value it observed. That makes the check near-linear instead of a
//!   search exponential in concurrency: the writes' *zones* (Gibbons &
//!   Korach) are compared after one sort; see [`register`] for the
//!   algorithm and its proof. A value written twice makes the history
//!   invalid ([`CheckError::Invalid`]), not a violation.
//! * A GET whose value the client found corrupted ([`BAD_READ`]) is a
//!   violation; so is a GET of a value no PUT of that key wrote (other than
//!   the key's initial value), and a GET that returned before its PUT
//!   began.
//! * A key's initial value — its *load value*, [`Values::initial`] of it,
//!   as if written at −∞ by a load phase — is used if any GET observed it,
//!   otherwise the key starts "absent". [`NOT_FOUND`] is a read of
//!   that absence, or of a DELETE. Without DELETEs, a key whose GETs saw
//!   both NOT_FOUND and its initial value is a violation.
//! * With DELETEs, NOT_FOUND no longer names one write: such keys go to a
//!   bounded search ([`search`]) that can answer "unknown" when it runs out
//!   of [`Options::timeout_per_key`].
//! * A PUT or DELETE whose reply never came may or may not have taken
//!   effect (if it did, before the next [era](self#eras-restarts)); a GET
//!   without a reply is skipped.
//! * A history must start from a freshly loaded or empty store: values left
//!   by an earlier, unrecorded run look like values never written.
//!
//! What it does not check: other data types than registers, operations
//! over several keys (transactions), and histories whose values repeat
//! (give every PUT a value of its own: a writer id and a sequence number).
//!
//! # Several sources (several clocks)
//!
//! Each [`Source`]'s times come from its own clock, so:
//!
//! * real-time order is used **only between operations of the same
//!   source**: an operation that completed before another began, both in
//!   one source, must come first;
//! * **across sources, no time is compared**: two operations from
//!   different sources are treated as concurrent, whatever their
//!   timestamps. What still binds them is the data: a GET that observed a
//!   PUT from another source comes after that PUT, each value is written
//!   once, and each source's own order must fit the same single order of
//!   the writes. Example: node A writes v1 and then v2, node B reads v2
//!   and then v1 — a violation, found without comparing A's clock with
//!   B's;
//! * with one source, the check is the full linearizability check.
//!
//! (Eras, below, are the one order that does hold across sources.)
//!
//! What is not reported: a violation visible only by comparing one
//! source's clock with another's, e.g. node B reading v1 after (in
//! wall-clock time) node A's PUT of v2 completed, when nothing in B's own
//! history shows v2 before that read. Across sources the checker proves
//! that each key has one order of operations respecting every source's own
//! real-time order (linearizability with respect to the union of the
//! per-source orders).
//!
//! # Eras (restarts)
//!
//! [`check_eras`] takes the sources in groups, one per *era*: a run, then
//! the run after the store was killed and restarted, and so on. Every
//! operation of era `k + 1` began after every operation of era `k` ended,
//! so across eras real-time order is total, whatever the clocks say:
//!
//! * within an era, sources keep their own clocks, as above;
//! * every operation of an earlier era precedes every operation of a later
//!   one — including a PUT or DELETE of the earlier era that was never
//!   answered: it took effect before the restart or never (a write the
//!   store had not made durable is lost with the crash, which is allowed
//!   for a write nobody saw acknowledged);
//! * so a write acknowledged in era 0 must be seen by era 1 unless
//!   overwritten: era 1 reading an older value, or NOT_FOUND, is a
//!   violation ([`witness::Proof::LostWrite`]: "... was acknowledged in
//!   era 0, before era 1 began: an acknowledged write was lost across the
//!   restart"). An unanswered write of era 0 may be seen by era 1 or not,
//!   but not first unseen and then seen.
//!
//! The era order is one more clock shared by all sources (on it an
//! operation of era `k` spans `[k, k]`), so both algorithms below take it
//! in their stride: [`register`] adds each cluster's era span as one more
//! per-clock entry, and [`search`] linearizes era after era, dropping the
//! unanswered writes an era leaves behind. Witnesses then say "in era 0,
//! before era 1 began" where one clock's times cannot be compared with
//! another's, and name each operation's era. A check with one era is the
//! check above, unchanged.
//!
//! # Algorithm and complexity
//!
//! 1. **Partition** ([`partition`](self#scale)): the sources are streamed
//!    once; each operation goes to a bucket by key hash. O(n).
//! 2. **Per key, without DELETEs** ([`register`]): sort the key's
//!    operations by value, cut them into clusters (a write and its reads),
//!    and look for a cycle in the "must precede" relation between
//!    clusters: with one clock by one sort on `f + s` and a backward scan,
//!    with several by Kahn's topological sort with the edges left implicit
//!    (a heap per source, and one for the era clock when a key's
//!    operations span eras). O(k log k) for a key of k operations.
//! 3. **Per key, with DELETEs** ([`search`]): guess which DELETE each
//!    NOT_FOUND observed and certify the guess with step 2 (O(k log k));
//!    only when that fails, an exhaustive search (Wing & Gong with Lowe's
//!    memoisation), exponential in the worst case and bounded by
//!    [`Options::timeout_per_key`] and a state budget of 64 MiB per key:
//!    it proves linearizable, proves a violation (shrunk to a minimal
//!    witness), or says "unknown".
//!
//! In all, O(n log n) time for histories without DELETEs and memory of
//! [`Options::memory`] (64 bytes per operation while checked); keys are
//! checked on [`Options::threads`] threads. A violation comes with a
//! [`Witness`]: the 2–6 operations that prove it and one sentence that
//! says why.
//!
//! # Scale
//!
//! Sources are streamed once and partitioned by key hash; in memory when
//! they fit [`Options::memory`] (default 256 MiB), else into bucket files
//! in a temporary directory under [`Options::temp_dir`], sized so that
//! `threads` buckets fit the budget at once. The sources' size hints plan
//! the buckets: give exact ones (as [`synth::Synth`] and percore's history
//! reader do) for histories larger than memory. A single key's operations
//! must fit in memory.
//!
//! # Layout
//!
//! - [`op`]: [`Operation`] (the input), [`op::Op`] (one operation as held
//!   in memory and in bucket files), [`Values`], how times are shown.
//! - `partition`: sources → per-key-hash buckets (in memory or bucket files).
//! - [`register`]: the near-linear check of one key (zones; Kahn's sort
//!   across clocks).
//! - [`search`]: keys with DELETEs: certify a guessed mapping, else bounded
//!   search.
//! - [`witness`]: minimal witnesses and their sentences.
//! - [`synth`]: a generator of linearizable synthetic histories of any size.

pub mod op;
mod partition;

pub use op::{BAD_READ, Kind, MAX_KEY, NOT_FOUND, Operation, Values};
pub mod register;
pub mod search;
pub mod synth;
pub mod witness;

use op::Op;
use register::KeyVerdict;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use witness::Witness;

/// Witnesses kept (the rest are counted).
pub const MAX_WITNESSES: usize = 100;

/// Why a check could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckError {
    /// A source failed to give its next operation.
    #[error("{source_name}: record {position}: {error}")]
    Source {
        /// The source's name.
        source_name: String,
        /// How many operations it had given.
        position: u64,
        /// Its error.
        error: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An operation breaks the rules of [`Operation`].
    #[error("{path}: record {position}: {why}")]
    Record {
        /// The source's name.
        path: String,
        /// The operation's position in its source.
        position: u64,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing a bucket file failed.
    #[error("{what}: {source}")]
    Io {
        /// Which file.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The history breaks its own rules (e.g. a value written twice).
    #[error("{0}")]
    Invalid(String),
    /// The options or sources are unusable.
    #[error("{0}")]
    Usage(String),
}

/// One clock's operations: a name for witnesses and an iterator of
/// operations (or of the errors met reading them).
///
/// Times are compared only within a source (and sources of different eras
/// are ordered by era: [`check_eras`]). Give one source per process (per
/// clock) that recorded operations; give exact size hints for histories
/// larger than [`Options::memory`] (see [Scale](self#scale)).
pub struct Source<I> {
    /// How witnesses name it (a file name, a node).
    pub name: String,
    /// Its operations, in any order.
    pub ops: I,
}

/// How to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Buckets checked at once (default: every CPU).
    pub threads: usize,
    /// Time limit of the search for one key with DELETEs (default 1 s).
    pub timeout_per_key: Duration,
    /// Memory budget for the operations being checked, in bytes (default
    /// 256 MiB).
    pub memory: u64,
    /// Where bucket files go (default: the system's temporary directory).
    pub temp_dir: PathBuf,
    /// The keys' initial values and how values are shown (default: keys
    /// start absent, values in hexadecimal).
    pub values: Values,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout_per_key: Duration::from_millis(1000),
            memory: 256 << 20,
            temp_dir: std::env::temp_dir(),
            values: Values::default(),
        }
    }
}

/// The verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every key is linearizable.
    Linearizable,
    /// Some key is not.
    Violation,
    /// No key is proven wrong, but some could not be decided.
    Unknown,
}

/// Everything a check found and measured.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The sources' names, as given (era after era).
    pub files: Vec<String>,
    /// Eras (1 unless checked with [`check_eras`]).
    pub eras: usize,
    /// Bytes of input, when the caller knows and sets them (0 otherwise).
    pub bytes: u64,
    /// Input files, when the caller knows and sets them and they are not
    /// one per source (0 otherwise: one file per source).
    pub input_files: usize,
    /// Operations checked.
    pub ops: u64,
    /// GETs without a reply, ignored.
    pub skipped: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Witnesses (at most [`MAX_WITNESSES`], by key).
    pub violations: Vec<Witness>,
    /// Keys not linearizable.
    pub violating_keys: u64,
    /// Undecided keys and why (at most [`MAX_WITNESSES`], by key).
    pub unknown: Vec<(u64, String)>,
    /// Keys undecided.
    pub unknown_keys: u64,
    /// Keys with DELETEs: NOT_FOUND was ambiguous, so their mapping was
    /// guessed and certified, or searched for ([`search`]).
    pub searched_keys: u64,
    /// Wall time of the check.
    pub seconds: f64,
    /// Of which reading and partitioning the files.
    pub partition_seconds: f64,
    /// Peak resident memory of this process (VmHWM), if known.
    pub peak_rss_bytes: Option<u64>,
    /// Buckets the history was cut into.
    pub buckets: usize,
    /// Whether they went to disk.
    pub spilled: bool,
    /// Threads used.
    pub threads: usize,
    /// How values were read and are shown.
    pub values: Values,
}

/// Per-thread findings, merged at the end.
#[derive(Default)]
struct Tally {
    keys: u64,
    violations: Vec<Witness>,
    violating_keys: u64,
    unknown: Vec<(u64, String)>,
    unknown_keys: u64,
    searched_keys: u64,
    invalid: Option<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.keys += other.keys;
        self.violations.extend(other.violations);
        self.violating_keys += other.violating_keys;
        self.unknown.extend(other.unknown);
        self.unknown_keys += other.unknown_keys;
        self.searched_keys += other.searched_keys;
        if self.invalid.is_none() {
            self.invalid = other.invalid;
        }
    }

    /// The outcome of checking `ops` operations of `files` in `eras` eras,
    /// started at `started`: this tally's verdicts (witnesses cut to the
    /// smallest keys), as one bucket on one thread; callers that
    /// partitioned say so.
    fn into_outcome(
        mut self,
        files: Vec<String>,
        eras: usize,
        ops: u64,
        started: Instant,
        values: Values,
    ) -> Result<Outcome, CheckError> {
        if let Some(why) = self.invalid {
            return Err(CheckError::Invalid(why));
        }
        keep_smallest(&mut self.violations, |w| w.key);
        keep_smallest(&mut self.unknown, |u| u.0);
        Ok(Outcome {
            files,
            eras,
            bytes: 0,
            input_files: 0,
            ops,
            skipped: 0,
            keys: self.keys,
            violations: self.violations,
            violating_keys: self.violating_keys,
            unknown: self.unknown,
            unknown_keys: self.unknown_keys,
            searched_keys: self.searched_keys,
            seconds: started.elapsed().as_secs_f64(),
            partition_seconds: 0.0,
            peak_rss_bytes: None,
            buckets: 1,
            spilled: false,
            threads: 1,
            values,
        })
    }
}

/// Checks one bucket: sorts it by key (then value), checks each key.
fn check_bucket(ops: &mut [Op], values: &Values, timeout: Duration, tally: &mut Tally) {
    // By key only (one word): each key's slice is sorted again, finer, by its check.
    ops.sort_unstable_by_key(Op::key);
    let mut i = 0;
    while i < ops.len() {
        let key = ops[i].key();
        let mut end = i + 1;
        while end < ops.len() && ops[end].key() == key {
            end += 1;
        }
        let slice = &mut ops[i..end];
        if slice.iter().any(|o| o.kind() == Kind::Delete) {
            tally.searched_keys += 1;
        }
        tally.keys += 1;
        match register::check_key(slice, values, timeout) {
            KeyVerdict::Linearizable => {}
            KeyVerdict::Violation(w) => {
                tally.violating_keys += 1;
                tally.violations.push(*w);
                if tally.violations.len() > 4 * MAX_WITNESSES {
                    keep_smallest(&mut tally.violations, |w| w.key);
                }
            }
            KeyVerdict::Unknown(why) => {
                tally.unknown_keys += 1;
                tally.unknown.push((key, why));
                if tally.unknown.len() > 4 * MAX_WITNESSES {
                    keep_smallest(&mut tally.unknown, |u| u.0);
                }
            }
            KeyVerdict::Invalid(why) => {
                if tally.invalid.is_none() {
                    tally.invalid = Some(why);
                }
            }
        }
        i = end;
    }
}

fn keep_smallest<T>(v: &mut Vec<T>, key: impl Fn(&T) -> u64) {
    v.sort_by_key(|x| key(x));
    v.truncate(MAX_WITNESSES);
}

/// Peak resident memory of this process (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Checks `sources` (one per clock; see [Several sources](self#several-sources-several-clocks)).
pub fn check<I, E>(sources: Vec<Source<I>>, opts: &Options) -> Result<Outcome, CheckError>
where
    I: Iterator<Item = Result<Operation, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    check_eras(vec![sources], opts)
}

/// Checks the sources of several eras: `eras[k]` are the sources (one per
/// clock) of era `k`, and every operation of era `k + 1` began after every
/// operation of era `k` ended — a run, then the run after a restart (see
/// [Eras](self#eras-restarts)). At most [`op::MAX_ERAS`] eras, none
/// empty; the sources are named (and numbered in witnesses) era after era.
/// `check_eras(vec![sources], opts)` is [`check`].
pub fn check_eras<I, E>(eras: Vec<Vec<Source<I>>>, opts: &Options) -> Result<Outcome, CheckError>
where
    I: Iterator<Item = Result<Operation, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let started = Instant::now();
    let threads = opts.threads.max(1);
    let part = partition::partition(eras, opts.memory, threads, &opts.temp_dir)?;
    let partition_seconds = started.elapsed().as_secs_f64();
    let spilled = part._dir.is_some();
    let buckets = part.buckets.len();
    let slots: Vec<Mutex<Option<partition::Bucket>>> = part.buckets.into_iter().map(|b| Mutex::new(Some(b))).collect();
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Tally, CheckError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(buckets.max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut tally = Tally::default();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(slot) = slots.get(i) else { break };
                        let bucket = slot.lock().ok().and_then(|mut b| b.take());
                        let Some(bucket) = bucket else { continue };
                        let mut ops = bucket.load()?;
                        check_bucket(&mut ops, &opts.values, opts.timeout_per_key, &mut tally);
                    }
                    Ok(tally)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(CheckError::Invalid("a checker thread panicked".into()))))
            .collect()
    });
    let mut tally = Tally::default();
    for r in results {
        tally.add(r?);
    }
    Ok(Outcome {
        skipped: part.skipped,
        partition_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        buckets,
        spilled,
        threads,
        ..tally.into_outcome(part.files, part.eras, part.ops, started, opts.values)?
    })
}

/// Checks operations already packed in memory, on this thread (each
/// carries its source index, [`op::Op::new`], and its era,
/// [`op::Op::with_era`]); sources are named `file0`, `file1`, …. For tests
/// and small tools.
pub fn check_ops(mut ops: Vec<Op>, opts: &Options) -> Result<Outcome, CheckError> {
    let started = Instant::now();
    let mut tally = Tally::default();
    let n = ops.len() as u64;
    check_bucket(&mut ops, &opts.values, opts.timeout_per_key, &mut tally);
    let files = ops.iter().map(Op::file).max().map_or(0, |f| f as usize + 1);
    let eras = ops.iter().map(Op::era).max().map_or(1, |e| e as usize + 1);
    tally.into_outcome((0..files).map(|i| format!("file{i}")).collect(), eras, n, started, opts.values)
}

impl Outcome {
    /// The verdict: a violation beats an unknown.
    pub fn verdict(&self) -> Verdict {
        if self.violating_keys > 0 {
            Verdict::Violation
        } else if self.unknown_keys > 0 {
            Verdict::Unknown
        } else {
            Verdict::Linearizable
        }
    }

    /// The process exit code: 0 linearizable, 1 violation, 3 unknown.
    pub fn exit_code(&self) -> u8 {
        match self.verdict() {
            Verdict::Linearizable => 0,
            Verdict::Violation => 1,
            Verdict::Unknown => 3,
        }
    }

    /// The verdict line.
    pub fn line(&self) -> String {
        match self.verdict() {
            Verdict::Linearizable => format!("linearizable: {} ops, {} keys", self.ops, self.keys),
            Verdict::Violation => {
                let first = self.violations.first().map_or(String::new(), |w| format!("key {} ", w.key));
                format!(
                    "VIOLATION: {first}is not linearizable ({} of {} keys not linearizable; {} ops)",
                    self.violating_keys, self.keys, self.ops
                )
            }
            Verdict::Unknown => format!(
                "unknown: {} of {} keys undecided ({} ops): {}",
                self.unknown_keys,
                self.keys,
                self.ops,
                list(self.unknown.iter().map(|u| u.0), self.unknown_keys)
            ),
        }
    }

    /// Operations checked per second.
    pub fn ops_per_s(&self) -> f64 {
        self.ops as f64 / self.seconds.max(1e-9)
    }

    /// Size and speed, one line.
    pub fn figures(&self) -> String {
        let size = if self.bytes > 0 { format!(", {:.1} MB,", self.bytes as f64 / 1e6) } else { String::new() };
        let eras = if self.eras > 1 { format!(" of {} eras", self.eras) } else { String::new() };
        format!(
            "checked {} file(s){eras}{size} in {:.2} s ({:.2} s reading): {:.2} M ops/s, peak RSS {}, {} bucket(s){} \
             on {} thread(s)",
            if self.input_files > 0 { self.input_files } else { self.files.len() },
            self.seconds,
            self.partition_seconds,
            self.ops_per_s() / 1e6,
            self.peak_rss_bytes.map_or("?".into(), |b| format!("{:.0} MB", b as f64 / 1e6)),
            self.buckets,
            if self.spilled { " on disk" } else { " in memory" },
            self.threads
        )
    }

    /// The whole report for people.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n", self.line());
        if let Some(w) = self.violations.first() {
            out.push_str(&w.render(&self.files, &self.values));
            if self.violating_keys > 1 {
                out.push_str(&format!(
                    "other keys not linearizable: {}\n",
                    list(self.violations.iter().skip(1).map(|w| w.key), self.violating_keys - 1)
                ));
            }
        }
        for (key, why) in self.unknown.iter().take(10) {
            out.push_str(&format!("  key {key}: {why}\n"));
        }
        if self.skipped > 0 {
            out.push_str(&format!("ignored {} GETs without a reply\n", self.skipped));
        }
        out.push_str(&self.figures());
        out.push('\n');
        out
    }

    /// The whole report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "verdict": match self.verdict() {
                Verdict::Linearizable => "linearizable",
                Verdict::Violation => "violation",
                Verdict::Unknown => "unknown",
            },
            "line": self.line(),
            "ops": self.ops,
            "keys": self.keys,
            "skipped_gets": self.skipped,
            "files": self.files,
            "eras": self.eras,
            "history_bytes": self.bytes,
            "seconds": self.seconds,
            "partition_seconds": self.partition_seconds,
            "ops_per_s": self.ops_per_s(),
            "peak_rss_bytes": self.peak_rss_bytes,
            "buckets": self.buckets,
            "spilled": self.spilled,
            "threads": self.threads,
            "violating_keys": self.violating_keys,
            "violations": self.violations.iter().map(|w| w.to_json(&self.files, &self.values)).collect::<Vec<_>>(),
            "unknown_keys": self.unknown_keys,
            "unknown": self.unknown.iter().map(|(k, why)| json!({"key": k, "reason": why})).collect::<Vec<_>>(),
            "searched_keys": self.searched_keys,
        })
    }
}

/// `a, b, c` and `… (N more)` past 20.
fn list(keys: impl Iterator<Item = u64>, total: u64) -> String {
    let shown: Vec<String> = keys.take(20).map(|k| k.to_string()).collect();
    let more = total.saturating_sub(shown.len() as u64);
    if more > 0 { format!("{} … ({more} more)", shown.join(", ")) } else { shown.join(", ") }
}
