//! Standard Webhooks signing of callbacks: `webhook-signature` holds one
//! `v1,<base64>` entry per key, space-separated, each the HMAC-SHA256 of
//! `<webhook-id>.<webhook-timestamp>.<body>` keyed by the secret's decoded
//! bytes. A receiver that knows any one of the keys can verify.
//!
//! This is a minimal private signer with the same key rules and the same
//! `sign` as the shared signing module of signed requests; the delivery
//! worker calls only [`signature_header`], so switching to the shared one
//! touches this file alone.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Every signing secret is written `whsec_<base64 of the key>`.
pub const SECRET_PREFIX: &str = "whsec_";
/// Shortest accepted key, in decoded bytes.
pub const MIN_KEY_BYTES: usize = 24;

/// A signing key, held only as a keyed HMAC state. It has no `Display` and
/// a redacted `Debug`.
#[derive(Clone)]
pub struct SigningKey {
    mac: HmacSha256,
}

/// Why a signing secret was refused. The messages never contain the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    MissingPrefix,
    NotBase64,
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
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// The `webhook-signature` entry of one key: `v1,<base64>`.
pub fn sign(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = key.mac.clone();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The whole `webhook-signature` value: one entry per key, space-separated.
pub fn signature_header(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // The Standard Webhooks specification's test vector.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_specification_vector_signs() {
        let key = SigningKey::parse(SPEC_SECRET).unwrap();
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn the_reference_implementation_verifies_every_key_s_entry() {
        let secrets = [
            format!("whsec_{}", STANDARD.encode([7u8; 32])),
            format!("whsec_{}", STANDARD.encode([9u8; 24])),
        ];
        let keys: Vec<SigningKey> = secrets
            .iter()
            .map(|s| SigningKey::parse(s).unwrap())
            .collect();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let body = br#"{"type":"flow.created"}"#;
        let header = signature_header(&keys, "evt_f_0", ts, body);
        assert_eq!(header.split(' ').count(), 2);
        for secret in &secrets {
            let mut h = http::HeaderMap::new();
            h.insert("webhook-id", "evt_f_0".parse().unwrap());
            h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
            h.insert("webhook-signature", header.parse().unwrap());
            standardwebhooks::Webhook::new(secret)
                .unwrap()
                .verify(body, &h)
                .unwrap();
        }
    }

    #[test]
    fn secrets_need_the_prefix_base64_and_24_bytes_and_never_show() {
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
        let key = SigningKey::parse(SPEC_SECRET).unwrap();
        assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    }
}
