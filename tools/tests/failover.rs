//! The load generator follows a replicated cluster through a failover.
//!
//! Three real `percore server` nodes on loopback (one core each,
//! `replicas = 3`, every node with its own data directory and `fsync
//! always`); `percore loadgen run` drives YCSB-A through the RESP door or
//! with percore frames, pointed at a follower, with a history. The leader is killed with
//! SIGKILL under the load and restarted over its log a little later. The
//! run must go on: it redials the new leader, reports the reconnect and
//! the operations whose outcome is unknown (never as successes), shows
//! the gap in its per-shard timeline and serves again before its end; and
//! `percore check` finds the whole history, failover included,
//! linearizable.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use testkit::{Server, TempDir, load_core, text};

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

fn start(file: &Path, node: usize, dir: &TempDir) -> Server {
    testkit::start_replicated(PERCORE, &["server"], file, node, dir.path())
}

/// The shard's leader: the replica that a node's handshake names as the
/// leader it follows now (0 during an election: waits it out, at most 30 s).
fn leader(addrs: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for a in addrs {
            let expect = wire::client::Expect { shard: Some(0), total_shards: Some(1), password: None };
            if let Ok(conn) = wire::client::Connection::connect(a, expect, Duration::from_millis(500))
                && let Some(shard) = conn.hello().map.first()
                && let Some(r) = shard.replicas.iter().find(|r| r.id == shard.leader && shard.leader != 0)
            {
                return format!("{}:{}", r.addr, r.port);
            }
        }
        assert!(Instant::now() < deadline, "no node named a leader within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn percore(args: &[&str]) -> Output {
    testkit::run_to_end(PERCORE, args)
}

#[test]
fn a_resp_run_follows_the_leader_through_its_kill_and_the_history_stays_linearizable() {
    follows_the_leader_through_its_kill("redis");
}

/// The same with percore frames: a follower answers NotLeader naming the
/// leader, the handshake's map names the replicas, and the run follows.
#[test]
fn a_percore_run_follows_the_leader_through_its_kill_and_the_history_stays_linearizable() {
    follows_the_leader_through_its_kill("percore");
}

fn follows_the_leader_through_its_kill(scheme: &str) {
    let dir = TempDir::new("failover");
    let (file, addrs) = testkit::replicated_cluster_file(dir.path());
    let mut nodes: Vec<Option<Server>> = (0..3).map(|i| Some(start(&file, i, &dir))).collect();
    let core = load_core();

    // Load once the shard has a leader (an election may still run).
    let first = leader(&addrs);
    let target = format!("{scheme}://{first}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = percore(&["loadgen", "load", "--target", &target, "--records", "2000", "--cores", &core, "-q"]);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the load never succeeded: {}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }

    // The run goes through a follower: it asks it for the map and drives the leader.
    let follower = addrs.iter().find(|a| **a != leader(&addrs)).expect("a follower").clone();
    let (history, json) = (dir.join("run.hist"), dir.join("run.json"));
    let mut run = Command::new(PERCORE)
        .args(["loadgen", "run", "--target", &format!("{scheme}://{follower}"), "--workload", "a"])
        .args(["--records", "2000", "--duration", "6s", "--warmup", "0s", "--interval", "100ms"])
        .args(["--timeout", "1s", "--batch", "16", "--pipeline", "2", "--cores", &core, "-q"])
        .arg("--history")
        .arg(&history)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the load generator");

    // Kill the leader under the load, restart it over its log later.
    std::thread::sleep(Duration::from_millis(1500));
    let killed = leader(&addrs);
    let k = addrs.iter().position(|a| *a == killed).expect("the leader is one of the nodes");
    nodes[k].as_ref().expect("running").signal(libc::SIGKILL);
    nodes[k].take().expect("running").wait_exit(Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(1500));
    nodes[k] = Some(start(&file, k, &dir));

    let deadline = Instant::now() + Duration::from_secs(60);
    while run.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("the load generator did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = run.wait_with_output().expect("the load generator's output");
    let stderr = text(&out.stderr);
    eprint!("{stderr}");
    assert!(out.status.success(), "the run must survive the failover: {stderr}");
    assert!(stderr.contains("following its leader") && stderr.contains("now on "), "{stderr}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON report")).expect("valid JSON");
    assert_eq!(report["bad_reads"], 0, "{report}");
    let reconnects = report["failover"]["reconnects"].as_u64().unwrap_or(0);
    assert!(reconnects >= 1, "the run redialled the new leader: {}", report["failover"]);
    let timeline = report["timeline"].as_array().expect("a timeline");
    let shard_ops = |s: &serde_json::Value| s["shard_ops_s"][0].as_f64().unwrap_or(0.0);
    let gap = timeline.iter().filter(|s| shard_ops(s) == 0.0).count();
    let last = timeline.iter().rposition(|s| shard_ops(s) > 0.0).unwrap_or(0);
    let away = timeline.iter().position(|s| shard_ops(s) == 0.0).unwrap_or(timeline.len());
    assert!(gap >= 1 && last > away, "the shard was away, then served again: {timeline:?}");

    let check = percore(&["check", history.to_str().expect("utf8")]);
    let verdict = text(&check.stdout);
    assert!(check.status.success() && verdict.contains("linearizable"), "{verdict}{}", text(&check.stderr));
    eprintln!(
        "failover ({scheme}): {} reconnect(s), {} operations lost in flight, shard away for {} ms of the timeline; {}",
        reconnects,
        report["failover"]["lost_in_flight"],
        gap * 100,
        verdict.trim()
    );
}

/// A phase started while its shard has no leader waits for one (a few
/// election timeouts) instead of failing: here only one of the three
/// nodes runs when the load starts, a second one a second and a half
/// later, and the load still ends with every record written. (n0, the
/// group's preferred leader, stays down: no handover runs meanwhile.)
#[test]
fn a_percore_load_started_before_its_shard_has_a_leader_waits_for_one() {
    let dir = TempDir::new("failover-wait");
    let (file, addrs) = testkit::replicated_cluster_file(dir.path());
    let mut nodes = vec![start(&file, 1, &dir)];
    let core = load_core();
    let target = format!("percore://{}", addrs[1]);
    let load = std::thread::spawn(move || {
        percore(&[
            "loadgen",
            "load",
            "--target",
            &target,
            "--records",
            "500",
            "--timeout",
            "1s",
            "--cores",
            &core,
            "-q",
        ])
    });
    std::thread::sleep(Duration::from_millis(1500));
    nodes.push(start(&file, 2, &dir));
    let out = load.join().expect("the load generator's thread");
    let said = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success() && said.contains("500 puts"), "the load waited for the election: {said}");
    let got = percore(&["get", "--config", file.to_str().expect("utf8"), "499"]);
    assert!(got.status.success(), "a loaded key reads back: {}", text(&got.stderr));
    drop(nodes);
}
