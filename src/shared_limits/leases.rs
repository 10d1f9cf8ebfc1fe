//! The in-flight leases one route holds in Redis on this node, kept by one
//! task on the link's runtime: it renews every live lease together, one
//! script call per lease set every third of a lease, and sends releases in
//! batches, one pipelined round trip for all the releases that queued up
//! while the previous one was on the wire. A request thus pays one round
//! trip for its limits (the decision); its release and renewals ride on
//! shared ones.
//!
//! A release still queued when the same client's next decision is made on
//! this node goes with that decision instead ([`Leases::take_released`]),
//! removed in the same script before it counts: a client that sends its
//! next request as soon as an answer arrives never finds its own finished
//! request still holding a slot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{call, scripts, RedisLink};

/// Leases held and released, shared by a route's slots and its keeper.
#[derive(Default)]
pub(super) struct Leases {
    /// Lease set key → members held by running requests.
    live: Mutex<HashMap<String, HashSet<String>>>,
    /// Released leases not yet removed in Redis, by lease set key.
    released: Mutex<HashMap<String, Vec<String>>>,
    /// Woken by a release, and when the route's limiter goes away.
    wake: Notify,
}

impl Leases {
    /// Starts the keeper of a route's leases on the link's runtime. It ends
    /// when the limiter is dropped ([`Leases::close`]) or the link stops.
    pub fn start(link: &Arc<RedisLink>, lease: Duration) -> Arc<Self> {
        let leases = Arc::new(Self::default());
        link.handle()
            .spawn(keep(Arc::clone(link), Arc::clone(&leases), lease));
        leases
    }

    /// A lease Redis granted: renewed from now on.
    pub fn hold(&self, key: &str, member: &str) {
        self.live
            .lock()
            .entry(key.to_owned())
            .or_default()
            .insert(member.to_owned());
    }

    /// A lease's request ended: no longer renewed, removed in Redis with
    /// the next batch.
    pub fn release(&self, key: String, member: String) {
        {
            let mut live = self.live.lock();
            if let Some(members) = live.get_mut(&key) {
                members.remove(&member);
                if members.is_empty() {
                    live.remove(&key);
                }
            }
        }
        self.released.lock().entry(key).or_default().push(member);
        self.wake.notify_one();
    }

    /// The released leases of `key` still queued, for a decision to remove
    /// before it counts; [`Leases::requeue`] them if it could not be made.
    pub fn take_released(&self, key: &str) -> Vec<String> {
        self.released.lock().remove(key).unwrap_or_default()
    }

    pub fn requeue(&self, key: &str, members: Vec<String>) {
        if !members.is_empty() {
            self.released
                .lock()
                .entry(key.to_owned())
                .or_default()
                .extend(members);
            self.wake.notify_one();
        }
    }

    /// The limiter is gone: the keeper sends what is left and ends.
    pub fn close(&self) {
        self.wake.notify_one();
    }
}

async fn keep(link: Arc<RedisLink>, leases: Arc<Leases>, lease: Duration) {
    let every = lease / 3;
    let lease_ms = lease.as_millis().max(1) as u64;
    let mut next_renewal = tokio::time::Instant::now() + every;
    loop {
        tokio::select! {
            () = leases.wake.notified() => {}
            () = tokio::time::sleep_until(next_renewal) => {
                renew(&link, &leases, lease_ms).await;
                next_renewal = tokio::time::Instant::now() + every;
            }
        }
        send_releases(&link, &leases).await;
        if Arc::strong_count(&leases) == 1 {
            return;
        }
    }
}

/// Extends every live lease, one script call per lease set. A lease that
/// expired meanwhile (Redis was away for longer than a lease) stays gone.
async fn renew(link: &Arc<RedisLink>, leases: &Leases, lease_ms: u64) {
    let sets: Vec<(String, Vec<String>)> = leases
        .live
        .lock()
        .iter()
        .map(|(key, members)| (key.clone(), members.iter().cloned().collect()))
        .collect();
    for (key, members) in sets {
        let mut invocation = scripts::RENEW.prepare_invoke();
        invocation.key(&key).arg(lease_ms).arg(&members);
        // A failure is counted and logged by the link; the next renewal
        // tries again well before the lease runs out.
        let _ = call::<i64>(link, invocation).await;
    }
}

/// Removes the released leases in Redis: one pipelined round trip, one
/// `ZREM` per lease set. Without a connection they lapse by themselves.
async fn send_releases(link: &Arc<RedisLink>, leases: &Leases) {
    let released = std::mem::take(&mut *leases.released.lock());
    if released.is_empty() {
        return;
    }
    let Some(mut conn) = link.connection() else {
        return;
    };
    let mut pipe = redis::pipe();
    for (key, members) in &released {
        pipe.cmd("ZREM").arg(key).arg(members).ignore();
    }
    match tokio::time::timeout(link.timeout, pipe.query_async::<()>(&mut conn)).await {
        Ok(Ok(())) => link.answered(),
        Ok(Err(e)) => link.failed(&e.to_string()),
        Err(_) => link.failed("no answer to a release in time"),
    }
}
