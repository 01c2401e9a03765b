//! What percore's tests and benches share, in one place: every crate's
//! integration tests and benches depend on this crate (as a
//! dev-dependency) instead of including each other's files.
//!
//! - [`server`]: a real percore server process on loopback (started from
//!   the binary a test names), and a raw connection for sending bytes a
//!   well-behaved client never would.
//! - [`fake`]: a fake one-shard percore node that refuses every write with
//!   a chosen per-operation error (`NotDurable`, `OutOfMemory`, …).
//! - [`resp`]: a blocking RESP2/RESP3 client that reads replies into values.
//! - [`TempDir`]: a private temporary directory, removed when dropped.
//! - [`free_ports`] and [`replicated_cluster_file`]: a three-node
//!   replicated cluster's file on loopback.
//! - [`measure()`]: the timing loop of the `cargo bench` targets.

pub mod fake;
pub mod measure;
pub mod resp;
pub mod server;

pub use fake::FakeNode;
pub use measure::measure;
pub use server::{Raw, Server, error_of, hello_frame, raise_fd_limit, refusal, request};

use std::path::{Path, PathBuf};

/// A private temporary directory (`percore-NAME-PID-N` under the system's
/// temporary directory), created empty and removed with its contents when
/// dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh directory whose name starts with `percore-{name}`.
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("percore-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("temporary directory {}: {e}", path.display());
        }
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program` with `args` (no stdin) to its end and returns its output.
pub fn run_to_end(program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

/// A process's output as text (invalid UTF-8 replaced).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The CPU a test's load thread runs on: the last one available (a local
/// server takes the first).
pub fn load_core() -> String {
    wire::cluster::available_cpus().last().copied().unwrap_or(0).to_string()
}

/// `n` distinct free loopback ports (all held open until every one is
/// picked, so none is handed out twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

/// Writes `dir/cluster.toml`: three one-core server nodes `n0`..`n2` on
/// loopback (free client and peer ports), one shard replicated on all
/// three (`replicas = 3`). Returns the file and the nodes' client
/// endpoints (`127.0.0.1:PORT`, in node order).
pub fn replicated_cluster_file(dir: &Path) -> (PathBuf, Vec<String>) {
    let mut text = String::from("replicas = 3\n");
    let mut addrs = Vec::new();
    let ports = free_ports(6);
    for i in 0..3 {
        let (port, peer) = (ports[2 * i], ports[2 * i + 1]);
        text += &format!(
            "[[server]]\nname = \"n{i}\"\naddr = \"127.0.0.1\"\nport = {port}\npeer_port = {peer}\ncores = [0]\n"
        );
        addrs.push(format!("127.0.0.1:{port}"));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, text).expect("write the cluster file");
    (path, addrs)
}

/// Starts node `n{node}` of a [`replicated_cluster_file`] from `program`
/// (`args_before`: e.g. `["server"]` for the `percore` binary), with its
/// data directory `data/n{node}`, `fsync always` and a 50 ms Raft tick
/// (elections within 0.5–1 s).
pub fn start_replicated(program: &str, args_before: &[&str], file: &Path, node: usize, data: &Path) -> Server {
    let (name, dir) = (format!("n{node}"), data.join(format!("n{node}")));
    let mut args: Vec<&str> = args_before.to_vec();
    args.extend(["--config", file.to_str().expect("utf8"), "--node", &name]);
    args.extend(["--data-dir", dir.to_str().expect("utf8"), "--fsync", "always"]);
    args.extend(["--raft-tick", "50ms", "--stats-interval-ms", "0"]);
    Server::start_with(program, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_are_distinct_and_removed() {
        let (a, b) = (TempDir::new("kit"), TempDir::new("kit"));
        assert_ne!(a.path(), b.path());
        std::fs::write(a.join("f"), b"x").expect("write");
        let kept = a.path().to_path_buf();
        drop(a);
        assert!(!kept.exists());
        assert!(b.path().is_dir());
    }
}
