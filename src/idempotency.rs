//! Retry-safe writes: the idempotency key a request presents, the
//! fingerprint of what it asks, the route's policy, the marker that says a
//! key's first request is still running, and the replies of keys that
//! finished here, remembered so a replay needs no trip to the store.
//!
//! The record of a finished keyed write (its status and body) lives in the
//! TaskFlow store and is written in the same commit as the write's effect;
//! this module decides which key and fingerprint a request carries, keeps
//! two requests with one key from running at once, and answers replays of
//! the keys it remembers.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::HeaderMap;
use jsoncfg::{join, Walker};
use openclaw_ffi::runtime::StoredReply;
use parking_lot::Mutex;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, Code};

/// The standard header, and the OpenClaw spelling accepted beside it.
pub const KEY_HEADER: &str = "idempotency-key";
pub const OPENCLAW_KEY_HEADER: &str = "x-openclaw-idempotency-key";

/// The longest key accepted, in bytes (keys are visible ASCII).
pub const MAX_KEY_LEN: usize = 255;

/// A route's idempotency policy (`idempotency` in the plugin config and per
/// route, field by field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A write without a key is refused with 400 `idempotency_key_required`.
    pub required: bool,
    /// How long a finished key replays its first response; after it the key
    /// runs anew.
    pub ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            required: false,
            ttl: Duration::from_millis(86_400_000),
        }
    }
}

pub const POLICY_KEYS: [&str; 2] = ["required", "ttlMs"];
const MIN_TTL_MS: u64 = 60_000;
const MAX_TTL_MS: u64 = 604_800_000;

/// Reads an `idempotency` object over `base`; every mistake is recorded.
pub fn parse_policy(w: &mut Walker, path: &str, v: Option<&Value>, base: Policy) -> Policy {
    let Some(obj) = v.and_then(|v| w.object(path, v, &POLICY_KEYS)) else {
        return base;
    };
    Policy {
        required: w
            .bool(&join(path, "required"), obj.get("required"))
            .unwrap_or(base.required),
        ttl: w
            .integer(
                &join(path, "ttlMs"),
                obj.get("ttlMs"),
                MIN_TTL_MS,
                MAX_TTL_MS,
            )
            .map_or(base.ttl, Duration::from_millis),
    }
}

/// The key a request presents, if any.
///
/// # Errors
///
/// 400 `invalid_idempotency_key` when a key is empty, longer than
/// [`MAX_KEY_LEN`], holds anything but visible ASCII (0x21 to 0x7E), is
/// given on several lines, or when both headers are present and differ.
pub fn presented_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let standard = single(headers, KEY_HEADER)?;
    let openclaw = single(headers, OPENCLAW_KEY_HEADER)?;
    let key = match (standard, openclaw) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(
                "Idempotency-Key and X-OpenClaw-Idempotency-Key differ",
            ))
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => return Ok(None),
    };
    check_key(key)?;
    Ok(Some(key.to_owned()))
}

/// Checks a key from any source (a header, or a verified delivery id).
///
/// # Errors
///
/// 400 `invalid_idempotency_key` naming the rule that failed.
pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(invalid("an idempotency key has 1 to 255 characters"));
    }
    if !key.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(invalid(
            "an idempotency key holds only visible ASCII characters",
        ));
    }
    Ok(())
}

/// The one value of `name`, if present. Several lines are ambiguous.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(invalid("an idempotency key header is given more than once"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| invalid("an idempotency key holds only visible ASCII characters"))
}

fn invalid(message: &'static str) -> ApiError {
    ApiError::new(Code::InvalidIdempotencyKey).with_message(message)
}

/// SHA-256 of the request's canonical form: object keys sorted, no
/// whitespace, so the same action written with other spacing or key order
/// has the same fingerprint.
pub fn fingerprint(body: &Value) -> [u8; 32] {
    let mut hasher = Sha256::new();
    canonical(body, &mut hasher);
    hasher.finalize().into()
}

fn canonical(v: &Value, out: &mut Sha256) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.update(b"{");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                out.update(Value::String(k.clone()).to_string().as_bytes());
                out.update(b":");
                if let Some(item) = map.get(k) {
                    canonical(item, out);
                }
            }
            out.update(b"}");
        }
        Value::Array(items) => {
            out.update(b"[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.update(b",");
                }
                canonical(item, out);
            }
            out.update(b"]");
        }
        scalar => out.update(scalar.to_string().as_bytes()),
    }
}

/// Hex text of a fingerprint, as it crosses to the store.
pub fn hex(fingerprint: &[u8; 32]) -> String {
    fingerprint.iter().map(|b| format!("{b:02x}")).collect()
}

/// How many finished keys a route remembers the reply of, in memory, so a
/// replay is answered without a trip to the store (and two replays of one
/// key never meet as "running"). The oldest is forgotten first; the store
/// keeps every record regardless.
pub const REMEMBERED_REPLIES: usize = 1024;

/// The idempotency keys of one route that this process knows about: those
/// whose first request is still running (with the fingerprint each was
/// claimed for), and the replies of the latest keys that finished here.
/// Both are bounded: running keys by the route's concurrency, remembered
/// replies by [`REMEMBERED_REPLIES`].
#[derive(Debug)]
pub struct Keys {
    ttl: Duration,
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    running: HashMap<String, [u8; 32]>,
    finished: HashMap<String, Finished>,
    /// Finished keys, oldest first, with the generation each was
    /// remembered under (a key may be remembered again after it expired).
    order: VecDeque<(String, u64)>,
    generation: u64,
}

#[derive(Debug)]
struct Finished {
    fingerprint: [u8; 32],
    reply: StoredReply,
    /// Never later than the store's record expires: counted from the claim,
    /// which comes before the record's commit.
    expires: Instant,
    generation: u64,
}

/// Why a key could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The same request is running: 409 `idempotency_in_progress`.
    SameRequest,
    /// Another request holds the key: 422 `idempotency_key_mismatch`.
    OtherRequest,
}

/// What claiming a key gives.
#[derive(Debug)]
pub enum Claimed {
    /// The key is this request's to run; the marker holds it.
    Run(Marker),
    /// The key finished here with the same request: its reply, to be sent
    /// again as it was.
    Replay(StoredReply),
}

impl Keys {
    /// Keys whose records the store keeps for `ttl`.
    pub fn new(ttl: Duration) -> Arc<Self> {
        Arc::new(Self {
            ttl,
            table: Mutex::new(Table::default()),
        })
    }

    /// Marks `key` as running until the returned marker is dropped, or
    /// gives the reply it finished with here.
    ///
    /// # Errors
    ///
    /// When the key is running, or finished here for another request.
    pub fn claim(self: &Arc<Self>, key: &str, fingerprint: [u8; 32]) -> Result<Claimed, Busy> {
        let now = Instant::now();
        let mut table = self.table.lock();
        if let Some(done) = table.finished.get(key) {
            if done.expires > now {
                return if done.fingerprint == fingerprint {
                    Ok(Claimed::Replay(done.reply.clone()))
                } else {
                    Err(Busy::OtherRequest)
                };
            }
            table.finished.remove(key);
        }
        if let Some(held) = table.running.get(key) {
            return Err(if *held == fingerprint {
                Busy::SameRequest
            } else {
                Busy::OtherRequest
            });
        }
        table.running.insert(key.to_owned(), fingerprint);
        Ok(Claimed::Run(Marker {
            keys: Arc::clone(self),
            key: key.to_owned(),
            fingerprint,
            expires: now + self.ttl,
            reply: None,
        }))
    }

    /// How many keys are running.
    pub fn running(&self) -> usize {
        self.table.lock().running.len()
    }

    /// How many finished keys' replies are remembered.
    pub fn remembered(&self) -> usize {
        self.table.lock().finished.len()
    }
}

impl Table {
    fn remember(&mut self, key: String, done: Finished) {
        self.order.push_back((key.clone(), done.generation));
        self.finished.insert(key, done);
        while self.order.len() > REMEMBERED_REPLIES {
            let Some((oldest, generation)) = self.order.pop_front() else {
                break;
            };
            if self
                .finished
                .get(&oldest)
                .is_some_and(|d| d.generation == generation)
            {
                self.finished.remove(&oldest);
            }
        }
    }
}

/// Holds a key as running; dropping it frees the key. It travels with the
/// write to its completion, so a client that goes away does not free the
/// key while the write is still on its way to disk.
#[derive(Debug)]
pub struct Marker {
    keys: Arc<Keys>,
    key: String,
    fingerprint: [u8; 32],
    expires: Instant,
    reply: Option<StoredReply>,
}

impl Marker {
    /// The key's write committed with this reply as its record: once the
    /// marker drops, a replay of the key is answered from memory.
    pub fn finished_with(&mut self, reply: &StoredReply) {
        self.reply = Some(reply.clone());
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let mut table = self.keys.table.lock();
        table.running.remove(&self.key);
        if let Some(reply) = self.reply.take() {
            table.generation += 1;
            let generation = table.generation;
            table.remember(
                std::mem::take(&mut self.key),
                Finished {
                    fingerprint: self.fingerprint,
                    reply,
                    expires: self.expires,
                    generation,
                },
            );
        }
    }
}

impl From<Busy> for ApiError {
    fn from(busy: Busy) -> Self {
        match busy {
            Busy::SameRequest => {
                ApiError::new(Code::IdempotencyInProgress).retry_after(Duration::from_secs(1))
            }
            Busy::OtherRequest => ApiError::new(Code::IdempotencyKeyMismatch),
        }
    }
}

#[cfg(test)]
mod tests;
