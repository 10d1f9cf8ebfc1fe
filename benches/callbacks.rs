//! Callback benchmark: the real Gateway and plugin, a counting receiver on
//! 127.0.0.1 (it answers 200 at once and keeps nothing), and the same
//! closed-loop client as `benches/http.rs` (16 keep-alive connections).
//!
//! 1. `create_flow` (`notifyPolicy: state_changes`) for `BENCH_SECONDS` on a
//!    route without callbacks, then on one with callbacks: requests per
//!    second of each and their ratio.
//! 2. Callback throughput: every event of run 1's second half (one per
//!    created flow) delivered, measured from the first write until the last
//!    event arrived, and for the backlog left when the writes stopped.
//!
//! Knobs: `BENCH_SECONDS` (default 5), `BENCH_CONNECTIONS` (default 16).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{gateway_config, post_json, Client, Gateway, Receiver, SECRET};

const WORKERS: usize = 2;
const PATH: &str = "/hooks/bench";
const KEY: &str = "whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(callbacks: Option<Value>) -> Value {
    let mut route = json!({"path": PATH, "sessionKey": "agent:bench:main", "secret": SECRET});
    if let Some(c) = callbacks {
        route["callbacks"] = c;
    }
    gateway_config(
        json!({
            "workers": WORKERS,
            "limits": {
                "rateLimitMaxRequests": 1_000_000, "rateLimitWindowMs": 1000,
                "maxInFlight": 100_000, "maxTrackedKeys": 4096
            },
            "routes": {"bench": route}
        }),
        json!({"logging": {"level": "warn"}}),
    )
}

/// Closed-loop `create_flow` for `duration`; returns the number answered
/// 200 and the requests per second.
fn load(addr: SocketAddr, policy: &str, conns: usize, duration: Duration) -> (u64, f64) {
    let req = Arc::new(post_json(
        PATH,
        SECRET,
        &[],
        &format!(r#"{{"action":"create_flow","goal":"bench","notifyPolicy":"{policy}"}}"#),
    ));
    let started = Instant::now();
    let end = started + duration;
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let req = Arc::clone(&req);
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let mut ok = 0u64;
                while Instant::now() < end {
                    if c.send_status(&req) == 200 {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    (ok, ok as f64 / started.elapsed().as_secs_f64())
}

fn main() {
    let seconds = env_or("BENCH_SECONDS", 5u64);
    let conns = env_or("BENCH_CONNECTIONS", 16usize);
    let duration = Duration::from_secs(seconds);

    // The Gateway's CPU time per request, microseconds.
    let per = |cpu: Duration, n: u64| cpu.as_secs_f64() * 1e6 / n.max(1) as f64;
    let plain = Gateway::start(&config(None));
    let cpu = plain.cpu_time();
    let (plain_n, without) = load(plain.addr, "state_changes", conns, duration);
    let plain_cpu = per(plain.cpu_time() - cpu, plain_n);
    drop(plain);

    let receiver = Receiver::counting();
    let gw = Gateway::start(&config(Some(json!({
        "url": receiver.url("/hook"),
        "allowInsecureHttp": true,
        "signing": {"secrets": [KEY]},
    }))));
    // Callbacks configured, but creating a `done_only` flow emits nothing:
    // the cost of callbacks on the write path alone.
    let (_, quiet) = load(gw.addr, "done_only", conns, duration);
    assert_eq!(receiver.count().0, 0);
    // Every create emits an event, delivered on the same cores meanwhile.
    let started = Instant::now();
    let cpu = gw.cpu_time();
    let (created, with) = load(gw.addr, "state_changes", conns, duration);
    let writes_done = Instant::now();
    let (at_stop, _) = receiver.count();
    let deadline = Instant::now() + Duration::from_secs(600);
    let last = loop {
        let (n, last) = receiver.count();
        if n as u64 >= created {
            break last.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {created} events arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (delivered, _) = receiver.count();
    // Each create and the delivery of its event, until the last arrived.
    let event_cpu = per(gw.cpu_time() - cpu, created);
    let overall = delivered as f64 / (last - started).as_secs_f64();
    let backlog = delivered - at_stop;
    let drain = last.saturating_duration_since(writes_done);
    let drain_rate = backlog as f64 / drain.as_secs_f64().max(1e-9);
    let rss = gw.rss_kib() as f64 / 1024.0;

    println!("\n## Callbacks ({seconds} s, {conns} connections, {WORKERS} actix workers)\n");
    println!("| scenario | req/s | ratio |");
    println!("|---|---:|---:|");
    println!("| `create_flow`, no callbacks | {without:.0} | 1.00 |");
    println!(
        "| `create_flow`, callbacks configured, `done_only` (no event) | {quiet:.0} | {:.2} |",
        quiet / without
    );
    println!(
        "| `create_flow`, callbacks, `state_changes` (an event each, delivered meanwhile) | {with:.0} | {:.2} |",
        with / without
    );
    println!("\n| callback delivery | events | events/s |");
    println!("|---|---:|---:|");
    println!("| first write to last event | {delivered} | {overall:.0} |",);
    println!(
        "| backlog after the writes stopped | {backlog} | {drain_rate:.0} ({:.2} s) |",
        drain.as_secs_f64()
    );
    println!(
        "\nGateway CPU per `create_flow`: {plain_cpu:.0} µs without callbacks; \
         {event_cpu:.0} µs with its `state_changes` event delivered"
    );
    println!("\nGateway resident memory after the run: {rss:.1} MiB");
}
