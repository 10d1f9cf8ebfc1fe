//! The Lua scripts: each limiter decision is one script, so it is atomic
//! in Redis whatever the other nodes do at the same moment. Times come
//! from the Redis server's clock (`TIME`), never a node's, so nodes whose
//! clocks disagree still agree on when a lease expires.

use std::sync::LazyLock;

use redis::Script;

/// Both decisions of a request in one round trip: counts it in a fixed
/// window that starts at the key's first request and, if the window admits
/// it, takes an in-flight lease when fewer than the maximum are live
/// (expired leases, a dead node's, are dropped first). Both keys carry the
/// route's hash tag, so a Redis Cluster holds them in one slot. `KEYS`: the window's key, the
/// lease set; `ARGV`: window ms, max requests, max in flight, lease ms,
/// member, then this node's released leases still to remove (removed
/// whatever the window decides). Returns `{admitted by the window (0/1),
/// ms until the window resets, lease taken (0/1)}`; no lease is taken for
/// a request the window refuses.
pub static ADMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 6, #ARGV do redis.call('ZREM', KEYS[2], ARGV[i]) end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
if n > tonumber(ARGV[2]) then return {0, ttl, 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return {1, ttl, 0} end
redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
redis.call('PEXPIRE', KEYS[2], lease)
return {1, ttl, 1}
",
    )
});

/// Extends live leases (sent with `EVAL` in a pipeline, one per lease set,
/// so it is kept as text). `KEYS[1]`: the lease set; `ARGV`: lease ms,
/// then the members. A member that is gone (it expired meanwhile) stays
/// gone. Returns how many were extended.
pub const RENEW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i])
end
if n > 0 then redis.call('PEXPIRE', KEYS[1], lease) end
return n
";
