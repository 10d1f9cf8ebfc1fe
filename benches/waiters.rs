//! Waiting-read benchmark: the real Gateway with the real plugin library.
//!
//! - Many concurrent waiters on one flow (default 10,000): the Gateway's
//!   resident memory before and with them, per waiter, and how long after
//!   the one write's response the last of them is answered.
//! - Wake latency: one waiter at a time on a keep-alive connection, one
//!   write on another; the time from the write's response (and from its
//!   request) to the waiter's response, p50/p99.
//!
//! Run with `./scripts/bench` (it builds the release Gateway first), or
//! `cargo bench --bench waiters`. Environment: `BENCH_WAITERS` (default
//! 10000; needs about twice as many open files in each process),
//! `BENCH_WAKES` (latency samples, default 1000).
//!
//! Nothing sleeps to synchronise: a waiter is known to be registered when
//! a probe on a route with `maxWaiters` = n is refused with
//! `too_many_waiters`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const SECRET: &str = "bench-secret-0123456789abcdef";
const WORKERS: usize = 2;
const MANY: &str = "/hooks/many";
const ONE: &str = "/hooks/one";

fn main() {
    let waiters: usize = env_or("BENCH_WAITERS", 10_000);
    let wakes: usize = env_or("BENCH_WAKES", 1000);

    println!("# Waiting reads: {WORKERS} workers");
    let baseline = pending_bodies(waiters);
    let gateway = Gateway::start(json!({"maxWaiters": waiters}));
    many_waiters(&gateway, waiters, baseline);
    wake_latency(&gateway, wakes);
}

/// The baseline, in a Gateway of its own: the resident memory of `n`
/// requests inside the plugin's handler, each waiting on its connection
/// for a body that does not come. Returns KiB per request.
fn pending_bodies(n: usize) -> f64 {
    let gateway = Gateway::start(json!({"maxInFlight": n, "bodyTimeoutMs": 600_000}));
    let mut warm = Conn::open(gateway.addr);
    for _ in 0..100 {
        warm.json(MANY, &json!({"action": "list_flows"}));
    }
    let before = gateway.rss_kib();
    let head = format!(
        "POST {MANY} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAuthorization: Bearer {SECRET}\r\nContent-Length: 100\r\n\r\n"
    )
    .into_bytes();
    let mut streams: Vec<TcpStream> = (0..n).map(|_| send(gateway.addr, &head)).collect();
    let probe = request_bytes(MANY, &json!({"action": "list_flows"}).to_string());
    until_refused(
        gateway.addr,
        &probe,
        b"in_flight_limited",
        &mut streams,
        &head,
    );
    let with = gateway.rss_kib();
    with.saturating_sub(before) as f64 / n as f64
}

fn many_waiters(gateway: &Gateway, n: usize, baseline_kib: f64) {
    let addr = gateway.addr;
    let mut writer = Conn::open(addr);
    let flow = writer.json(MANY, &json!({"action": "create_flow", "goal": "watched"}));
    let flow = &flow["result"]["flow"];
    let id = flow["flowId"].as_str().unwrap().to_owned();
    let above = flow["revision"].as_u64().unwrap();
    // Warm both workers, then measure.
    for _ in 0..100 {
        writer.json(MANY, &json!({"action": "get_flow", "flowId": id}));
    }
    let before = gateway.rss_kib();

    let wait = request_bytes(
        MANY,
        &json!({"action": "get_flow", "flowId": id, "waitForRevisionAbove": above, "waitMs": 25_000})
            .to_string(),
    );
    let opened = Instant::now();
    // Connected one after another, so the listener's backlog never
    // overflows; each request is sent as soon as its connection is up.
    let mut streams: Vec<TcpStream> = (0..n).map(|_| send(addr, &wait)).collect();
    let probe = request_bytes(
        MANY,
        &json!({"action": "get_flow", "flowId": "probe-missing", "waitForRevisionAbove": 0, "waitMs": 1})
            .to_string(),
    );
    until_refused(addr, &probe, b"too_many_waiters", &mut streams, &wait);
    let registered_in = opened.elapsed();
    let with = gateway.rss_kib();

    let sent = Instant::now();
    let written = writer.json(
        MANY,
        &json!({"action": "resume_flow", "flowId": id, "expectedRevision": above, "status": "running"}),
    );
    let answered = Instant::now();
    let revision = written["result"]["flow"]["revision"].as_u64().unwrap();
    let mut last = answered;
    for mut s in streams {
        let (status, body) = read_one(&mut s);
        last = Instant::now();
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"]["flow"]["revision"].as_u64(), Some(revision));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!();
    println!("| {n} concurrent waiters on one flow | value |");
    println!("|---|---:|");
    println!("| Gateway RSS before | {:.1} MiB |", before as f64 / 1024.0);
    println!(
        "| Gateway RSS with {n} waiting | {:.1} MiB |",
        with as f64 / 1024.0
    );
    let per_waiter = with.saturating_sub(before) as f64 / n as f64;
    println!("| per waiter, its connection included | {per_waiter:.2} KiB |");
    println!(
        "| per request pending on its body instead (a Gateway of its own) | {baseline_kib:.2} KiB |"
    );
    println!(
        "| the wait's own share (the difference) | {:.2} KiB |",
        per_waiter - baseline_kib
    );
    println!(
        "| all connected and registered in | {:.0} ms |",
        ms(registered_in)
    );
    println!(
        "| the write's request → its response | {:.1} ms |",
        ms(answered - sent)
    );
    println!(
        "| the write's response → the last waiter's response read | {:.1} ms |",
        ms(last.saturating_duration_since(answered))
    );
}

/// Returns once `n` requests hold their place on the route: a probe
/// (`probe`) is refused with `code`. The probe briefly takes a place; a
/// request refused meanwhile (its answer is already there) is sent again
/// (`resend`).
fn until_refused(
    addr: SocketAddr,
    probe: &[u8],
    code: &[u8],
    streams: &mut [TcpStream],
    resend: &[u8],
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut misses = 0u32;
    loop {
        let mut s = send(addr, probe);
        let (status, body) = read_one(&mut s);
        if status == 429 && body.windows(code.len()).any(|w| w == code) {
            return;
        }
        assert!(Instant::now() < deadline, "the requests never all held on");
        misses += 1;
        if misses.is_multiple_of(20) {
            for stream in streams.iter_mut() {
                stream.set_nonblocking(true).unwrap();
                let early = matches!(stream.peek(&mut [0u8; 1]), Ok(n) if n > 0);
                stream.set_nonblocking(false).unwrap();
                if early {
                    let (status, _) = read_one(stream);
                    assert_eq!(status, 429, "a request was answered too early");
                    *stream = send(addr, resend);
                }
            }
        }
    }
}

fn wake_latency(gateway: &Gateway, samples: usize) {
    let addr = gateway.addr;
    let mut writer = Conn::open(addr);
    let flow = writer.json(ONE, &json!({"action": "create_flow", "goal": "ping-pong"}));
    let id = flow["result"]["flow"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut revision = flow["result"]["flow"]["revision"].as_u64().unwrap();

    // The waiter: a keep-alive connection on its own thread, one waiting
    // read per sample, retried when a probe took its place.
    let (ask, asks) = mpsc::channel::<u64>();
    let (tell, told) = mpsc::channel::<(Instant, u64)>();
    let waiter = {
        let id = id.clone();
        std::thread::spawn(move || {
            let mut conn = Conn::open(addr);
            for above in asks {
                let body = json!({"action": "get_flow", "flowId": id, "waitForRevisionAbove": above, "waitMs": 25_000});
                let v = loop {
                    let (status, v) = conn.call_json(ONE, &body);
                    if status != 429 {
                        break v;
                    }
                };
                let got = v["result"]["flow"]["revision"].as_u64().unwrap();
                tell.send((Instant::now(), got)).unwrap();
            }
        })
    };
    let probe = json!({"action": "get_flow", "flowId": "probe-missing", "waitForRevisionAbove": 0, "waitMs": 1});
    let mut prober = Conn::open(addr);
    let mut from_response = Vec::with_capacity(samples);
    let mut from_request = Vec::with_capacity(samples);
    for i in 0..samples + 50 {
        ask.send(revision).unwrap();
        while prober.call_json(ONE, &probe).0 != 429 {}
        let status = if i % 2 == 0 { "running" } else { "queued" };
        let sent = Instant::now();
        let written = writer.json(
            ONE,
            &json!({"action": "resume_flow", "flowId": id, "expectedRevision": revision, "status": status}),
        );
        let answered = Instant::now();
        revision = written["result"]["flow"]["revision"].as_u64().unwrap();
        let (woken, got) = told.recv().unwrap();
        assert_eq!(got, revision);
        // The first 50 warm up.
        if i >= 50 {
            // The Gateway wakes waiters right after the commit, before it
            // answers the write: the waiter's answer may come first.
            from_response.push(
                woken.duration_since(answered).as_secs_f64() * 1e3
                    - answered.duration_since(woken).as_secs_f64() * 1e3,
            );
            from_request.push(woken.duration_since(sent).as_secs_f64() * 1e3);
        }
    }
    drop(ask);
    waiter.join().unwrap();
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * p) as usize]
    };
    println!();
    println!("| wake latency, {samples} samples | p50 ms | p99 ms |");
    println!("|---|---:|---:|");
    println!(
        "| the write's response → the waiter's response (negative: the waiter first) | {:.3} | {:.3} |",
        pct(&mut from_response, 0.50),
        pct(&mut from_response, 0.99)
    );
    println!(
        "| the write's request → the waiter's response | {:.3} | {:.3} |",
        pct(&mut from_request, 0.50),
        pct(&mut from_request, 0.99)
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request_bytes(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nAuthorization: Bearer {SECRET}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A new connection with `req` sent on it.
///
/// Connections are made back to back, faster than the listener's backlog
/// (128) drains while both cores are busy: the kernel then drops a SYN and
/// the client would retry only after a second. A connection not up within
/// 100 ms is abandoned and made again.
fn send(addr: SocketAddr, req: &[u8]) -> TcpStream {
    let mut stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(stream) => break stream,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(e) => panic!("connect: {e}"),
        }
    };
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    stream.write_all(req).expect("send");
    stream
}

/// Reads one response: status and body.
fn read_one(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut reader = BufReader::new(stream);
    read_response(&mut reader).expect("a response")
}

fn read_response<R: BufRead>(reader: &mut R) -> Option<(u16, Vec<u8>)> {
    let mut status = 0;
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if status == 0 {
            status = line.split(' ').nth(1)?.parse().ok()?;
        } else if line == "\r\n" {
            break;
        } else if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((status, body))
}

/// A keep-alive connection; reconnects when the server closed it.
struct Conn {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        Conn {
            addr,
            reader: BufReader::new(stream),
        }
    }

    fn call_json(&mut self, path: &str, body: &Value) -> (u16, Value) {
        let req = request_bytes(path, &body.to_string());
        let answer = self.try_call(&req).or_else(|| {
            *self = Conn::open(self.addr);
            self.try_call(&req)
        });
        let (status, body) = answer.expect("a response after reconnecting");
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// A 200's JSON body.
    fn json(&mut self, path: &str, body: &Value) -> Value {
        let (status, v) = self.call_json(path, body);
        assert_eq!(status, 200, "{v}");
        v
    }

    fn try_call(&mut self, req: &[u8]) -> Option<(u16, Vec<u8>)> {
        self.reader.get_mut().write_all(req).ok()?;
        read_response(&mut self.reader)
    }
}

struct Gateway {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl Gateway {
    /// A Gateway whose route `many` has `many_limits` (besides limits
    /// that never refuse the benchmark), and whose route `one` has
    /// `maxWaiters` 1.
    fn start(many_limits: Value) -> Gateway {
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
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "openclaw-bench-wait-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let limits = |extra: Value| {
            let mut limits = json!({
                "rateLimitMaxRequests": 1_000_000, "rateLimitWindowMs": 1000,
                "maxInFlight": 100_000,
            });
            for (k, v) in extra.as_object().unwrap() {
                limits[k] = v.clone();
            }
            limits
        };
        let config = json!({
            "gateway": {"bind": "127.0.0.1", "port": 0},
            "logging": {"level": "warn"},
            "plugins": {
                "load": {"paths": [target.join("deps"), target.clone()]},
                "entries": {"webhooks": {"enabled": true, "config": {
                    "workers": WORKERS,
                    "routes": {
                        "many": {"path": MANY, "sessionKey": "agent:bench:many", "secret": SECRET,
                                 "limits": limits(many_limits)},
                        "one": {"path": ONE, "sessionKey": "agent:bench:one", "secret": SECRET,
                                "limits": limits(json!({"maxWaiters": 1}))}
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
        Gateway { child, addr, dir }
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
