//! What checking costs: `cargo bench -p percore-check`.
//!
//! Checks synthetic linearizable histories ([`check::synth`]: 64 clients
//! over zipfian keys, half GETs) straight from the generator, so the
//! figures are the checker's alone (no history file is read):
//!
//! - 10 M operations over 1 M keys in memory, on every CPU and on one;
//! - the same through bucket files (a 64 MiB budget);
//! - two sources of 5 M operations each (two clocks: Kahn's sort path).
//!
//! Prints operations per second and the peak resident memory so far.

use check::synth::{Spec, Synth, VALUES};
use check::{Operation, Options, Source, Verdict};
use std::convert::Infallible;

fn source(name: &str, spec: &Spec) -> Source<impl Iterator<Item = Result<Operation, Infallible>>> {
    let synth = match Synth::new(spec) {
        Ok(s) => s,
        Err(e) => panic!("bad spec: {e}"),
    };
    Source { name: name.into(), ops: synth.map(Ok) }
}

fn run(what: &str, sources: Vec<Source<impl Iterator<Item = Result<Operation, Infallible>>>>, opts: &Options) {
    match check::check(sources, opts) {
        Ok(o) => {
            assert_eq!(o.verdict(), Verdict::Linearizable, "{}", o.text());
            println!("{what:<48} {:>6.2} M ops/s  ({})", o.ops_per_s() / 1e6, o.figures());
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

fn main() {
    let spec = Spec { ops: 10_000_000, keys: 1_000_000, clients: 64, reads: 0.5, seed: 1, writer_base: 0 };
    let all = Options { values: VALUES, ..Options::default() };
    run("10 M ops, in memory, every CPU", vec![source("synthetic", &spec)], &all);
    run("10 M ops, in memory, one thread", vec![source("synthetic", &spec)], &Options { threads: 1, ..all.clone() });
    run(
        "10 M ops, bucket files (64 MiB)",
        vec![source("synthetic", &spec)],
        &Options { memory: 64 << 20, ..all.clone() },
    );
    let half = Spec { ops: 5_000_000, ..spec.clone() };
    let other = Spec { seed: 2, writer_base: 1000, ..half.clone() };
    run("2 x 5 M ops, two clocks", vec![source("a", &half), source("b", &other)], &all);
}
