//! The limiters as state machines, fed (key, time-delta) steps.
//!
//! Input layout: byte 0 picks the rate window, byte 1 the rate limit and
//! table size, byte 2 the number of distinct clients, byte 3 the in-flight
//! limit and table size; then two-byte steps `(op, delta)`. For the rate
//! limiter every step is a request from client `op % clients` after
//! `delta` (on a rough log scale of milliseconds). For the in-flight
//! limiter a step with the high bit of `op` set releases a held slot,
//! otherwise it acquires one.
//!
//! Checked from outside only (no copy of the algorithm):
//! - the table never tracks more than `max_keys` clients;
//! - a refusal's wait is within the window, and positive when it is;
//! - while a client is known to be tracked (its insertion was observed and
//!   its window is live), its verdicts follow the fixed-window rule exactly:
//!   no more than `max` Ok per window, and it is never evicted;
//! - when every client fits in the table, every verdict follows the rule;
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

fn check_rate(window: Duration, max: u32, max_keys: usize, clients: usize, steps: &[(u8, u8)]) {
    let limiter = RateLimiter::new(window, max, max_keys);
    let cap = max_keys.max(1);
    let all_fit = clients <= cap;
    let base = Instant::now();
    let mut elapsed = Duration::ZERO;
    // Clients whose current window is known: (start, requests counted).
    let mut known: HashMap<usize, (Instant, u32)> = HashMap::new();
    for &(op, d) in steps {
        elapsed += delta(d);
        let now = base + elapsed;
        let k = usize::from(op) % clients;
        let before = limiter.tracked_keys();
        let verdict = limiter.check(key(k), now);
        let after = limiter.tracked_keys();

        assert!(after <= cap, "{after} keys tracked, limit {cap}");
        if let Err(wait) = verdict {
            assert!(wait <= window, "wait {wait:?} beyond window {window:?}");
            assert!(window.is_zero() || !wait.is_zero(), "zero wait");
        }
        if max == 0 {
            assert!(verdict.is_err(), "max 0 allowed a request");
        }
        let live = known
            .get(&k)
            .copied()
            .filter(|(start, _)| now.duration_since(*start) < window);
        if let Some((start, count)) = live {
            // Tracked, live window: cannot have been swept or evicted.
            assert_eq!(after, before, "tracked client changed the table size");
            let count = count.saturating_add(1);
            match verdict {
                Ok(()) => assert!(count <= max, "request {count} allowed, max {max}"),
                Err(wait) => {
                    assert!(count > max, "request {count} refused, max {max}");
                    assert_eq!(wait, window - now.duration_since(start));
                }
            }
            known.insert(k, (start, count));
        } else if after == before + 1 || (all_fit && known.contains_key(&k)) {
            // Freshly inserted, or (all fit: never swept) its window reset.
            assert_eq!(verdict.is_ok(), max >= 1, "first request of a window");
            known.insert(k, (now, 1));
        } else {
            assert!(!all_fit, "client {k} not inserted although all clients fit");
            known.remove(&k);
        }
    }
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
