//! Metrics of the requests answered outside the ordinary path: a refusal
//! sent before `100 Continue`, a signed request's key slot, and the waiter
//! gauge while a read waits.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use openclaw_webhooks::signing::{sign, SigningKey};
use serde_json::json;

use crate::ops::{admin_addr, config_with_admin, requests, scrape, series, values};
use crate::support::*;

const KEY_A: &str = "whsec_QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_B: &str = "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn admin() -> serde_json::Value {
    json!({"port": 0})
}

fn value(gw: &Gateway, key: &str) -> f64 {
    let all = values(&scrape(admin_addr(gw), None));
    *all.get(key)
        .unwrap_or_else(|| panic!("{key} missing from {all:?}"))
}

#[test]
fn a_refusal_before_100_continue_is_counted_like_any_other() {
    let gw = Gateway::start(&config_with_admin(admin()));
    let unauthorized = requests("zapier", "none", "unauthorized");
    assert_eq!(value(&gw, &unauthorized), 0.0);
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    write!(
        stream,
        "POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\nexpect: 100-continue\r\n\
         content-type: application/json\r\nauthorization: Bearer wrong\r\n\
         content-length: 23\r\n\r\n"
    )
    .unwrap();
    let res = read_response(&mut stream);
    assert_eq!(res.status, 401, "{}", res.text);
    assert_eq!(value(&gw, &unauthorized), 1.0);
}

#[test]
fn a_signed_request_counts_the_slot_of_the_key_that_verified_it() {
    let mut route =
        route(json!({"signing": {"scheme": "standard-webhooks", "secrets": [KEY_A, KEY_B]}}));
    route.as_object_mut().unwrap().remove("secret");
    let mut config = gateway_config(json!({"routes": {"zapier": route}}), json!({}));
    config["gateway"]["admin"] = admin();
    let gw = Gateway::start(&config);
    let slot = |s: &str| {
        series(
            "openclaw_webhooks_signing_key_matches_total",
            &[("route", "zapier"), ("slot", s)],
        )
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = r#"{"action":"list_flows"}"#;
    for (i, key) in [KEY_B, KEY_B, KEY_A].iter().enumerate() {
        let id = format!("msg_{i}");
        let sig = sign(&SigningKey::parse(key).unwrap(), &id, now, body.as_bytes());
        let ts = now.to_string();
        let headers = [
            ("content-type", "application/json"),
            ("webhook-id", id.as_str()),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", sig.as_str()),
        ];
        let res = gw.post(ROUTE_PATH, &headers, body.as_bytes());
        assert_eq!(res.status, 200, "{}", res.text);
    }
    assert_eq!(value(&gw, &slot("0")), 1.0);
    assert_eq!(value(&gw, &slot("1")), 2.0);
}

#[test]
fn the_waiter_gauge_counts_a_waiting_read_until_it_is_answered() {
    let gw = Gateway::start(&config_with_admin(admin()));
    let flow = gw.create_flow("watched");
    let id = flow["flowId"].as_str().unwrap().to_owned();
    let gauge = series("openclaw_webhooks_waiters", &[("route", "zapier")]);
    assert_eq!(value(&gw, &gauge), 0.0);
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            gw.action(json!({"action": "get_flow", "flowId": id, "waitForRevisionAbove": 0, "waitMs": 20_000}))
        });
        // The gauge is the signal that the read waits.
        let deadline = Instant::now() + Duration::from_secs(10);
        while value(&gw, &gauge) != 1.0 {
            assert!(Instant::now() < deadline, "the read never waited");
        }
        let written = gw.action(json!({"action": "resume_flow", "flowId": id, "expectedRevision": 0, "status": "running"}));
        assert_eq!(written.status, 200, "{}", written.text);
        let res = waiter.join().unwrap();
        assert_eq!(res.json["result"]["flow"]["revision"], 1);
    });
    assert_eq!(value(&gw, &gauge), 0.0);
}
