//! `percore lost BEFORE AFTER`: the acknowledged writes of a run (BEFORE,
//! a history file) that the reads after a restart (AFTER, e.g. from
//! `percore loadgen verify --history`) did not see — the writes a crash
//! lost. `tools/crash-test.sh` uses it to say how much `--fsync everysec`
//! loses to a `kill -9`, and to confirm `--fsync always` loses nothing.
//!
//! ```text
//! percore lost BEFORE.hist AFTER.hist [--json OUT]
//! ```
//!
//! # What counts as lost
//!
//! Every operation of AFTER began after every operation of BEFORE ended
//! (the server was restarted in between). For each key that AFTER read, a
//! read of value `v` says the key's last write was the one that wrote `v`;
//! an acknowledged PUT of BEFORE that *began after that write was
//! acknowledged* should have replaced `v`, and is lost. So, per read:
//!
//! - `v` was written by a PUT of BEFORE with a reply at time `r`: the
//!   acknowledged PUTs of that key invoked after `r` are lost; if that PUT
//!   has no reply (it was in flight at the crash), nothing is: it may have
//!   been applied last;
//! - `v` is the key's load value, or nothing was found, or the value was
//!   corrupt: every acknowledged PUT of that key is lost;
//! - `v` was written by AFTER itself: that read says nothing about BEFORE;
//! - `v` was written by nobody (of either file, and not the load value):
//!   *unexplained*, reported separately (the store made it up).
//!
//! A key is judged by its weakest read (the one that loses the most).
//! Keys BEFORE deleted are skipped (a read of nothing may be that DELETE),
//! and so are keys AFTER never read; both are counted.
//!
//! For a lost write, the *window* is how long before the crash it was
//! acknowledged, measured to BEFORE's last reply (the load generator read
//! replies until the kill, so its last reply is the best clock of the kill
//! that BEFORE's own clock offers; times of different files are never
//! compared). In `always` mode it must find nothing; in `everysec` mode
//! what it finds is what the last second's unsynced log held.
//!
//! # Output and exit codes
//!
//! The first line is `lost N of M acknowledged writes …`, with the keys and
//! the window when N > 0; then up to [`SHOWN`] lost keys, each with what
//! was read and the newest write lost; then the counts of both files.
//! `--json FILE` writes all of it (`lost_writes`, `lost_keys`,
//! `acknowledged_writes`, `window_ns`, …). Exit 0: nothing lost and
//! nothing unexplained; 1: something lost, corrupt or unexplained; 2: an
//! unreadable file or bad arguments (one line on stderr).

use crate::cmd::check::{VALUES, write_json};
use check::{BAD_READ, Kind, NOT_FOUND};
use clap::Args;
use loadgen::history::{HistoryError, HistoryReader, NO_RESPONSE, Record};
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Lost keys listed in the text (all of them go to the JSON).
pub const SHOWN: usize = 10;

/// `percore lost` options.
#[derive(Args, Debug, Clone)]
pub struct LostArgs {
    /// History of the run that was cut by the crash.
    #[arg(value_name = "BEFORE")]
    pub before: PathBuf,
    /// History of reads after the restart (e.g. `percore loadgen verify --history`).
    #[arg(value_name = "AFTER")]
    pub after: PathBuf,
    /// Also write the result as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// A key whose acknowledged writes were lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostKey {
    /// The key (record number).
    pub key: u64,
    /// What the read after the restart returned (a value, [`NOT_FOUND`]
    /// or [`BAD_READ`]).
    pub read: u64,
    /// Acknowledged PUTs of this key that were lost.
    pub writes: u64,
    /// Reply time of the oldest of them (BEFORE's clock, ns).
    pub oldest_ack: u64,
    /// Reply time of the newest of them (BEFORE's clock, ns).
    pub newest_ack: u64,
    /// The value the newest of them wrote.
    pub newest_value: u64,
}

/// What `percore lost` found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Operations in BEFORE.
    pub before_ops: u64,
    /// PUTs of BEFORE without a reply (in flight at the crash).
    pub unanswered_puts: u64,
    /// PUTs of BEFORE with a reply.
    pub acknowledged_writes: u64,
    /// Keys with an acknowledged PUT in BEFORE.
    pub keys_written: u64,
    /// BEFORE's last reply (ns, its clock); `None` if it has none.
    pub last_reply: Option<u64>,
    /// GETs in AFTER.
    pub reads: u64,
    /// Of them, reads that found nothing.
    pub not_found: u64,
    /// Of them, reads whose value was corrupt.
    pub corrupt: u64,
    /// Reads of values nobody wrote for their key: `(key, value)`.
    pub unexplained: Vec<(u64, u64)>,
    /// Keys written in BEFORE that AFTER never read (not judged).
    pub unread_keys: u64,
    /// Keys BEFORE deleted (not judged).
    pub deleted_keys: u64,
    /// Acknowledged PUTs lost, in all.
    pub lost_writes: u64,
    /// The keys that lost them, by key.
    pub lost_keys: Vec<LostKey>,
}

/// Why `percore lost` could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A history file is unreadable or not a history.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Writing the JSON failed.
    #[error(transparent)]
    Output(#[from] crate::cmd::check::Error),
}

/// How far back a key's reads reach: the acknowledged PUTs invoked after
/// this time are lost (`None`: all of them).
type Floor = Option<u64>;

/// Finds the lost writes: `before()` yields BEFORE's records (it is called
/// twice: the records are streamed, not held), `after` AFTER's.
pub fn account<I, E>(
    after: impl IntoIterator<Item = Result<Record, E>>,
    mut before: impl FnMut() -> Result<I, E>,
) -> Result<Lost, E>
where
    I: Iterator<Item = Result<Record, E>>,
{
    let mut out = Lost::default();
    // AFTER, in memory (one read per key for a `verify` run).
    let mut own: HashSet<(u64, u64)> = HashSet::new();
    let mut gets: Vec<Record> = Vec::new();
    for r in after {
        let r = r?;
        match r.kind {
            Kind::Get => gets.push(r),
            Kind::Put => {
                own.insert((r.key, r.value));
            }
            Kind::Delete => {}
        }
    }
    // The writes AFTER's reads name: their reply times, from BEFORE.
    let mut named: HashMap<(u64, u64), Option<u64>> = HashMap::new();
    for g in &gets {
        if !matches!(g.value, NOT_FOUND | BAD_READ) && !own.contains(&(g.key, g.value)) {
            named.insert((g.key, g.value), None);
        }
    }
    let mut written: HashSet<u64> = HashSet::new();
    let mut deleted: HashSet<u64> = HashSet::new();
    for r in before()? {
        let r = r?;
        out.before_ops += 1;
        if r.response != NO_RESPONSE {
            out.last_reply = out.last_reply.max(Some(r.response));
        }
        match r.kind {
            Kind::Put if r.response == NO_RESPONSE => out.unanswered_puts += 1,
            Kind::Put => {
                out.acknowledged_writes += 1;
                written.insert(r.key);
            }
            Kind::Delete => {
                deleted.insert(r.key);
            }
            Kind::Get => {}
        }
        if r.kind == Kind::Put
            && let Some(at) = named.get_mut(&(r.key, r.value))
        {
            *at = Some(r.response);
        }
    }
    out.keys_written = written.len() as u64;
    out.deleted_keys = deleted.len() as u64;
    // Each key's floor, from its weakest read.
    let mut floors: HashMap<u64, Floor> = HashMap::new();
    let mut read_of: HashMap<u64, u64> = HashMap::new();
    for g in &gets {
        out.reads += 1;
        let floor: Floor = match g.value {
            NOT_FOUND => {
                out.not_found += 1;
                None
            }
            BAD_READ => {
                out.corrupt += 1;
                None
            }
            v if own.contains(&(g.key, v)) => continue,
            v if VALUES.initial(g.key) == Some(v) => None,
            v => match named.get(&(g.key, v)).copied().flatten() {
                Some(reply) => Some(reply),
                None => {
                    out.unexplained.push((g.key, v));
                    continue;
                }
            },
        };
        if deleted.contains(&g.key) {
            continue;
        }
        // −∞ (None) below every time.
        let rank = |f: Floor| (f.is_some(), f.unwrap_or(0));
        let weaker = floors.get(&g.key).is_none_or(|&f| rank(floor) < rank(f));
        if weaker {
            floors.insert(g.key, floor);
            read_of.insert(g.key, g.value);
        }
    }
    out.unread_keys = written.iter().filter(|k| !deleted.contains(k) && !floors.contains_key(k)).count() as u64;
    // The acknowledged PUTs above each floor.
    let mut lost: HashMap<u64, LostKey> = HashMap::new();
    for r in before()? {
        let r = r?;
        if r.kind != Kind::Put || r.response == NO_RESPONSE {
            continue;
        }
        let Some(floor) = floors.get(&r.key) else { continue };
        if floor.is_some_and(|f| r.invoke <= f) {
            continue;
        }
        out.lost_writes += 1;
        let read = read_of.get(&r.key).copied().unwrap_or(NOT_FOUND);
        let k = lost.entry(r.key).or_insert(LostKey {
            key: r.key,
            read,
            writes: 0,
            oldest_ack: r.response,
            newest_ack: r.response,
            newest_value: r.value,
        });
        k.writes += 1;
        k.oldest_ack = k.oldest_ack.min(r.response);
        if r.response >= k.newest_ack {
            k.newest_ack = r.response;
            k.newest_value = r.value;
        }
    }
    out.lost_keys = lost.into_values().collect();
    out.lost_keys.sort_by_key(|k| k.key);
    Ok(out)
}

/// [`account`] over two history files.
pub fn lost_files(before: &Path, after: &Path) -> Result<Lost, HistoryError> {
    let records = |path: &Path| -> Result<_, HistoryError> {
        let mut r = HistoryReader::open(path)?;
        Ok(std::iter::from_fn(move || r.next_record().transpose()))
    };
    account(records(after)?, || records(before))
}

/// Milliseconds, for people.
fn ms(ns: u64) -> String {
    format!("{:.3} ms", ns as f64 / 1e6)
}

impl Lost {
    /// The longest a lost write had been acknowledged before BEFORE's last
    /// reply (ns); `None` if nothing was lost.
    pub fn window_ns(&self) -> Option<u64> {
        let oldest = self.lost_keys.iter().map(|k| k.oldest_ack).min()?;
        Some(self.last_reply.unwrap_or(oldest).saturating_sub(oldest))
    }

    /// The shortest (the newest lost write's age at BEFORE's last reply, ns).
    pub fn newest_ns(&self) -> Option<u64> {
        let newest = self.lost_keys.iter().map(|k| k.newest_ack).max()?;
        Some(self.last_reply.unwrap_or(newest).saturating_sub(newest))
    }

    /// True if nothing was lost, corrupt or unexplained.
    pub fn clean(&self) -> bool {
        self.lost_writes == 0 && self.corrupt == 0 && self.unexplained.is_empty()
    }

    /// The result for people: the `lost N of M …` line first.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let age = |ack: u64| ms(self.last_reply.unwrap_or(ack).saturating_sub(ack));
        match (self.window_ns(), self.newest_ns()) {
            (Some(w), Some(n)) => {
                let _ = writeln!(
                    t,
                    "lost {} of {} acknowledged writes, on {} of {} keys written, acknowledged up to {} before the \
                     last reply (the newest {} before)",
                    self.lost_writes,
                    self.acknowledged_writes,
                    self.lost_keys.len(),
                    self.keys_written,
                    ms(w),
                    ms(n)
                );
            }
            _ => {
                let _ = writeln!(
                    t,
                    "lost 0 of {} acknowledged writes ({} keys written; every read after the restart saw its key's \
                     last acknowledged write or a later one)",
                    self.acknowledged_writes, self.keys_written
                );
            }
        }
        for k in self.lost_keys.iter().take(SHOWN) {
            let _ = writeln!(
                t,
                "  key {}: read {} after the restart; {} acknowledged write(s) lost, the newest {} acknowledged {} \
                 before the last reply",
                k.key,
                VALUES.show(k.read),
                k.writes,
                VALUES.show(k.newest_value),
                age(k.newest_ack)
            );
        }
        if self.lost_keys.len() > SHOWN {
            let _ = writeln!(t, "  … and {} more key(s)", self.lost_keys.len() - SHOWN);
        }
        for &(key, v) in self.unexplained.iter().take(SHOWN) {
            let _ =
                writeln!(t, "UNEXPLAINED: key {key} read {} after the restart, a value nobody wrote", VALUES.show(v));
        }
        if self.corrupt > 0 {
            let _ = writeln!(t, "CORRUPT: {} read(s) after the restart failed verification", self.corrupt);
        }
        let _ = writeln!(
            t,
            "before: {} ops, {} acknowledged PUTs, {} unanswered; after: {} reads, {} found nothing; not judged: {} \
             key(s) never read after, {} key(s) with DELETEs",
            self.before_ops,
            self.acknowledged_writes,
            self.unanswered_puts,
            self.reads,
            self.not_found,
            self.unread_keys,
            self.deleted_keys
        );
        t
    }

    /// The result for scripts.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "lost_writes": self.lost_writes,
            "lost_keys": self.lost_keys.iter().map(|k| serde_json::json!({
                "key": k.key,
                "read": VALUES.show(k.read),
                "writes": k.writes,
                "oldest_ack_ns": k.oldest_ack,
                "newest_ack_ns": k.newest_ack,
                "newest_value": VALUES.show(k.newest_value),
            })).collect::<Vec<_>>(),
            "window_ns": self.window_ns(),
            "newest_ns": self.newest_ns(),
            "acknowledged_writes": self.acknowledged_writes,
            "keys_written": self.keys_written,
            "unanswered_puts": self.unanswered_puts,
            "before_ops": self.before_ops,
            "last_reply_ns": self.last_reply,
            "reads": self.reads,
            "not_found": self.not_found,
            "corrupt": self.corrupt,
            "unexplained": self.unexplained.iter().map(|&(key, v)| serde_json::json!({
                "key": key, "read": VALUES.show(v)
            })).collect::<Vec<_>>(),
            "unread_keys": self.unread_keys,
            "deleted_keys": self.deleted_keys,
        })
    }
}

/// Runs `percore lost`; the process exit code (0 nothing lost, 1 lost,
/// corrupt or unexplained, 2 errors).
pub fn main(args: &LostArgs) -> u8 {
    let run = || -> Result<u8, Error> {
        let lost = lost_files(&args.before, &args.after)?;
        print!("{}", lost.text());
        if let Some(path) = &args.json {
            write_json(path, &lost.to_json())?;
        }
        Ok(if lost.clean() { 0 } else { 1 })
    };
    run().unwrap_or_else(|e| {
        eprintln!("percore lost: {e}");
        2
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loadgen::value::{Identity, LOAD_WRITER};
    use std::convert::Infallible;

    fn put(key: u64, seq: u64, invoke: u64, response: u64) -> Record {
        Record { key, kind: Kind::Put, client: 0, value: Identity::new(0, seq).0, invoke, response }
    }

    fn get(key: u64, value: u64) -> Record {
        Record { key, kind: Kind::Get, client: 0, value, invoke: 1, response: 2 }
    }

    fn w(seq: u64) -> u64 {
        Identity::new(0, seq).0
    }

    fn run(before: &[Record], after: &[Record]) -> Lost {
        let ok = |v: &[Record]| v.iter().copied().map(Ok::<_, Infallible>).collect::<Vec<_>>();
        let b = ok(before);
        let Ok(lost) = account(ok(after), || Ok(b.clone().into_iter()));
        lost
    }

    #[test]
    fn the_last_write_or_a_concurrent_one_loses_nothing() {
        // Key 1: w1 then w2 (after w1's reply); key 2: w3 and w4 concurrent.
        let before = [
            put(1, 1, 10, 20),
            put(1, 2, 30, 40),
            put(2, 3, 10, 50),
            put(2, 4, 20, 60),
            get(1, w(1)),
            put(3, 5, 70, NO_RESPONSE),
        ];
        // Key 2 read w3: w4 may have been applied first. Key 3: the PUT in
        // flight at the crash may or may not have been applied.
        let lost = run(&before, &[get(1, w(2)), get(2, w(3)), get(3, w(5))]);
        assert!(lost.clean(), "{}", lost.text());
        assert_eq!((lost.acknowledged_writes, lost.keys_written, lost.unanswered_puts), (4, 2, 1));
        assert_eq!((lost.reads, lost.last_reply, lost.window_ns()), (3, Some(60), None));
        assert!(lost.text().starts_with("lost 0 of 4 acknowledged writes"), "{}", lost.text());
        let lost = run(&before, &[get(1, w(2)), get(2, w(4)), get(3, Identity::new(LOAD_WRITER, 3).0)]);
        assert!(lost.clean(), "an unanswered PUT need not have been applied: {}", lost.text());
    }

    #[test]
    fn an_older_value_or_nothing_loses_the_writes_after_it() {
        let before = [put(1, 1, 10, 20), put(1, 2, 30, 40), put(1, 3, 50, 60), put(2, 4, 10, 100), get(3, NOT_FOUND)];
        // Key 1 read w1: w2 and w3 (invoked after w1's reply) are lost.
        // Key 2 read its load value: w4 is lost. Key 3 was never written.
        let load2 = Identity::new(LOAD_WRITER, 2).0;
        let lost = run(&before, &[get(1, w(1)), get(2, load2), get(3, NOT_FOUND)]);
        assert_eq!(lost.lost_writes, 3);
        assert_eq!(
            lost.lost_keys,
            vec![
                LostKey { key: 1, read: w(1), writes: 2, oldest_ack: 40, newest_ack: 60, newest_value: w(3) },
                LostKey { key: 2, read: load2, writes: 1, oldest_ack: 100, newest_ack: 100, newest_value: w(4) },
            ]
        );
        // Measured to the last reply (100): 60 ns back at most, 0 at least.
        assert_eq!((lost.window_ns(), lost.newest_ns()), (Some(60), Some(0)));
        assert_eq!(lost.not_found, 1);
        let text = lost.text();
        assert!(text.starts_with("lost 3 of 4 acknowledged writes, on 2 of 2 keys written"), "{text}");
        assert!(
            text.contains("key 1: read w0#1 after the restart; 2 acknowledged write(s) lost, the newest w0#3"),
            "{text}"
        );
        // Nothing found: everything acknowledged is lost.
        let lost = run(&before, &[get(1, NOT_FOUND), get(2, w(4))]);
        assert_eq!((lost.lost_writes, lost.lost_keys.len(), lost.window_ns()), (3, 1, Some(80)));
        assert!(!lost.clean());
    }

    #[test]
    fn the_weakest_read_of_a_key_judges_it_and_odd_reads_are_named() {
        let before = [put(1, 1, 10, 20), put(1, 2, 30, 40), put(2, 3, 10, 20)];
        // Two reads of key 1: the older value decides.
        let lost = run(&before, &[get(1, w(2)), get(1, w(1)), get(1, w(2))]);
        assert_eq!((lost.lost_writes, lost.lost_keys[0].read), (1, w(1)));
        // A value nobody wrote, a corrupt read, a key never read.
        let lost = run(&before, &[get(1, w(99)), get(2, BAD_READ)]);
        assert_eq!(lost.unexplained, vec![(1, w(99))]);
        assert_eq!((lost.corrupt, lost.lost_writes, lost.unread_keys), (1, 1, 1));
        assert!(!lost.clean());
        assert!(lost.text().contains("UNEXPLAINED: key 1 read w0#99"), "{}", lost.text());
        // AFTER's own writes say nothing about BEFORE; DELETEd keys are skipped.
        let del = Record { key: 2, kind: Kind::Delete, client: 0, value: 0, invoke: 50, response: 60 };
        let after_put = put(1, 7, 5, 6);
        let lost = run(&[before[0], before[1], before[2], del], &[after_put, get(1, w(7)), get(2, NOT_FOUND)]);
        assert!(lost.clean(), "{}", lost.text());
        assert_eq!((lost.deleted_keys, lost.unread_keys), (1, 1));
    }

    #[test]
    fn files_are_read_and_the_json_carries_the_counts() {
        let dir = std::env::temp_dir().join(format!("percore-lost-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let write = |name: &str, recs: &[Record]| {
            let path = dir.join(name);
            let header = loadgen::history::Header::now("t", 1);
            let sink = loadgen::history::HistorySink::create(&path, &header).expect("create");
            let mut wr = sink.writer(0).expect("writer");
            for r in recs {
                wr.record(r.key, r.kind, r.value, r.invoke, r.response);
            }
            wr.finish();
            sink.close().expect("close");
            path
        };
        let a = write("a.hist", &[put(1, 1, 10, 20), put(1, 2, 30, 40)]);
        let b = write("b.hist", &[get(1, w(1))]);
        let lost = lost_files(&a, &b).expect("readable");
        assert_eq!((lost.lost_writes, lost.window_ns()), (1, Some(0)));
        let j = lost.to_json();
        assert_eq!((j["lost_writes"].as_u64(), j["window_ns"].as_u64()), (Some(1), Some(0)));
        assert_eq!(j["lost_keys"][0]["newest_value"], "w0#2");
        let e = lost_files(&a, &dir.join("missing.hist")).expect_err("no such file");
        assert!(e.to_string().contains("missing.hist"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
