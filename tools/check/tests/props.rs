//! Property tests of the checker: histories generated from a sequential
//! register model with random delays are always accepted (in one file or
//! spread over several files with unrelated clocks, in one era or over
//! several eras with writes left unanswered by a crash); the same histories
//! with one read changed to a provably overwritten value are always
//! rejected, naming that key; and on arbitrary small histories the
//! near-linear check agrees with an exhaustive search.

use check::op::{NEVER, Op};
use check::search::{Found, search};
use check::synth::{VALUES, initial, value};
use check::{Kind, NOT_FOUND, Options, Verdict, check_ops};
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// One generated operation before it is timed: kind (0..100: GET below
/// the read share, DELETE in the top `deletes` percent), key, gaps.
type Step = (u8, u8, u8, u8, u8);

/// A client's script and the file (clock) it is recorded in.
#[derive(Clone, Debug)]
struct Script {
    steps: Vec<Step>,
    file: u8,
}

fn load(key: u64) -> u64 {
    initial(key)
}

fn options() -> Options {
    Options { timeout_per_key: Duration::from_secs(10), values: VALUES, ..Options::default() }
}

/// How long an era lasts in the generator's true time: longer than any
/// client's script, so every operation of an era ends before the next era.
const ERA_NS: i64 = 1_000_000;

/// Runs the scripts against a sequential register per key: each op takes
/// effect at a random instant inside its interval; ops are applied in
/// effect order, so every GET returns the value a linearization gives it.
/// File `f` is of era `eras[f]` (its clients run after every client of
/// an earlier era); with `crash`, some writes get no reply, and of those
/// some never take effect (lost in the crash).
fn generate(
    scripts: &[Script],
    keys: u8,
    loaded: &[bool],
    offsets: &[u32],
    deletes: u8,
    eras: &[u8],
    crash: bool,
) -> Vec<Op> {
    struct Timed {
        client: usize,
        kind: Kind,
        key: u64,
        invoke: i64,
        effect: i64,
        response: i64,
        /// Whether it took effect (a write without a reply may not have).
        applied: bool,
        era: u8,
    }
    let mut timed = Vec::new();
    for (c, s) in scripts.iter().enumerate() {
        let era = eras[s.file as usize];
        let mut t = era as i64 * ERA_NS;
        for &(k, key, gap, d1, d2) in &s.steps {
            let k = k % 100;
            let kind = if k >= 100 - deletes {
                Kind::Delete
            } else if k < 50 {
                Kind::Get
            } else {
                Kind::Put
            };
            let invoke = t + gap as i64 % 6;
            let effect = invoke + d1 as i64 % 9;
            let response = effect + d2 as i64 % 9;
            let unanswered = crash && kind != Kind::Get && (d2 / 9) % 3 == 0;
            let applied = !unanswered || (d1 / 9) % 2 == 0;
            timed.push(Timed {
                client: c,
                kind,
                key: (key % keys) as u64,
                invoke,
                effect,
                response: if unanswered { NEVER } else { response },
                applied,
                era,
            });
            t = response;
        }
    }
    timed.sort_by_key(|o| (o.effect, o.client));
    let mut current: Vec<u64> =
        (0..keys as u64).map(|k| if loaded[k as usize] { load(k) } else { NOT_FOUND }).collect();
    let mut seq = vec![0u64; scripts.len()];
    let mut position = vec![0u64; 256];
    timed
        .iter()
        .map(|o| {
            let value = match o.kind {
                Kind::Get => current[o.key as usize],
                Kind::Put => {
                    seq[o.client] += 1;
                    let v = value(o.client as u32, seq[o.client]);
                    if o.applied {
                        current[o.key as usize] = v;
                    }
                    v
                }
                Kind::Delete => {
                    if o.applied {
                        current[o.key as usize] = NOT_FOUND;
                    }
                    0
                }
            };
            let file = scripts[o.client].file as usize;
            // Each file's own clock: its era's start is not visible in it.
            let off = offsets[file] as i64 - o.era as i64 * ERA_NS;
            position[file] += 1;
            let response = if o.response == NEVER { NEVER } else { o.response + off };
            Op::new(o.key, o.kind, o.client as u16, value, o.invoke + off, response, file as u16, position[file])
                .with_era(o.era)
        })
        .collect()
}

/// Every file in era 0.
const ONE_ERA: [u8; 3] = [0; 3];

fn scripts(max_files: u8) -> impl Strategy<Value = Vec<Script>> {
    prop::collection::vec(
        (prop::collection::vec(any::<Step>(), 1..12), 0..max_files).prop_map(|(steps, file)| Script { steps, file }),
        1..5,
    )
}

fn verdict(ops: &[Op]) -> Verdict {
    match check_ops(ops.to_vec(), &options()) {
        Ok(o) => o.verdict(),
        Err(e) => panic!("invalid generated history: {e}"),
    }
}

/// Reads that can be changed to a value provably overwritten before they
/// began: `(read index, value)`. A value is overwritten if its write (or
/// the start, for the initial value) completed before another PUT of the
/// key began, which completed before the read began, all in one file.
fn stale_candidates(ops: &[Op], loaded: &[bool]) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for (i, r) in ops.iter().enumerate().filter(|(_, o)| o.kind() == Kind::Get) {
        let key = r.key();
        let puts: Vec<&Op> = ops.iter().filter(|o| o.key() == key && o.kind() == Kind::Put).collect();
        // The overwriting PUT must have taken effect: acknowledged (an
        // earlier era's PUT precedes the read even unanswered, and may
        // have been lost).
        for w2 in puts.iter().filter(|w2| w2.precedes(r) && w2.response != NEVER) {
            let initial = if loaded[key as usize] { load(key) } else { NOT_FOUND };
            if initial != r.value && w2.value != initial {
                out.push((i, initial));
            }
            for w1 in puts.iter().filter(|w1| w1.precedes(w2) && w1.value != r.value) {
                out.push((i, w1.value));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, max_global_rejects: 8192, ..ProptestConfig::default() })]

    #[test]
    fn linearizable_histories_are_accepted(
        scripts in scripts(1),
        keys in 1u8..4,
        loaded in prop::collection::vec(any::<bool>(), 3),
    ) {
        let ops = generate(&scripts, keys, &loaded, &[0], 0, &ONE_ERA, false);
        prop_assert_eq!(verdict(&ops), Verdict::Linearizable, "{:?}", ops);
    }

    #[test]
    fn linearizable_histories_over_several_clocks_are_accepted(
        scripts in scripts(3),
        keys in 1u8..4,
        loaded in prop::collection::vec(any::<bool>(), 3),
        offsets in prop::collection::vec(0u32..1000, 3),
    ) {
        let ops = generate(&scripts, keys, &loaded, &offsets, 0, &ONE_ERA, false);
        prop_assert_eq!(verdict(&ops), Verdict::Linearizable, "{:?}", ops);
    }

    #[test]
    fn linearizable_histories_with_deletes_are_accepted(
        scripts in scripts(2),
        keys in 1u8..3,
        loaded in prop::collection::vec(any::<bool>(), 3),
        offsets in prop::collection::vec(0u32..1000, 3),
    ) {
        let ops = generate(&scripts, keys, &loaded, &offsets, 15, &ONE_ERA, false);
        prop_assert_eq!(verdict(&ops), Verdict::Linearizable, "{:?}", ops);
    }

    #[test]
    fn one_read_of_an_overwritten_value_is_rejected(
        scripts in scripts(2),
        keys in 1u8..3,
        loaded in prop::collection::vec(any::<bool>(), 3),
        offsets in prop::collection::vec(0u32..1000, 3),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut ops = generate(&scripts, keys, &loaded, &offsets, 0, &ONE_ERA, false);
        let candidates = stale_candidates(&ops, &loaded);
        prop_assume!(!candidates.is_empty());
        let (i, stale) = candidates[pick.index(candidates.len())];
        let key = ops[i].key();
        ops[i].value = stale;
        let outcome = check_ops(ops.clone(), &options()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(outcome.verdict(), Verdict::Violation, "{:?}", ops);
        prop_assert!(outcome.violations.iter().any(|w| w.key == key), "{:?}", outcome.violations);
    }

    #[test]
    fn linearizable_histories_over_eras_with_crashes_are_accepted(
        scripts in scripts(3),
        keys in 1u8..4,
        loaded in prop::collection::vec(any::<bool>(), 3),
        offsets in prop::collection::vec(0u32..1000, 3),
        eras in prop::collection::vec(0u8..3, 3),
        deletes in prop::sample::select(vec![0u8, 15]),
    ) {
        let ops = generate(&scripts, keys, &loaded, &offsets, deletes, &eras, true);
        prop_assert_eq!(verdict(&ops), Verdict::Linearizable, "{:?}", ops);
    }

    #[test]
    fn one_read_of_a_value_overwritten_before_a_restart_is_rejected(
        scripts in scripts(3),
        keys in 1u8..3,
        loaded in prop::collection::vec(any::<bool>(), 3),
        offsets in prop::collection::vec(0u32..1000, 3),
        eras in prop::collection::vec(0u8..3, 3),
        pick in any::<prop::sample::Index>(),
    ) {
        let mut ops = generate(&scripts, keys, &loaded, &offsets, 0, &eras, true);
        // Only reads that need the era order to be stale: in one era, the
        // same change would be fine.
        let candidates: Vec<(usize, u64)> = stale_candidates(&ops, &loaded)
            .into_iter()
            .filter(|&(i, stale)| {
                let mut flat: Vec<Op> = ops.iter().map(|o| o.with_era(0)).collect();
                flat[i].value = stale;
                verdict(&flat) == Verdict::Linearizable
            })
            .collect();
        prop_assume!(!candidates.is_empty());
        let (i, stale) = candidates[pick.index(candidates.len())];
        let key = ops[i].key();
        ops[i].value = stale;
        let outcome = check_ops(ops.clone(), &options()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(outcome.verdict(), Verdict::Violation, "{:?}", ops);
        prop_assert!(outcome.violations.iter().any(|w| w.key == key), "{:?}", outcome.violations);
    }

    #[test]
    fn the_zone_check_agrees_with_exhaustive_search(
        scripts in scripts(3),
        keys in 1u8..3,
        loaded in prop::collection::vec(any::<bool>(), 3),
        offsets in prop::collection::vec(0u32..1000, 3),
        deletes in prop::sample::select(vec![0u8, 0, 10]),
        eras in prop::collection::vec(0u8..3, 3),
        crash in any::<bool>(),
        changes in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..3),
    ) {
        let mut ops = generate(&scripts, keys, &loaded, &offsets, deletes, &eras, crash);
        // Change a few reads to another value of their key (or an initial one).
        for (r, v) in changes {
            let reads: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].kind() == Kind::Get).collect();
            if reads.is_empty() {
                break;
            }
            let i = reads[r.index(reads.len())];
            let key = ops[i].key();
            let mut values: Vec<u64> = ops.iter().filter(|o| o.key() == key && o.kind() == Kind::Put).map(|o| o.value).collect();
            values.extend([NOT_FOUND, load(key)]);
            ops[i].value = values[v.index(values.len())];
        }
        let ours = verdict(&ops);
        // The oracle: search each key from its initial value (the load
        // value if a GET saw it, else absent).
        let mut theirs = Verdict::Linearizable;
        for key in 0..keys as u64 {
            let of_key: Vec<Op> = ops.iter().filter(|o| o.key() == key).copied().collect();
            let initial = if of_key.iter().any(|o| o.value == load(key)) { load(key) } else { NOT_FOUND };
            match search(&of_key, initial, Instant::now() + Duration::from_secs(20)) {
                Found::Linearizable => {}
                Found::Violation => theirs = Verdict::Violation,
                Found::GaveUp => prop_assume!(false),
            }
        }
        prop_assert_eq!(ours, theirs, "{:?}", ops);
    }
}
