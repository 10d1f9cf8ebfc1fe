//! Standard Webhooks signatures: the signing key, the signer and the
//! verifier.
//!
//! A signed request carries `webhook-id`, `webhook-timestamp` (Unix
//! seconds) and `webhook-signature`: space-separated entries, each a
//! version and a base64 value (`v1,<base64>`). A `v1` value is the
//! HMAC-SHA256 of `<id>.<timestamp>.<raw body>` keyed by the secret's
//! decoded bytes. Other versions (such as `v1a`, asymmetric) are ignored;
//! one valid `v1` entry for one of the route's keys is enough.
//!
//! The verifier judges in this order, so that only a sender who holds a
//! key learns whether its clock is off:
//!
//! 1. `webhook-id` present, 1 to 256 bytes, without `.` (a dot would make
//!    the signed content ambiguous) — else invalid.
//! 2. `webhook-timestamp` present and all ASCII digits — else invalid: an
//!    unreadable timestamp is a malformed header, not a clock problem.
//! 3. `webhook-signature` holds at least one `v1` entry that decodes to
//!    exactly 32 bytes, and one of them is the HMAC for one of the keys
//!    (compared in constant time) — else invalid. Empty, truncated and
//!    over-long values are discarded before anything is compared.
//! 4. The timestamp is at most the tolerance away from now, either side —
//!    else stale.

use std::fmt;

use actix_web::http::header::HeaderMap;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Every signing secret is written `whsec_<base64 of the key>`.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest accepted key, in decoded bytes.
pub const MIN_KEY_BYTES: usize = 24;
/// Longest accepted `webhook-id`, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// The length of an HMAC-SHA256 tag.
const TAG_BYTES: usize = 32;
const VERSION: &str = "v1";

/// A signing key: the decoded secret, held only as a keyed HMAC state. It
/// has no `Display` and a redacted `Debug`.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

/// Why a signing secret was refused. The messages never contain the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// It does not start with `whsec_`.
    MissingPrefix,
    /// What follows `whsec_` is not standard base64.
    NotBase64,
    /// It decodes to this many bytes, fewer than [`MIN_KEY_BYTES`].
    TooShort(usize),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingPrefix => write!(f, "expected \"{SECRET_PREFIX}\" followed by base64"),
            Self::NotBase64 => write!(f, "is not valid base64 after \"{SECRET_PREFIX}\""),
            Self::TooShort(n) => write!(
                f,
                "decodes to {n} bytes; at least {MIN_KEY_BYTES} are required"
            ),
        }
    }
}

impl SigningKey {
    /// Reads a `whsec_<base64>` secret (standard alphabet, padded).
    ///
    /// # Errors
    ///
    /// When the prefix is missing, the rest is not base64, or the key is
    /// shorter than [`MIN_KEY_BYTES`].
    pub fn parse(secret: &str) -> Result<Self, KeyError> {
        let encoded = secret
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(KeyError::MissingPrefix)?;
        let key = STANDARD.decode(encoded).map_err(|_| KeyError::NotBase64)?;
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(key.len()));
        }
        let mac = HmacSha256::new_from_slice(&key).map_err(|_| KeyError::NotBase64)?;
        Ok(Self { mac })
    }

    /// The HMAC state after `<id>.<timestamp>.<body>`, ready to finalise.
    fn content(&self, id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The `webhook-signature` value for one message: `v1,<base64>`. To sign
/// with several keys (while rotating), join their values with a space.
pub fn sign(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = key
        .content(id, &timestamp.to_string(), body)
        .finalize()
        .into_bytes();
    format!("{VERSION},{}", STANDARD.encode(tag))
}

/// The three signature headers of a request, as received.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignedHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl<'a> SignedHeaders<'a> {
    /// The first value of each header; a value that is not visible ASCII
    /// counts as missing.
    pub fn from_headers(headers: &'a HeaderMap) -> Self {
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            id: get(ID_HEADER),
            timestamp: get(TIMESTAMP_HEADER),
            signature: get(SIGNATURE_HEADER),
        }
    }
}

/// Why a request's signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Missing or malformed headers, or no entry matches any key.
    Invalid,
    /// Correctly signed, but the timestamp is outside the tolerance.
    Stale,
}

/// A request whose signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    /// The sender's message id: stable across redeliveries of one message.
    pub id: &'a str,
    /// Unix seconds, as signed.
    pub timestamp: i64,
    /// Which key matched (its 0-based position in the configured list).
    pub slot: usize,
}

/// A route's signature check: 1 to 4 live keys and a tolerance.
#[derive(Debug)]
pub struct Verifier {
    keys: Vec<SigningKey>,
    tolerance_secs: u64,
}

impl Verifier {
    pub fn new(keys: Vec<SigningKey>, tolerance_secs: u64) -> Self {
        Self {
            keys,
            tolerance_secs,
        }
    }

    /// How many keys verify (the slots a match is counted in).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Verifies a request's signature over its raw `body`, at `now` (Unix
    /// seconds).
    ///
    /// # Errors
    ///
    /// [`Rejection::Invalid`] or [`Rejection::Stale`], in the order the
    /// module documentation gives.
    pub fn verify<'a>(
        &self,
        headers: SignedHeaders<'a>,
        body: &[u8],
        now: i64,
    ) -> Result<Verified<'a>, Rejection> {
        let id = headers
            .id
            .filter(|id| (1..=MAX_ID_BYTES).contains(&id.len()) && !id.contains('.'))
            .ok_or(Rejection::Invalid)?;
        let raw_timestamp = headers.timestamp.ok_or(Rejection::Invalid)?;
        let timestamp = parse_timestamp(raw_timestamp).ok_or(Rejection::Invalid)?;
        let signature = headers.signature.ok_or(Rejection::Invalid)?;
        let slot = self
            .keys
            .iter()
            .position(|key| {
                let mac = key.content(id, raw_timestamp, body);
                candidate_tags(signature).any(|tag| mac.clone().verify_slice(&tag).is_ok())
            })
            .ok_or(Rejection::Invalid)?;
        if now.abs_diff(timestamp) > self.tolerance_secs {
            return Err(Rejection::Stale);
        }
        Ok(Verified {
            id,
            timestamp,
            slot,
        })
    }
}

/// Unix seconds written as ASCII digits only (no sign, no spaces).
fn parse_timestamp(raw: &str) -> Option<i64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// The decoded `v1` entries of a `webhook-signature` value that are exactly
/// one tag long; every other entry is dropped before any comparison.
fn candidate_tags(header: &str) -> impl Iterator<Item = [u8; TAG_BYTES]> + '_ {
    header
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == VERSION)
        .filter_map(|(_, value)| {
            // A 32-byte tag is 44 base64 characters; anything longer cannot
            // decode to one and is not worth decoding.
            if value.len() > 44 {
                return None;
            }
            let mut tag = [0u8; TAG_BYTES];
            match STANDARD.decode_slice(value, &mut tag) {
                Ok(TAG_BYTES) => Some(tag),
                _ => None,
            }
        })
}

#[cfg(test)]
mod tests;
