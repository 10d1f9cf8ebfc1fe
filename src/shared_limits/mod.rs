//! A route's limits as the pipeline uses them ([`Limits`]): both in
//! process on a single Gateway, or both cluster-wide, with rate windows and
//! in-flight slots kept in Redis so several Gateways behind one load
//! balancer count together.
//!
//! - In Redis, a request's window and lease are decided by one Lua script
//!   (`scripts::ADMIT`), atomic in Redis, one round trip
//!   ([`Limits::decide`]).
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

/// A route's limits: both in process (a single Gateway), or both counted
/// in Redis (a cluster), never one of each.
pub enum Limits {
    Local {
        rate: RateLimiter,
        in_flight: Arc<InFlightLimiter>,
    },
    Shared(Arc<Shared>),
}

/// A route's rate window and in-flight leases in Redis, with the local
/// limiters that decide while Redis is away.
pub struct Shared {
    link: Arc<RedisLink>,
    /// `<prefix>{<routeId>}:`, before `rate:<client>` / `inflight:<client>`.
    key_base: String,
    lease: Duration,
    /// This node's lease names: `<node>:<n>`.
    node: String,
    next: AtomicU64,
    /// The leases this node holds, renewed and released by one task.
    leases: Arc<Leases>,
    rate: RateLimiter,
    in_flight: Arc<InFlightLimiter>,
}

impl Limits {
    /// In-process limits.
    pub fn local(window: Duration, max_requests: u32, max_in_flight: u32, max_keys: usize) -> Self {
        Limits::Local {
            rate: RateLimiter::new(window, max_requests, max_keys),
            in_flight: InFlightLimiter::new(max_in_flight, max_keys),
        }
    }

    /// The same limits counted cluster-wide through `link`, under keys that
    /// start with `prefix` and name `route_id`; the in-process limiters
    /// stay, to decide while Redis is away.
    pub fn share(&mut self, link: &Arc<RedisLink>, prefix: &str, route_id: &str, lease: Duration) {
        if let Limits::Shared(_) = self {
            return;
        }
        // An empty stand-in for the moment the limiters move.
        let Limits::Local { rate, in_flight } =
            std::mem::replace(self, Limits::local(Duration::ZERO, 0, 0, 0))
        else {
            return;
        };
        *self = Limits::Shared(Arc::new(Shared {
            link: Arc::clone(link),
            key_base: format!("{prefix}{{{route_id}}}:"),
            lease,
            node: node_name(),
            next: AtomicU64::new(0),
            leases: Leases::start(link, lease),
            rate,
            in_flight,
        }));
    }

    /// Counts a request of `client` in its rate window and, in a cluster,
    /// takes its in-flight lease in the same round trip (one script over
    /// both keys); on a single Gateway the slot is taken afterwards
    /// ([`Decision::Admitted`]), as the checks' order has it.
    pub async fn decide(&self, client: ClientKey) -> Decision {
        match self {
            Limits::Local { rate, in_flight } => match rate.check(client, Instant::now()) {
                Ok(()) => Decision::Admitted(Arc::clone(in_flight)),
                Err(wait) => Decision::RateLimited(wait),
            },
            Limits::Shared(shared) => shared.decide(client).await,
        }
    }

    /// `client` authenticated: its entry is kept in the local rate table
    /// (the one that decides while Redis is away, in a cluster).
    pub fn authenticated(&self, client: ClientKey) {
        let rate = match self {
            Limits::Local { rate, .. } => rate,
            Limits::Shared(shared) => &shared.rate,
        };
        rate.authenticated(client, Instant::now());
    }
}

impl Shared {
    async fn decide(self: &Arc<Self>, client: ClientKey) -> Decision {
        let client_key = client_text(client);
        let rate_key = format!("{}rate:{client_key}", self.key_base);
        let lease_key = format!("{}inflight:{client_key}", self.key_base);
        let member = format!(
            "{}:{}",
            self.node,
            self.next.fetch_add(1, Ordering::Relaxed)
        );
        let released = self.leases.take_released(&lease_key);
        let mut invocation = scripts::ADMIT.prepare_invoke();
        invocation
            .key(&rate_key)
            .key(&lease_key)
            .arg(self.rate.window().as_millis().max(1) as u64)
            .arg(self.rate.max_requests())
            .arg(self.in_flight.max())
            .arg(self.lease.as_millis().max(1) as u64)
            .arg(&member)
            .arg(&released);
        match call::<(i64, i64, i64)>(&self.link, invocation).await {
            Some((0, ttl_ms, _)) => {
                Decision::RateLimited(Duration::from_millis(ttl_ms.max(0) as u64))
            }
            Some((_, _, 1)) => {
                self.leases.hold(&lease_key, &member);
                Decision::Slot(Slot::Lease {
                    owner: Arc::clone(self),
                    key: lease_key,
                    member,
                })
            }
            Some(_) => Decision::InFlightFull,
            None => {
                self.leases.requeue(&lease_key, released);
                match self.rate.check(client, Instant::now()) {
                    Err(wait) => Decision::RateLimited(wait),
                    Ok(()) => match self.in_flight.acquire(client) {
                        Some(guard) => Decision::Slot(Slot::Local(guard)),
                        None => Decision::InFlightFull,
                    },
                }
            }
        }
    }
}

impl Drop for Shared {
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

/// What a request's limits decided before its body.
pub enum Decision {
    /// Its rate window is full: refused, with the time until it resets.
    RateLimited(Duration),
    /// Admitted by its window, and its in-flight slot is taken.
    Slot(Slot),
    /// Admitted by its window (on a single Gateway); its in-flight slot
    /// is taken from this limiter after the media type check.
    Admitted(Arc<InFlightLimiter>),
    /// Admitted by its window, but its client has all its slots in use.
    InFlightFull,
}

/// A held slot: a lease in Redis, or a local slot (on a single Gateway,
/// or while Redis is away). Dropping it gives the slot back.
pub enum Slot {
    Lease {
        owner: Arc<Shared>,
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
