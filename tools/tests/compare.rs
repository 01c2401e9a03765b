//! percore-loadgen's Redis and memcached targets, and `percore bench --vs`,
//! against real redis-server and memcached processes. Functional only: no
//! speed is asserted.

use std::process::{Command, Stdio};
use testkit::TempDir;

const PERCORE: &str = env!("CARGO_BIN_EXE_percore");

#[test]
fn bench_vs_redis_and_memcached_verifies_every_read() {
    let dir = TempDir::new("cmp");
    let json = dir.join("vs.json");
    let out = Command::new(PERCORE)
        .args(["bench", "--vs", "redis,memcached", "--duration", "1s", "--warmup", "200ms", "--rounds", "1"])
        .args(["--records", "20000", "--workload", "a", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run percore bench --vs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for name in ["percore", "redis", "memcached"] {
        assert!(stdout.lines().any(|l| l.starts_with(name)), "table row for {name}:\n{stdout}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid");
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), 3);
    for r in results {
        assert!(r["throughput_ops_s"].as_f64().expect("throughput") > 0.0, "{r}");
        assert_eq!(r["bad_reads"], 0, "{r}");
        assert_eq!(r["errors"], 0, "{r}");
        assert!(r["rss_mb_after_load"].as_f64().is_some(), "{r}");
    }
    assert_eq!(results[0]["server"], "percore");
    // Each row's ratio is its own throughput over percore's, as measured.
    let base = results[0]["throughput_ops_s"].as_f64().expect("percore's throughput");
    for r in results {
        let tput = r["throughput_ops_s"].as_f64().expect("throughput");
        let ratio = r["ratio_to_percore"].as_f64().expect("ratio");
        assert!((ratio - tput / base).abs() < 1e-9 * ratio.max(1.0), "{r}");
    }
    let text_ratio = format!("{:.3}×", results[1]["ratio_to_percore"].as_f64().expect("ratio"));
    assert!(stdout.contains(&text_ratio), "the table shows Redis's ratio {text_ratio}:\n{stdout}");
    let png = std::fs::read(json.with_extension("png")).expect("bar chart written next to the JSON");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn bench_rates_draws_the_open_loop_curve_of_percore_and_redis() {
    let dir = TempDir::new("curve");
    let json = dir.join("curve.json");
    let out = Command::new(PERCORE)
        .args(["bench", "--vs", "redis", "--rates", "50k,20k", "--duration", "1s", "--warmup", "200ms"])
        .args(["--rounds", "1", "--records", "20000", "--json"])
        .arg(&json)
        .stdin(Stdio::null())
        .output()
        .expect("run percore bench --rates");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid");
    let points = v["points"].as_array().expect("points");
    // Rates sorted low to high, each server at each rate.
    let seen: Vec<(f64, &str)> =
        points.iter().map(|p| (p["rate_ops_s"].as_f64().expect("rate"), p["server"].as_str().expect("name"))).collect();
    assert_eq!(seen, [(20e3, "percore"), (20e3, "redis"), (50e3, "percore"), (50e3, "redis")]);
    for p in points {
        let offered = p["rate_ops_s"].as_f64().expect("rate");
        let achieved = p["throughput_ops_s"].as_f64().expect("throughput");
        // An open loop completes what it offers (Poisson: within a few %).
        assert!((achieved - offered).abs() < offered * 0.2, "{p}");
        assert_eq!(p["bad_reads"], 0, "{p}");
        assert_eq!(p["errors"], 0, "{p}");
        for k in ["get_p50_us", "get_p99_us", "get_p99_9_us", "client_lag_p99_us", "client_busy"] {
            assert!(p[k].as_f64().is_some(), "{k} in {p}");
        }
        assert!(p["get_p50_us"].as_f64() <= p["get_p99_us"].as_f64(), "{p}");
        let row =
            format!("| {} | {} |", if offered == 20e3 { "20.0k" } else { "50.0k" }, p["server"].as_str().unwrap_or(""));
        assert!(stdout.contains(&row), "table row {row}:\n{stdout}");
    }
    let png = std::fs::read(json.with_extension("png")).expect("curve written next to the JSON");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
}

/// A value planted in Redis that is not one the load generator wrote is
/// caught as a bad read through the RESP target too.
#[test]
fn a_foreign_value_in_redis_is_a_bad_read() {
    let dir = TempDir::new("cmp");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (tools/test.sh installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            ready = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ready, "redis-server did not start");
    let load = Command::new(PERCORE)
        .args(["loadgen", "load", "--target", &url, "--records", "100", "--cores", "1", "-q"])
        .output()
        .expect("load");
    assert!(load.status.success(), "{}", String::from_utf8_lossy(&load.stderr));
    // Overwrite record 7 with bytes no writer produced.
    let mut plant = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    std::io::Write::write_all(
        &mut plant,
        b"*3\r\n$3\r\nSET\r\n$1\r\n7\r\n$40\r\n0123456789012345678901234567890123456789\r\n",
    )
    .expect("plant");
    let mut ok = [0u8; 5];
    std::io::Read::read_exact(&mut plant, &mut ok).expect("+OK");
    assert_eq!(&ok, b"+OK\r\n");
    let json = dir.join("redis-bad.json");
    let run = Command::new(PERCORE)
        .args(["loadgen", "run", "--target", &url, "--records", "100", "--dist", "uniform", "--workload", "c"])
        .args(["--duration", "1s", "--warmup", "0s", "--cores", "1", "-q", "--json"])
        .arg(&json)
        .output()
        .expect("run");
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(redis.id() as i32, libc::SIGTERM);
    }
    let _ = redis.wait();
    assert_eq!(run.status.code(), Some(1), "bad reads fail the run");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("valid");
    assert!(v["bad_reads"].as_u64().expect("bad_reads") > 0);
    assert_eq!(v["config"]["target"], "redis");
}
