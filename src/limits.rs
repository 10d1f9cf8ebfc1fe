//! Fixed-window rate limiting and in-flight limiting, per route and client.
//!
//! State lives in `parking_lot` mutexes held for a few instructions, built
//! once per route before the server starts, and shared by every worker. Key
//! tables are bounded. The rate limiter's table protects the clients that
//! have presented the route's secret: a newcomer takes the place of the
//! oldest entry that never authenticated, never of one that did, so a
//! client that sprays addresses only ever displaces its own entries (and
//! those of other clients without the secret). New clients share one
//! overflow entry only when every tracked client has authenticated.
//!
//! The in-flight table needs no such rule: a request takes its slot after
//! the rate limit and gives it back, without waiting on anything, when its
//! secret is refused, so only authenticated requests hold slots for long.

use std::collections::{HashMap, VecDeque};
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
    entries: HashMap<ClientKey, Entry>,
    /// Entries that have not authenticated, oldest first, each with the
    /// sequence number of its insertion. An item whose entry has since
    /// authenticated, left or been inserted again is stale and skipped.
    newcomers: VecDeque<(ClientKey, u64)>,
    next_seq: u64,
    overflow: Window,
    last_sweep: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    window: Window,
    seq: u64,
    /// The client presented the route's secret while this entry existed:
    /// the entry is never displaced by a newcomer.
    authenticated: bool,
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
    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn max_requests(&self) -> u32 {
        self.max_requests
    }

    pub fn new(window: Duration, max_requests: u32, max_keys: usize) -> Self {
        let now = Instant::now();
        Self {
            window,
            max_requests,
            max_keys: max_keys.max(1),
            state: Mutex::new(RateState {
                entries: HashMap::new(),
                newcomers: VecDeque::new(),
                next_seq: 0,
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
        if let Some(e) = state.entries.get_mut(&key) {
            return e.window.hit(now, window, max);
        }
        if !self.make_room(state, now) {
            return state.overflow.hit(now, window, max);
        }
        let mut fresh = Window {
            start: now,
            count: 0,
        };
        let verdict = fresh.hit(now, window, max);
        let seq = state.next_seq;
        state.next_seq += 1;
        state.entries.insert(
            key,
            Entry {
                window: fresh,
                seq,
                authenticated: false,
            },
        );
        state.newcomers.push_back((key, seq));
        verdict
    }

    /// Records that a request from `key`, already counted by
    /// [`check`](Self::check), presented the route's secret. The client's
    /// entry is protected from newcomers from now on; a client that was
    /// counted in the overflow entry gets its own entry (this request
    /// counted in it) when there is room or a newcomer to displace.
    pub fn authenticated(&self, key: ClientKey, now: Instant) {
        let mut state = self.state.lock();
        let state = &mut *state;
        if let Some(e) = state.entries.get_mut(&key) {
            e.authenticated = true;
            return;
        }
        if self.make_room(state, now) {
            let seq = state.next_seq;
            state.next_seq += 1;
            let window = Window {
                start: now,
                count: 1,
            };
            state.entries.insert(
                key,
                Entry {
                    window,
                    seq,
                    authenticated: true,
                },
            );
        }
    }

    /// Whether there is room for one more entry, making it if needed: first
    /// by sweeping expired windows (at most every [`Self::sweep_every`]),
    /// then by displacing the oldest entry that never authenticated.
    fn make_room(&self, state: &mut RateState, now: Instant) -> bool {
        if state.entries.len() < self.max_keys {
            return true;
        }
        if now.duration_since(state.last_sweep) >= self.sweep_every() {
            let window = self.window;
            state
                .entries
                .retain(|_, e| now.duration_since(e.window.start) < window);
            let entries = &state.entries;
            state
                .newcomers
                .retain(|(k, seq)| entries.get(k).is_some_and(|e| is_newcomer(e, *seq)));
            state.last_sweep = now;
            if state.entries.len() < self.max_keys {
                return true;
            }
        }
        while let Some((key, seq)) = state.newcomers.pop_front() {
            if state.entries.get(&key).is_some_and(|e| is_newcomer(e, seq)) {
                state.entries.remove(&key);
                return true;
            }
        }
        false
    }

    /// Sweeping a full table costs a pass over it, so it runs at most this
    /// often.
    fn sweep_every(&self) -> Duration {
        (self.window / 8).min(Duration::from_secs(1))
    }

    /// Clients with an entry of their own.
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().entries.len()
    }

    /// Whether `key` has an entry of its own (rather than the overflow one).
    pub fn tracks(&self, key: ClientKey) -> bool {
        self.state.lock().entries.contains_key(&key)
    }
}

/// Whether `e` is still the unauthenticated entry that queue item `seq`
/// was pushed for.
fn is_newcomer(e: &Entry, seq: u64) -> bool {
    e.seq == seq && !e.authenticated
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
    pub fn max(&self) -> u32 {
        self.max
    }

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
mod tests;
