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
mod tests {
    use super::*;

    // The Standard Webhooks specification's test vector.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn key(secret: &str) -> SigningKey {
        SigningKey::parse(secret).unwrap()
    }

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(secrets.iter().map(|s| key(s)).collect(), 300)
    }

    fn headers<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> SignedHeaders<'a> {
        SignedHeaders {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    fn spec(sig: &str, now: i64) -> Result<Verified<'_>, Rejection> {
        verifier(&[SPEC_SECRET]).verify(headers(SPEC_ID, "1614265330", sig), SPEC_BODY, now)
    }

    fn other_secret() -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode([7u8; 32]))
    }

    #[test]
    fn the_specification_vector_signs_and_verifies() {
        assert_eq!(
            sign(&key(SPEC_SECRET), SPEC_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIGNATURE
        );
        let ok = spec(SPEC_SIGNATURE, SPEC_TS).unwrap();
        assert_eq!(
            ok,
            Verified {
                id: SPEC_ID,
                timestamp: SPEC_TS,
                slot: 0
            }
        );
    }

    #[test]
    fn the_tolerance_holds_on_both_sides_inclusive() {
        assert!(spec(SPEC_SIGNATURE, SPEC_TS + 300).is_ok());
        assert!(spec(SPEC_SIGNATURE, SPEC_TS - 300).is_ok());
        assert_eq!(spec(SPEC_SIGNATURE, SPEC_TS + 301), Err(Rejection::Stale));
        assert_eq!(spec(SPEC_SIGNATURE, SPEC_TS - 301), Err(Rejection::Stale));
    }

    #[test]
    fn malformed_and_wrong_signatures_are_invalid_even_when_stale() {
        let valid = &SPEC_SIGNATURE[3..];
        let mut flipped = STANDARD.decode(valid).unwrap();
        flipped[31] ^= 1;
        let flipped = format!("v1,{}", STANDARD.encode(flipped));
        let truncated = format!(
            "v1,{}",
            STANDARD.encode(&STANDARD.decode(valid).unwrap()[..31])
        );
        let long = format!("v1,{}", STANDARD.encode([0u8; 33]));
        for bad in [
            "".to_owned(),
            "v1,".to_owned(),
            "v1".to_owned(),
            format!("v1a,{valid}"),
            format!("v2,{valid}"),
            format!("v1,{}", &valid[..43]),
            format!("v1,{valid}x"),
            flipped,
            truncated,
            long,
            "v1,not base64!".to_owned(),
        ] {
            for now in [SPEC_TS, SPEC_TS + 10_000] {
                assert_eq!(spec(&bad, now), Err(Rejection::Invalid), "{bad:?}");
            }
        }
    }

    #[test]
    fn any_valid_entry_among_several_passes() {
        let sig = format!("v1a,xyz v1,{} {SPEC_SIGNATURE} v1,", &"A".repeat(43));
        assert!(spec(&sig, SPEC_TS).is_ok());
    }

    #[test]
    fn each_live_key_passes_and_names_its_slot() {
        let other = other_secret();
        let v = verifier(&[&other, SPEC_SECRET]);
        let got = v
            .verify(
                headers(SPEC_ID, "1614265330", SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS,
            )
            .unwrap();
        assert_eq!(got.slot, 1);
        let mine = sign(&key(&other), "msg_1", SPEC_TS, b"{}");
        let got = v
            .verify(headers("msg_1", "1614265330", &mine), b"{}", SPEC_TS)
            .unwrap();
        assert_eq!(got.slot, 0);
        let removed = verifier(&[&other]);
        assert_eq!(
            removed.verify(
                headers(SPEC_ID, "1614265330", SPEC_SIGNATURE),
                SPEC_BODY,
                SPEC_TS
            ),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn the_signature_covers_the_id_the_timestamp_and_the_body() {
        let v = verifier(&[SPEC_SECRET]);
        let check = |id, ts, body| v.verify(headers(id, ts, SPEC_SIGNATURE), body, SPEC_TS);
        assert_eq!(
            check("msg_other", "1614265330", SPEC_BODY),
            Err(Rejection::Invalid)
        );
        assert_eq!(
            check(SPEC_ID, "1614265331", SPEC_BODY),
            Err(Rejection::Invalid)
        );
        assert_eq!(
            check(SPEC_ID, "1614265330", br#"{"test": 2432232315}"#),
            Err(Rejection::Invalid)
        );
    }

    #[test]
    fn missing_or_malformed_headers_are_invalid() {
        let v = verifier(&[SPEC_SECRET]);
        let full = headers(SPEC_ID, "1614265330", SPEC_SIGNATURE);
        let long_id = "m".repeat(MAX_ID_BYTES + 1);
        for h in [
            SignedHeaders { id: None, ..full },
            SignedHeaders {
                timestamp: None,
                ..full
            },
            SignedHeaders {
                signature: None,
                ..full
            },
            SignedHeaders {
                id: Some(""),
                ..full
            },
            SignedHeaders {
                id: Some("a.b"),
                ..full
            },
            SignedHeaders {
                id: Some(&long_id),
                ..full
            },
            SignedHeaders {
                timestamp: Some("soon"),
                ..full
            },
            SignedHeaders {
                timestamp: Some("+1614265330"),
                ..full
            },
            SignedHeaders {
                timestamp: Some("-1"),
                ..full
            },
            SignedHeaders {
                timestamp: Some(""),
                ..full
            },
            SignedHeaders {
                timestamp: Some("99999999999999999999999"),
                ..full
            },
        ] {
            assert_eq!(
                v.verify(h, SPEC_BODY, SPEC_TS),
                Err(Rejection::Invalid),
                "{h:?}"
            );
        }
    }

    #[test]
    fn far_timestamps_do_not_overflow() {
        let v = verifier(&[SPEC_SECRET]);
        let max = i64::MAX.to_string();
        let sig = sign(&key(SPEC_SECRET), "m", i64::MAX, b"");
        assert_eq!(
            v.verify(headers("m", &max, &sig), b"", 0),
            Err(Rejection::Stale)
        );
        let sig = sign(&key(SPEC_SECRET), "m", 0, b"");
        assert_eq!(
            v.verify(headers("m", "0", &sig), b"", i64::MAX),
            Err(Rejection::Stale)
        );
    }

    #[test]
    fn secrets_need_the_prefix_base64_and_24_bytes() {
        assert_eq!(
            SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            KeyError::MissingPrefix
        );
        assert_eq!(
            SigningKey::parse("whsec_not*base64").unwrap_err(),
            KeyError::NotBase64
        );
        let short = format!("whsec_{}", STANDARD.encode([1u8; 23]));
        assert_eq!(
            SigningKey::parse(&short).unwrap_err(),
            KeyError::TooShort(23)
        );
        assert!(SigningKey::parse(&format!("whsec_{}", STANDARD.encode([1u8; 24]))).is_ok());
        assert_eq!(format!("{:?}", key(SPEC_SECRET)), "SigningKey(<redacted>)");
        assert!(!KeyError::TooShort(3).to_string().contains("whsec_M"));
    }

    fn reference_headers(id: &str, ts: i64, sig: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(ID_HEADER, id.parse().unwrap());
        h.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        h.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        h
    }

    fn now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    #[test]
    fn the_reference_implementation_verifies_what_we_sign() {
        let secret = other_secret();
        let reference = standardwebhooks::Webhook::new(&secret).unwrap();
        let ts = now();
        let body = br#"{"action":"list_flows"}"#;
        let ours = sign(&key(&secret), "msg_ours", ts, body);
        reference
            .verify(body, &reference_headers("msg_ours", ts, &ours))
            .unwrap();
        assert!(reference
            .verify(b"{}", &reference_headers("msg_ours", ts, &ours))
            .is_err());
    }

    #[test]
    fn we_verify_what_the_reference_implementation_signs() {
        let secret = other_secret();
        let reference = standardwebhooks::Webhook::new(&secret).unwrap();
        let ts = now();
        let body = br#"{"action":"list_flows"}"#;
        let theirs = reference.sign("msg_theirs", ts, body).unwrap();
        assert_eq!(theirs, sign(&key(&secret), "msg_theirs", ts, body));
        let raw_ts = ts.to_string();
        let got = verifier(&[&secret])
            .verify(headers("msg_theirs", &raw_ts, &theirs), body, ts)
            .unwrap();
        assert_eq!(got.id, "msg_theirs");
    }
}
