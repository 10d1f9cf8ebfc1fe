//! Limiter benchmark: what one limit decision costs a request, in-process
//! (`limits`) and cluster-wide in Redis (`shared_limits`: the rate window
//! and the in-flight lease in one Lua script round trip to the Redis at
//! `OPENCLAW_TEST_REDIS_URL`, default the local one).
//!
//! - One decision at a time (latency: p50, p99).
//! - 32 decisions in flight from one runtime, as a busy worker would
//!   (throughput).
//!
//! Run with `./scripts/bench`. Environment: `BENCH_DECISIONS` (default
//! 20,000 per scenario).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_webhooks::client_ip::ClientKey;
use openclaw_webhooks::limits::{InFlightLimiter, RateLimiter};
use openclaw_webhooks::shared_limits::{
    Decision, Limits, RedisLink, DEFAULT_LEASE, DEFAULT_TIMEOUT,
};

const WINDOW: Duration = Duration::from_secs(3600);
const CONCURRENCY: usize = 32;

fn client(i: usize) -> ClientKey {
    ClientKey::Ip(IpAddr::from([10, 1, (i >> 8) as u8, i as u8]))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn row(name: &str, mut samples: Vec<Duration>, per_sec: f64) {
    samples.sort();
    println!(
        "| {name} | {:.4} | {:.4} | {per_sec:.0} |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99)
    );
}

fn main() {
    let n: usize = std::env::var("BENCH_DECISIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = testkit::redis_prefix("bench");
    println!("# Limiter benchmark: {n} decisions per scenario, 256 clients, {CONCURRENCY} in flight for throughput");
    println!();
    println!("| decision | p50 ms | p99 ms | decisions/s |");
    println!("|---|---:|---:|---:|");

    let local = RateLimiter::new(WINDOW, u32::MAX, 4096);
    let (samples, rate) = measure_sync(n, |i| {
        let _ = local.check(client(i % 256), Instant::now());
    });
    row("rate, in-process (one after another)", samples, rate);

    let local_in_flight = InFlightLimiter::new(u32::MAX, 4096);
    let (samples, rate) = measure_sync(n, |i| {
        drop(local_in_flight.acquire(client(i % 256)));
    });
    row(
        "in-flight acquire + release, in-process (one after another)",
        samples,
        rate,
    );

    rt.block_on(async {
        let link = RedisLink::start(&testkit::redis_url(), DEFAULT_TIMEOUT).unwrap();
        assert!(
            link.connect(Duration::from_secs(5)).await,
            "Redis did not answer"
        );
        let mut limits = Limits::local(WINDOW, u32::MAX, u32::MAX, 4096);
        limits.share(&link, &prefix, "bench", DEFAULT_LEASE);
        let limits = Arc::new(limits);
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let t = Instant::now();
            admitted(&limits, i).await;
            samples.push(t.elapsed());
        }
        let rate = concurrent(n, {
            let limits = Arc::clone(&limits);
            move |i| {
                let limits = Arc::clone(&limits);
                async move { admitted(&limits, i).await }
            }
        })
        .await;
        row(
            &format!(
                "window + lease, Redis: one script, release batched after ({CONCURRENCY} in flight)"
            ),
            samples,
            rate,
        );
        assert!(!link.is_down(), "Redis failed during the benchmark");
    });
}

/// One request's decision, its lease given back at once.
async fn admitted(limits: &Limits, i: usize) {
    let decision = limits.decide(client(i % 256)).await;
    assert!(
        matches!(decision, Decision::Slot(_)),
        "a request was refused"
    );
}

fn measure_sync(n: usize, mut f: impl FnMut(usize)) -> (Vec<Duration>, f64) {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i);
        samples.push(t.elapsed());
    }
    let t = Instant::now();
    for i in 0..n {
        f(i);
    }
    (samples, n as f64 / t.elapsed().as_secs_f64())
}

async fn concurrent<F, Fut>(n: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let local = tokio::task::LocalSet::new();
    let t = Instant::now();
    local
        .run_until(async {
            let next = std::rc::Rc::new(std::cell::Cell::new(0usize));
            let f = std::rc::Rc::new(f);
            let workers: Vec<_> = (0..CONCURRENCY)
                .map(|_| {
                    let (next, f) = (next.clone(), f.clone());
                    tokio::task::spawn_local(async move {
                        loop {
                            let i = next.get();
                            if i >= n {
                                break;
                            }
                            next.set(i + 1);
                            f(i).await;
                        }
                    })
                })
                .collect();
            for w in workers {
                w.await.unwrap();
            }
        })
        .await;
    n as f64 / t.elapsed().as_secs_f64()
}
