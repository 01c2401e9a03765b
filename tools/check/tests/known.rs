//! The checker through its public API: operations from iterators (one
//! source per clock), values with and without initial values, errors of
//! sources and of operations, and bucket files for a history larger than
//! memory. The catalogue of hand-written histories with known verdicts is
//! `tools/tests/check.rs`, run through `percore check` on history files.

use check::synth::{VALUES, initial, value};
use check::{BAD_READ, Kind, NOT_FOUND, Operation, Options, Outcome, Source};
use std::convert::Infallible;
use std::time::Duration;

/// `w{writer}#{seq}`.
fn v(writer: u32, seq: u64) -> u64 {
    value(writer, seq)
}

fn load(key: u64) -> u64 {
    initial(key)
}

/// A response that never came.
const NO_RESPONSE: u64 = u64::MAX;

/// One operation: (client, kind, key, value, invoke, response).
type H = (u16, Kind, u64, u64, u64, u64);

const PUT: Kind = Kind::Put;
const GET: Kind = Kind::Get;
const DEL: Kind = Kind::Delete;

/// One source of `ops`.
fn source<'a>(name: &str, ops: &'a [H]) -> Source<impl Iterator<Item = Result<Operation, Infallible>> + 'a> {
    let ops = ops.iter().map(|&(client, kind, key, value, invoke, response)| {
        Ok(Operation { key, kind, client, value, invoke, response: (response != NO_RESPONSE).then_some(response) })
    });
    Source { name: name.into(), ops }
}

/// Checks `sources` with this search time limit: exit code, report, JSON.
fn check_all(sources: &[(&str, &[H])], timeout_ms: u64) -> (u8, String, serde_json::Value) {
    let opts = Options { timeout_per_key: Duration::from_millis(timeout_ms), values: VALUES, ..Options::default() };
    let outcome: Outcome = match check::check(sources.iter().map(|(n, ops)| source(n, ops)).collect(), &opts) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    };
    (outcome.exit_code(), outcome.text(), outcome.to_json())
}

#[test]
fn a_stale_read_is_proven_with_its_witness() {
    let h: &[H] = &[(0, PUT, 1, v(0, 1), 0, 10), (0, PUT, 1, v(0, 2), 20, 30), (1, GET, 1, v(0, 1), 40, 50)];
    let (code, out, json) = check_all(&[("h", h)], 1000);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("VIOLATION: key 1 "), "{out}");
    assert!(out.contains("[3] GET returned w0#1, but [2] PUT w0#2 overwrote it before that GET began"), "{out}");
    assert_eq!(json["violations"][0]["proof"], "stale-read");
    // Overlapping the second PUT, either value may be read.
    let ok: &[H] = &[h[0], h[1], (1, GET, 1, v(0, 1), 25, 50), (2, GET, 1, load(1), 0, 1)];
    assert_eq!(check_all(&[("h", ok)], 1000).0, 0);
}

/// Sources are clocks: the same operations are a violation in one source
/// and fine in two, and witnesses name the sources.
#[test]
fn times_are_compared_only_within_a_source() {
    let a: &[H] = &[(0, PUT, 1, v(0, 1), 0, 10), (0, PUT, 1, v(0, 2), 20, 30)];
    let b: &[H] = &[(0, GET, 1, v(0, 2), 500, 510), (0, GET, 1, v(0, 1), 520, 530)];
    let (code, out, _) = check_all(&[("node-a", a), ("node-b", b)], 1000);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("node-a #1") && out.contains("node-b #0"), "witness names sources: {out}");
    let b1: &[H] = &[(1, GET, 1, v(0, 1), 500, 510)];
    assert_eq!(check_all(&[("node-a", a), ("node-b", b1)], 1000).0, 0);
    let same: Vec<H> = a.iter().chain(b1).copied().collect();
    assert_eq!(check_all(&[("same", &same)], 1000).0, 1);
    // Unanswered GETs are skipped; an unanswered PUT may or may not count.
    let pending: &[H] =
        &[(0, PUT, 2, v(0, 1), 0, NO_RESPONSE), (1, GET, 2, v(0, 1), 5, 6), (1, GET, 2, NOT_FOUND, 7, NO_RESPONSE)];
    let (code, out, json) = check_all(&[("p", pending)], 1000);
    assert_eq!(code, 0, "{out}");
    assert_eq!(json["skipped_gets"], 1);
    let dels: &[H] = &[(0, PUT, 3, v(0, 1), 0, 10), (0, DEL, 3, 0, 20, 30), (1, GET, 3, v(0, 1), 40, 50)];
    let (code, _, json) = check_all(&[("d", dels)], 1000);
    assert_eq!((code, json["violations"][0]["proof"].as_str()), (1, Some("search")));
    let bad: &[H] = &[(0, GET, 4, BAD_READ, 0, 1)];
    assert_eq!(check_all(&[("b", bad)], 1000).0, 1);
}

#[test]
fn values_written_twice_and_bad_operations_are_errors_not_verdicts() {
    let opts = Options { values: VALUES, ..Options::default() };
    let twice: &[H] = &[(0, PUT, 1, v(0, 1), 0, 10), (1, PUT, 1, v(0, 1), 20, 30)];
    let e = check::check(vec![source("twice", twice)], &opts).map(|o| o.line());
    assert!(matches!(&e, Err(check::CheckError::Invalid(why)) if why.contains("written twice")), "{e:?}");
    let backwards: &[H] = &[(0, GET, 1, NOT_FOUND, 0, 10), (0, PUT, 1, v(0, 1), 10, 5)];
    let e = check::check(vec![source("backwards", backwards)], &opts).map(|o| o.line());
    let text = e.as_ref().map_err(ToString::to_string).err().unwrap_or_default();
    assert_eq!(text, "backwards: record 1: its response precedes its invoke");
    // A source that fails mid-way names itself and the position.
    let failing = Source {
        name: "flaky".into(),
        ops: [Ok(Operation { key: 1, kind: GET, client: 0, value: NOT_FOUND, invoke: 0, response: Some(1) })]
            .into_iter()
            .chain([Err(std::io::Error::other("disk on fire"))]),
    };
    let e = check::check(vec![failing], &opts).map(|o| o.line());
    let text = e.as_ref().map_err(ToString::to_string).err().unwrap_or_default();
    assert_eq!(text, "flaky: record 1: disk on fire");
    let none: Vec<Source<std::iter::Empty<Result<Operation, Infallible>>>> = Vec::new();
    assert!(matches!(check::check(none, &opts), Err(check::CheckError::Usage(_))));
}

#[test]
fn without_initial_values_a_read_of_an_unwritten_value_is_a_violation() {
    // The default Values: keys start absent, so `load#7` was never written.
    let h: &[H] = &[(0, GET, 7, load(7), 0, 10)];
    let opts = Options::default();
    let outcome = check::check(vec![source("h", h)], &opts).expect("valid");
    assert_eq!(outcome.exit_code(), 1, "{}", outcome.text());
    assert!(outcome.text().contains(&format!("GET returned {:#x}", load(7))), "{}", outcome.text());
    let absent: &[H] = &[(0, GET, 7, NOT_FOUND, 0, 10), (0, PUT, 7, v(0, 1), 20, 30), (1, GET, 7, v(0, 1), 40, 50)];
    assert_eq!(check::check(vec![source("h", absent)], &opts).expect("valid").exit_code(), 0);
}

#[test]
fn a_history_larger_than_memory_goes_through_bucket_files_and_they_are_removed() {
    let temp = std::env::temp_dir().join(format!("percore-check-known-{}", std::process::id()));
    std::fs::create_dir_all(&temp).expect("temp dir");
    let spec = check::synth::Spec { ops: 300_000, keys: 5_000, clients: 16, reads: 0.5, seed: 3, writer_base: 0 };
    // The size hint is hidden, so the spill happens mid-stream.
    let ops = check::synth::Synth::new(&spec).expect("spec").map(Ok::<_, Infallible>).filter(|_| true);
    let opts = Options { memory: 1 << 20, temp_dir: temp.clone(), values: VALUES, ..Options::default() };
    let outcome = check::check(vec![Source { name: "synth".into(), ops }], &opts).expect("valid");
    let left = std::fs::read_dir(&temp).map(|d| d.count()).unwrap_or(0);
    let _ = std::fs::remove_dir_all(&temp);
    assert_eq!(outcome.exit_code(), 0, "{}", outcome.text());
    assert_eq!(outcome.ops, 300_000);
    assert!(outcome.spilled && outcome.buckets > 1, "{}", outcome.figures());
    assert_eq!(left, 0, "bucket files left behind");
}

#[test]
fn sources_without_a_size_hint_are_still_checked_in_parallel() {
    let spec = check::synth::Spec { ops: 50_000, keys: 1_000, clients: 8, reads: 0.5, seed: 4, writer_base: 0 };
    let ops = check::synth::Synth::new(&spec).expect("spec").map(Ok::<_, Infallible>).filter(|_| true);
    let opts = Options { threads: 2, values: VALUES, ..Options::default() };
    let outcome = check::check(vec![Source { name: "unhinted".into(), ops }], &opts).expect("valid");
    assert_eq!(outcome.exit_code(), 0, "{}", outcome.text());
    assert!(!outcome.spilled);
    assert_eq!((outcome.buckets, outcome.threads), (8, 2), "{}", outcome.figures());
}
