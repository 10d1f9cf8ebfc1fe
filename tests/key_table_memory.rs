//! What one tracked client costs the rate limiter in heap memory: the
//! figure behind the default `maxTrackedKeys`, recorded in BENCHMARKS.md.
//! A counting allocator measures the table filled to the default size with
//! IPv6 keys (the largest), then after a spray has cycled it many times.
//! This file holds one test, so nothing else allocates while it measures.

#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use openclaw_webhooks::client_ip::ClientKey;
use openclaw_webhooks::config::Limits;
use openclaw_webhooks::limits::RateLimiter;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter only observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bound the default table size was chosen under (measured: 162 bytes,
/// with the hash table at half load, its worst case after a resize).
const MAX_BYTES_PER_KEY: usize = 192;

fn v6(n: u32) -> ClientKey {
    ClientKey::Ip(IpAddr::V6(Ipv6Addr::new(
        0x2001,
        0xdb8,
        (n >> 16) as u16,
        n as u16,
        0,
        0,
        0,
        0,
    )))
}

#[test]
fn a_tracked_client_costs_under_192_bytes_at_the_default_table_size() {
    let keys = Limits::default().max_tracked_keys;
    let before = LIVE.load(Ordering::Relaxed);
    let limiter = RateLimiter::new(Duration::from_secs(60), 120, keys);
    let t0 = Instant::now();
    for n in 0..keys as u32 {
        let _ = limiter.check(v6(n), t0);
    }
    assert_eq!(limiter.tracked_keys(), keys);
    let full = LIVE.load(Ordering::Relaxed) - before;
    // A spray of four times the table, every key new, one authentication
    // in a hundred: the table and its queue stay the same size.
    for n in 0..4 * keys as u32 {
        let k = v6(keys as u32 + n);
        let _ = limiter.check(k, t0);
        if n % 100 == 0 {
            limiter.authenticated(k, t0);
        }
    }
    let sprayed = LIVE.load(Ordering::Relaxed) - before;
    let per_key = full.max(sprayed) / keys;
    println!(
        "{keys} keys: {full} bytes filled ({} per key), {sprayed} bytes after the spray ({} per key)",
        full / keys,
        sprayed / keys
    );
    assert!(
        per_key <= MAX_BYTES_PER_KEY,
        "{per_key} bytes per tracked key"
    );
}
