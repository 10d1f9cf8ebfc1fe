//! Against the real Redis (`testkit::redis_url`), each test under its own
//! key prefix: two links stand for two Gateways.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

const ROUTE: &str = "zapier";
const WINDOW: Duration = Duration::from_secs(60);
const CONNECT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(n: u8) -> ClientKey {
    ClientKey::Ip(std::net::IpAddr::from([10, 0, 0, n]))
}

/// A node: its own link (own connection) to the test Redis.
async fn node(url: &str) -> Arc<RedisLink> {
    let link = RedisLink::start(url, DEFAULT_TIMEOUT).unwrap();
    assert!(link.connect(CONNECT).await, "Redis at {url} did not answer");
    link
}

/// Wide enough never to refuse in a test about the other limit.
const OPEN: u32 = 1_000_000;

/// The test route's limits on the node of `link`, counted in Redis under
/// `prefix`.
fn shared(
    link: &Arc<RedisLink>,
    prefix: &str,
    max_requests: u32,
    max_in_flight: u32,
    lease: Duration,
) -> Limits {
    let mut limits = Limits::local(WINDOW, max_requests, max_in_flight, 64);
    limits.share(link, prefix, ROUTE, lease);
    limits
}

/// The in-flight slot a request of `c` got, if its decision gave one.
async fn acquire(limits: &Limits, c: ClientKey) -> Option<Slot> {
    match limits.decide(c).await {
        Decision::Slot(slot) => Some(slot),
        _ => None,
    }
}

/// Whether the window admitted a request of `c` (`Err`: the time until
/// it resets).
async fn check(limits: &Limits, c: ClientKey) -> Result<(), Duration> {
    match limits.decide(c).await {
        Decision::RateLimited(wait) => Err(wait),
        _ => Ok(()),
    }
}

/// Probes `f` until it holds, at most `within`.
async fn eventually(within: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[test]
fn two_nodes_admit_exactly_the_limit_in_a_window_under_concurrency() {
    let prefix = testkit::redis_prefix("rate");
    runtime().block_on(async {
        let url = testkit::redis_url();
        let nodes = [node(&url).await, node(&url).await];
        let limiters: Vec<Arc<Limits>> = nodes
            .iter()
            .map(|link| Arc::new(shared(link, &prefix, 20, OPEN, DEFAULT_LEASE)))
            .collect();
        let tasks: Vec<_> = (0..60)
            .map(|i| {
                let limiter = Arc::clone(&limiters[i % 2]);
                tokio::spawn(async move { check(&limiter, client(1)).await })
            })
            .collect();
        let mut admitted = 0;
        let mut retry_after = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => admitted += 1,
                Err(wait) => retry_after.push(wait),
            }
        }
        assert_eq!(
            admitted, 20,
            "the route admits 20 per window across both nodes"
        );
        assert!(retry_after.iter().all(|w| *w <= WINDOW && *w > WINDOW / 2));
        // Another client has its own window.
        assert!(check(&limiters[1], client(2)).await.is_ok());
        assert!(!nodes[0].is_down() && !nodes[1].is_down());
    });
}

#[test]
fn in_flight_slots_are_shared_and_a_released_one_is_free_on_every_node() {
    let prefix = testkit::redis_prefix("inflight");
    runtime().block_on(async {
        let url = testkit::redis_url();
        let (a, b) = (node(&url).await, node(&url).await);
        let a = shared(&a, &prefix, OPEN, 2, DEFAULT_LEASE);
        let b = shared(&b, &prefix, OPEN, 2, DEFAULT_LEASE);
        let first = acquire(&a, client(1)).await.expect("slot 1");
        let _second = acquire(&b, client(1)).await.expect("slot 2");
        assert!(matches!(first, Slot::Lease { .. }));
        assert!(
            acquire(&a, client(1)).await.is_none(),
            "2 in flight across the cluster"
        );
        assert!(acquire(&b, client(1)).await.is_none());
        assert!(
            acquire(&b, client(2)).await.is_some(),
            "another client has its own slots"
        );
        drop(first);
        let mut third = None;
        let freed = eventually(Duration::from_secs(5), async || {
            third = acquire(&b, client(1)).await;
            third.is_some()
        })
        .await;
        assert!(freed, "a released slot is free for the other node");
    });
}

#[test]
fn a_killed_nodes_leases_return_once_they_expire_and_a_live_one_is_renewed() {
    let prefix = testkit::redis_prefix("lease");
    let lease = Duration::from_millis(900);
    runtime().block_on(async {
        let url = testkit::redis_url();
        let (a, b) = (node(&url).await, node(&url).await);
        let dying = shared(&a, &prefix, OPEN, 1, lease);
        let other = shared(&b, &prefix, OPEN, 1, lease);
        let live = acquire(&other, client(2)).await.expect("a live lease");

        let held = acquire(&dying, client(1))
            .await
            .expect("the dying node's slot");
        let killed_at = Instant::now();
        // As kill -9 would: no release, no renewal.
        a.halt();
        std::mem::forget(held);
        assert!(
            acquire(&other, client(1)).await.is_none(),
            "the lease still counts"
        );
        let mut slot = None;
        let returned = eventually(lease * 4, async || {
            slot = acquire(&other, client(1)).await;
            slot.is_some()
        })
        .await;
        assert!(returned, "the killed node's slot returns after its lease");
        assert!(
            killed_at.elapsed() >= lease / 2,
            "the slot was free too early: {:?}",
            killed_at.elapsed()
        );

        // The live lease, held for three lease lengths, was renewed.
        tokio::time::sleep(lease * 3).await;
        assert!(
            acquire(&other, client(2)).await.is_none(),
            "a running request keeps its slot"
        );
        drop(live);
    });
}

#[test]
fn a_clients_next_request_on_the_same_node_always_finds_its_last_slot_free() {
    let prefix = testkit::redis_prefix("next");
    runtime().block_on(async {
        let url = testkit::redis_url();
        let link = node(&url).await;
        let limits = shared(&link, &prefix, OPEN, 1, DEFAULT_LEASE);
        // One slot, requests back to back: each ends before the next is
        // decided, so each must be admitted, however late the batch of
        // releases would reach Redis.
        for n in 0..400 {
            let decision = limits.decide(client(1)).await;
            assert!(
                matches!(decision, Decision::Slot(Slot::Lease { .. })),
                "request {n} of a client with one slot was refused"
            );
        }
    });
}

#[test]
fn a_nodes_leases_are_renewed_together_and_released_in_one_batch() {
    let prefix = testkit::redis_prefix("batch");
    let lease = Duration::from_secs(2);
    runtime().block_on(async {
        let url = testkit::redis_url();
        let (a, b) = (node(&url).await, node(&url).await);
        let holder = shared(&a, &prefix, OPEN, 8, lease);
        let other = shared(&b, &prefix, OPEN, 8, lease);
        let mut held = Vec::new();
        for n in 0..8 {
            let slot = acquire(&holder, client(1)).await;
            assert!(slot.is_some(), "slot {n} of 8");
            held.push(slot);
        }
        // Three lease lengths: every one of the eight was kept alive.
        tokio::time::sleep(lease * 3).await;
        assert!(
            acquire(&other, client(1)).await.is_none(),
            "eight running requests keep their eight slots"
        );
        // All released at once; the other node gets all eight back, long
        // before the leases could have lapsed.
        let released_at = Instant::now();
        held.clear();
        let mut taken = Vec::new();
        let returned = eventually(lease / 2, async || {
            if let Some(slot) = acquire(&other, client(1)).await {
                taken.push(slot);
            }
            taken.len() == 8
        })
        .await;
        assert!(
            returned,
            "{} of 8 released slots free after {:?}",
            taken.len(),
            released_at.elapsed()
        );
    });
}

#[test]
fn while_redis_is_unreachable_limits_are_local_and_shared_ones_resume_by_themselves() {
    let prefix = testkit::redis_prefix("fallback");
    let proxy = testkit::TcpProxy::start(testkit::redis_addr());
    runtime().block_on(async {
        let link = node(&format!("redis://{}/", proxy.addr())).await;
        let rate = shared(&link, &prefix, 3, OPEN, DEFAULT_LEASE);
        let in_flight = shared(&link, &prefix, OPEN, 1, DEFAULT_LEASE);
        // Shared: two requests counted in Redis (seen through another node).
        assert!(check(&rate, client(1)).await.is_ok());
        assert!(check(&rate, client(1)).await.is_ok());
        let witness = node(&testkit::redis_url()).await;
        let seen = shared(&witness, &prefix, 3, OPEN, DEFAULT_LEASE);
        assert!(check(&seen, client(1)).await.is_ok(), "third of 3");
        assert!(
            check(&seen, client(1)).await.is_err(),
            "the window is shared"
        );

        let errors_before = BACKEND_ERRORS.load(Ordering::Relaxed);
        proxy.cut();
        let started = Instant::now();
        // Local limits decide: this node's own 3 per window for client 3.
        let mut local = Vec::new();
        for _ in 0..4 {
            local.push(check(&rate, client(3)).await.is_ok());
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "Redis held requests up"
        );
        assert_eq!(local, [true, true, true, false]);
        assert!(link.is_down());
        assert!(
            BACKEND_ERRORS.load(Ordering::Relaxed) > errors_before,
            "counted"
        );
        let slot = acquire(&in_flight, client(3)).await.expect("a local slot");
        assert!(matches!(slot, Slot::Local(_)));
        assert!(
            acquire(&in_flight, client(3)).await.is_none(),
            "the local limit holds"
        );
        drop(slot);

        proxy.restore();
        let resumed = eventually(Duration::from_secs(10), async || {
            // Client 1's shared window is full: a shared answer refuses.
            check(&rate, client(1)).await.is_err() && !link.is_down()
        })
        .await;
        assert!(resumed, "shared limits resume by themselves");
        let lease = acquire(&in_flight, client(4)).await.expect("a lease");
        assert!(matches!(lease, Slot::Lease { .. }));
    });
}

/// Set in the child process of the kill -9 test: the prefix to hold a
/// slot under.
const CHILD_PREFIX: &str = "OPENCLAW_TEST_LEASE_CHILD_PREFIX";

#[test]
fn a_gateway_killed_with_sigkill_frees_its_slots_within_30_s() {
    if let Ok(prefix) = std::env::var(CHILD_PREFIX) {
        // The child: holds the route's only slot for client 1, says so,
        // and runs until it is killed (or its parent goes: stdin closes).
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
        runtime().block_on(async {
            let link = node(&testkit::redis_url()).await;
            let limiter = shared(&link, &prefix, OPEN, 1, DEFAULT_LEASE);
            let _slot = acquire(&limiter, client(1))
                .await
                .expect("the child's slot");
            println!("LEASE-HELD");
            std::future::pending::<()>().await;
        });
        return;
    }
    let prefix = testkit::redis_prefix("sigkill");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shared_limits::tests::a_gateway_killed_with_sigkill_frees_its_slots_within_30_s",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_PREFIX, &prefix)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        // libtest may print the test's name on the same line first.
        let _ = tx.send(lines.any(|l| l.is_ok_and(|l| l.ends_with("LEASE-HELD"))));
    });
    let held = rx.recv_timeout(Duration::from_secs(30)).unwrap_or(false);
    assert!(held, "the child never held its slot");
    runtime().block_on(async {
        let link = node(&testkit::redis_url()).await;
        let limiter = shared(&link, &prefix, OPEN, 1, DEFAULT_LEASE);
        assert!(
            acquire(&limiter, client(1)).await.is_none(),
            "the child holds the slot"
        );
        child.0.kill().unwrap(); // SIGKILL
        child.0.wait().unwrap();
        let killed_at = Instant::now();
        let mut slot = None;
        let freed = eventually(Duration::from_secs(30), async || {
            slot = acquire(&limiter, client(1)).await;
            slot.is_some()
        })
        .await;
        assert!(freed, "the killed node's slot did not return within 30 s");
        assert!(
            killed_at.elapsed() + Duration::from_secs(1) >= DEFAULT_LEASE / 3 * 2,
            "the slot returned before the lease could lapse: {:?}",
            killed_at.elapsed()
        );
    });
}

/// A child process that does not outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn one_round_trip_decides_both_limits_and_a_refused_request_takes_no_slot() {
    let prefix = testkit::redis_prefix("decide");
    runtime().block_on(async {
        let url = testkit::redis_url();
        let (a, b) = (node(&url).await, node(&url).await);
        let nodes = [
            shared(&a, &prefix, 4, 2, DEFAULT_LEASE),
            shared(&b, &prefix, 4, 2, DEFAULT_LEASE),
        ];
        let mut held = Vec::new();
        let mut full = 0;
        for i in 0..4 {
            match nodes[i % 2].decide(client(1)).await {
                Decision::Slot(slot) => held.push(slot),
                Decision::InFlightFull => full += 1,
                _ => panic!("request {i}: the window admits 4"),
            }
        }
        // The window admitted 4; 2 of them found both slots in use.
        assert_eq!((held.len(), full), (2, 2));
        assert!(held.iter().all(|s| matches!(s, Slot::Lease { .. })));
        // The fifth is refused by the window, and takes no slot: once the
        // two held are given back, both slots are free (seen by limits of
        // the same route with a wider window).
        assert!(matches!(
            nodes[0].decide(client(1)).await,
            Decision::RateLimited(wait) if wait <= WINDOW
        ));
        held.clear();
        let roomy = shared(&b, &prefix, OPEN, 2, DEFAULT_LEASE);
        let mut freed = Vec::new();
        let both = eventually(Duration::from_secs(5), async || {
            if let Some(slot) = acquire(&roomy, client(1)).await {
                freed.push(slot);
            }
            freed.len() == 2
        })
        .await;
        assert!(both, "a refused request must not hold a lease");
    });
}
