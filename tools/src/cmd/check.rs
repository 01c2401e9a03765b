//! `percore check FILE...`: the command over the [`check`] crate. It reads
//! percore's history files (one per load generator process, in the format
//! of [`loadgen::history`]) as the checker's sources, tells the checker
//! what percore's values mean (each key's load value, `w3#17` names), and
//! prints or writes the outcome.
//!
//! ```text
//! percore check FILE... [--then FILE...]... [--json OUT] [--threads N] [--timeout-per-key MS] [--memory MIB] [--temp-dir DIR]
//! percore check --synthesize N FILE [--keys K] [--clients C] [--reads F] [--seed S] [--writer-base W]
//! ```
//!
//! What is checked, the algorithm and its limits: the [`check`] crate's
//! documentation.
//!
//! # One machine, one clock
//!
//! The checker compares times only within a source. Files whose headers
//! carry the same `boot_id` and an `epoch_monotonic_ns` (every file this
//! load generator writes) were recorded on one boot of one machine, whose
//! `CLOCK_MONOTONIC` they share: they become one source, their times moved
//! onto that clock and their clients numbered apart, so a reader process
//! that sees an old value after another process's write was acknowledged
//! is a violation (cluster/nemesis.sh's pinned readers rely on it). Files
//! from other machines keep their own clocks.
//!
//! # Across a restart: `--then`
//!
//! `percore check A.hist --then B.hist` checks a run that was killed (A)
//! with the run after the server restarted (B): each `--then` group is an
//! *era* ([`check::check_eras`]), and every operation of a group began
//! after every operation of the groups before it ended. A PUT that A
//! recorded without a reply took effect before the restart or never; one
//! A saw acknowledged must be seen by B (or overwritten), else B's read is
//! a violation: an acknowledged write was lost. Within a group, files keep
//! their own clocks as usual. `A1.hist A2.hist --then B.hist --then
//! C.hist`: two nodes' files, then two restarts.
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
//! witnesses, for scripts (`verdict`, `line`, `ops`, `keys`, `eras`, `seconds`,
//! `ops_per_s`, `peak_rss_bytes`, `violations[]`, `unknown[]`, …).
//!
//! `--synthesize N FILE` writes a linearizable synthetic history of N
//! operations ([`check::synth`]) as a history file, to measure the checker
//! without a server.

use check::{CheckError, Operation, Options, Outcome, Source, Values};
use clap::Args;
use loadgen::history::{self, Header, HistoryError, HistoryReader, HistorySink, Record};
use loadgen::workload::OpKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why `percore check` could not give a verdict.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A history file is unreadable or not a history.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The checker refused the history (see [`CheckError`]).
    #[error(transparent)]
    Check(#[from] CheckError),
    /// Writing the JSON or a synthetic history failed.
    #[error("{what}: {source}")]
    Io {
        /// Which file.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The arguments are unusable.
    #[error("{0}")]
    Usage(String),
}

/// What percore's values mean: every key starts with its load value
/// (`load#KEY`, as after `percore loadgen load`) and values read as
/// `w3#17`. The checker's synthetic histories use the load generator's
/// encoding of values ([`loadgen::value::Identity`]), so their
/// [`check::synth::VALUES`] are percore's (a test below keeps it so).
pub const VALUES: Values = check::synth::VALUES;

/// The operation of one history record.
pub fn operation(r: &Record) -> Operation {
    Operation {
        key: r.key,
        kind: r.kind,
        client: r.client,
        value: r.value,
        invoke: r.invoke,
        response: (r.response != history::NO_RESPONSE).then_some(r.response),
    }
}

/// One or more history files' records as one checker source (with the
/// exact number left as the size hint). Files recorded on the same boot
/// of one machine share its monotonic clock: their times are moved onto
/// it (each by its epoch's distance from the earliest), and their clients
/// numbered apart, so the checker orders their operations against each
/// other as it does within one file.
struct Records {
    /// Each file, the ns its times move by, and the number of its first client.
    files: Vec<(HistoryReader, u64, u16)>,
    at: usize,
}

impl Records {
    fn one(reader: HistoryReader) -> Records {
        Records { files: vec![(reader, 0, 0)], at: 0 }
    }

    /// Files of one clock: every header has the same boot id and an epoch on it.
    fn shared_clock(readers: Vec<HistoryReader>) -> Records {
        let epoch = |r: &HistoryReader| r.header.epoch_monotonic_ns.unwrap_or(0);
        let first = readers.iter().map(epoch).min().unwrap_or(0);
        let mut client = 0u16;
        let files = readers
            .into_iter()
            .map(|r| {
                let (shift, base) = (epoch(&r) - first, client);
                client = client.saturating_add(u16::try_from(r.header.threads).unwrap_or(u16::MAX));
                (r, shift, base)
            })
            .collect();
        Records { files, at: 0 }
    }
}

impl Iterator for Records {
    type Item = Result<Operation, HistoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some((reader, shift, base)) = self.files.get_mut(self.at) {
            match reader.next_record().transpose() {
                Some(r) => {
                    return Some(r.map(|r| {
                        let mut op = operation(&r);
                        op.invoke += *shift;
                        op.response = op.response.map(|t| t + *shift);
                        op.client = op.client.saturating_add(*base);
                        op
                    }));
                }
                None => self.at += 1,
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.files[self.at.min(self.files.len())..]
            .iter()
            .map(|(r, ..)| r.len().saturating_sub(r.position()))
            .sum::<u64>();
        (left as usize, Some(left as usize))
    }
}

/// Checks the history files `paths` (one per load generator process):
/// `opts` as given, but with percore's [`VALUES`].
pub fn check_files(paths: &[PathBuf], opts: &Options) -> Result<Outcome, Error> {
    check_era_files(&[paths.to_vec()], opts)
}

/// Checks the history files of several eras (`eras[k]`: the files of era
/// `k`, a run after `k` restarts; see [`check::check_eras`]): `opts` as
/// given, but with percore's [`VALUES`]. Within an era, the files recorded
/// on one boot of one machine are one source (one clock); the others are
/// a source each.
pub fn check_era_files(eras: &[Vec<PathBuf>], opts: &Options) -> Result<Outcome, Error> {
    let mut sources = Vec::with_capacity(eras.len());
    let mut bytes = 0;
    for paths in eras {
        let mut era = Vec::with_capacity(paths.len());
        // Files with a shared clock, by boot id, in the order first seen.
        let mut shared: Vec<(String, Vec<(String, HistoryReader)>)> = Vec::new();
        for p in paths {
            let reader = HistoryReader::open(p)?;
            bytes += std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            let name = p.display().to_string();
            match (&reader.header.boot_id, reader.header.epoch_monotonic_ns) {
                (Some(boot), Some(_)) => match shared.iter_mut().find(|(b, _)| b == boot) {
                    Some((_, files)) => files.push((name, reader)),
                    None => shared.push((boot.clone(), vec![(name, reader)])),
                },
                _ => era.push(Source { name, ops: Records::one(reader) }),
            }
        }
        for (_, files) in shared {
            // Positions (#N) count through the files in this order.
            let name = match files.len() {
                1 => files[0].0.clone(),
                n => format!("{} + {} more file(s) on its clock", files[0].0, n - 1),
            };
            let ops = Records::shared_clock(files.into_iter().map(|(_, r)| r).collect());
            era.push(Source { name, ops });
        }
        sources.push(era);
    }
    let opts = Options { values: VALUES, ..opts.clone() };
    let mut outcome = check::check_eras(sources, &opts).map_err(|e| match e {
        // A file that fails mid-way says so in its own words (with its path).
        CheckError::Source { error, source_name, position } => match error.downcast::<HistoryError>() {
            Ok(h) => Error::History(*h),
            Err(error) => Error::Check(CheckError::Source { source_name, position, error }),
        },
        e => Error::Check(e),
    })?;
    outcome.bytes = bytes;
    outcome.input_files = eras.iter().map(Vec::len).sum();
    Ok(outcome)
}

/// `percore check` options.
#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// History files, one per load generator process (with --synthesize: the file to write).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// `--then FILE...`, repeated: the files of each later era.
    #[command(flatten)]
    pub then: Then,
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

/// The `--then FILE...` groups, in order: `0[k]` are the files of era
/// `k + 1`. (Written out because clap's derive cannot yet group an
/// option's values by occurrence.)
#[derive(Debug, Clone, Default)]
pub struct Then(pub Vec<Vec<PathBuf>>);

impl clap::FromArgMatches for Then {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let groups = m.get_occurrences::<PathBuf>("then").map(|o| o.map(|g| g.cloned().collect()).collect());
        Ok(Then(groups.unwrap_or_default()))
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Then::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for Then {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.arg(
            clap::Arg::new("then")
                .long("then")
                .value_name("FILE")
                .num_args(1..)
                .action(clap::ArgAction::Append)
                .value_parser(clap::value_parser!(PathBuf))
                .conflicts_with("synthesize")
                .help(
                    "History files recorded after a restart: every operation in them began after every \
                     operation of the files before ended (a PUT left unanswered before took effect then or \
                     never). Repeat for each restart: A.hist --then B.hist --then C.hist",
                ),
        )
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Then::augment_args(cmd)
    }
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

fn run(args: &CheckArgs) -> Result<u8, Error> {
    if let Some(n) = args.synthesize {
        let [file] = args.files.as_slice() else {
            return Err(Error::Usage("--synthesize writes exactly one FILE".into()));
        };
        let spec = check::synth::Spec {
            ops: n,
            keys: args.keys,
            clients: args.clients,
            reads: args.reads,
            seed: args.seed,
            writer_base: args.writer_base,
        };
        let started = Instant::now();
        let written = synthesize(file, &spec)?;
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
    let opts = Options {
        threads: args.threads.unwrap_or_else(|| Options::default().threads).max(1),
        timeout_per_key: Duration::from_millis(args.timeout_per_key.max(1)),
        memory: args.memory.max(1) << 20,
        temp_dir: args.temp_dir.clone().unwrap_or_else(std::env::temp_dir),
        values: VALUES,
    };
    let eras: Vec<Vec<PathBuf>> = std::iter::once(args.files.clone()).chain(args.then.0.iter().cloned()).collect();
    if !args.quiet {
        let files: usize = eras.iter().map(Vec::len).sum();
        let of = if eras.len() > 1 { format!(" of {} eras", eras.len()) } else { String::new() };
        eprintln!("percore check: checking {files} file(s){of} on {} thread(s)…", opts.threads);
    }
    let outcome = check_era_files(&eras, &opts)?;
    print!("{}", outcome.text());
    if let Some(path) = &args.json {
        write_json(path, &outcome.to_json())?;
    }
    Ok(outcome.exit_code())
}

/// Writes the synthetic history of `spec` to `path` as a history file;
/// returns the operations written.
pub fn synthesize(path: &Path, spec: &check::synth::Spec) -> Result<u64, Error> {
    let synth = check::synth::Synth::new(spec).map_err(|e| Error::Usage(format!("--synthesize: {e}")))?;
    let header = Header {
        version: history::VERSION,
        node: "synthetic".into(),
        pid: std::process::id(),
        epoch_unix_ns: 0,
        clock: "simulated ns".into(),
        threads: spec.clients as usize,
        boot_id: None,
        epoch_monotonic_ns: None,
    };
    let io = |source: std::io::Error| Error::Io { what: path.display().to_string(), source };
    let sink = HistorySink::create(path, &header).map_err(io)?;
    let mut writers: Vec<_> = (0..spec.clients).filter_map(|c| sink.writer(c)).collect();
    for o in synth {
        let kind = if o.kind == check::Kind::Get { OpKind::Get } else { OpKind::Put };
        if let Some(w) = writers.get_mut(o.client as usize) {
            w.record(o.key, kind, o.value, o.invoke, o.response.unwrap_or(history::NO_RESPONSE));
        }
    }
    for w in writers {
        w.finish();
    }
    sink.close().map_err(io)
}

/// Writes a JSON value to `path`.
pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<(), Error> {
    let text = serde_json::to_vec_pretty(v).map_err(|e| Error::Usage(format!("JSON: {e}")))?;
    std::fs::write(path, text).map_err(|source| Error::Io { what: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::value::{Identity, LOAD_WRITER};

    #[test]
    fn synthetic_values_are_the_load_generators_values() {
        // The checker's synthetic histories and percore's load generator
        // must agree on what a value means, or `--synthesize` files would
        // read as never-written values.
        assert_eq!(check::synth::value(3, 17), Identity::new(3, 17).0);
        assert_eq!(check::synth::initial(5), Identity::new(LOAD_WRITER, 5).0);
        assert_eq!(check::synth::LOAD_WRITER, LOAD_WRITER);
        for v in [Identity::new(3, 17), Identity::new(LOAD_WRITER, 5), Identity::new(0, (1 << 48) - 1)] {
            assert_eq!(VALUES.show(v.0), v.to_string());
        }
    }

    #[test]
    fn records_become_operations_with_their_special_values() {
        let r = Record {
            key: 9,
            kind: history::Kind::Get,
            client: 2,
            value: history::BAD_READ,
            invoke: 5,
            response: history::NO_RESPONSE,
        };
        let o = operation(&r);
        assert_eq!(
            (o.key, o.kind, o.client, o.value, o.invoke, o.response),
            (9, check::Kind::Get, 2, check::BAD_READ, 5, None)
        );
        let o = operation(&Record { kind: history::Kind::Delete, value: history::NOT_FOUND, response: 7, ..r });
        assert_eq!((o.kind, o.value, o.response), (check::Kind::Delete, check::NOT_FOUND, Some(7)));
    }
}
