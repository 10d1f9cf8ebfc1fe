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
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_static(k),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn code_of(r: Result<Option<String>, ApiError>) -> Code {
        r.unwrap_err().code
    }

    #[test]
    fn either_header_names_the_key_and_both_must_agree() {
        assert_eq!(presented_key(&headers(&[])).unwrap(), None);
        assert_eq!(
            presented_key(&headers(&[(KEY_HEADER, "k-1")])).unwrap(),
            Some("k-1".into())
        );
        assert_eq!(
            presented_key(&headers(&[(OPENCLAW_KEY_HEADER, "k-2")])).unwrap(),
            Some("k-2".into())
        );
        assert_eq!(
            presented_key(&headers(&[(KEY_HEADER, "k"), (OPENCLAW_KEY_HEADER, "k")])).unwrap(),
            Some("k".into())
        );
        assert_eq!(
            code_of(presented_key(&headers(&[
                (KEY_HEADER, "a"),
                (OPENCLAW_KEY_HEADER, "b")
            ]))),
            Code::InvalidIdempotencyKey
        );
    }

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters_on_one_line() {
        let longest = "k".repeat(255);
        assert!(presented_key(&headers(&[(KEY_HEADER, &longest)])).is_ok());
        for bad in ["", &"k".repeat(256), "with space", "tab\there"] {
            assert_eq!(
                code_of(presented_key(&headers(&[(KEY_HEADER, bad)]))),
                Code::InvalidIdempotencyKey,
                "{bad:?}"
            );
        }
        assert_eq!(
            code_of(presented_key(&headers(&[
                (KEY_HEADER, "a"),
                (KEY_HEADER, "a")
            ]))),
            Code::InvalidIdempotencyKey
        );
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static(KEY_HEADER),
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert_eq!(code_of(presented_key(&h)), Code::InvalidIdempotencyKey);
    }

    #[test]
    fn the_fingerprint_ignores_spacing_and_key_order_but_not_values() {
        let a: Value = serde_json::from_str(
            r#"{"action":"create_flow","goal":"g","stateJson":{"b":1,"a":[1,2]}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{ "stateJson" : { "a" : [1, 2], "b" : 1 }, "goal":"g", "action":"create_flow" }"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let c = json!({"action":"create_flow","goal":"h","stateJson":{"b":1,"a":[1,2]}});
        assert_ne!(fingerprint(&a), fingerprint(&c));
        // Structure is part of the form: a string is not its JSON text.
        assert_ne!(fingerprint(&json!({"a":"1"})), fingerprint(&json!({"a":1})));
        assert_eq!(hex(&fingerprint(&a)).len(), 64);
    }

    #[test]
    fn a_running_key_is_busy_until_its_marker_drops() {
        let running = Running::new();
        let marker = running.claim("k", [1; 32]).unwrap();
        assert_eq!(running.claim("k", [1; 32]).unwrap_err(), Busy::SameRequest);
        assert_eq!(running.claim("k", [2; 32]).unwrap_err(), Busy::OtherRequest);
        assert!(
            running.claim("other", [1; 32]).is_ok(),
            "keys are independent"
        );
        drop(marker);
        assert!(running.is_empty());
        assert!(running.claim("k", [2; 32]).is_ok());
    }

    #[test]
    fn policy_fields_override_their_base_one_by_one() {
        let mut w = Walker::new();
        let base = Policy {
            required: true,
            ttl: Duration::from_secs(120),
        };
        let v = json!({"ttlMs": 60_000});
        let p = parse_policy(&mut w, "idempotency", Some(&v), base);
        assert!(w.is_clean());
        assert_eq!(
            p,
            Policy {
                required: true,
                ttl: Duration::from_secs(60)
            }
        );
        let bad = json!({"ttlMs": 59_999, "required": "yes", "other": 1});
        parse_policy(&mut w, "routes.a.idempotency", Some(&bad), base);
        let got: Vec<String> = w.issues.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got.iter().all(|i| i.starts_with("routes.a.idempotency.")),
            "{got:?}"
        );
    }
}
