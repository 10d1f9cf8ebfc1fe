//! Fixed-window rate limiting and in-flight limiting, per route and client.
//!
//! State lives in `parking_lot` mutexes held for a few instructions, built
//! once per route before the server starts, and shared by every worker. Key
//! tables are bounded: when a table is full of live entries, new clients
//! share one overflow entry instead of evicting a live counter (evicting
//! would let an attacker who rotates addresses reset other clients' windows).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::client_ip::ClientKey;

/// A fixed-window rate limiter. The window of a key starts at its first
/// request; every request counts, rejected ones included; request
/// `max + 1` within a window is the first refused.
#[derive(Debug)]
pub struct RateLimiter {
    window: Duration,
    max_requests: u32,
    max_keys: usize,
    state: Mutex<RateState>,
}

#[derive(Debug)]
struct RateState {
    windows: HashMap<ClientKey, Window>,
    overflow: Window,
    last_sweep: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn hit(&mut self, now: Instant, window: Duration, max: u32) -> Result<(), Duration> {
        if now.duration_since(self.start) >= window {
            *self = Window {
                start: now,
                count: 0,
            };
        }
        self.count = self.count.saturating_add(1);
        if self.count > max {
            Err(window.saturating_sub(now.duration_since(self.start)))
        } else {
            Ok(())
        }
    }
}

impl RateLimiter {
    pub fn new(window: Duration, max_requests: u32, max_keys: usize) -> Self {
        let now = Instant::now();
        Self {
            window,
            max_requests,
            max_keys: max_keys.max(1),
            state: Mutex::new(RateState {
                windows: HashMap::new(),
                overflow: Window {
                    start: now,
                    count: 0,
                },
                last_sweep: now,
            }),
        }
    }

    /// Counts one request. `Err` carries the time until the window resets.
    pub fn check(&self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        let (window, max) = (self.window, self.max_requests);
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Some(w) = state.windows.get_mut(&key) {
            return w.hit(now, window, max);
        }
        if state.windows.len() >= self.max_keys
            && now.duration_since(state.last_sweep) >= self.sweep_every()
        {
            state
                .windows
                .retain(|_, w| now.duration_since(w.start) < window);
            state.last_sweep = now;
        }
        if state.windows.len() >= self.max_keys {
            return state.overflow.hit(now, window, max);
        }
        let mut fresh = Window {
            start: now,
            count: 0,
        };
        let verdict = fresh.hit(now, window, max);
        state.windows.insert(key, fresh);
        verdict
    }

    /// Sweeping a full table costs a pass over it, so it runs at most this
    /// often; in between, new keys go to the overflow bucket.
    fn sweep_every(&self) -> Duration {
        (self.window / 8).min(Duration::from_secs(1))
    }

    pub fn tracked_keys(&self) -> usize {
        self.state.lock().windows.len()
    }
}

/// Limits concurrent requests per client. A slot is held by an
/// [`InFlightGuard`] and released when the guard drops, which also happens
/// when the client disconnects or the handler panics.
#[derive(Debug)]
pub struct InFlightLimiter {
    max: u32,
    max_keys: usize,
    state: Mutex<InFlightState>,
}

#[derive(Debug, Default)]
struct InFlightState {
    counts: HashMap<ClientKey, u32>,
    overflow: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Key(ClientKey),
    Overflow,
}

impl InFlightLimiter {
    pub fn new(max: u32, max_keys: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_keys: max_keys.max(1),
            state: Mutex::new(InFlightState::default()),
        })
    }

    /// Takes a slot, or `None` when the client already has `max` in flight.
    pub fn acquire(self: &Arc<Self>, key: ClientKey) -> Option<InFlightGuard> {
        let mut state = self.state.lock();
        let slot = if state.counts.contains_key(&key) || state.counts.len() < self.max_keys {
            Slot::Key(key)
        } else {
            Slot::Overflow
        };
        let count = match slot {
            Slot::Key(k) => state.counts.entry(k).or_insert(0),
            Slot::Overflow => &mut state.overflow,
        };
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(InFlightGuard {
            limiter: Arc::clone(self),
            slot,
        })
    }

    fn release(&self, slot: Slot) {
        let mut state = self.state.lock();
        match slot {
            Slot::Key(k) => {
                if let Some(count) = state.counts.get_mut(&k) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        state.counts.remove(&k);
                    }
                }
            }
            Slot::Overflow => state.overflow = state.overflow.saturating_sub(1),
        }
    }

    /// Requests currently holding a slot, across all clients.
    pub fn in_flight(&self) -> u32 {
        let state = self.state.lock();
        state.counts.values().sum::<u32>() + state.overflow
    }
}

/// A held in-flight slot; dropping it releases the slot exactly once.
#[derive(Debug)]
pub struct InFlightGuard {
    limiter: Arc<InFlightLimiter>,
    slot: Slot,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.limiter.release(self.slot);
    }
}

#[cfg(test)]
mod tests {
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
    fn a_full_table_sends_new_clients_to_the_overflow_bucket_without_evicting() {
        let rl = RateLimiter::new(Duration::from_secs(60), 2, 2);
        let t0 = Instant::now();
        assert!(rl.check(key(1), t0).is_ok());
        assert!(rl.check(key(2), t0).is_ok());
        // Keys 3.. share one bucket of 2.
        assert!(rl.check(key(3), t0).is_ok());
        assert!(rl.check(key(4), t0).is_ok());
        assert!(rl.check(key(5), t0).is_err());
        // Key 1's window survived.
        assert!(rl.check(key(1), t0).is_ok());
        assert!(rl.check(key(1), t0).is_err());
        assert_eq!(rl.tracked_keys(), 2);
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
}
