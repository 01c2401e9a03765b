//! Test harness: a real percore server process on loopback, and a raw
//! connection for sending bytes a well-behaved client never would.
//!
//! Shared by the engine's and the tools' integration tests, so it names no
//! binary itself: each test passes its own (`env!("CARGO_BIN_EXE_…")`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wire::Limits;
use wire::buf::RecvBuf;
use wire::codec::{RequestEncoder, encode};
use wire::frame::{Kind, Next, next_frame};
use wire::msg::{ErrorCode, Hello};

/// A running server process. Killed (by PID) when dropped.
pub struct Server {
    child: Option<Child>,
    /// `addr:port` of each shard, from the ready line.
    pub endpoints: Vec<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `program args` (a percore server: `percore-server …` or
    /// `percore server …`; add `--port 0` for free ports) and waits for its
    /// ready line. The child does not inherit `PERCORE_PASSWORD`: a test's
    /// server has a secret only if its arguments give one.
    pub fn start_with(program: &str, args: &[&str]) -> Server {
        let mut child = Command::new(program)
            .args(args)
            .env_remove(wire::cluster::PASSWORD_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn percore-server");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("stdout");
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut s = sink.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        let err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains(" ready: ") {
                    let _ = tx.send(line.clone());
                }
                let mut s = sink.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut server = Server { child: Some(child), endpoints: Vec::new(), stdout, stderr };
        let ready = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => panic!("server did not become ready; stderr:\n{}", server.stderr()),
        };
        // "... ready: ...: shard 0 cpu 0 127.0.0.1:41234, shard 1 cpu 1 127.0.0.1:41235"
        let list = ready.rsplit_once(": ").map(|(_, l)| l).unwrap_or("");
        server.endpoints = list.split(", ").filter_map(|e| e.rsplit(' ').next()).map(str::to_string).collect();
        assert!(!server.endpoints.is_empty(), "no endpoints in {ready:?}");
        server
    }

    /// The first shard's endpoint.
    pub fn addr(&self) -> &str {
        &self.endpoints[0]
    }

    /// Every shard's endpoint, in shard order.
    pub fn addrs(&self) -> &[String] {
        &self.endpoints
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything printed to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().expect("lock").clone()
    }

    /// Everything printed to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Sends SIGTERM and waits for the exit (at most 20 s).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| panic!("server did not exit within 20 s of SIGTERM"))
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: i32) {
        let child = self.child.as_ref().expect("running");
        // SAFETY: plain kill(2) on our own child's PID.
        unsafe {
            libc::kill(child.id() as i32, sig);
        }
    }

    /// Waits up to `limit` for the process to exit; `None` if it has not
    /// (it is then killed when the `Server` is dropped).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                // Let the reader threads drain the pipes.
                std::thread::sleep(Duration::from_millis(100));
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The process's resident memory, in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb * 1024
    }
}

/// Raises this process's open-file limit to its hard limit (tests that open
/// thousands of connections).
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

impl Server {
    /// Sends SIGTERM if the process still runs (it may have been killed by a test).
    pub fn terminate_if_running(&mut self) -> Option<ExitStatus> {
        let running = self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none());
        if running { Some(self.terminate()) } else { self.child.take().and_then(|mut c| c.wait().ok()) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A raw connection that speaks bytes, for bad-input tests.
pub struct Raw {
    /// The socket, for tests that set options on it or read it directly.
    pub stream: TcpStream,
    buf: RecvBuf,
}

impl Raw {
    /// Connects without a handshake.
    pub fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        Raw::from_stream(stream)
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> Raw {
        Raw { stream, buf: RecvBuf::new(1 << 16, 1 << 30) }
    }

    /// Connects and completes a discovery handshake (without a password).
    pub fn handshaken(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send(&hello_frame(None));
        let (kind, _) = raw.frame().expect("hello reply");
        assert_eq!(kind, Kind::HelloReply);
        raw
    }

    /// Writes `bytes` (all of them), whatever they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads one frame: its kind and a copy of its body; `None` at end of stream.
    pub fn frame(&mut self) -> Option<(Kind, Vec<u8>)> {
        let limits = Limits { max_frame_bytes: 1 << 30, ..Limits::default() };
        loop {
            match next_frame(self.buf.filled(), &limits).expect("server sends valid frames") {
                Next::Frame(f) => {
                    let out = (f.header.kind, f.body.to_vec());
                    let len = f.len();
                    self.buf.consume(len);
                    return Some(out);
                }
                Next::NeedMore { frame_len } => {
                    self.buf.prepare(frame_len);
                    match self.stream.read(self.buf.spare()) {
                        Ok(0) => return None,
                        Ok(n) => self.buf.commit(n),
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                        Err(e) => panic!("read: {e}"),
                    }
                }
            }
        }
    }

    /// Reads the error frame the server must send, then expects the close.
    pub fn expect_error(&mut self, code: ErrorCode) -> String {
        let (kind, body) = self.frame().expect("an error frame before the close");
        assert_eq!(kind, Kind::Error, "expected an error frame");
        let (got, message) = error_of(&body);
        assert_eq!(got, code, "error code (message: {message})");
        assert!(self.frame().is_none(), "the server closes the connection after an error frame");
        message
    }

    /// The error code and message of an error frame's body.
    pub fn error_of_body(body: &[u8]) -> (ErrorCode, String) {
        error_of(body)
    }

    /// Half-closes the connection: the server reads end-of-file.
    pub fn shutdown_write(&self) {
        self.stream.shutdown(Shutdown::Write).expect("shutdown");
    }
}

/// A discovery hello frame of this build's protocol, carrying `password`.
pub fn hello_frame(password: Option<&str>) -> Vec<u8> {
    let mut out = Vec::new();
    let hello = Hello {
        protocol: wire::frame::PROTOCOL_VERSION,
        shard: None,
        total_shards: None,
        client: "raw".into(),
        password: password.map(str::to_string),
    };
    encode(Kind::Hello, &hello, &mut out).expect("a hello encodes");
    out
}

/// The error code and message of an error frame's body.
pub fn error_of(body: &[u8]) -> (ErrorCode, String) {
    let mut aligned = RecvBuf::new(body.len().max(16), body.len().max(16));
    aligned.extend_from_slice(body);
    let err = wire::client::server_error("server", aligned.filled());
    let wire::Error::Server { code, message, .. } = err else { panic!("not a server error: {err}") };
    (code, message)
}

/// One request frame (batch id 1) of the operations `ops` writes.
pub fn request(ops: impl FnOnce(&mut RequestEncoder, &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = RequestEncoder::new();
    enc.begin(&mut out, 1);
    ops(&mut enc, &mut out);
    enc.finish(&mut out);
    out
}

/// Runs a server command that is expected to refuse to start: returns its
/// exit code and stderr. One that starts instead is killed after `limit`
/// (its code is then `None`), so a test of a refusal fails instead of
/// hanging when the refusal is gone.
pub fn refusal(cmd: &mut std::process::Command, limit: std::time::Duration) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the server");
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().expect("wait for the server").is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("collect the server's output");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}
