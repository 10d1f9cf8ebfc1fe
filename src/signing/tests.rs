//! Unit tests of `signing`.

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
