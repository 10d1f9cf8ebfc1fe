//! Unit tests of `idempotency`.

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

fn run(keys: &Arc<Keys>, key: &str, fingerprint: [u8; 32]) -> Marker {
    match keys.claim(key, fingerprint) {
        Ok(Claimed::Run(marker)) => marker,
        other => panic!("{key} should run, got {other:?}"),
    }
}

fn reply(body: &str) -> StoredReply {
    StoredReply {
        status: 200,
        body: body.as_bytes().to_vec().into(),
    }
}

#[test]
fn a_running_key_is_busy_until_its_marker_drops() {
    let keys = Keys::new(Duration::from_secs(60));
    let marker = run(&keys, "k", [1; 32]);
    assert_eq!(keys.claim("k", [1; 32]).unwrap_err(), Busy::SameRequest);
    assert_eq!(keys.claim("k", [2; 32]).unwrap_err(), Busy::OtherRequest);
    drop(run(&keys, "other", [1; 32]));
    drop(marker);
    assert_eq!(keys.running(), 0);
    assert_eq!(
        keys.remembered(),
        0,
        "a write that stored nothing is not remembered"
    );
    drop(run(&keys, "k", [2; 32]));
}

#[test]
fn a_key_that_finished_here_replays_from_memory_to_every_caller_at_once() {
    let keys = Keys::new(Duration::from_secs(60));
    let mut marker = run(&keys, "k", [1; 32]);
    marker.finished_with(&reply("first"));
    drop(marker);
    for _ in 0..3 {
        match keys.claim("k", [1; 32]) {
            Ok(Claimed::Replay(r)) => assert_eq!(&r.body[..], b"first"),
            other => panic!("expected a replay, got {other:?}"),
        }
    }
    assert_eq!(keys.claim("k", [2; 32]).unwrap_err(), Busy::OtherRequest);
    assert_eq!(keys.running(), 0, "a replay holds nothing");
}

#[test]
fn a_remembered_reply_expires_with_the_record_and_the_key_runs_anew() {
    let keys = Keys::new(Duration::ZERO);
    let mut marker = run(&keys, "k", [1; 32]);
    marker.finished_with(&reply("first"));
    drop(marker);
    drop(run(&keys, "k", [2; 32]));
    assert_eq!(keys.remembered(), 0);
}

#[test]
fn only_the_latest_replies_are_remembered() {
    let keys = Keys::new(Duration::from_secs(60));
    for i in 0..REMEMBERED_REPLIES + 10 {
        let mut marker = run(&keys, &format!("k{i}"), [1; 32]);
        marker.finished_with(&reply("r"));
    }
    assert_eq!(keys.remembered(), REMEMBERED_REPLIES);
    // The oldest were forgotten (the store still has them); the newest not.
    drop(run(&keys, "k0", [1; 32]));
    assert!(matches!(
        keys.claim(&format!("k{}", REMEMBERED_REPLIES + 9), [1; 32]),
        Ok(Claimed::Replay(_))
    ));
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
