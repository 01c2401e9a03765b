//! What recording a history costs: `cargo bench -p percore-loadgen --bench history`.
//!
//! Records operations through one [`HistoryWriter`] into a [`HistorySink`]
//! writing a temporary file, twice: paced at 2 M ops/s (a busy load thread
//! here; its writer thread keeps up and buffers are reused), then as fast
//! as possible (the writer thread falls behind and fresh buffers must be
//! allocated). Prints the CPU time per operation on the recording (load)
//! thread — the `record` call on the hot path — and in the whole process
//! (the writer thread included). Set them against a load thread's CPU per
//! operation (`client CPU` in `percore bench`'s report, ~200 ns here).
//!
//! [`HistoryWriter`]: loadgen::history::HistoryWriter

use loadgen::history::{Header, HistorySink, VERSION};
use loadgen::worker::thread_cpu_time;
use loadgen::workload::OpKind;
use std::hint::black_box;
use std::time::{Duration, Instant};

fn process_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Records `n` operations, at `rate` ops/s if given; prints the costs.
fn measure(n: u64, rate: Option<f64>) -> std::io::Result<()> {
    let path = std::env::temp_dir().join(format!("percore-bench-history-{}.hist", std::process::id()));
    let header = Header {
        version: VERSION,
        node: "bench".into(),
        pid: 0,
        epoch_unix_ns: 0,
        clock: "bench".into(),
        threads: 1,
        boot_id: None,
        epoch_monotonic_ns: None,
    };
    let sink = HistorySink::create(&path, &header)?;
    let Some(mut w) = sink.writer(0) else { return Err(std::io::Error::other("no writer")) };
    let (wall, proc0, thread0) = (Instant::now(), process_cpu(), thread_cpu_time());
    for i in 0..n {
        let kind = if i % 20 == 0 { OpKind::Put } else { OpKind::Get };
        w.record(black_box(i % 1_000_000), kind, black_box(i), i * 100, i * 100 + 5_000);
        if let Some(r) = rate
            && i % 65_536 == 65_535
        {
            let due = Duration::from_secs_f64((i + 1) as f64 / r);
            if let Some(wait) = due.checked_sub(wall.elapsed()) {
                std::thread::sleep(wait);
            }
        }
    }
    w.finish();
    let thread = thread_cpu_time() - thread0;
    let written = sink.close()?;
    let (all, wall) = (process_cpu() - proc0, wall.elapsed());
    let _ = std::fs::remove_file(&path);
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    println!(
        "history {}: {written} records in {:.2} s: {:.1} ns/op on the recording thread, {:.1} ns/op of CPU in \
         all (writer thread included), {:.0} MB/s",
        rate.map_or("as fast as possible".to_string(), |r| format!("at {:.0} M ops/s", r / 1e6)),
        wall.as_secs_f64(),
        per(thread),
        per(all),
        (written * 32) as f64 / wall.as_secs_f64() / 1e6
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    measure(10_000_000, Some(2e6))?;
    measure(50_000_000, None)
}
