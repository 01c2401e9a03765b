//! What checking costs: `cargo bench -p percore-check`.
//!
//! Checks synthetic linearizable histories ([`check::synth`]: 64 clients
//! over zipfian keys, half GETs), generated into memory before the clock
//! starts, so the figures are the checker's alone (no file is read and no
//! operation generated while it runs):
//!
//! - 10 M operations over 1 M keys within a 1 GiB budget (in memory), on
//!   every CPU and on one;
//! - the same through bucket files (a 64 MiB budget);
//! - two sources of 5 M operations each (two clocks: Kahn's sort path).
//!
//! Prints operations per second and the process's peak resident memory so
//! far, which includes the ~0.5 GB of generated input.

use check::synth::{Spec, Synth, VALUES};
use check::{Operation, Options, Source, Verdict};
use std::convert::Infallible;

/// The operations of `spec`, in memory.
fn generate(spec: &Spec) -> Vec<Operation> {
    match Synth::new(spec) {
        Ok(s) => s.collect(),
        Err(e) => panic!("bad spec: {e}"),
    }
}

fn source<'a>(name: &str, ops: &'a [Operation]) -> Source<impl Iterator<Item = Result<Operation, Infallible>> + 'a> {
    Source { name: name.into(), ops: ops.iter().copied().map(Ok) }
}

fn run<I: Iterator<Item = Result<Operation, Infallible>>>(what: &str, sources: Vec<Source<I>>, opts: &Options) {
    match check::check(sources, opts) {
        Ok(o) => {
            assert_eq!(o.verdict(), Verdict::Linearizable, "{}", o.text());
            println!("{what:<40} {:>6.2} M ops/s  ({})", o.ops_per_s() / 1e6, o.figures());
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

fn main() {
    let spec = Spec { ops: 10_000_000, keys: 1_000_000, clients: 64, reads: 0.5, seed: 1, writer_base: 0 };
    let ten = generate(&spec);
    let memory = Options { memory: 1 << 30, values: VALUES, ..Options::default() };
    run("10 M ops, in memory, every CPU", vec![source("synthetic", &ten)], &memory);
    run("10 M ops, in memory, one thread", vec![source("synthetic", &ten)], &Options { threads: 1, ..memory.clone() });
    run(
        "10 M ops, bucket files (64 MiB)",
        vec![source("synthetic", &ten)],
        &Options { memory: 64 << 20, ..memory.clone() },
    );
    drop(ten);
    let a = generate(&Spec { ops: 5_000_000, ..spec.clone() });
    let b = generate(&Spec { ops: 5_000_000, seed: 2, writer_base: 1000, ..spec });
    run("2 x 5 M ops, two clocks", vec![source("a", &a), source("b", &b)], &memory);
}
