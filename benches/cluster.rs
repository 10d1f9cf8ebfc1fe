//! Cluster benchmark: two Gateways on one PostgreSQL schema, the load
//! split evenly between them (as a load balancer would), against one
//! Gateway on its embedded SQLite store, same client, same connections.
//! Reports `get_flow`, `list_flows` (1,000 flows) and durable
//! `create_flow` as req/s and as a ratio to the single node; then
//! `get_flow` and `create_flow` on two more Gateways that reach both
//! services over TLS (through `testkit::TlsProxy`, which terminates TLS on
//! the same cores), as a ratio to the plain two nodes.
//!
//! Run with `./scripts/bench --cluster` (it builds the release Gateway
//! first). Needs the PostgreSQL of the cluster tests
//! (`OPENCLAW_TEST_POSTGRES_URL`). Environment: `BENCH_SECONDS` (per
//! scenario, default 5), `BENCH_CONNECTIONS` (default 16, split between the
//! nodes).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{
    gateway_config, post_json, redis_addr, redis_url, CaBundle, Client, Gateway, PgSchema,
    TlsProxy, SECRET,
};

/// Builds a scenario's request from the id of the flow to read.
type Request = dyn Fn(&str) -> Vec<u8>;

fn main() {
    let seconds: u64 = env_or("BENCH_SECONDS", 5);
    let conns: usize = env_or("BENCH_CONNECTIONS", 16);
    let duration = Duration::from_secs(seconds);

    let single = Gateway::start(&bench_config(None));
    let schema = PgSchema::new("bench_cluster");
    let cluster_cfg = bench_config(Some((&schema.url(), &redis_url())));
    let (a, b) = (Gateway::start(&cluster_cfg), Gateway::start(&cluster_cfg));

    println!(
        "# Cluster benchmark: {conns} keep-alive connections, {seconds} s per scenario; \
         two Gateways on PostgreSQL (load split evenly) against one on SQLite"
    );
    println!();
    println!("| scenario | single node (SQLite) req/s | two nodes (PostgreSQL) req/s | ratio | p50 ms (two nodes) | p99 ms (two nodes) | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let single_nodes = [single.addr];
    let two_nodes = [a.addr, b.addr];
    let setups: [(&[SocketAddr], String); 2] = [
        (&single_nodes, prepare(single.addr, conns)),
        (&two_nodes, prepare(a.addr, conns)),
    ];
    let scenarios: [(&str, Box<Request>); 3] = [
        (
            "get_flow",
            Box::new(|flow_id: &str| {
                post_json(
                    "/hooks/bench",
                    SECRET,
                    &[],
                    &format!(r#"{{"action":"get_flow","flowId":"{flow_id}"}}"#),
                )
            }),
        ),
        (
            "list_flows (1,000 flows)",
            Box::new(|_: &str| post_json("/hooks/list", SECRET, &[], r#"{"action":"list_flows"}"#)),
        ),
        (
            "create_flow (durable)",
            Box::new(|_: &str| {
                post_json(
                    "/hooks/bench",
                    SECRET,
                    &[],
                    r#"{"action":"create_flow","goal":"benchmark create"}"#,
                )
            }),
        ),
    ];
    for (name, request) in &scenarios {
        compare(name, request, &setups[0], &setups[1], conns, duration);
    }
    let tls = tls_rows(&setups[1], &scenarios, conns, duration);
    for gw in [&single, &a, &b, &tls[0], &tls[1]] {
        let logs = gw.logs();
        if !logs.is_empty() {
            println!();
            println!("Gateway log (warnings and errors):\n{logs}");
        }
    }
}

/// Runs `request` against `base`, then against `other` (each: its nodes and
/// the flow to read), and prints their row.
fn compare(
    name: &str,
    request: &Request,
    base: &(&[SocketAddr], String),
    other: &(&[SocketAddr], String),
    conns: usize,
    duration: Duration,
) {
    let b = run(base.0, request(&base.1), conns, duration);
    let o = run(other.0, request(&other.1), conns, duration);
    println!(
        "| {name} | {:.0} | {:.0} | {:.2} | {:.3} | {:.3} | {} |",
        b.rps,
        o.rps,
        o.rps / b.rps,
        o.p50_ms,
        o.p99_ms,
        o.errors + b.errors
    );
}

/// `get_flow` and durable `create_flow` on two more Gateways reaching
/// PostgreSQL and Redis over TLS, against the plain two nodes (`plain`:
/// their addresses and the flow to read); returns the TLS Gateways.
fn tls_rows(
    plain: &(&[SocketAddr], String),
    scenarios: &[(&str, Box<Request>); 3],
    conns: usize,
    duration: Duration,
) -> [Gateway; 2] {
    let (pg, redis) = (
        TlsProxy::postgres(PgSchema::server_addr()),
        TlsProxy::redis(redis_addr()),
    );
    let schema = PgSchema::new("bench_cluster_tls");
    let url = format!("{}&sslmode=require", schema.url_through(pg.addr()));
    let config = bench_config(Some((&url, &format!("rediss://{}/", redis.addr()))));
    let bundle = CaBundle::of(&[&pg, &redis]);
    let env = [("SSL_CERT_FILE", bundle.path())];
    let (a, b) = (
        Gateway::start_with_env(&config, &env),
        Gateway::start_with_env(&config, &env),
    );
    let flow = prepare(a.addr, conns);
    let nodes = [a.addr, b.addr];
    println!();
    println!("| scenario | two nodes req/s | two nodes over TLS req/s | ratio | p50 ms (TLS) | p99 ms (TLS) | errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let over_tls: (&[SocketAddr], String) = (&nodes, flow);
    for (name, request) in scenarios.iter().filter(|(n, _)| !n.starts_with("list")) {
        compare(name, request, plain, &over_tls, conns, duration);
    }
    assert!(pg.sessions() > 0 && redis.sessions() > 0);
    [a, b]
}

/// A flow to read and 1,000 flows of another session to list; returns the
/// flow's id.
fn prepare(addr: SocketAddr, conns: usize) -> String {
    let res = Client::new(addr).send(&post_json(
        "/hooks/bench",
        SECRET,
        &[],
        r#"{"action":"create_flow","goal":"bench flow"}"#,
    ));
    assert_eq!(res.status, 200, "{}", res.text);
    let flow_id = res.json["result"]["flow"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    let fill = Arc::new(post_json(
        "/hooks/list",
        SECRET,
        &[],
        r#"{"action":"create_flow","goal":"fill"}"#,
    ));
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let fill = Arc::clone(&fill);
            let share = 1000 / conns + usize::from(i < 1000 % conns);
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                for _ in 0..share {
                    assert_eq!(c.send_status(&fill), 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    flow_id
}

/// Two routes (a flow to read and 1,000 to list live in different
/// sessions), limits out of the way; on PostgreSQL at `postgres` if given.
fn bench_config(services: Option<(&str, &str)>) -> Value {
    let route =
        |path: &str, session: &str| json!({"path": path, "sessionKey": session, "secret": SECRET});
    let mut extra = json!({"logging": {"level": "warn"}});
    if let Some((postgres, redis)) = services {
        extra["cluster"] = json!({
            "postgres": {"url": postgres, "poolSize": 8},
            // The limits count in Redis (each request pays its round
            // trips), under a prefix of this run's own.
            "redis": {"url": redis, "keyPrefix": testkit::redis_prefix("bench")}
        });
    }
    gateway_config(
        json!({
            "workers": 2,
            "limits": {
                "rateLimitMaxRequests": 1_000_000, "rateLimitWindowMs": 1000,
                "maxInFlight": 100_000, "maxTrackedKeys": 4096
            },
            "routes": {
                "bench": route("/hooks/bench", "agent:bench:main"),
                "list": route("/hooks/list", "agent:bench:list"),
            }
        }),
        extra,
    )
}

struct Stats {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

/// Closed loop: `conns` connections spread over `nodes`, each sending
/// `request` until `duration` has passed.
fn run(nodes: &[SocketAddr], request: Vec<u8>, conns: usize, duration: Duration) -> Stats {
    let request = Arc::new(request);
    let end = Instant::now() + duration;
    let handles: Vec<_> = (0..conns)
        .map(|i| {
            let (addr, request) = (nodes[i % nodes.len()], Arc::clone(&request));
            std::thread::spawn(move || {
                let mut c = Client::new(addr);
                let (mut lat, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < end {
                    let t = Instant::now();
                    if c.send_status(&request) == 200 {
                        lat.push(t.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for h in handles {
        let (l, e) = h.join().unwrap();
        lat.extend(l);
        errors += e;
    }
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Stats {
        rps: lat.len() as f64 / duration.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
