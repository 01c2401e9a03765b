//! Writes a node refuses, driven through the whole load generator against a
//! fake node that refuses every PUT ([`testkit::FakeNode`]): each refusal
//! lands in its own count (text, JSON), and a refused PUT, which changed
//! nothing, is not in the history, so the checker never takes it for a
//! write that happened.

use loadgen::history::{HistoryReader, Kind};
use loadgen::report::Report;
use loadgen::run::{PhaseSpec, RunConfig, Topology, execute};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use testkit::{FakeNode, TempDir};
use wire::msg::OpError;

const OPS: u64 = 400;

/// A closed-loop YCSB-A run of [`OPS`] operations against `node`, recorded
/// to `history`.
fn run_against(node: &FakeNode, history: &Path) -> Report {
    let topo = Topology::discover(node.addr(), None, Duration::from_secs(10)).expect("the fake node handshakes");
    let cfg = RunConfig {
        phase: PhaseSpec::Run {
            workload: loadgen::workload::Workload::A,
            dist: loadgen::zipf::DistName::Uniform,
            theta: 0.99,
            rate: None,
            ops: Some(OPS),
        },
        records: 100,
        value_size: 32,
        batch: 8,
        pipeline: 2,
        flush: Duration::from_micros(100),
        cores: vec![None],
        writer_base: 0,
        seed: 11,
        duration: None,
        warmup: Duration::ZERO,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        history: Some(history.to_path_buf()),
        self_stall: None,
        node: "test".into(),
        live: false,
    };
    execute(&topo, &cfg, Arc::new(AtomicBool::new(false))).expect("a run")
}

/// The kinds of the history's records.
fn recorded_kinds(path: &Path) -> Vec<Kind> {
    let mut r = HistoryReader::open(path).expect("history readable");
    std::iter::from_fn(|| r.next_record().expect("a whole record")).map(|rec| rec.kind).collect()
}

#[test]
fn not_durable_puts_are_counted_reported_and_kept_out_of_the_history() {
    let dir = TempDir::new("loadgen-not-durable");
    let node = FakeNode::start(OpError::NotDurable);
    let report = run_against(&node, &dir.join("history.bin"));
    let e = &report.error_detail;

    // Every PUT was refused NotDurable, and counted as such only.
    assert!(e.not_durable > 0, "{e:?}");
    assert_eq!(e.not_durable, node.refused(), "each refusal the node sent is counted once");
    assert_eq!((e.wrong_shard, e.too_large, e.out_of_memory, e.other), (0, 0, 0, 0), "{e:?}");
    assert_eq!(report.errors, e.not_durable, "refusals are errors");
    assert_eq!(report.puts, 0, "no PUT was done");
    assert_eq!(report.misses + e.not_durable, report.ops, "every GET missed, every PUT was refused");

    // Reported in words and in the JSON.
    let text = report.text();
    let line = text.lines().find(|l| l.starts_with("errors")).expect("an errors line");
    assert!(line.contains(&format!("out of memory 0, not durable {}, no leader 0, other 0", e.not_durable)), "{line}");
    let json_path = dir.join("report.json");
    report.write_json(&json_path).expect("JSON written");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("JSON readable")).expect("JSON parses");
    assert_eq!(json["error_detail"]["not_durable"], e.not_durable, "{}", json["error_detail"]);
    assert_eq!(json["error_detail"]["out_of_memory"], 0);

    // A refused PUT changed nothing: only the GETs are history.
    let kinds = recorded_kinds(&dir.join("history.bin"));
    assert_eq!(kinds.len() as u64, report.misses, "{} records", kinds.len());
    assert!(kinds.iter().all(|k| *k == Kind::Get), "a refused PUT was recorded: {kinds:?}");
    assert_eq!(report.history.as_ref().map(|h| h.records), Some(report.misses));
}

/// The same run refused OutOfMemory lands in its own count, not in
/// NotDurable's: the two are told apart.
#[test]
fn out_of_memory_is_not_counted_as_not_durable() {
    let dir = TempDir::new("loadgen-oom");
    let node = FakeNode::start(OpError::OutOfMemory);
    let report = run_against(&node, &dir.join("history.bin"));
    let e = &report.error_detail;
    assert!(e.out_of_memory > 0, "{e:?}");
    assert_eq!((e.out_of_memory, e.not_durable), (node.refused(), 0), "{e:?}");
    assert!(recorded_kinds(&dir.join("history.bin")).iter().all(|k| *k == Kind::Get));
}
