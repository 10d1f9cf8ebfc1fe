//! A route's limits as the pipeline uses them ([`Rate`], [`InFlight`]): in
//! process on a single Gateway, or cluster-wide, with rate windows and
//! in-flight slots kept in Redis so several Gateways behind one load
//! balancer count together.
//!
//! - Each decision is one Lua script (`scripts`), atomic in Redis; a
//!   request on a route whose limits are both in Redis has its window and
//!   its lease decided by one script, one round trip ([`decide`]).
//! - Keys are `<prefix>{<routeId>}:rate:<client>` and
//!   `<prefix>{<routeId>}:inflight:<client>`: the prefix separates
//!   clusters sharing a Redis, the hash tag keeps a route's keys in one
//!   slot of a Redis Cluster.
//! - An in-flight slot is a lease in a sorted set scored by its expiry.
//!   While the request runs, the lease is renewed every third of its
//!   length; a released slot is removed with the next batch of releases
//!   (`leases`: one task per route renews and releases for all its
//!   requests). A node that dies stops renewing, and its leases lapse
//!   after at most [`DEFAULT_LEASE`].
//! - Redis never holds a request up for longer than the link's timeout:
//!   an error or a late answer is counted, logged once per outage, and the
//!   request is judged by the route's local limiters instead (the
//!   in-process ones of `limits`), until Redis answers again.

mod leases;
mod link;
mod scripts;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

pub use link::{RedisLink, BACKEND_ERRORS};

use leases::Leases;

use crate::client_ip::ClientKey;
use crate::limits::{InFlightGuard, InFlightLimiter, RateLimiter};

/// How long an in-flight lease lives without renewal: a killed node's
/// slots return within this.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

/// How long a start waits for Redis before serving on local limits.
pub const CONNECT_AT_START: Duration = Duration::from_secs(2);

/// How long a request waits for Redis before local limits decide.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// The key text of a client: an address, or one of the shared buckets.
fn client_text(client: ClientKey) -> String {
    match client {
        ClientKey::Ip(ip) => ip.to_string(),
        ClientKey::UnknownBehindProxy => "unknown-behind-proxy".into(),
        ClientKey::Unknown => "unknown".into(),
    }
}

/// Runs one script call with the link's deadline; `None` (counted and
/// logged by the link) when Redis did not answer in time or failed.
async fn call<T: redis::FromRedisValue>(
    link: &Arc<RedisLink>,
    invocation: redis::ScriptInvocation<'_>,
) -> Option<T> {
    let Some(mut conn): Option<ConnectionManager> = link.connection() else {
        link.failed("not connected");
        return None;
    };
    match tokio::time::timeout(link.timeout, invocation.invoke_async(&mut conn)).await {
        Ok(Ok(value)) => {
            link.answered();
            Some(value)
        }
        Ok(Err(e)) => {
            link.failed(&e.to_string());
            None
        }
        Err(_) => {
            link.failed(&format!("no answer within {} ms", link.timeout.as_millis()));
            None
        }
    }
}

/// A route's rate limit, counted cluster-wide.
pub struct SharedRate {
    link: Arc<RedisLink>,
    key_base: String,
    window: Duration,
    max_requests: u32,
    /// Decides while Redis is away.
    pub local: RateLimiter,
}

impl SharedRate {
    pub fn new(
        link: Arc<RedisLink>,
        prefix: &str,
        route_id: &str,
        window: Duration,
        max_requests: u32,
        max_keys: usize,
    ) -> Self {
        Self {
            link,
            key_base: format!("{prefix}{{{route_id}}}:rate:"),
            window,
            max_requests,
            local: RateLimiter::new(window, max_requests, max_keys),
        }
    }

    /// Counts one request of `client`. `Err` carries the time until its
    /// window resets.
    pub async fn check(&self, client: ClientKey) -> Result<(), Duration> {
        let key = format!("{}{}", self.key_base, client_text(client));
        let window_ms = self.window.as_millis().max(1) as u64;
        let mut invocation = scripts::RATE.prepare_invoke();
        invocation.key(&key).arg(window_ms);
        match call::<(u64, i64)>(&self.link, invocation).await {
            Some((count, _)) if count <= u64::from(self.max_requests) => Ok(()),
            Some((_, ttl_ms)) => Err(Duration::from_millis(ttl_ms.max(0) as u64)),
            None => self.local.check(client, Instant::now()),
        }
    }
}

/// A route's in-flight limit, held cluster-wide as leases.
pub struct SharedInFlight {
    link: Arc<RedisLink>,
    key_base: String,
    max: u32,
    lease: Duration,
    /// This node's lease names: `<node>:<n>`.
    node: String,
    next: AtomicU64,
    /// The leases this node holds, renewed and released by one task.
    leases: Arc<Leases>,
    /// Decides while Redis is away.
    pub local: Arc<InFlightLimiter>,
}

impl SharedInFlight {
    pub fn new(
        link: Arc<RedisLink>,
        prefix: &str,
        route_id: &str,
        max: u32,
        max_keys: usize,
        lease: Duration,
    ) -> Arc<Self> {
        let leases = Leases::start(&link, lease);
        Arc::new(Self {
            link,
            key_base: format!("{prefix}{{{route_id}}}:inflight:"),
            max,
            lease,
            node: node_name(),
            next: AtomicU64::new(0),
            leases,
            local: InFlightLimiter::new(max, max_keys),
        })
    }

    /// Takes a slot for `client`, or `None` when it already has `max` in
    /// flight across the cluster (or on this node, while Redis is away).
    pub async fn acquire(self: &Arc<Self>, client: ClientKey) -> Option<Slot> {
        let (key, member) = self.lease_names(client);
        let released = self.leases.take_released(&key);
        let mut invocation = scripts::ACQUIRE.prepare_invoke();
        invocation
            .key(&key)
            .arg(self.max)
            .arg(self.lease_ms())
            .arg(&member)
            .arg(&released);
        match call::<i64>(&self.link, invocation).await {
            Some(1) => Some(self.held(key, member)),
            Some(_) => None,
            None => {
                self.leases.requeue(&key, released);
                self.local.acquire(client).map(Slot::Local)
            }
        }
    }

    /// The client's lease set and a new lease name in it.
    fn lease_names(&self, client: ClientKey) -> (String, String) {
        let key = format!("{}{}", self.key_base, client_text(client));
        let member = format!(
            "{}:{}",
            self.node,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        (key, member)
    }

    fn lease_ms(&self) -> u64 {
        self.lease.as_millis().max(1) as u64
    }

    /// A lease Redis granted, renewed until the slot is dropped.
    fn held(self: &Arc<Self>, key: String, member: String) -> Slot {
        self.leases.hold(&key, &member);
        Slot::Lease {
            owner: Arc::clone(self),
            key,
            member,
        }
    }
}

impl Drop for SharedInFlight {
    fn drop(&mut self) {
        self.leases.close();
    }
}

/// A random name for this process's leases, so two nodes never share one.
fn node_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// A route's rate limit: in process on a single Gateway, counted in Redis
/// in a cluster.
pub enum Rate {
    Local(RateLimiter),
    Shared(SharedRate),
}

impl Rate {
    /// Counts one request of `client`. `Err` carries the time until its
    /// window resets.
    pub async fn check(&self, client: ClientKey) -> Result<(), Duration> {
        match self {
            Rate::Local(local) => local.check(client, Instant::now()),
            Rate::Shared(shared) => shared.check(client).await,
        }
    }

    /// `client` authenticated: its entry is kept in the local table (the
    /// one that decides while Redis is away, in a cluster).
    pub fn authenticated(&self, client: ClientKey) {
        let local = match self {
            Rate::Local(local) => local,
            Rate::Shared(shared) => &shared.local,
        };
        local.authenticated(client, Instant::now());
    }
}

/// A route's in-flight limit: in process on a single Gateway, leases in
/// Redis in a cluster.
pub enum InFlight {
    Local(Arc<InFlightLimiter>),
    Shared(Arc<SharedInFlight>),
}

impl InFlight {
    /// Takes a slot for `client`, or `None` when it has `max` in flight.
    pub async fn acquire(&self, client: ClientKey) -> Option<Slot> {
        match self {
            InFlight::Local(local) => local.acquire(client).map(Slot::Local),
            InFlight::Shared(shared) => shared.acquire(client).await,
        }
    }
}

/// What a request's limits decided before its body.
pub enum Decision {
    /// Its rate window is full: refused, with the time until it resets.
    RateLimited(Duration),
    /// Admitted by its window, and its in-flight slot is taken.
    Slot(Slot),
    /// Admitted by its window; its in-flight slot is still to be taken
    /// (after the media type check).
    Admitted,
    /// Admitted by its window, but its client has all its slots in use.
    InFlightFull,
}

/// Counts a request of `client` in its rate window and, on a route whose
/// limits are both in Redis, takes its in-flight slot in the same round
/// trip; elsewhere the slot is taken afterwards
/// ([`Decision::Admitted`]), as the checks' order has it.
pub async fn decide(rate: &Rate, in_flight: &InFlight, client: ClientKey) -> Decision {
    let (Rate::Shared(rate), InFlight::Shared(slots)) = (rate, in_flight) else {
        return match rate.check(client).await {
            Ok(()) => Decision::Admitted,
            Err(wait) => Decision::RateLimited(wait),
        };
    };
    let rate_key = format!("{}{}", rate.key_base, client_text(client));
    let (lease_key, member) = slots.lease_names(client);
    let released = slots.leases.take_released(&lease_key);
    let mut invocation = scripts::ADMIT.prepare_invoke();
    invocation
        .key(&rate_key)
        .key(&lease_key)
        .arg(rate.window.as_millis().max(1) as u64)
        .arg(rate.max_requests)
        .arg(slots.max)
        .arg(slots.lease_ms())
        .arg(&member)
        .arg(&released);
    match call::<(i64, i64, i64)>(&rate.link, invocation).await {
        Some((0, ttl_ms, _)) => Decision::RateLimited(Duration::from_millis(ttl_ms.max(0) as u64)),
        Some((_, _, 1)) => Decision::Slot(slots.held(lease_key, member)),
        Some(_) => Decision::InFlightFull,
        None => {
            slots.leases.requeue(&lease_key, released);
            match rate.local.check(client, Instant::now()) {
                Err(wait) => Decision::RateLimited(wait),
                Ok(()) => match slots.local.acquire(client) {
                    Some(guard) => Decision::Slot(Slot::Local(guard)),
                    None => Decision::InFlightFull,
                },
            }
        }
    }
}

/// A held slot: a lease in Redis, or a local slot (on a single Gateway,
/// or while Redis is away). Dropping it gives the slot back.
pub enum Slot {
    Lease {
        owner: Arc<SharedInFlight>,
        key: String,
        member: String,
    },
    Local(InFlightGuard),
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Slot::Lease { owner, key, member } = self {
            owner
                .leases
                .release(std::mem::take(key), std::mem::take(member));
        }
    }
}
