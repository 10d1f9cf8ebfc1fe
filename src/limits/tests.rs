//! Unit tests of `limits`.

use super::*;
use std::net::{IpAddr, Ipv4Addr};

fn key(n: u32) -> ClientKey {
    ClientKey::Ip(IpAddr::V4(Ipv4Addr::from(n)))
}

#[test]
fn the_first_refusal_is_request_max_plus_one_and_refusals_count() {
    let rl = RateLimiter::new(Duration::from_secs(60), 3, 16);
    let t0 = Instant::now();
    for _ in 0..3 {
        assert!(rl.check(key(1), t0).is_ok());
    }
    let wait = rl.check(key(1), t0 + Duration::from_secs(10)).unwrap_err();
    assert_eq!(wait, Duration::from_secs(50));
    assert!(
        rl.check(key(2), t0).is_ok(),
        "other clients keep their own budget"
    );
}

#[test]
fn a_window_resets_after_its_length() {
    let rl = RateLimiter::new(Duration::from_secs(1), 1, 16);
    let t0 = Instant::now();
    assert!(rl.check(key(1), t0).is_ok());
    assert!(rl.check(key(1), t0).is_err());
    assert!(rl.check(key(1), t0 + Duration::from_secs(1)).is_ok());
}

#[test]
fn a_newcomer_displaces_the_oldest_client_that_never_authenticated() {
    let rl = RateLimiter::new(Duration::from_secs(60), 2, 2);
    let t0 = Instant::now();
    assert!(rl.check(key(1), t0).is_ok());
    assert!(rl.check(key(2), t0).is_ok());
    assert!(rl.check(key(3), t0).is_ok(), "key 3 gets its own window");
    assert!(!rl.tracks(key(1)), "the oldest newcomer made room");
    assert!(rl.tracks(key(2)) && rl.tracks(key(3)));
    assert_eq!(rl.tracked_keys(), 2);
}

#[test]
fn authenticated_clients_are_never_displaced_and_then_newcomers_share_the_overflow() {
    let rl = RateLimiter::new(Duration::from_secs(60), 2, 2);
    let t0 = Instant::now();
    for k in [1, 2] {
        assert!(rl.check(key(k), t0).is_ok());
        rl.authenticated(key(k), t0);
    }
    // Keys 3.. share one bucket of 2.
    assert!(rl.check(key(3), t0).is_ok());
    assert!(rl.check(key(4), t0).is_ok());
    assert!(rl.check(key(5), t0).is_err());
    // Key 1's window survived them.
    assert!(rl.check(key(1), t0).is_ok());
    assert!(rl.check(key(1), t0).is_err());
    assert!(rl.tracks(key(2)));
    assert_eq!(rl.tracked_keys(), 2);
}

#[test]
fn a_client_spraying_addresses_never_starves_clients_with_the_secret() {
    let rl = RateLimiter::new(Duration::from_secs(60), 3, 8);
    let t0 = Instant::now();
    let known = key(1);
    assert!(rl.check(known, t0).is_ok());
    rl.authenticated(known, t0);
    for n in 0..10_000u32 {
        let sprayed = key(1_000_000 + n);
        assert!(rl.check(sprayed, t0).is_ok(), "each sprayed key is new");
        if n == 5_000 {
            // A client seen for the first time, mid-spray.
            let newcomer = key(2);
            assert!(rl.check(newcomer, t0).is_ok());
            rl.authenticated(newcomer, t0);
            assert!(rl.check(known, t0).is_ok());
        }
    }
    assert!(rl.check(key(2), t0).is_ok(), "the newcomer kept its entry");
    assert!(rl.check(known, t0).is_ok());
    assert!(rl.check(known, t0).is_err(), "its budget still applies");
    let queued = rl.state.lock().newcomers.len();
    assert!(queued <= 8, "{queued} queue items for a table of 8");
}

#[test]
fn a_client_counted_in_the_overflow_gets_its_own_entry_once_it_authenticates() {
    let rl = RateLimiter::new(Duration::from_secs(60), 2, 2);
    let t0 = Instant::now();
    for k in [1, 2] {
        assert!(rl.check(key(k), t0).is_ok());
        rl.authenticated(key(k), t0);
    }
    assert!(rl.check(key(3), t0).is_ok());
    rl.authenticated(key(3), t0);
    assert!(!rl.tracks(key(3)), "no room among authenticated clients");
    // Once key 1's window has expired, the next authentication sweeps it.
    let later = t0 + Duration::from_secs(61);
    assert!(rl.check(key(2), later).is_ok());
    rl.authenticated(key(3), later);
    assert!(rl.tracks(key(3)) && !rl.tracks(key(1)));
    assert!(
        rl.check(key(3), later).is_ok(),
        "the authenticated request counted"
    );
    assert!(rl.check(key(3), later).is_err());
}

#[test]
fn expired_windows_are_swept_to_make_room() {
    let rl = RateLimiter::new(Duration::from_secs(1), 1, 1);
    let t0 = Instant::now();
    assert!(rl.check(key(1), t0).is_ok());
    assert!(rl.check(key(2), t0 + Duration::from_secs(2)).is_ok());
    assert!(
        rl.check(key(2), t0 + Duration::from_secs(2)).is_err(),
        "key 2 got its own window"
    );
    assert_eq!(rl.tracked_keys(), 1);
}

#[test]
fn in_flight_slots_are_limited_and_released_on_drop() {
    let lim = InFlightLimiter::new(2, 16);
    let a = lim.acquire(key(1)).unwrap();
    let _b = lim.acquire(key(1)).unwrap();
    assert!(lim.acquire(key(1)).is_none());
    assert!(lim.acquire(key(2)).is_some());
    drop(a);
    assert!(lim.acquire(key(1)).is_some());
    assert_eq!(lim.in_flight(), 1, "only _b is still held");
}

#[test]
fn in_flight_slots_are_released_when_a_holder_panics() {
    let lim = InFlightLimiter::new(1, 16);
    let cloned = Arc::clone(&lim);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _g = cloned.acquire(key(1));
        panic!("handler bug");
    }));
    assert!(result.is_err());
    assert_eq!(lim.in_flight(), 0);
}
