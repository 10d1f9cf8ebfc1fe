//! Retry-safe writes: the idempotency key a request presents, the
//! fingerprint of what it asks, the route's policy, and the marker that
//! says a key's first request is still running.
//!
//! The record of a finished keyed write (its status and body) lives in the
//! TaskFlow store and is written in the same commit as the write's effect;
//! this module only decides which key and fingerprint a request carries and
//! keeps two requests with one key from running at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use jsoncfg::{join, Walker};
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

/// The keys of one route whose first request is still running, with the
/// fingerprint each was claimed for. Only running writes are held, so the
/// map is bounded by the route's concurrency, not by how many keys exist.
#[derive(Debug, Default)]
pub struct Running {
    keys: Mutex<HashMap<String, [u8; 32]>>,
}

/// Why a key could not be claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The same request is running: 409 `idempotency_in_progress`.
    SameRequest,
    /// Another request holds the key: 422 `idempotency_key_mismatch`.
    OtherRequest,
}

impl Running {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks `key` as running until the returned marker is dropped.
    ///
    /// # Errors
    ///
    /// When the key is already running.
    pub fn claim(self: &Arc<Self>, key: &str, fingerprint: [u8; 32]) -> Result<Marker, Busy> {
        let mut keys = self.keys.lock();
        if let Some(held) = keys.get(key) {
            return Err(if *held == fingerprint {
                Busy::SameRequest
            } else {
                Busy::OtherRequest
            });
        }
        keys.insert(key.to_owned(), fingerprint);
        Ok(Marker {
            running: Arc::clone(self),
            key: key.to_owned(),
        })
    }

    pub fn len(&self) -> usize {
        self.keys.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Holds a key as running; dropping it frees the key. It travels with the
/// write to its completion, so a client that goes away does not free the
/// key while the write is still on its way to disk.
#[derive(Debug)]
pub struct Marker {
    running: Arc<Running>,
    key: String,
}

impl Drop for Marker {
    fn drop(&mut self) {
        self.running.keys.lock().remove(&self.key);
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
