//! Metrics benchmark: what operations cost the request path, and what one
//! scrape costs.
//!
//! - `get_flow` and durable `create_flow` on two real Gateways in the same
//!   run, one with `gateway.admin` off and one with it on and scraped every
//!   second (a scrape interval far shorter than usual), alternating rounds.
//!   Requests record their metrics on both; the difference is the admin
//!   listener and its scrapes. Target: on >= 95% of off.
//! - One `/metrics` scrape of a Gateway with 50 routes: latency and size.
//!
//! Run with `./scripts/bench`. Environment: `BENCH_SECONDS` (per round,
//! default 5), `BENCH_CONNECTIONS` (default 16), `BENCH_ROUNDS` (default 3),
//! `BENCH_SCRAPES` (default 200).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SECRET: &str = "bench-secret-0123456789abcdef";
const WORKERS: usize = 2;

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let conns: usize = env_or("BENCH_CONNECTIONS", 16);
    let rounds: usize = env_or("BENCH_ROUNDS", 3);
    let scrapes: usize = env_or("BENCH_SCRAPES", 200);
    let duration = Duration::from_secs(seconds);

    let off = Gateway::start("off", 1, false);
    let on = Gateway::start("on", 1, true);
    let scraper = Scraper::start(on.admin.expect("admin address"), Duration::from_secs(1));

    println!("# Metrics benchmark: {conns} keep-alive connections, {rounds} rounds of {seconds} s per scenario, {WORKERS} workers");
    println!();
    println!("| scenario | admin off req/s | admin on req/s | on / off | off p99 ms | on p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, body) in [
        ("get_flow", None),
        (
            "create_flow (durable)",
            Some(r#"{"action":"create_flow","goal":"bench"}"#),
        ),
    ] {
        let request = |gw: &Gateway| {
            let body = match body {
                Some(b) => b.to_owned(),
                None => {
                    let id = create(gw.addr, "/hooks/r0");
                    format!(r#"{{"action":"get_flow","flowId":"{id}"}}"#)
                }
            };
            request_bytes("/hooks/r0", &body)
        };
        let (req_off, req_on) = (request(&off), request(&on));
        let (mut s_off, mut s_on) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            s_off.push(run_load(off.addr, &req_off, conns, duration));
            s_on.push(run_load(on.addr, &req_on, conns, duration));
        }
        let (a, b) = (median(&s_off), median(&s_on));
        println!(
            "| {name} | {:.0} | {:.0} | {:.3} | {:.3} | {:.3} |",
            a.rps,
            b.rps,
            b.rps / a.rps,
            a.p99_ms,
            b.p99_ms
        );
    }
    let scraped = scraper.stop();
    println!();
    println!("(the admin-on Gateway was scraped {scraped} times during its load)");
    drop(on);
    drop(off);

    let many = Gateway::start("routes", 50, true);
    let admin = many.admin.expect("admin address");
    // Traffic on every route, so no series is trivially zero.
    for i in 0..50 {
        create(many.addr, &format!("/hooks/r{i}"));
    }
    let mut latencies = Vec::with_capacity(scrapes);
    let mut size = 0;
    let mut series = 0;
    for _ in 0..scrapes {
        let started = Instant::now();
        let text = scrape(admin);
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        size = text.len();
        series = text.lines().filter(|l| !l.starts_with('#')).count();
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    println!();
    println!("| one scrape, 50 routes | series | bytes | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| {scrapes} scrapes, one at a time | {series} | {size} | {:.2} | {:.2} |",
        pct(0.5),
        pct(0.99)
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Gateway {
    child: Child,
    addr: SocketAddr,
    admin: Option<SocketAddr>,
    dir: PathBuf,
}

impl Gateway {
    /// A Gateway with `routes` routes (`/hooks/r0`, ...), with or without
    /// the admin listener.
    fn start(tag: &str, routes: usize, admin: bool) -> Gateway {
        let target = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent()?.parent().map(|p| p.to_path_buf()))
            .expect("target dir");
        let bin = target.join("openclaw-gateway");
        assert!(
            bin.is_file(),
            "{} missing: run ./scripts/bench",
            bin.display()
        );
        let dir = std::env::temp_dir().join(format!(
            "openclaw-bench-metrics-{tag}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let routes: serde_json::Map<String, Value> = (0..routes)
            .map(|i| {
                (
                    format!("r{i}"),
                    json!({"path": format!("/hooks/r{i}"), "sessionKey": format!("agent:bench:{i}"), "secret": SECRET}),
                )
            })
            .collect();
        let mut config = json!({
            "gateway": {"bind": "127.0.0.1", "port": 0},
            "logging": {"level": "warn"},
            "plugins": {
                "load": {"paths": [target.join("deps"), target.clone()]},
                "entries": {"webhooks": {"enabled": true, "config": {
                    "workers": WORKERS,
                    "limits": {
                        "rateLimitMaxRequests": 1_000_000, "rateLimitWindowMs": 1000,
                        "maxInFlight": 100_000, "maxTrackedKeys": 4096
                    },
                    "routes": routes
                }}}
            }
        });
        if admin {
            config["gateway"]["admin"] = json!({"port": 0});
        }
        let config_path = dir.join("gateway.json5");
        std::fs::write(&config_path, config.to_string()).expect("write config");
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config_path)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gateway");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut admin_addr = None;
        let addr = loop {
            let line = lines.next().expect("gateway exited").expect("read stdout");
            if let Some(a) = line.strip_prefix("admin listening on http://") {
                admin_addr = Some(a.parse().expect("admin addr"));
            }
            if let Some(a) = line.strip_prefix("listening on http://") {
                break a.parse().expect("addr");
            }
        };
        Gateway {
            child,
            addr,
            admin: admin_addr,
            dir,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Scrapes `/metrics` at an interval on its own thread.
struct Scraper {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<usize>,
}

impl Scraper {
    fn start(admin: SocketAddr, every: Duration) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !flag.load(Ordering::Relaxed) {
                let _ = scrape(admin);
                n += 1;
                std::thread::sleep(every);
            }
            n
        });
        Scraper { stop, thread }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("scraper")
    }
}

fn scrape(admin: SocketAddr) -> String {
    let mut stream = TcpStream::connect(admin).expect("connect admin");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .expect("send scrape");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read scrape");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn request_bytes(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAuthorization: Bearer {SECRET}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A keep-alive connection: one request, one response, repeated.
struct Conn {
    reader: BufReader<TcpStream>,
    body: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Conn {
            reader: BufReader::with_capacity(64 * 1024, stream),
            body: Vec::new(),
        }
    }

    fn call(&mut self, req: &[u8]) -> u16 {
        self.reader.get_mut().write_all(req).expect("send");
        let (mut status, mut length) = (0, 0usize);
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                self.reader.read_line(&mut line).expect("read") > 0,
                "closed"
            );
            if status == 0 {
                status = line
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if line == "\r\n" {
                break;
            } else if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).expect("body");
        status
    }
}

fn create(addr: SocketAddr, path: &str) -> String {
    let mut c = Conn::open(addr);
    let status = c.call(&request_bytes(
        path,
        r#"{"action":"create_flow","goal":"bench flow"}"#,
    ));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&c.body));
    let v: Value = serde_json::from_slice(&c.body).expect("json");
    v["result"]["flow"]["flowId"]
        .as_str()
        .expect("flowId")
        .to_owned()
}

#[derive(Clone, Copy)]
struct Stats {
    rps: f64,
    p99_ms: f64,
}

fn median(runs: &[Stats]) -> Stats {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    sorted[sorted.len() / 2]
}

/// Closed loop: every connection sends its next request on its answer.
fn run_load(addr: SocketAddr, req: &[u8], conns: usize, duration: Duration) -> Stats {
    let stop = Arc::new(AtomicBool::new(false));
    let req = Arc::new(req.to_vec());
    let started = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let (stop, req) = (Arc::clone(&stop), Arc::clone(&req));
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let mut lat = Vec::with_capacity(1 << 16);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    assert_eq!(c.call(&req), 200, "{}", String::from_utf8_lossy(&c.body));
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                lat
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<f64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("load thread"))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let p99 = all
        .get(((all.len().max(1) - 1) as f64 * 0.99) as usize)
        .copied()
        .unwrap_or(0.0);
    Stats {
        rps: all.len() as f64 / elapsed,
        p99_ms: p99,
    }
}
