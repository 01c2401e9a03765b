//! A percore server run as a child process: started from this very binary
//! (`percore server …`), ready when it prints its ready line, measured
//! through /proc, stopped with SIGTERM (SIGKILL only if it does not exit).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running server child.
pub struct ServerProcess {
    child: Option<Child>,
    /// Each shard's `addr:port`, from the ready line.
    pub endpoints: Vec<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl ServerProcess {
    /// Starts `percore server ARGS` and waits (up to 30 s) for its ready
    /// line. The server gets no secret from `PERCORE_PASSWORD` (the variable
    /// is not passed on): its clients are this process's own.
    pub fn start(args: &[String]) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
        let mut child = Command::new(exe)
            .arg("server")
            .args(args)
            .env_remove(wire::cluster::PASSWORD_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let mut out = child.stdout.take().ok_or("no server stdout")?;
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err = child.stderr.take().ok_or("no server stderr")?;
        let (tx, rx) = mpsc::channel();
        let stderr = std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains(" ready: ") {
                    let _ = tx.send(line.clone());
                }
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let mut proc =
            ServerProcess { child: Some(child), endpoints: Vec::new(), stdout: Some(stdout), stderr: Some(stderr) };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => {
                let list = line.rsplit_once(": ").map(|(_, l)| l).unwrap_or("");
                proc.endpoints = list.split(", ").filter_map(|e| e.rsplit(' ').next()).map(str::to_string).collect();
                if proc.endpoints.is_empty() {
                    return Err(format!("cannot parse the server's ready line: {line}"));
                }
                Ok(proc)
            }
            Err(_) => {
                let (_, _, err) = proc.stop_now();
                Err(err.lines().last().map_or("the server did not start".to_string(), str::to_string))
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// CPU time (user + system) the server has used.
    pub fn cpu_time(&self) -> Option<Duration> {
        cpu_time_of(self.pid()?)
    }

    /// Resident memory in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        rss_of(self.pid()?)
    }

    /// Sends SIGTERM and waits up to 10 s (then SIGKILL). Returns the exit
    /// status and what the server printed on stdout and stderr.
    pub fn stop(mut self) -> (Option<ExitStatus>, String, String) {
        self.stop_now()
    }

    fn stop_now(&mut self) -> (Option<ExitStatus>, String, String) {
        let mut status = None;
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            for _ in 0..200 {
                if let Ok(Some(s)) = child.try_wait() {
                    status = Some(s);
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if status.is_none() {
                let _ = child.kill();
                status = child.wait().ok();
            }
        }
        let out = self.stdout.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let err = self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default();
        (status, out, err)
    }
}

/// CPU time (user + system, all threads) process `pid` has used, from /proc.
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (tick > 0).then(|| Duration::from_secs_f64((utime + stime) as f64 / tick as f64))
}

/// Resident memory of process `pid` in bytes, from /proc.
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop_now();
        }
    }
}
