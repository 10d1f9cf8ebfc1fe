//! Request headers: the presented secret, the JSON content-type check and
//! the client key behind (possibly trusted) proxies, plus `IpNet::parse`.
//!
//! Input layout: byte 0 is flags (bit 0 `allow_real_ip_fallback`, bit 1
//! "there is a socket peer"); the rest is split on NUL into parts: the
//! trusted-proxy list (comma separated), the peer address, then header
//! name/value pairs. A one-byte name below 8 picks a header the code reads,
//! so the fuzzer does not have to guess their spelling. A name may repeat:
//! each pair is one header line.
#![no_main]

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use openclaw_webhooks::auth::presented_secret;
use openclaw_webhooks::body::is_json;
use openclaw_webhooks::client_ip::{ClientKey, IpNet, ProxyPolicy};

const KNOWN: [&str; 8] = [
    "authorization",
    "x-openclaw-webhook-secret",
    "content-type",
    "x-forwarded-for",
    "x-real-ip",
    "content-length",
    "host",
    "forwarded",
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.split(|&b| b == 0);
    let trusted_text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let peer_text = String::from_utf8_lossy(parts.next().unwrap_or_default());

    let trusted: Vec<IpNet> = trusted_text.split(',').filter_map(IpNet::parse).collect();
    // A parsed network contains the address it was written with.
    for raw in trusted_text.split(',') {
        if let Some(net) = IpNet::parse(raw) {
            let addr = raw.trim().split('/').next().unwrap_or_default();
            let addr: IpAddr = addr.parse().expect("IpNet::parse accepted a bad address");
            assert!(
                net.contains(addr),
                "{raw:?} does not contain its own address"
            );
        }
    }
    let policy = ProxyPolicy {
        trusted: trusted.clone(),
        allow_real_ip_fallback: flags & 1 != 0,
    };
    let peer: Option<IpAddr> = if flags & 2 != 0 {
        Some(
            peer_text
                .trim()
                .parse()
                .unwrap_or(IpAddr::from([10, 0, 0, 1])),
        )
    } else {
        None
    };

    let mut headers = HeaderMap::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        let name = match name {
            [i] if (*i as usize) < KNOWN.len() => HeaderName::from_static(KNOWN[*i as usize]),
            _ => match HeaderName::from_bytes(name) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        let Ok(value) = HeaderValue::from_bytes(value) else {
            continue;
        };
        headers.append(name, value);
    }

    // A credential header on two lines presents no secret at all.
    let repeated = |name: &str| headers.get_all(name).len() > 1;
    let ambiguous = repeated("authorization") || repeated("x-openclaw-webhook-secret");
    match presented_secret(&headers) {
        Some(secret) => {
            assert!(
                !ambiguous,
                "a repeated credential header presented {secret:?}"
            );
            assert_eq!(secret, secret.trim(), "the presented secret is not trimmed");
        }
        None => assert!(ambiguous, "a single credential header presented nothing"),
    }
    let _ = is_json(&headers);

    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    let key = policy.client_key(peer, &headers);
    match (peer, key) {
        (None, k) => assert_eq!(k, ClientKey::Unknown),
        (Some(_), ClientKey::Unknown) => panic!("a request with a peer got the Unknown key"),
        (Some(p), k) if !is_trusted(p) => {
            let canonical = match p {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(p, IpAddr::V4),
                v4 => v4,
            };
            assert_eq!(
                k,
                ClientKey::Ip(canonical),
                "an untrusted peer is the client"
            );
        }
        (Some(_), ClientKey::Ip(ip)) => {
            if let IpAddr::V6(v6) = ip {
                assert!(v6.to_ipv4_mapped().is_none(), "key {ip} is not canonical");
            }
            if !policy.allow_real_ip_fallback {
                assert!(!is_trusted(ip), "a trusted proxy {ip} became the client");
            }
        }
        (Some(_), ClientKey::UnknownBehindProxy) => {}
    }

    // X-Forwarded-For lines form one list: splitting it into lines or
    // joining them changes nothing, and a client found in it cannot be
    // displaced by a line the client adds in front.
    let no_fallback = ProxyPolicy {
        trusted: trusted.clone(),
        allow_real_ip_fallback: false,
    };
    let xff: Vec<&HeaderValue> = headers.get_all("x-forwarded-for").collect();
    let texts: Option<Vec<&str>> = xff.iter().map(|v| v.to_str().ok()).collect();
    if let (Some(texts), false) = (texts, xff.is_empty()) {
        let mut joined = headers.clone();
        joined.remove("x-forwarded-for");
        if let Ok(v) = HeaderValue::from_str(&texts.join(",")) {
            joined.insert(HeaderName::from_static("x-forwarded-for"), v);
            assert_eq!(
                no_fallback.client_key(peer, &joined),
                no_fallback.client_key(peer, &headers),
                "joining the X-Forwarded-For lines changed the key"
            );
        }
    }
    if let ClientKey::Ip(found) = no_fallback.client_key(peer, &headers) {
        let mut forged = HeaderMap::new();
        forged.append(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("198.51.100.77"),
        );
        for (name, value) in headers.iter() {
            forged.append(name.clone(), value.clone());
        }
        assert_eq!(
            no_fallback.client_key(peer, &forged),
            ClientKey::Ip(found),
            "a line added in front displaced the client"
        );
    }

    // The raw text as one IpNet candidate, too.
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = IpNet::parse(text);
    }
});
