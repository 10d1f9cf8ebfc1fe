//! HTTP benchmark: the real Gateway with the real plugin library against a
//! bare actix-web handler (the ceiling), with the same client and worker
//! count, side by side in one run.
//!
//! Run with `./scripts/bench` (it builds the release Gateway first).
//! Environment: `BENCH_SECONDS` (per scenario, default 5),
//! `BENCH_CONNECTIONS` (default 16), `BENCH_FLOWS` (memory scenario,
//! default 100000).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "bench-secret-0123456789abcdef";
/// The signing key of `/hooks/signed` (same session as `/hooks/bench`).
const SIGNING_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WORKERS: usize = 2;

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let conns: usize = env_or("BENCH_CONNECTIONS", 16);
    let flows_for_memory: usize = env_or("BENCH_FLOWS", 100_000);
    let duration = Duration::from_secs(seconds);

    let ceiling_addr = start_ceiling();
    let gateway = Gateway::start();
    let idle_rss = gateway.rss_kib();

    // A flow to read, and a second session with 1,000 flows to list.
    let flow_id = create(gateway.addr, "/hooks/bench", "bench flow");
    fill(gateway.addr, "/hooks/list", 1000, conns);

    let post = |path: &str, body: &str, secret: &str| request_bytes(path, body, secret);
    let get_flow = post(
        "/hooks/bench",
        &format!(r#"{{"action":"get_flow","flowId":"{flow_id}"}}"#),
        SECRET,
    );
    let list = post("/hooks/list", r#"{"action":"list_flows"}"#, SECRET);
    let create_req = post(
        "/hooks/bench",
        r#"{"action":"create_flow","goal":"benchmark create"}"#,
        SECRET,
    );
    let wrong = post(
        "/hooks/bench",
        r#"{"action":"get_flow","flowId":"x"}"#,
        "wrong-secret",
    );
    let ceiling_req = post("/ceiling", "{}", SECRET);
    let signed_get = signed_request_bytes(
        "/hooks/signed",
        &format!(r#"{{"action":"get_flow","flowId":"{flow_id}"}}"#),
    );
    let signed_create = signed_request_bytes(
        "/hooks/signed",
        r#"{"action":"create_flow","goal":"benchmark create"}"#,
    );

    println!("# HTTP benchmark: {conns} keep-alive connections, {seconds} s per scenario, {WORKERS} workers each side");
    let mut rows = Vec::new();
    let ceiling = run_load(ceiling_addr, &ceiling_req, conns, duration, None, 200);
    rows.push(("ceiling: bare actix-web fixed JSON", ceiling.clone()));
    let get = run_load(gateway.addr, &get_flow, conns, duration, None, 200);
    rows.push(("get_flow", get.clone()));
    let signed_get_stats = run_load(gateway.addr, &signed_get, conns, duration, None, 200);
    rows.push(("get_flow (signed)", signed_get_stats.clone()));
    rows.push((
        "list_flows (1,000 flows)",
        run_load(gateway.addr, &list, conns, duration, None, 200),
    ));
    let create_stats = run_load(gateway.addr, &create_req, conns, duration, None, 200);
    rows.push(("create_flow (durable)", create_stats.clone()));
    let signed_create_stats = run_load(gateway.addr, &signed_create, conns, duration, None, 200);
    rows.push(("create_flow (signed, durable)", signed_create_stats.clone()));
    rows.push((
        "wrong secret (401)",
        run_load(gateway.addr, &wrong, conns, duration, None, 401),
    ));
    println!();
    println!("| scenario | req/s | ratio to ceiling | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, s) in &rows {
        println!(
            "| {name} | {:.0} | {:.2} | {:.3} | {:.3} | {} |",
            s.rps,
            s.rps / ceiling.rps,
            s.p50_ms,
            s.p99_ms,
            s.errors
        );
    }
    println!();
    println!("| signed / bearer twin | req/s, back to back | req/s, interleaved | Gateway CPU µs per request, bearer → signed |");
    println!("|---|---:|---:|---:|");
    for (name, bearer, signed, back_to_back) in [
        (
            "get_flow",
            &get_flow,
            &signed_get,
            signed_get_stats.rps / get.rps,
        ),
        (
            "create_flow",
            &create_req,
            &signed_create,
            signed_create_stats.rps / create_stats.rps,
        ),
    ] {
        let t = interleaved(&gateway, bearer, signed, conns, duration);
        println!(
            "| {name} | {back_to_back:.2} | {:.2} | {:.1} → {:.1} |",
            t.rps_ratio, t.cpu_us_a, t.cpu_us_b
        );
    }

    println!();
    println!(
        "| at half the measured maximum rate | target req/s | achieved req/s | p50 ms | p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, req, max, status) in [
        ("get_flow", &get_flow, get.rps, 200),
        ("create_flow (durable)", &create_req, create_stats.rps, 200),
    ] {
        let target = max / 2.0;
        let s = run_load(gateway.addr, req, conns, duration, Some(target), status);
        println!(
            "| {name} | {target:.0} | {:.0} | {:.3} | {:.3} |",
            s.rps, s.p50_ms, s.p99_ms
        );
    }

    let created_before = created_count(&rows);
    let remaining = flows_for_memory.saturating_sub(created_before + 1001);
    let started = Instant::now();
    fill(gateway.addr, "/hooks/bench", remaining, conns);
    let filled_in = started.elapsed();
    let full_rss = gateway.rss_kib();
    println!();
    println!("| Gateway resident memory | MiB |");
    println!("|---|---:|");
    println!("| idle, after start | {:.1} |", idle_rss as f64 / 1024.0);
    println!(
        "| after {} flows ({remaining} created in {:.1} s) | {:.1} |",
        created_before + 1001 + remaining,
        filled_in.as_secs_f64(),
        full_rss as f64 / 1024.0
    );
    drop(gateway);
}

struct Twins {
    /// Throughput of `b` relative to `a`.
    rps_ratio: f64,
    /// Gateway CPU time (user + system) per request.
    cpu_us_a: f64,
    cpu_us_b: f64,
}

/// Runs `a` and `b` for `duration` each, in alternating slices (a b, b a,
/// ...) so both see the same background load, and measures the Gateway's
/// CPU time per request, which other processes on the machine barely move.
fn interleaved(gateway: &Gateway, a: &[u8], b: &[u8], conns: usize, duration: Duration) -> Twins {
    const ROUNDS: u32 = 6;
    let slice = duration / ROUNDS;
    // (req/s summed over slices, requests, CPU ticks) for a and b.
    let mut sums = [(0.0, 0u64, 0u64); 2];
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let req = if side == 0 { a } else { b };
            let before = gateway.cpu_ticks();
            let s = run_load(gateway.addr, req, conns, slice, None, 200);
            sums[side].0 += s.rps;
            sums[side].1 += s.ok + s.errors;
            sums[side].2 += gateway.cpu_ticks() - before;
        }
    }
    let tick_us = 1e6 / 100.0; // USER_HZ
    let per_request = |(_, n, ticks): (f64, u64, u64)| ticks as f64 * tick_us / n.max(1) as f64;
    Twins {
        rps_ratio: sums[1].0 / sums[0].0,
        cpu_us_a: per_request(sums[0]),
        cpu_us_b: per_request(sums[1]),
    }
}

fn created_count(rows: &[(&str, Stats)]) -> usize {
    rows.iter()
        .filter(|(n, _)| n.starts_with("create_flow"))
        .map(|(_, s)| s.ok as usize)
        .sum()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A bare actix-web server with the same worker count: the ceiling.
fn start_ceiling() -> SocketAddr {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind ceiling");
    let addr = listener.local_addr().expect("ceiling addr");
    std::thread::spawn(move || {
        let system = actix_web::rt::System::new();
        let _ = system.block_on(async move {
            HttpServer::new(|| {
                // Reads the body as the plugin does, so keep-alive holds.
                App::new().default_service(web::to(|_body: web::Bytes| async {
                    HttpResponse::Ok()
                        .content_type("application/json; charset=utf-8")
                        .body(r#"{"ok":true,"routeId":"ceiling","result":{"flow":null}}"#)
                }))
            })
            .workers(WORKERS)
            .disable_signals()
            .listen(listener)?
            .run()
            .await
        });
    });
    addr
}

struct Gateway {
    child: Child,
    addr: SocketAddr,
    _dir: PathBuf,
}

impl Gateway {
    fn start() -> Gateway {
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
        let dir = std::env::temp_dir().join(format!("openclaw-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let limits = serde_json::json!({
            "rateLimitMaxRequests": 1_000_000, "rateLimitWindowMs": 1000,
            "maxInFlight": 100_000, "maxTrackedKeys": 4096
        });
        let config = serde_json::json!({
            "gateway": {"bind": "127.0.0.1", "port": 0},
            "logging": {"level": "warn"},
            "plugins": {
                "load": {"paths": [target.join("deps"), target.clone()]},
                "entries": {"webhooks": {"enabled": true, "config": {
                    "workers": WORKERS,
                    "limits": limits,
                    "routes": {
                        "bench": {"path": "/hooks/bench", "sessionKey": "agent:bench:main", "secret": SECRET},
                        "list": {"path": "/hooks/list", "sessionKey": "agent:bench:list", "secret": SECRET},
                        "signed": {"path": "/hooks/signed", "sessionKey": "agent:bench:main", "signing": {
                            "scheme": "standard-webhooks", "secrets": [SIGNING_KEY], "toleranceSec": 3600
                        }}
                    }
                }}}
            }
        });
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
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines.next().expect("gateway exited").expect("read stdout");
            if let Some(a) = line.strip_prefix("listening on http://") {
                break a.parse().expect("addr");
            }
        };
        Gateway {
            child,
            addr,
            _dir: dir,
        }
    }

    /// User plus system CPU time of the Gateway process, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name: state is the first, utime the 12th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        field(11) + field(12)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn request_bytes(path: &str, body: &str, secret: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAuthorization: Bearer {secret}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A request signed now with [`SIGNING_KEY`] (the same bytes are resent
/// throughout the run, well within the route's tolerance).
fn signed_request_bytes(path: &str, body: &str) -> Vec<u8> {
    use openclaw_webhooks::signing::{sign, SigningKey};
    let key = SigningKey::parse(SIGNING_KEY).expect("signing key");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let signature = sign(&key, "msg_bench", ts, body.as_bytes());
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nwebhook-id: msg_bench\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A keep-alive connection that sends one request and reads one response.
/// When the server closes the connection (it does after refusing a request
/// whose body it did not read), the next call reconnects, as clients do.
struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    body: Vec<u8>,
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    BufReader::with_capacity(64 * 1024, stream)
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            reader: connect(addr),
            body: Vec::new(),
        }
    }

    /// Returns the status code.
    fn call(&mut self, req: &[u8]) -> u16 {
        match self.try_call(req) {
            Some(status) => status,
            None => {
                self.reader = connect(self.addr);
                self.try_call(req).expect("response after reconnecting")
            }
        }
    }

    fn try_call(&mut self, req: &[u8]) -> Option<u16> {
        self.reader.get_mut().write_all(req).ok()?;
        let mut status = 0;
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if self.reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
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
        self.reader.read_exact(&mut self.body).ok()?;
        Some(status)
    }
}

fn create(addr: SocketAddr, path: &str, goal: &str) -> String {
    let mut c = Conn::open(addr);
    let status = c.call(&request_bytes(
        path,
        &format!(r#"{{"action":"create_flow","goal":"{goal}"}}"#),
        SECRET,
    ));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&c.body));
    let v: serde_json::Value = serde_json::from_slice(&c.body).expect("json");
    v["result"]["flow"]["flowId"]
        .as_str()
        .expect("flowId")
        .to_owned()
}

/// Creates `n` flows on `path` over `conns` connections.
fn fill(addr: SocketAddr, path: &str, n: usize, conns: usize) {
    let req = Arc::new(request_bytes(
        path,
        r#"{"action":"create_flow","goal":"fill"}"#,
        SECRET,
    ));
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let req = Arc::clone(&req);
            let share = n / conns + usize::from(i < n % conns);
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                for _ in 0..share {
                    assert_eq!(c.call(&req), 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("fill thread");
    }
}

#[derive(Clone)]
struct Stats {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    ok: u64,
    errors: u64,
}

/// Closed loop (`rate` None) or paced at `rate` requests per second in total.
fn run_load(
    addr: SocketAddr,
    req: &[u8],
    conns: usize,
    duration: Duration,
    rate: Option<f64>,
    expect: u16,
) -> Stats {
    // Warm up connections and caches.
    let stop = Arc::new(AtomicBool::new(false));
    let req = Arc::new(req.to_vec());
    let started = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|_| {
            let (stop, req) = (Arc::clone(&stop), Arc::clone(&req));
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let mut lat = Vec::with_capacity(1 << 16);
                let (mut ok, mut errors) = (0u64, 0u64);
                let interval = rate.map(|r| Duration::from_secs_f64(conns as f64 / r));
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(iv) = interval {
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += iv;
                    }
                    let t = Instant::now();
                    let status = c.call(&req);
                    lat.push(t.elapsed().as_nanos() as u64);
                    if status == expect {
                        ok += 1;
                    } else {
                        errors += 1;
                    }
                }
                (lat, ok, errors)
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let (mut ok, mut errors) = (0, 0);
    for h in handles {
        let (lat, o, e) = h.join().expect("load thread");
        all.extend(lat);
        ok += o;
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1e6
    };
    Stats {
        rps: (ok + errors) as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        ok,
        errors,
    }
}
