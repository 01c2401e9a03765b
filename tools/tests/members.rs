//! Replacing a dead node: `percore members` changes a replicated shard's
//! group to the cluster file's membership.
//!
//! Four real `percore server` processes on loopback: three found a group
//! (`replicas = 3`, one core each, `fsync always`), keys are loaded, one
//! node is killed for good. The file is edited to name a new server with a
//! new member id in its place; the new node starts with `--join`, and
//! `percore members` adds it as a learner, promotes it once it caught up
//! (from the leader's snapshot: its log starts without the group's first
//! membership) and removes the dead member. The new replica's store then
//! equals the leader's; the group survives losing one more of its
//! original nodes (a majority of the new membership is up); every key
//! loaded reads back; and a restarted original rejoins the new membership
//! from its snapshot.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};
use testkit::resp::Resp;
use testkit::{Server, TempDir, load_core, text};

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

fn percore(args: &[&str]) -> Output {
    testkit::run_to_end(PERCORE, args)
}

/// `CLUSTER MEMBERS` of the core at `addr`, if it answers.
fn members(addr: &str) -> Option<String> {
    Resp::try_connect(addr)?.try_cmd(&["CLUSTER", "MEMBERS"]).map(|v| v.text())
}

/// The leader `addr`s' replicas agree on (waits, at most 30 s).
fn leader_of(addrs: &[&String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for a in addrs {
            if let Some(m) = members(a)
                && m.lines().next().is_some_and(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    let get = |k: &str| f.iter().find_map(|x| x.strip_prefix(k)).unwrap_or("0");
                    get("me:") == get("leader:") && get("leader:") != "0"
                })
            {
                return a.to_string();
            }
        }
        assert!(Instant::now() < deadline, "no leader among {addrs:?} within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn digest(addr: &str) -> Option<String> {
    Resp::try_connect(addr)?.try_cmd(&["DEBUG", "DIGEST"]).map(|v| v.text())
}

/// Waits until every one of `addrs` has the same store (at most 30 s).
fn agree(addrs: &[&String]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d: Vec<Option<String>> = addrs.iter().map(|a| digest(a)).collect();
        if d[0].is_some() && d.iter().all(|x| *x == d[0]) {
            return;
        }
        assert!(Instant::now() < deadline, "the replicas never agreed: {d:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The cluster file with node `gone` replaced by `n3` (member 4) on fresh
/// ports. Returns it and n3's client endpoint.
fn replaced(file: &Path, dir: &Path, gone: &str) -> (PathBuf, String) {
    let old = std::fs::read_to_string(file).expect("read the cluster file");
    let ports = testkit::free_ports(2);
    let mut out = String::new();
    for block in old.split("[[server]]\n") {
        if block.contains(&format!("name = \"{gone}\"")) {
            out += &format!(
                "[[server]]\nname = \"n3\"\naddr = \"127.0.0.1\"\nport = {}\npeer_port = {}\ncores = [0]\nmember = 4\n",
                ports[0], ports[1]
            );
        } else if block.starts_with("name") {
            out += "[[server]]\n";
            out += block;
        } else {
            out += block;
        }
    }
    let path = dir.join("replaced.toml");
    std::fs::write(&path, out).expect("write the new cluster file");
    (path, format!("127.0.0.1:{}", ports[0]))
}

/// Three founding nodes of one replicated shard (n0, n1, n2: members 1 to
/// 3), and what both tests do with them.
struct Trio {
    dir: TempDir,
    file: PathBuf,
    addrs: Vec<String>,
    nodes: Vec<Option<Server>>,
    core: String,
}

impl Trio {
    /// Starts the three and waits until n0 (member 1, the file's first
    /// leader) leads: another that wins the first election hands it the
    /// leadership once it has caught up, and a load running through that
    /// handover would lose its connection.
    fn start(name: &str) -> Trio {
        let dir = TempDir::new(name);
        let (file, addrs) = testkit::replicated_cluster_file(dir.path());
        let mut trio = Trio { dir, file, addrs, nodes: Vec::new(), core: load_core() };
        let file = trio.file.clone();
        trio.nodes = (0..3).map(|i| Some(trio.node(&file, i, &[]))).collect();
        let all: Vec<&String> = trio.addrs.iter().collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        while leader_of(&all) != trio.addrs[0] {
            assert!(Instant::now() < deadline, "n0 never led");
            std::thread::sleep(Duration::from_millis(100));
        }
        trio
    }

    /// Starts node `n{node}` of cluster file `f` (`extra`: flags such as `--join`).
    fn node(&self, f: &Path, node: usize, extra: &[&str]) -> Server {
        let mut before = vec!["server"];
        before.extend_from_slice(extra);
        testkit::start_replicated(PERCORE, &before, f, node, self.dir.path())
    }

    /// Loads `records` records through the replica at `addr`; must succeed.
    fn load(&self, addr: &str, records: &str) {
        let target = format!("percore://{addr}");
        let out = percore(&["loadgen", "load", "--target", &target, "--records", records, "--cores", &self.core, "-q"]);
        assert!(out.status.success(), "load through {addr}: {}", text(&out.stderr));
    }

    /// Reads every one of `records` records back through `addr`.
    fn verify(&self, addr: &str, records: &str) {
        let target = format!("percore://{addr}");
        let out = percore(&["loadgen", "verify", "--target", &target, "--records", records, "--cores", &self.core]);
        let said = text(&out.stdout) + &text(&out.stderr);
        assert!(out.status.success() && said.contains(&format!("{records} hits, 0 misses")), "{said}");
    }

    /// `percore members` with cluster file `f`; must succeed. Its output.
    fn reconcile(&self, f: &Path) -> String {
        let done = percore(&["members", "--config", f.to_str().expect("utf8"), "--timeout", "60s"]);
        let said = text(&done.stdout);
        eprint!("{said}{}", text(&done.stderr));
        assert!(done.status.success(), "{said}{}", text(&done.stderr));
        said
    }
}

#[test]
fn a_dead_node_is_replaced_and_the_group_survives_losing_another() {
    let mut t = Trio::start("members");
    let addrs = t.addrs.clone();
    t.load(&addrs[0], "3000");

    // n1 dies for good.
    t.nodes[1].take().expect("running").signal(libc::SIGKILL);

    // A new node takes its place under a new member id.
    let (new_file, n3) = replaced(&t.file, t.dir.path(), "n1");
    let refused = percore(&["members", "--config", new_file.to_str().expect("utf8")]);
    assert!(!refused.status.success(), "nothing runs at n3 yet: {}", text(&refused.stdout));
    let n3_server = t.node(&new_file, 3, &["--join"]);
    let plan = percore(&["members", "--config", new_file.to_str().expect("utf8"), "--dry-run"]);
    let plan_text = text(&plan.stdout);
    assert!(plan.status.success(), "{}{}", plan_text, text(&plan.stderr));
    assert!(plan_text.contains("would add member 4") && plan_text.contains("would remove member 2"), "{plan_text}");
    let m = members(&n3).expect("n3 answers CLUSTER MEMBERS");
    assert!(m.contains("joining:1"), "{m}");

    let said = t.reconcile(&new_file);
    assert!(said.contains("member 4 promoted") && said.contains("member 2 removed"), "{said}");
    assert!(said.contains("members now 1, 3, 4"), "{said}");

    // Its store is the group's; the leader's map names the new membership.
    let now: Vec<&String> = vec![&addrs[0], &n3, &addrs[2]];
    agree(&now);
    let m = members(&n3).expect("n3 answers");
    let voters = ["member:1 role:voter", "member:3 role:voter", "member:4 role:voter"];
    assert!(m.contains("joining:0") && voters.iter().all(|v| m.contains(v)) && !m.contains("member:2 "), "{m}");
    let info = Resp::connect(&n3).cmd(&["INFO", "replication"]).text();
    assert!(info.contains("percore_snapshots_installed:1"), "n3 began from the leader's snapshot: {info}");

    // Writes after the change, then one more original node dies: 3 and 4
    // are a majority of {1, 3, 4}.
    t.load(&leader_of(&now), "4000");
    t.nodes[0].take().expect("running").signal(libc::SIGKILL);
    let leader = leader_of(&[&n3, &addrs[2]]);
    t.verify(&leader, "4000");
    t.load(&leader, "4500");
    let got = percore(&["get", "--config", new_file.to_str().expect("utf8"), "4499"]);
    assert!(got.status.success(), "{}", text(&got.stderr));

    // n0 restarts with the new file: it rejoins the new membership.
    t.nodes[0] = Some(t.node(&new_file, 0, &[]));
    agree(&now);
    let m = members(&addrs[0]).expect("n0 answers");
    assert!(m.contains("member:4 role:voter") && !m.contains("member:2 "), "{m}");
    drop(n3_server);
}

/// Moving a live replica, the leader's: member 1 (n0, the group's first
/// leader) moves to n3. Asked to remove itself, the leader hands its
/// leadership over first; the command follows the new leader and removes
/// it. The moved-from node still runs and is no member any more: the group
/// then survives losing one more of its other original nodes.
#[test]
fn the_leaders_replica_moves_to_a_new_node() {
    let mut t = Trio::start("members-move");
    let addrs = t.addrs.clone();
    t.load(&addrs[0], "3000");

    let (new_file, n3) = replaced(&t.file, t.dir.path(), "n0");
    let _n3 = t.node(&new_file, 3, &["--join"]);
    let said = t.reconcile(&new_file);
    assert!(said.contains("member 1 removed") && said.contains("members now 2, 3, 4"), "{said}");
    let now: Vec<&String> = vec![&n3, &addrs[1], &addrs[2]];
    agree(&now);
    // n3 took n0's place in the file, so every replica now hands the
    // leadership to it once it has caught up: wait for that.
    let deadline = Instant::now() + Duration::from_secs(30);
    while leader_of(&now) != n3 {
        assert!(Instant::now() < deadline, "n3, now the preferred member, never led");
        std::thread::sleep(Duration::from_millis(100));
    }

    // n0 runs on, outside the group; n1 dies: n3 and n2 are a majority.
    t.nodes[1].take().expect("running").signal(libc::SIGKILL);
    let leader = leader_of(&[&n3, &addrs[2]]);
    t.load(&leader, "3500");
    t.verify(&leader, "3500");
}
