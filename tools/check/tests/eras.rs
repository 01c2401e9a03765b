//! Eras through the public API ([`check::check_eras`]): a run, then the run
//! after its server was killed and restarted. Every operation of a later
//! era began after every operation of an earlier one ended, so an
//! acknowledged write of era 0 that era 1 does not see was lost; a write
//! never answered before the crash may have taken effect or not. Each
//! case is also checked with the same sources in one era, where it is
//! fine: the era order, not the timestamps, makes the violation.

use check::synth::{VALUES, initial, value};
use check::{Kind, NOT_FOUND, Operation, Options, Outcome, Source, Verdict};
use std::convert::Infallible;
use std::time::Duration;

/// `w{writer}#{seq}`.
fn v(writer: u32, seq: u64) -> u64 {
    value(writer, seq)
}

/// A response that never came.
const NO_RESPONSE: u64 = u64::MAX;

/// One operation: (client, kind, key, value, invoke, response).
type H = (u16, Kind, u64, u64, u64, u64);

const PUT: Kind = Kind::Put;
const GET: Kind = Kind::Get;
const DEL: Kind = Kind::Delete;

type Ops<'a> = Box<dyn Iterator<Item = Result<Operation, Infallible>> + 'a>;

/// One source of `ops`.
fn source<'a>(name: &str, ops: &'a [H]) -> Source<Ops<'a>> {
    let ops = ops.iter().map(|&(client, kind, key, value, invoke, response)| {
        Ok(Operation { key, kind, client, value, invoke, response: (response != NO_RESPONSE).then_some(response) })
    });
    Source { name: name.into(), ops: Box::new(ops) }
}

/// Checks `eras` (per era, its sources: name and operations).
fn check(eras: &[&[(&str, &[H])]]) -> Outcome {
    let opts = Options { timeout_per_key: Duration::from_secs(10), values: VALUES, ..Options::default() };
    let eras = eras.iter().map(|era| era.iter().map(|(n, ops)| source(n, ops)).collect()).collect();
    match check::check_eras(eras, &opts) {
        Ok(o) => o,
        Err(e) => panic!("{e}"),
    }
}

/// Run `a`, then the restarted run `b`: the verdict, with the report; and
/// the verdict of the same two sources as one era (no order between them).
fn then(a: &[H], b: &[H]) -> (Verdict, String, Verdict) {
    let outcome = check(&[&[("A.hist", a)], &[("B.hist", b)]]);
    let flat = check(&[&[("A.hist", a), ("B.hist", b)]]);
    (outcome.verdict(), outcome.text(), flat.verdict())
}

/// Asserts a violation of key 1 proven by `proof`; returns the report.
fn assert_violation(a: &[H], b: &[H], proof: &str) -> String {
    let outcome = check(&[&[("A.hist", a)], &[("B.hist", b)]]);
    let text = outcome.text();
    assert_eq!(outcome.verdict(), Verdict::Violation, "{text}");
    assert_eq!(outcome.violations[0].key, 1, "{text}");
    assert_eq!(outcome.violations[0].proof.tag(), proof, "{text}");
    assert_eq!(outcome.to_json()["eras"], 2);
    assert!(text.contains("2 file(s) of 2 eras"), "{text}");
    let flat = check(&[&[("A.hist", a), ("B.hist", b)]]);
    assert_eq!(flat.verdict(), Verdict::Linearizable, "one era: no order between the files\n{}", flat.text());
    text
}

/// Client 0 writes `w0#1` over [0, 10] (key 1, all three).
fn put1() -> H {
    (0, PUT, 1, v(0, 1), 0, 10)
}

/// Client 1 writes `w1#1` over [20, 30], after `put1`.
fn put2() -> H {
    (1, PUT, 1, v(1, 1), 20, 30)
}

/// `put2` without a reply.
fn pending2() -> H {
    (1, PUT, 1, v(1, 1), 20, NO_RESPONSE)
}

#[test]
fn an_acknowledged_write_lost_in_the_restart_is_a_violation() {
    let a = [put1(), put2()];
    let out = assert_violation(&a, &[(0, GET, 1, v(0, 1), 5, 6)], "lost-write");
    assert!(
        out.contains(
            "[3] GET returned w0#1 in era 1, but [2] PUT w1#1 had overwritten it ([1] PUT w0#1 completed at \
             0.000000010s before [2] began at 0.000000020s) and was acknowledged at 0.000000030s in era 0, \
             before era 1 began: an acknowledged write was lost across the restart."
        ),
        "{out}"
    );
    assert!(out.contains("(A.hist #1, era 0)") && out.contains("(B.hist #0, era 1)"), "witness names eras: {out}");
    // The newest acknowledged value is fine, and so is either value while
    // the two PUTs overlapped.
    assert_eq!(then(&a, &[(0, GET, 1, v(1, 1), 5, 6)]).0, Verdict::Linearizable);
    let overlapping = [put1(), (1, PUT, 1, v(1, 1), 5, 30)];
    assert_eq!(then(&overlapping, &[(0, GET, 1, v(0, 1), 5, 6)]).0, Verdict::Linearizable);
    assert_eq!(then(&overlapping, &[(0, GET, 1, v(1, 1), 5, 6)]).0, Verdict::Linearizable);
}

#[test]
fn not_found_after_an_acknowledged_write_is_a_violation() {
    let out = assert_violation(&[put1()], &[(0, GET, 1, NOT_FOUND, 5, 6)], "lost-write");
    assert!(out.contains("[2] GET returned the initial value NOT_FOUND in era 1, but [1] PUT w0#1"), "{out}");
    // The load value read after a restart, once a PUT was acknowledged: lost too.
    assert_violation(&[put1()], &[(0, GET, 1, initial(1), 5, 6)], "lost-write");
    // Before any write, NOT_FOUND is the truth.
    assert_eq!(then(&[(0, GET, 1, NOT_FOUND, 0, 1)], &[(0, GET, 1, NOT_FOUND, 5, 6)]).0, Verdict::Linearizable);
}

#[test]
fn an_unanswered_write_took_effect_before_the_restart_or_never() {
    let a = [put1(), pending2()];
    // Seen after the restart, or not: both fine.
    assert_eq!(then(&a, &[(0, GET, 1, v(1, 1), 5, 6)]).0, Verdict::Linearizable);
    assert_eq!(then(&a, &[(0, GET, 1, v(0, 1), 5, 6)]).0, Verdict::Linearizable);
    // Not seen, then seen (or the other way): it would have taken effect
    // after the restart.
    let (verdict, out, flat) = then(&a, &[(0, GET, 1, v(0, 1), 5, 6), (0, GET, 1, v(1, 1), 7, 8)]);
    assert_eq!((verdict, flat), (Verdict::Violation, Verdict::Linearizable), "{out}");
    let (verdict, out, _) = then(&a, &[(0, GET, 1, v(1, 1), 5, 6), (0, GET, 1, v(0, 1), 7, 8)]);
    assert_eq!(verdict, Verdict::Violation, "{out}");
    // Read in era 2, so it took effect in era 0: era 1 reading the older
    // value lost it.
    let b: &[H] = &[(0, GET, 1, v(0, 1), 5, 6)];
    let c: &[H] = &[(0, GET, 1, v(1, 1), 5, 6)];
    let outcome = check(&[&[("A.hist", &a)], &[("B.hist", b)], &[("C.hist", c)]]);
    assert_eq!(outcome.verdict(), Verdict::Violation, "{}", outcome.text());
    assert_eq!(outcome.violations[0].proof.tag(), "lost-write");
    assert!(outcome.text().contains("never answered, but [4] GET read w1#1"), "{}", outcome.text());
    let fine = check(&[&[("A.hist", &a)], &[("B.hist", c)], &[("C.hist", c)]]);
    assert_eq!(fine.verdict(), Verdict::Linearizable, "{}", fine.text());
}

#[test]
fn eras_are_ordered_one_after_the_other() {
    // Era 1 overwrites, era 2 reads era 0's value.
    let a: &[H] = &[put1()];
    let b: &[H] = &[(0, PUT, 1, v(1, 1), 100, 110)];
    let c: &[H] = &[(0, GET, 1, v(0, 1), 5, 6)];
    let outcome = check(&[&[("A.hist", a)], &[("B.hist", b)], &[("C.hist", c)]]);
    assert_eq!(outcome.verdict(), Verdict::Violation, "{}", outcome.text());
    // A read of era 0 of a value written only in era 1: from the future.
    let outcome = check(&[&[("A.hist", &[(0, GET, 1, v(1, 1), 0, 10)])], &[("B.hist", b)]]);
    assert_eq!(outcome.verdict(), Verdict::Violation, "{}", outcome.text());
    assert_eq!(outcome.violations[0].proof.tag(), "read-from-future");
    assert!(outcome.text().contains("began only in era 1, after the restart"), "{}", outcome.text());
    // Within an era, sources keep their own clocks: two nodes of era 1
    // read in either order.
    let b1: &[H] = &[(0, GET, 1, v(0, 1), 5, 6)];
    let b2: &[H] = &[(0, PUT, 1, v(2, 1), 0, 1), (0, GET, 1, v(2, 1), 2, 3)];
    let outcome = check(&[&[("A.hist", a)], &[("B1.hist", b1), ("B2.hist", b2)]]);
    assert_eq!(outcome.verdict(), Verdict::Linearizable, "{}", outcome.text());
    assert_eq!((outcome.eras, outcome.files.len()), (2, 3));
}

#[test]
fn with_deletes_the_search_keeps_the_eras_in_order() {
    let del = (0, DEL, 1, 0, 20, 30);
    // Deleted and acknowledged: NOT_FOUND after the restart, not the value.
    assert_eq!(then(&[put1(), del], &[(0, GET, 1, NOT_FOUND, 5, 6)]).0, Verdict::Linearizable);
    let (verdict, out, flat) = then(&[put1(), del], &[(0, GET, 1, v(0, 1), 5, 6)]);
    assert_eq!((verdict, flat), (Verdict::Violation, Verdict::Linearizable), "{out}");
    // Overwritten after the DELETE: NOT_FOUND is a lost write.
    let a = [put1(), del, (0, PUT, 1, v(0, 2), 40, 50)];
    let (verdict, out, flat) = then(&a, &[(0, GET, 1, NOT_FOUND, 5, 6)]);
    assert_eq!((verdict, flat), (Verdict::Violation, Verdict::Linearizable), "{out}");
    assert!(out.contains("era 1"), "{out}");
    // A DELETE never answered: either.
    let a = [put1(), (0, DEL, 1, 0, 20, NO_RESPONSE)];
    assert_eq!(then(&a, &[(0, GET, 1, NOT_FOUND, 5, 6)]).0, Verdict::Linearizable);
    assert_eq!(then(&a, &[(0, GET, 1, v(0, 1), 5, 6)]).0, Verdict::Linearizable);
    // ... but not NOT_FOUND and then the value: the PUT was acknowledged
    // before the restart, so NOT_FOUND is not the initial absence, and the
    // DELETE cannot take effect after the restart. (In one era, NOT_FOUND
    // could be read before the PUT.)
    let (verdict, out, flat) = then(&a, &[(0, GET, 1, NOT_FOUND, 5, 6), (0, GET, 1, v(0, 1), 7, 8)]);
    assert_eq!((verdict, flat), (Verdict::Violation, Verdict::Linearizable), "{out}");
    // An unanswered PUT and DELETE before the crash: era 1 may see the
    // PUT's value, but then NOT_FOUND only by a DELETE of its own.
    let a = [put1(), pending2(), (2, DEL, 1, 0, 20, NO_RESPONSE)];
    for seen in [v(0, 1), v(1, 1), NOT_FOUND] {
        assert_eq!(then(&a, &[(0, GET, 1, seen, 5, 6)]).0, Verdict::Linearizable, "{seen:#x}");
    }
    let b = [(0, GET, 1, v(1, 1), 5, 6), (0, GET, 1, NOT_FOUND, 7, 8)];
    let (verdict, out, flat) = then(&a, &b);
    assert_eq!((verdict, flat), (Verdict::Violation, Verdict::Linearizable), "{out}");
    let b = [(0, GET, 1, v(1, 1), 5, 6), (0, DEL, 1, 0, 6, 7), (0, GET, 1, NOT_FOUND, 7, 8)];
    assert_eq!(then(&a, &b).0, Verdict::Linearizable);
}

#[test]
fn eras_must_hold_sources_and_be_few() {
    let opts = Options { values: VALUES, ..Options::default() };
    let a: &[H] = &[put1()];
    let e = check::check_eras(vec![vec![source("A", a)], vec![]], &opts).map(|o| o.line());
    assert!(matches!(&e, Err(check::CheckError::Usage(why)) if why == "era 1 has no sources"), "{e:?}");
    let many: Vec<Vec<Source<Ops>>> = (0..=check::op::MAX_ERAS).map(|_| vec![source("A", a)]).collect();
    let e = check::check_eras(many, &opts).map(|o| o.line());
    assert!(matches!(&e, Err(check::CheckError::Usage(why)) if why.contains("at most 256")), "{e:?}");
    let none: Vec<Vec<Source<Ops>>> = Vec::new();
    assert!(matches!(check::check_eras(none, &opts), Err(check::CheckError::Usage(_))));
}
