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
