//! HTTP benchmark: the real Gateway with the real plugin library against a
//! bare actix-web handler (the ceiling), with the same client and worker
//! count, side by side in one run. The Gateway process and the HTTP/1.1
//! client are the integration tests' own (`testkit`).
//!
//! Run with `./scripts/bench` (it builds the release Gateway first).
//! Environment: `BENCH_SECONDS` (per scenario, default 5),
//! `BENCH_CONNECTIONS` (default 16), `BENCH_FLOWS` (memory scenario,
//! default 100000), `BENCH_LARGE_FLOWS` (the large-store scenarios of
//! `support/large_store.rs`, default 1000000; 0 skips them),
//! `BENCH_LARGE_ONLY=1` (the ceiling and the large store only).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/large_store.rs"]
mod large_store;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_webhooks::signing::{sign, SigningKey};
use serde_json::{json, Value};
use testkit::{gateway_config, post_json, Client, Gateway, SECRET};

const WORKERS: usize = 2;
/// The signing key of `/hooks/signed` (same session as `/hooks/bench`).
const SIGNING_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let conns: usize = env_or("BENCH_CONNECTIONS", 16);
    let flows_for_memory: usize = env_or("BENCH_FLOWS", 100_000);
    let duration = Duration::from_secs(seconds);

    let ceiling_addr = start_ceiling();
    if std::env::var_os("BENCH_LARGE_ONLY").is_some() {
        let ceiling_req = post_json("/ceiling", SECRET, &[], "{}");
        let ceiling = run_load(
            ceiling_addr,
            &same(&ceiling_req),
            conns,
            duration,
            None,
            200,
        );
        println!(
            "# Ceiling: {:.0} req/s, p99 {:.3} ms",
            ceiling.rps, ceiling.p99_ms
        );
        large_store::run(conns, duration, &ceiling);
        return;
    }
    let gateway = Gateway::start(&bench_config());
    let idle_rss = gateway.rss_kib();

    // A flow to read, and a second session with 1,000 flows to list.
    let flow_id = create(gateway.addr, "/hooks/bench", "bench flow");
    fill(gateway.addr, "/hooks/list", 1000, conns);

    let post = |path: &str, body: &str, secret: &str| post_json(path, secret, &[], body);
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
    let create_body = r#"{"action":"create_flow","goal":"benchmark create"}"#;
    // A new idempotency key per request (each runs), and one key sent again
    // and again (each after the first is a replay).
    let keyed_create = Load::each(move |conn, seq| {
        let key = format!("bench-{conn}-{seq}");
        post_json(
            "/hooks/bench",
            SECRET,
            &[("idempotency-key", &key)],
            create_body,
        )
    });
    // Each connection retries its own key (as one client retries its own
    // request): after its first request, every one is a replay.
    let replay = Load::each(move |conn, _| {
        let key = format!("bench-replayed-{conn}");
        post_json(
            "/hooks/bench",
            SECRET,
            &[("idempotency-key", &key)],
            create_body,
        )
    });
    let signed_get = signed(
        "/hooks/signed",
        "msg_bench_read",
        &format!(r#"{{"action":"get_flow","flowId":"{flow_id}"}}"#),
    );
    // A signed write is keyed by its webhook-id: a new one per request.
    let signed_create = Load::each(move |conn, seq| {
        signed("/hooks/signed", &format!("msg_{conn}_{seq}"), create_body)
    });

    println!("# HTTP benchmark: {conns} keep-alive connections, {seconds} s per scenario, {WORKERS} workers each side");
    let mut rows = Vec::new();
    let ceiling = run_load(
        ceiling_addr,
        &same(&ceiling_req),
        conns,
        duration,
        None,
        200,
    );
    rows.push(("ceiling: bare actix-web fixed JSON", ceiling.clone()));
    let get = run_load(gateway.addr, &same(&get_flow), conns, duration, None, 200);
    rows.push(("get_flow", get.clone()));
    rows.push((
        "get_flow (signed)",
        run_load(gateway.addr, &same(&signed_get), conns, duration, None, 200),
    ));
    rows.push((
        "list_flows (1,000 flows)",
        run_load(gateway.addr, &same(&list), conns, duration, None, 200),
    ));
    let create_stats = run_load(gateway.addr, &same(&create_req), conns, duration, None, 200);
    rows.push(("create_flow (durable)", create_stats.clone()));
    rows.push((
        "create_flow (durable, Idempotency-Key)",
        run_load(gateway.addr, &keyed_create, conns, duration, None, 200),
    ));
    rows.push((
        "create_flow (durable, signed)",
        run_load(gateway.addr, &signed_create, conns, duration, None, 200),
    ));
    rows.push((
        "replay of a keyed create_flow",
        run_load(gateway.addr, &replay, conns, duration, None, 200),
    ));
    rows.push((
        "wrong secret (401)",
        run_load(gateway.addr, &same(&wrong), conns, duration, None, 401),
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
    println!(
        "| at half the measured maximum rate | target req/s | achieved req/s | p50 ms | p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, req, max, status) in [
        ("get_flow", &get_flow, get.rps, 200),
        ("create_flow (durable)", &create_req, create_stats.rps, 200),
    ] {
        let target = max / 2.0;
        let s = run_load(
            gateway.addr,
            &same(req),
            conns,
            duration,
            Some(target),
            status,
        );
        println!(
            "| {name} | {target:.0} | {:.0} | {:.3} | {:.3} |",
            s.rps, s.p50_ms, s.p99_ms
        );
    }

    // Throughput compared in alternating slices, so that both sides of a
    // pair see the same background load on a shared machine; the Gateway's
    // own CPU time per request moves little with that load.
    println!();
    println!("| pair (interleaved) | ratio of req/s | Gateway CPU µs per request |");
    println!("|---|---:|---:|");
    for (name, a, b) in [
        (
            "signed / bearer get_flow",
            same(&get_flow),
            same(&signed_get),
        ),
        (
            "signed / bearer create_flow",
            same(&create_req),
            signed_create.clone(),
        ),
        (
            "keyed / plain create_flow",
            same(&create_req),
            keyed_create.clone(),
        ),
        ("replay / get_flow", same(&get_flow), replay.clone()),
    ] {
        let t = interleaved(&gateway, &a, &b, conns, duration);
        println!(
            "| {name} | {:.2} | {:.1} → {:.1} |",
            t.rps_ratio, t.cpu_us_a, t.cpu_us_b
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
    let logs = gateway.logs();
    if !logs.is_empty() {
        println!();
        println!("Gateway log (warnings and errors):\n{logs}");
    }
    drop(gateway);
    large_store::run(conns, duration, &ceiling);
}

/// The same request bytes every time.
fn same(bytes: &[u8]) -> Load {
    Load::Same(Arc::new(bytes.to_vec()))
}

/// A request signed now with [`SIGNING_KEY`] under message id `id`.
fn signed(path: &str, id: &str, body: &str) -> Vec<u8> {
    let key = SigningKey::parse(SIGNING_KEY).expect("signing key");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let signature = sign(&key, id, ts, body.as_bytes());
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nwebhook-id: {id}\r\nwebhook-timestamp: {ts}\r\nwebhook-signature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What each connection sends: the same bytes every time, or bytes made
/// for each request from (connection, sequence number).
#[derive(Clone)]
enum Load {
    Same(Arc<Vec<u8>>),
    Each(Arc<dyn Fn(usize, u64) -> Vec<u8> + Send + Sync>),
}

impl Load {
    fn each(make: impl Fn(usize, u64) -> Vec<u8> + Send + Sync + 'static) -> Self {
        Self::Each(Arc::new(make))
    }
}

struct Pair {
    /// Throughput of `b` relative to `a`.
    rps_ratio: f64,
    /// Gateway CPU time (user + system) per request.
    cpu_us_a: f64,
    cpu_us_b: f64,
}

/// Runs `a` and `b` for `duration` each, in alternating slices (a b, b a,
/// ...), and measures the Gateway's CPU time per request.
fn interleaved(gateway: &Gateway, a: &Load, b: &Load, conns: usize, duration: Duration) -> Pair {
    const ROUNDS: u32 = 6;
    let slice = duration / ROUNDS;
    // (req/s summed over slices, requests, CPU time) for a and b.
    let mut sums = [(0.0, 0u64, Duration::ZERO); 2];
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let load = if side == 0 { a } else { b };
            let before = gateway.cpu_time();
            let s = run_load(gateway.addr, load, conns, slice, None, 200);
            sums[side].0 += s.rps;
            sums[side].1 += s.ok + s.errors;
            sums[side].2 += gateway.cpu_time() - before;
        }
    }
    let per_request = |(_, n, cpu): (f64, u64, Duration)| cpu.as_secs_f64() * 1e6 / n.max(1) as f64;
    Pair {
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

/// The Gateway under test: two routes (a flow to read and 1,000 to list
/// live in different sessions), limits out of the way, warnings only.
fn bench_config() -> Value {
    let route =
        |path: &str, session: &str| json!({"path": path, "sessionKey": session, "secret": SECRET});
    gateway_config(
        json!({
            "workers": WORKERS,
            "limits": {
                "rateLimitMaxRequests": 1_000_000, "rateLimitWindowMs": 1000,
                "maxInFlight": 100_000, "maxTrackedKeys": 4096
            },
            "routes": {
                "bench": route("/hooks/bench", "agent:bench:main"),
                "list": route("/hooks/list", "agent:bench:list"),
                "signed": {"path": "/hooks/signed", "sessionKey": "agent:bench:main", "signing": {
                    "scheme": "standard-webhooks", "secrets": [SIGNING_KEY], "toleranceSec": 3600
                }}
            }
        }),
        json!({"logging": {"level": "warn"}}),
    )
}

fn create(addr: SocketAddr, path: &str, goal: &str) -> String {
    let res = Client::new(addr).send(&post_json(
        path,
        SECRET,
        &[],
        &format!(r#"{{"action":"create_flow","goal":"{goal}"}}"#),
    ));
    assert_eq!(res.status, 200, "{}", res.text);
    res.json["result"]["flow"]["flowId"]
        .as_str()
        .expect("flowId")
        .to_owned()
}

/// Creates `n` flows on `path` over `conns` connections.
fn fill(addr: SocketAddr, path: &str, n: usize, conns: usize) {
    let req = Arc::new(post_json(
        path,
        SECRET,
        &[],
        r#"{"action":"create_flow","goal":"fill"}"#,
    ));
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let req = Arc::clone(&req);
            let share = n / conns + usize::from(i < n % conns);
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                for _ in 0..share {
                    assert_eq!(c.send_status(&req), 200);
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

/// Closed loop (`rate` None) or paced at `rate` requests per second in
/// total, each connection until `duration` has passed.
fn run_load(
    addr: SocketAddr,
    load: &Load,
    conns: usize,
    duration: Duration,
    rate: Option<f64>,
    expect: u16,
) -> Stats {
    let started = Instant::now();
    let end = started + duration;
    let handles: Vec<_> = (0..conns)
        .map(|conn| {
            let load = load.clone();
            std::thread::spawn(move || {
                let mut seq = 0u64;
                let mut c = Client::new(addr);
                let mut lat = Vec::with_capacity(1 << 16);
                let (mut ok, mut errors) = (0u64, 0u64);
                let interval = rate.map(|r| Duration::from_secs_f64(conns as f64 / r));
                let mut next = Instant::now();
                while Instant::now() < end {
                    if let Some(iv) = interval {
                        // Pacing: the wait sets the offered rate; nothing
                        // waits for another thread here.
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        }
                        next += iv;
                    }
                    // Made before the clock starts: only the exchange is timed.
                    let made;
                    let req: &[u8] = match &load {
                        Load::Same(bytes) => bytes,
                        Load::Each(make) => {
                            made = make(conn, seq);
                            &made
                        }
                    };
                    seq += 1;
                    let t = Instant::now();
                    let status = c.send_status(req);
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
    let mut all = Vec::new();
    let (mut ok, mut errors) = (0, 0);
    for h in handles {
        let (lat, o, e) = h.join().expect("load thread");
        all.extend(lat);
        ok += o;
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
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
