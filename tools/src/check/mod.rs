//! `percore check FILE...`: proves, from recorded histories, that a run was
//! linearizable — or names the operations that prove it was not.
//!
//! ```text
//! percore check FILE... [--json OUT] [--threads N] [--timeout-per-key MS] [--memory MIB] [--temp-dir DIR]
//! percore check --synthesize N FILE [--keys K] [--clients C] [--reads F] [--seed S] [--writer-base W]
//! ```
//!
//! The files are what `percore loadgen run --history FILE` (or `percore
//! bench --check`) records: one file per load generator process, in the
//! format of [`loadgen::history`].
//!
//! # What is checked
//!
//! The model is a register per key: a PUT writes a value, a GET returns the
//! value of the latest write (NOT_FOUND if there is none, or after a
//! DELETE), a DELETE removes it. A history is *linearizable* if its
//! operations can be put in one order that respects the model and in which
//! an operation that completed before another began (in real time) comes
//! first. Linearizability is local (Herlihy & Wing), so each key is checked
//! on its own, keys in parallel.
//!
//! * Every written value is unique (writer id and sequence number), and
//!   every GET names the write it observed. That makes the check
//!   near-linear instead of a search exponential in concurrency: the
//!   writes' *zones* (Gibbons & Korach) are compared after one sort; see
//!   [`register`] for the algorithm and its proof.
//! * A GET whose value failed verification (`BAD_READ`) is a violation; so
//!   is a GET of a value no PUT of that key wrote (other than the key's
//!   load value), and a GET that returned before its PUT began.
//! * A key's initial value is its load value (`load#KEY`, written at −∞)
//!   if any GET observed it, otherwise "absent". NOT_FOUND is a read of
//!   that absence, or of a DELETE. Without DELETEs, a key whose GETs saw
//!   both NOT_FOUND and its load value is a violation.
//! * With DELETEs, NOT_FOUND no longer names one write: such keys go to a
//!   bounded search ([`search`]) that can answer "unknown" when it runs out
//!   of `--timeout-per-key` (default 1000 ms).
//! * A PUT whose reply never came (the run was stopped) may or may not have
//!   taken effect; a GET without a reply is ignored.
//! * A history must start from a freshly loaded or empty store: values left
//!   by an earlier, unrecorded run look like values never written.
//!
//! # Several files (several clocks)
//!
//! Each file's times come from its own process's monotonic clock, so:
//!
//! * real-time order is used **only between operations of the same file**:
//!   an operation that completed before another began, both in one file,
//!   must come first;
//! * **across files, no time is compared**: two operations from different
//!   files are treated as concurrent, whatever their timestamps. What still
//!   binds them is the data: a GET that observed a PUT from another file
//!   comes after that PUT, each value is written once, and each file's own
//!   order must fit the same single order of the writes. Example: node A
//!   writes v1 and then v2, node B reads v2 and then v1 — a violation,
//!   found without comparing A's clock with B's;
//! * with one file, the check is the full linearizability check.
//!
//! What is not reported: a violation visible only by comparing one node's
//! clock with another's, e.g. node B reading v1 after (in wall-clock time)
//! node A's PUT of v2 completed, when nothing in B's own history shows v2
//! before that read. Across nodes percore checks that each key has one
//! order of operations respecting every node's own real-time order
//! (linearizability with respect to the union of the per-node orders).
//!
//! # Output and exit codes
//!
//! | exit | first line of stdout |
//! |---|---|
//! | 0 | `linearizable: N ops, K keys` |
//! | 1 | `VIOLATION: key K …`, then the witness: one sentence and the 2–6 operations that prove it (client, kind, value, invoke and response times, position in the file) |
//! | 3 | `unknown: U of K keys undecided …`, with the keys |
//! | 2 | (nothing) one line on stderr: usage, unreadable or malformed file |
//!
//! A last line gives the size and speed: files, bytes, seconds, ops/s, peak
//! resident memory (VmHWM). `--json FILE` writes all of it, with up to 100
//! witnesses, for scripts (`verdict`, `line`, `ops`, `keys`, `seconds`,
//! `ops_per_s`, `peak_rss_bytes`, `violations[]`, `unknown[]`, …).
//!
//! # Scale
//!
//! Files are streamed once and partitioned by key hash (`partition.rs`); in
//! memory when they fit `--memory` (default 256 MiB), else into bucket
//! files in a temporary directory, sized so that `--threads` buckets fit the
//! budget at once. Buckets are checked in parallel. A single key's
//! operations must fit in memory (64 bytes each while checked).
//!
//! `--synthesize N FILE` writes a linearizable synthetic history of N
//! operations (simulated clients over zipfian keys, with random delays) to
//! measure the checker without a server: see [`synth`].
//!
//! # Layout
//!
//! - [`op`]: one operation in memory and in bucket files; how values and
//!   times are shown.
//! - `partition`: files → per-key-hash buckets (in memory or bucket files).
//! - [`register`]: the near-linear check of one key (zones; Kahn's sort across clocks).
//! - [`search`]: keys with DELETEs: certify a guessed mapping, else bounded search.
//! - [`witness`]: minimal witnesses and their sentences.
//! - [`synth`]: the synthetic history generator.

pub mod op;
mod partition;
pub mod register;
pub mod search;
pub mod synth;
pub mod witness;

use clap::Args;
use op::Op;
use register::KeyVerdict;
use serde_json::json;
use std::path::{Path, PathBuf};
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
    /// A history file is unreadable or not a history.
    #[error(transparent)]
    History(#[from] loadgen::history::HistoryError),
    /// A record breaks the format's rules.
    #[error("{path}: record {position}: {why}")]
    Record {
        /// The file.
        path: String,
        /// The record's position.
        position: u64,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing a file failed.
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
    /// The arguments are unusable.
    #[error("{0}")]
    Usage(String),
}

/// How to check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Buckets checked at once.
    pub threads: usize,
    /// Time limit of the search for one key with DELETEs.
    pub timeout_per_key: Duration,
    /// Memory budget for the operations being checked (bytes).
    pub memory: u64,
    /// Where bucket files go.
    pub temp_dir: PathBuf,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            timeout_per_key: Duration::from_millis(1000),
            memory: 256 << 20,
            temp_dir: std::env::temp_dir(),
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
    /// The files, as given.
    pub files: Vec<String>,
    /// Their size.
    pub bytes: u64,
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

    /// The outcome of checking `ops` operations of `files`, started at
    /// `started`: this tally's verdicts (witnesses cut to the smallest keys),
    /// as one bucket on one thread; callers that partitioned say so.
    fn into_outcome(mut self, files: Vec<String>, ops: u64, started: Instant) -> Result<Outcome, CheckError> {
        if let Some(why) = self.invalid {
            return Err(CheckError::Invalid(why));
        }
        keep_smallest(&mut self.violations, |w| w.key);
        keep_smallest(&mut self.unknown, |u| u.0);
        Ok(Outcome {
            files,
            bytes: 0,
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
        })
    }
}

/// Checks one bucket: sorts it by key (then value), checks each key.
fn check_bucket(ops: &mut [Op], timeout: Duration, tally: &mut Tally) {
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
        if slice.iter().any(|o| o.kind() == loadgen::history::Kind::Delete) {
            tally.searched_keys += 1;
        }
        tally.keys += 1;
        match register::check_key(slice, timeout) {
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

/// Checks the history files `paths` (one per load generator process).
pub fn check_files(paths: &[PathBuf], opts: &CheckOptions) -> Result<Outcome, CheckError> {
    if paths.is_empty() {
        return Err(CheckError::Usage("no history files given".into()));
    }
    let started = Instant::now();
    let threads = opts.threads.max(1);
    let part = partition::partition(paths, opts.memory, threads, &opts.temp_dir)?;
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
                        check_bucket(&mut ops, opts.timeout_per_key, &mut tally);
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
        bytes: part.bytes,
        skipped: part.skipped,
        partition_seconds,
        peak_rss_bytes: peak_rss_bytes(),
        buckets,
        spilled,
        threads,
        ..tally.into_outcome(part.files, part.ops, started)?
    })
}

/// Checks operations already in memory (one file's worth or several: each
/// op carries its file index). For tests and small tools.
pub fn check_ops(mut ops: Vec<Op>, timeout_per_key: Duration) -> Result<Outcome, CheckError> {
    let started = Instant::now();
    let mut tally = Tally::default();
    let n = ops.len() as u64;
    check_bucket(&mut ops, timeout_per_key, &mut tally);
    let files = ops.iter().map(Op::file).max().map_or(0, |f| f as usize + 1);
    tally.into_outcome((0..files).map(|i| format!("file{i}")).collect(), n, started)
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
        format!(
            "checked {} file(s), {:.1} MB, in {:.2} s ({:.2} s reading): {:.2} M ops/s, peak RSS {}, {} bucket(s){} \
             on {} thread(s)",
            self.files.len(),
            self.bytes as f64 / 1e6,
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
            out.push_str(&w.render(&self.files));
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
            "history_bytes": self.bytes,
            "seconds": self.seconds,
            "partition_seconds": self.partition_seconds,
            "ops_per_s": self.ops_per_s(),
            "peak_rss_bytes": self.peak_rss_bytes,
            "buckets": self.buckets,
            "spilled": self.spilled,
            "threads": self.threads,
            "violating_keys": self.violating_keys,
            "violations": self.violations.iter().map(|w| w.to_json(&self.files)).collect::<Vec<_>>(),
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

/// `percore check` options.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// History files, one per load generator process (with --synthesize: the file to write).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Also write the whole result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Threads checking buckets in parallel (default: every CPU).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Time limit of the bounded search for one key with DELETEs (then: unknown).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub timeout_per_key: u64,
    /// Memory budget for the operations being checked; larger histories go
    /// through bucket files.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub memory: u64,
    /// Where bucket files go (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
    /// Instead of checking: write a linearizable synthetic history of N
    /// operations to FILE (to measure the checker).
    #[arg(long, value_name = "N")]
    pub synthesize: Option<u64>,
    /// With --synthesize: keys (zipfian, θ = 0.99).
    #[arg(long, value_name = "K", default_value_t = 1_000_000, requires = "synthesize")]
    pub keys: u64,
    /// With --synthesize: concurrent clients.
    #[arg(long, value_name = "C", default_value_t = 64, requires = "synthesize")]
    pub clients: u16,
    /// With --synthesize: fraction of GETs.
    #[arg(long, value_name = "F", default_value_t = 0.5, requires = "synthesize")]
    pub reads: f64,
    /// With --synthesize: RNG seed.
    #[arg(long, default_value_t = 1, requires = "synthesize")]
    pub seed: u64,
    /// With --synthesize: writer id of the first client.
    #[arg(long, value_name = "ID", default_value_t = 0, requires = "synthesize")]
    pub writer_base: u32,
    /// No progress lines on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Runs `percore check`; the process exit code (0, 1, 3; 2 on errors).
pub fn main(args: &CheckArgs) -> u8 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("percore check: {e}");
            2
        }
    }
}

fn run(args: &CheckArgs) -> Result<u8, CheckError> {
    if let Some(n) = args.synthesize {
        let [file] = args.files.as_slice() else {
            return Err(CheckError::Usage("--synthesize writes exactly one FILE".into()));
        };
        let spec = synth::Spec {
            ops: n,
            keys: args.keys,
            clients: args.clients,
            reads: args.reads,
            seed: args.seed,
            writer_base: args.writer_base,
        };
        let started = Instant::now();
        let written = synth::write(file, &spec)?;
        if !args.quiet {
            eprintln!(
                "percore check: wrote {written} operations over {} keys by {} clients to {} in {:.1} s",
                spec.keys,
                spec.clients,
                file.display(),
                started.elapsed().as_secs_f64()
            );
        }
        return Ok(0);
    }
    let opts = CheckOptions {
        threads: args.threads.unwrap_or_else(|| CheckOptions::default().threads).max(1),
        timeout_per_key: Duration::from_millis(args.timeout_per_key.max(1)),
        memory: args.memory.max(1) << 20,
        temp_dir: args.temp_dir.clone().unwrap_or_else(std::env::temp_dir),
    };
    if !args.quiet {
        eprintln!("percore check: checking {} file(s) on {} thread(s)…", args.files.len(), opts.threads);
    }
    let outcome = check_files(&args.files, &opts)?;
    print!("{}", outcome.text());
    if let Some(path) = &args.json {
        write_json(path, &outcome.to_json())?;
    }
    Ok(outcome.exit_code())
}

/// Writes a JSON value to `path`.
pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), CheckError> {
    let text = serde_json::to_vec_pretty(v).map_err(|e| CheckError::Invalid(format!("JSON: {e}")))?;
    std::fs::write(path, text).map_err(|source| CheckError::Io { what: path.display().to_string(), source })
}
