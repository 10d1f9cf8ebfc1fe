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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{scripts, RedisLink};

/// Most released leases kept for sending while Redis does not take them;
/// beyond it they are left to lapse (within a lease) instead.
const MAX_QUEUED: usize = 65_536;

/// Leases held and released, shared by a route's slots and its keeper.
#[derive(Default)]
pub(super) struct Leases {
    /// Lease set key → members held by running requests.
    live: Mutex<HashMap<String, HashSet<String>>>,
    queue: Mutex<Queue>,
    /// Woken by a release, and when the route's limiter goes away.
    wake: Notify,
    closed: AtomicBool,
}

/// Released leases not yet removed in Redis, by lease set key.
#[derive(Default)]
struct Queue {
    /// Not sent yet.
    released: HashMap<String, Vec<String>>,
    /// In the batch on the wire, not answered yet: a decision made
    /// meanwhile removes them too (removing one twice is harmless).
    sending: HashMap<String, Vec<String>>,
}

impl Queue {
    fn queued(&self) -> usize {
        self.released.values().map(Vec::len).sum()
    }
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
        self.queue
            .lock()
            .released
            .entry(key)
            .or_default()
            .push(member);
        self.wake.notify_one();
    }

    /// The released leases of `key` not yet removed in Redis, for a
    /// decision to remove before it counts; [`Leases::requeue`] them if it
    /// could not be made.
    pub fn take_released(&self, key: &str) -> Vec<String> {
        let mut queue = self.queue.lock();
        let mut members = queue.released.remove(key).unwrap_or_default();
        if let Some(sending) = queue.sending.get(key) {
            members.extend(sending.iter().cloned());
        }
        members
    }

    /// Releases a decision took but could not send: sent with the next
    /// batch.
    pub fn requeue(&self, key: &str, members: Vec<String>) {
        if self.put_back(key, members) {
            self.wake.notify_one();
        }
    }

    /// Queues `members` again, unless the queue is full; whether it did.
    fn put_back(&self, key: &str, members: Vec<String>) -> bool {
        let mut queue = self.queue.lock();
        if members.is_empty() || queue.queued() + members.len() > MAX_QUEUED {
            return false;
        }
        queue
            .released
            .entry(key.to_owned())
            .or_default()
            .extend(members);
        true
    }

    /// The limiter is gone: the keeper sends what is left and ends.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
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
        if leases.closed.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Extends every live lease, in one pipelined round trip (one script per
/// lease set). A lease that expired meanwhile (Redis was away for longer
/// than a lease) stays gone. A failure is counted and logged by the link;
/// the next renewal, a third of a lease later, tries again.
async fn renew(link: &Arc<RedisLink>, leases: &Leases, lease_ms: u64) {
    let mut pipe = redis::pipe();
    {
        let live = leases.live.lock();
        if live.is_empty() {
            return;
        }
        for (key, members) in live.iter() {
            pipe.cmd("EVAL")
                .arg(scripts::RENEW)
                .arg(1)
                .arg(key)
                .arg(lease_ms)
                .arg(members.iter().collect::<Vec<_>>())
                .ignore();
        }
    }
    send(link, &pipe, "a renewal").await;
}

/// Removes the released leases in Redis: one pipelined round trip, one
/// `ZREM` per lease set. What does not get through is sent again with
/// the next batch, at the next release or renewal, not at once (no loop
/// while Redis is away; a lease lapses anyway).
async fn send_releases(link: &Arc<RedisLink>, leases: &Leases) {
    let mut pipe = redis::pipe();
    {
        let mut queue = leases.queue.lock();
        if queue.released.is_empty() {
            return;
        }
        for (key, members) in &queue.released {
            pipe.cmd("ZREM").arg(key).arg(members).ignore();
        }
        queue.sending = std::mem::take(&mut queue.released);
    }
    let sent = send(link, &pipe, "a release").await;
    let batch = std::mem::take(&mut leases.queue.lock().sending);
    if !sent {
        for (key, members) in batch {
            leases.put_back(&key, members);
        }
    }
}

/// Sends `pipe` with the link's deadline; whether Redis took it.
async fn send(link: &Arc<RedisLink>, pipe: &redis::Pipeline, what: &str) -> bool {
    let Some(mut conn) = link.connection() else {
        return false;
    };
    match tokio::time::timeout(link.timeout, pipe.query_async::<()>(&mut conn)).await {
        Ok(Ok(())) => {
            link.answered();
            true
        }
        Ok(Err(e)) => {
            link.failed(&e.to_string());
            false
        }
        Err(_) => {
            link.failed(&format!("no answer to {what} in time"));
            false
        }
    }
}
