//! The limiters as state machines, fed (key, time-delta) steps.
//!
//! Input layout: byte 0 picks the rate window, byte 1 the rate limit and
//! table size, byte 2 the number of distinct clients, byte 3 the in-flight
//! limit and table size; then two-byte steps `(op, delta)`. For the rate
//! limiter every step is a request from client `op % clients` after
//! `delta` (on a rough log scale of milliseconds); with the high bit of
//! `op` set, the request then authenticates. For the in-flight limiter a
//! step with the high bit of `op` set releases a held slot, otherwise it
//! acquires one.
//!
//! Checked from outside only (no copy of the algorithm):
//! - the table never tracks more than `max_keys` clients;
//! - a refusal's wait is within the window, and positive when it is;
//! - while a client has its own entry, its verdicts follow the fixed-window
//!   rule exactly (request `max + 1` of a window is the first refused, the
//!   wait is `window - elapsed`);
//! - a client that authenticated keeps its entry while its window is live;
//! - a new client gets its own entry whenever the table has room or holds
//!   a client that never authenticated (so no spray of new keys can push
//!   a client into the overflow while such an entry exists);
//! - `in_flight()` equals the number of held guards, never exceeds
//!   `max x (tracked + 1)`, and is 0 once every guard is dropped;
//! - a client under its limit is never refused while the table has room.
#![no_main]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use openclaw_webhooks::client_ip::ClientKey;
use openclaw_webhooks::limits::{InFlightGuard, InFlightLimiter, RateLimiter};

const WINDOWS_MS: [u64; 8] = [0, 1, 5, 50, 100, 1_000, 60_000, 86_400_000];

fn key(i: usize) -> ClientKey {
    match i {
        0 => ClientKey::Unknown,
        1 => ClientKey::UnknownBehindProxy,
        n => ClientKey::Ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n as u8))),
    }
}

fn delta(b: u8) -> Duration {
    let n = u64::from(b & 63);
    Duration::from_millis(match b >> 6 {
        0 => 0,
        1 => n,
        2 => n * 16,
        _ => n * 1024,
    })
}

fuzz_target!(|data: &[u8]| {
    let [w, r, c, f, steps @ ..] = data else {
        return;
    };
    let window = Duration::from_millis(WINDOWS_MS[usize::from(w & 7)]);
    let max = u32::from(r % 5);
    let max_keys = usize::from((r / 5) % 6); // 0 is clamped to 1 by the limiter
    let clients = 1 + usize::from(c % 8);
    let steps: Vec<(u8, u8)> = steps.chunks_exact(2).map(|s| (s[0], s[1])).collect();

    check_rate(window, max, max_keys, clients, &steps);
    let if_max = u32::from(f % 4);
    let if_keys = usize::from((f / 4) % 5);
    check_in_flight(if_max, if_keys, clients, &steps);
});

/// What is known of a client's own entry.
#[derive(Clone, Copy)]
struct Known {
    start: Instant,
    count: u32,
    authenticated: bool,
}

fn check_rate(window: Duration, max: u32, max_keys: usize, clients: usize, steps: &[(u8, u8)]) {
    let limiter = RateLimiter::new(window, max, max_keys);
    let cap = max_keys.max(1);
    let base = Instant::now();
    let mut elapsed = Duration::ZERO;
    // Every client with an entry of its own, and nobody else.
    let mut known: HashMap<usize, Known> = HashMap::new();
    for &(op, d) in steps {
        elapsed += delta(d);
        let now = base + elapsed;
        let k = usize::from(op & 0x7f) % clients;
        let room = limiter.tracked_keys() < cap || known.values().any(|m| !m.authenticated);
        let verdict = limiter.check(key(k), now);

        assert!(
            limiter.tracked_keys() <= cap,
            "more keys tracked than {cap}"
        );
        if let Err(wait) = verdict {
            assert!(wait <= window, "wait {wait:?} beyond window {window:?}");
            assert!(window.is_zero() || !wait.is_zero(), "zero wait");
        }
        if max == 0 {
            assert!(verdict.is_err(), "max 0 allowed a request");
        }
        match known.get_mut(&k) {
            Some(m) if now.duration_since(m.start) < window => {
                m.count = m.count.saturating_add(1);
                match verdict {
                    Ok(()) => assert!(m.count <= max, "request {} allowed, max {max}", m.count),
                    Err(wait) => {
                        assert!(m.count > max, "request {} refused, max {max}", m.count);
                        assert_eq!(wait, window - now.duration_since(m.start));
                    }
                }
            }
            Some(m) => {
                (m.start, m.count) = (now, 1);
                assert_eq!(verdict.is_ok(), max >= 1, "first request of a new window");
            }
            None if limiter.tracks(key(k)) => {
                assert_eq!(verdict.is_ok(), max >= 1, "first request of a new entry");
                known.insert(
                    k,
                    Known {
                        start: now,
                        count: 1,
                        authenticated: false,
                    },
                );
            }
            None => assert!(!room, "client {k} refused an entry although there was room"),
        }

        forget_dropped(&limiter, &mut known, now, window);

        if op & 0x80 != 0 {
            let room = limiter.tracked_keys() < cap || known.values().any(|m| !m.authenticated);
            limiter.authenticated(key(k), now);
            match known.get_mut(&k) {
                Some(m) => m.authenticated = true,
                None if limiter.tracks(key(k)) => {
                    known.insert(
                        k,
                        Known {
                            start: now,
                            count: 1,
                            authenticated: true,
                        },
                    );
                }
                None => assert!(!room, "authenticated client {k} refused an entry"),
            }
        }

        forget_dropped(&limiter, &mut known, now, window);
    }
}

/// Forgets the clients whose entries the limiter dropped, checking that no
/// authenticated client lost its entry during its window.
fn forget_dropped(
    limiter: &RateLimiter,
    known: &mut HashMap<usize, Known>,
    now: Instant,
    window: Duration,
) {
    known.retain(|&c, m| {
        let kept = limiter.tracks(key(c));
        assert!(
            kept || !m.authenticated || now.duration_since(m.start) >= window,
            "authenticated client {c} lost its entry during its window"
        );
        kept
    });
    assert_eq!(known.len(), limiter.tracked_keys(), "untracked entries");
}

fn check_in_flight(max: u32, max_keys: usize, clients: usize, steps: &[(u8, u8)]) {
    let limiter = InFlightLimiter::new(max, max_keys);
    let cap = max_keys.max(1);
    let all_fit = clients <= cap;
    let mut held: Vec<(usize, InFlightGuard)> = Vec::new();
    for &(op, d) in steps {
        if op & 0x80 != 0 {
            if !held.is_empty() {
                let i = usize::from(d) % held.len();
                drop(held.swap_remove(i));
            }
        } else {
            let k = usize::from(op) % clients;
            let mine = held.iter().filter(|(h, _)| *h == k).count() as u32;
            let mut holders: Vec<usize> = held.iter().map(|(h, _)| *h).collect();
            holders.sort_unstable();
            holders.dedup();
            let got = limiter.acquire(key(k));
            if all_fit {
                assert_eq!(
                    got.is_some(),
                    mine < max,
                    "client {k} holds {mine}, max {max}"
                );
            } else if holders.len() < cap && mine < max {
                assert!(got.is_some(), "client {k} under its limit was refused");
            }
            if let Some(g) = got {
                held.push((k, g));
            }
        }
        let n = limiter.in_flight();
        assert_eq!(
            n as usize,
            held.len(),
            "in_flight disagrees with held guards"
        );
        let tracked = clients.min(cap) as u32;
        assert!(
            n <= max * (tracked + 1),
            "{n} in flight, max {max} x ({tracked} + 1)"
        );
    }
    drop(held);
    assert_eq!(limiter.in_flight(), 0, "slots leaked");
}
