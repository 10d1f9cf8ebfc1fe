//! Signed routes (Standard Webhooks) and secret rotation, over real HTTP:
//! the specification's vector, an independent implementation signing what
//! we verify, every malformed signature, the tolerance on both sides, and
//! live secret lists before and after a key is removed.

use std::time::{SystemTime, UNIX_EPOCH};

use openclaw_webhooks::signing::{sign, SigningKey};
use serde_json::{json, Value};

use crate::support::*;

// The Standard Webhooks specification's test vector.
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS: &str = "1614265330";
const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// Two live keys: 32 bytes each, base64.
const KEY_A: &str = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_B: &str = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
const LIST: &str = r#"{"action":"list_flows"}"#;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The standard route, signed with `keys` and without a bearer secret.
fn signed_route(keys: Value, extra: Value) -> Value {
    let mut r = route(json!({"signing": {"scheme": "standard-webhooks", "secrets": keys}}));
    r.as_object_mut().unwrap().remove("secret");
    merge(&mut r, extra);
    r
}

fn signed_config(keys: Value, extra: Value) -> Value {
    gateway_config(
        json!({"routes": {"zapier": signed_route(keys, extra)}}),
        json!({"logging": {"level": "debug"}}),
    )
}

/// The signature headers (any may be left out) and a JSON content type.
fn post_signed(
    gw: &Gateway,
    id: Option<&str>,
    ts: Option<&str>,
    sig: Option<&str>,
    body: &str,
) -> Response {
    let mut headers = vec![("content-type", "application/json")];
    headers.extend(id.map(|v| ("webhook-id", v)));
    headers.extend(ts.map(|v| ("webhook-timestamp", v)));
    headers.extend(sig.map(|v| ("webhook-signature", v)));
    gw.post(ROUTE_PATH, &headers, body.as_bytes())
}

/// Signs `body` with `secret` at `ts` and sends it.
fn send(gw: &Gateway, secret: &str, id: &str, ts: i64, body: &str) -> Response {
    let sig = sign(&SigningKey::parse(secret).unwrap(), id, ts, body.as_bytes());
    post_signed(gw, Some(id), Some(&ts.to_string()), Some(&sig), body)
}

fn code(res: &Response) -> (u16, &str) {
    (res.status, res.json["code"].as_str().unwrap_or(""))
}

#[test]
fn the_specification_vector_verifies_over_http() {
    let gw = Gateway::start(&signed_config(json!([SPEC_SECRET]), json!({})));
    // The signature is right, so the only complaint left is its age.
    let res = post_signed(
        &gw,
        Some(SPEC_ID),
        Some(SPEC_TS),
        Some(SPEC_SIGNATURE),
        SPEC_BODY,
    );
    assert_eq!(res.status, 401, "{}", res.text);
    assert_eq!(
        res.json,
        json!({"ok": false, "code": "stale_signature",
               "error": "signature timestamp is outside the allowed tolerance"})
    );
    let flipped = SPEC_SIGNATURE.replace("g0hM", "g0hN");
    let res = post_signed(&gw, Some(SPEC_ID), Some(SPEC_TS), Some(&flipped), SPEC_BODY);
    assert_eq!(
        res.json,
        json!({"ok": false, "code": "invalid_signature", "error": "invalid signature"})
    );
    // The same message signed now, by the reference implementation.
    let reference = standardwebhooks::Webhook::new(SPEC_SECRET).unwrap();
    let ts = now();
    let sig = reference.sign(SPEC_ID, ts, LIST.as_bytes()).unwrap();
    let res = post_signed(&gw, Some(SPEC_ID), Some(&ts.to_string()), Some(&sig), LIST);
    assert_eq!(res.status, 200, "{}", res.text);
}

#[test]
fn each_live_signing_secret_passes_until_it_is_removed() {
    let gw = Gateway::start(&signed_config(json!([KEY_A, KEY_B]), json!({})));
    let ts = now();
    assert_eq!(send(&gw, KEY_A, "msg_a", ts, LIST).status, 200);
    assert_eq!(send(&gw, KEY_B, "msg_b", ts, LIST).status, 200);
    // A sender rotating its key sends both signatures.
    let both = [KEY_A, KEY_B]
        .map(|k| {
            sign(
                &SigningKey::parse(k).unwrap(),
                "msg_ab",
                ts,
                LIST.as_bytes(),
            )
        })
        .join(" ");
    let res = post_signed(
        &gw,
        Some("msg_ab"),
        Some(&ts.to_string()),
        Some(&both),
        LIST,
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let logs = gw.logs();
    assert!(
        logs.contains("route zapier: signing secret slot 0 matched"),
        "{logs}"
    );
    assert!(
        logs.contains("route zapier: signing secret slot 1 matched"),
        "{logs}"
    );
    assert!(!logs.contains(&KEY_A[6..]) && !logs.contains(&KEY_B[6..]));

    let dir = gw.kill9();
    let gw = Gateway::start_in(dir, &signed_config(json!([KEY_B]), json!({})), &[]);
    let ts = now();
    assert_eq!(
        code(&send(&gw, KEY_A, "msg_a2", ts, LIST)),
        (401, "invalid_signature")
    );
    assert_eq!(send(&gw, KEY_B, "msg_b2", ts, LIST).status, 200);
}

#[test]
fn each_live_bearer_secret_passes_until_it_is_removed() {
    let (old, new) = (
        "old-bearer-secret-0123456789",
        "new-bearer-secret-0123456789",
    );
    let config = |secret: Value| {
        gateway_config(
            json!({"routes": {"zapier": route(json!({"secret": secret}))}}),
            json!({"logging": {"level": "debug"}}),
        )
    };
    let call = |gw: &Gateway, secret: &str| {
        let auth = format!("Bearer {secret}");
        let headers = [
            ("content-type", "application/json"),
            ("authorization", &auth),
        ];
        gw.post(ROUTE_PATH, &headers, LIST.as_bytes()).status
    };
    let gw = Gateway::start(&config(json!([old, new])));
    assert_eq!(call(&gw, old), 200);
    assert_eq!(call(&gw, new), 200);
    assert_eq!(call(&gw, "neither-of-them-0123456789"), 401);
    let logs = gw.logs();
    assert!(
        logs.contains("route zapier: secret slot 0 matched"),
        "{logs}"
    );
    assert!(
        logs.contains("route zapier: secret slot 1 matched"),
        "{logs}"
    );
    assert!(!logs.contains(old) && !logs.contains(new));

    let dir = gw.kill9();
    let gw = Gateway::start_in(dir, &config(json!([new])), &[]);
    assert_eq!(call(&gw, old), 401);
    assert_eq!(call(&gw, new), 200);
}

#[test]
fn an_unresolvable_entry_in_a_list_skips_the_route() {
    let missing = json!({"source": "env", "provider": "default", "id": "WEBHOOK_NOT_SET_4471"});
    let routes = json!({
        "bearer": route(json!({"path": "/plugins/webhooks/bearer", "secret": [SECRET, missing]})),
        "signed": signed_route(json!([KEY_A, missing]), json!({"path": "/plugins/webhooks/signed"})),
        "zapier": route(json!({})),
    });
    let gw = Gateway::start(&gateway_config(json!({"routes": routes}), json!({})));
    for id in ["bearer", "signed"] {
        let line = gw
            .logs()
            .lines()
            .find(|l| l.contains(&format!("skipping route {id}: ")))
            .map(str::to_owned);
        assert!(line.is_some(), "no skip warning for {id}: {}", gw.logs());
        let res = gw.post(
            &format!("/plugins/webhooks/{id}"),
            &hdrs(&authed()),
            LIST.as_bytes(),
        );
        assert_eq!(res.status, 404, "{id}");
    }
    assert_eq!(gw.action(json!({"action": "list_flows"})).status, 200);
}

#[test]
fn a_signing_secret_ref_resolves_and_a_malformed_one_skips_its_route() {
    let routes = json!({
        "zapier": signed_route(json!([{"source": "env", "provider": "default", "id": "WHSEC_GOOD"}]), json!({})),
        "bad": signed_route(
            json!([{"source": "env", "provider": "default", "id": "WHSEC_BAD"}]),
            json!({"path": "/plugins/webhooks/bad"}),
        ),
    });
    let gw = Gateway::start_with_env(
        &gateway_config(json!({"routes": routes}), json!({})),
        &[
            ("WHSEC_GOOD", KEY_A),
            ("WHSEC_BAD", "not-a-whsec-value-8812"),
        ],
    );
    assert_eq!(send(&gw, KEY_A, "msg_ref", now(), LIST).status, 200);
    let logs = gw.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("skipping route bad: "))
        .unwrap_or_else(|| panic!("{logs}"));
    assert!(line.contains("signing.secrets.0"), "{line}");
    assert!(!logs.contains("not-a-whsec-value-8812") && !logs.contains(&KEY_A[6..]));
}

/// A name, then the `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` to send (each may be missing).
type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<String>);

#[test]
fn wrong_malformed_and_missing_signatures_are_invalid_signature() {
    let gw = Gateway::start(&signed_config(json!([KEY_A]), json!({})));
    let ts = now();
    let ts_text = ts.to_string();
    let good = sign(
        &SigningKey::parse(KEY_A).unwrap(),
        "msg_1",
        ts,
        LIST.as_bytes(),
    );
    let value = good.strip_prefix("v1,").unwrap();
    let wrong_secret = sign(
        &SigningKey::parse(KEY_B).unwrap(),
        "msg_1",
        ts,
        LIST.as_bytes(),
    );
    // One flipped bit in the first decoded byte.
    let flipped = {
        let mut chars: Vec<char> = value.chars().collect();
        chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
        format!("v1,{}", chars.into_iter().collect::<String>())
    };
    let truncated = format!("v1,{}", &value[..value.len() - 4]);
    let cases: Vec<Case<'_>> = vec![
        (
            "wrong secret",
            Some("msg_1"),
            Some(&ts_text),
            Some(wrong_secret),
        ),
        ("flipped bit", Some("msg_1"), Some(&ts_text), Some(flipped)),
        (
            "empty v1",
            Some("msg_1"),
            Some(&ts_text),
            Some("v1,".into()),
        ),
        ("truncated", Some("msg_1"), Some(&ts_text), Some(truncated)),
        (
            "v1a only",
            Some("msg_1"),
            Some(&ts_text),
            Some(format!("v1a,{value}")),
        ),
        ("no webhook-id", None, Some(&ts_text), Some(good.clone())),
        (
            "no webhook-timestamp",
            Some("msg_1"),
            None,
            Some(good.clone()),
        ),
        ("no webhook-signature", Some("msg_1"), Some(&ts_text), None),
        (
            "non-numeric timestamp",
            Some("msg_1"),
            Some("soon"),
            Some(good.clone()),
        ),
        (
            "other id",
            Some("msg_2"),
            Some(&ts_text),
            Some(good.clone()),
        ),
    ];
    for (name, id, ts, sig) in cases {
        let res = post_signed(&gw, id, ts, sig.as_deref(), LIST);
        assert_eq!(
            code(&res),
            (401, "invalid_signature"),
            "{name}: {}",
            res.text
        );
        assert!(
            res.json.get("routeId").is_none(),
            "{name}: a caller that failed to authenticate is not told the route id"
        );
    }
    let res = post_signed(&gw, Some("msg_1"), Some(&ts_text), Some(&good), LIST);
    assert_eq!(res.status, 200, "{}", res.text);
}

/// Sends a request signed `offset` seconds from now, retrying when a
/// second boundary passed while it was in flight (the result would then
/// not be exact).
fn status_at_offset(gw: &Gateway, offset: i64) -> (u16, String) {
    for _ in 0..10 {
        let before = now();
        let res = send(gw, KEY_A, "msg_edge", before + offset, LIST);
        if now() == before {
            return (
                res.status,
                res.json["code"].as_str().unwrap_or("").to_owned(),
            );
        }
    }
    panic!("every attempt straddled a second boundary");
}

#[test]
fn the_tolerance_is_inclusive_on_both_sides() {
    let gw = Gateway::start(&signed_config(
        json!([KEY_A]),
        json!({"signing": {
            "scheme": "standard-webhooks", "secrets": [KEY_A], "toleranceSec": 60
        }}),
    ));
    assert_eq!(status_at_offset(&gw, -60), (200, String::new()));
    assert_eq!(status_at_offset(&gw, 60), (200, String::new()));
    assert_eq!(status_at_offset(&gw, -61), (401, "stale_signature".into()));
    assert_eq!(status_at_offset(&gw, 61), (401, "stale_signature".into()));
}

#[test]
fn the_signature_covers_the_raw_body_and_is_checked_before_parsing() {
    let gw = Gateway::start(&signed_config(json!([KEY_A]), json!({})));
    let ts = now();
    // Whitespace is part of what was signed: no re-serialisation happens.
    let spaced = r#"{ "action" : "list_flows" }"#;
    assert_eq!(send(&gw, KEY_A, "msg_raw", ts, spaced).status, 200);
    // A different body under the same id and signature fails.
    let sig = sign(
        &SigningKey::parse(KEY_A).unwrap(),
        "msg_same",
        ts,
        LIST.as_bytes(),
    );
    let other = r#"{"action":"create_flow","goal":"injected"}"#;
    let res = post_signed(
        &gw,
        Some("msg_same"),
        Some(&ts.to_string()),
        Some(&sig),
        other,
    );
    assert_eq!(code(&res), (401, "invalid_signature"));
    let listed = send(&gw, KEY_A, "msg_check", ts, LIST);
    assert_eq!(
        listed.json["result"],
        json!({"flows": []}),
        "nothing was created"
    );
    // Malformed JSON: the signature is judged first.
    let broken = r#"{"action":"#;
    let res = post_signed(
        &gw,
        Some("msg_x"),
        Some(&ts.to_string()),
        Some(&sig),
        broken,
    );
    assert_eq!(code(&res), (401, "invalid_signature"));
    assert_eq!(
        code(&send(&gw, KEY_A, "msg_x", ts, broken)),
        (400, "invalid_body")
    );
}

#[test]
fn with_a_secret_and_signing_both_are_required() {
    let mut r = signed_route(json!([KEY_A]), json!({}));
    r["secret"] = json!(SECRET);
    let gw = Gateway::start(&gateway_config(json!({"routes": {"zapier": r}}), json!({})));
    let ts = now();
    let sig = sign(
        &SigningKey::parse(KEY_A).unwrap(),
        "msg_1",
        ts,
        LIST.as_bytes(),
    );
    let ts = ts.to_string();
    let bearer = format!("Bearer {SECRET}");
    let call = |auth: Option<&str>, signed: bool| {
        let mut h = vec![("content-type", "application/json")];
        h.extend(auth.map(|a| ("authorization", a)));
        if signed {
            h.extend([
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", ts.as_str()),
                ("webhook-signature", sig.as_str()),
            ]);
        }
        let res = gw.post(ROUTE_PATH, &h, LIST.as_bytes());
        (
            res.status,
            res.json["code"].as_str().unwrap_or("").to_owned(),
        )
    };
    assert_eq!(
        call(Some(&bearer), false),
        (401, "invalid_signature".into())
    );
    assert_eq!(call(None, true), (401, "unauthorized".into()));
    assert_eq!(
        call(Some("Bearer wrong"), true),
        (401, "unauthorized".into())
    );
    assert_eq!(call(Some(&bearer), true), (200, String::new()));
}

#[test]
fn a_redelivered_signed_write_gets_the_first_answer_keyed_by_its_webhook_id() {
    let gw = Gateway::start(&signed_config(json!([KEY_A]), json!({})));
    let body = r#"{"action":"create_flow","goal":"delivered twice"}"#;
    let ts = now();
    let first = send(&gw, KEY_A, "msg_redelivered", ts, body);
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(first.header("idempotent-replayed").is_none());
    // The sender retries the same message (same id, re-signed later).
    let again = send(&gw, KEY_A, "msg_redelivered", ts + 1, body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text, "the stored answer, byte for byte");
    // Another message id is another delivery.
    let other = send(&gw, KEY_A, "msg_other", ts, body);
    assert_ne!(
        other.json["result"]["flow"]["flowId"],
        first.json["result"]["flow"]["flowId"]
    );
    // An explicit Idempotency-Key wins over the webhook-id.
    let sig = sign(
        &SigningKey::parse(KEY_A).unwrap(),
        "msg_keyed",
        ts,
        body.as_bytes(),
    );
    let ts_text = ts.to_string();
    let headers = [
        ("content-type", "application/json"),
        ("webhook-id", "msg_keyed"),
        ("webhook-timestamp", ts_text.as_str()),
        ("webhook-signature", sig.as_str()),
        ("idempotency-key", "msg_redelivered"),
    ];
    let keyed = gw.post(ROUTE_PATH, &headers, body.as_bytes());
    assert_eq!(keyed.header("idempotent-replayed"), Some("true"));
    assert_eq!(keyed.text, first.text);
}
