//! Standard Webhooks signing of callbacks: `webhook-signature` holds one
//! `v1,<base64>` entry per key, space-separated, each made by the shared
//! signer of [`crate::signing`]. A receiver that knows any one of the keys
//! can verify.

use crate::signing::sign;
pub use crate::signing::SigningKey;

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
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;

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
}
