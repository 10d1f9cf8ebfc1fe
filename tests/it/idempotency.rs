//! Retry-safe writes: a write sent again with its `Idempotency-Key` gets
//! the first answer, byte for byte, and applies once.

use std::io::Write;
use std::net::TcpStream;

use serde_json::{json, Value};

use crate::support::*;

/// POSTs `body` to the standard route with the secret and `extra` headers.
fn keyed(gw: &Gateway, key: &str, body: &Value) -> Response {
    with_headers(gw, &[("idempotency-key", key)], body)
}

fn with_headers(gw: &Gateway, extra: &[(&str, &str)], body: &Value) -> Response {
    let base = authed();
    let mut headers = hdrs(&base);
    headers.extend_from_slice(extra);
    gw.post(ROUTE_PATH, &headers, body.to_string().as_bytes())
}

fn flows_with_goal(gw: &Gateway, goal: &str) -> Vec<Value> {
    let list = gw.action(json!({"action": "list_flows"}));
    list.json["result"]["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["goal"] == goal)
        .cloned()
        .collect()
}

fn replayed(res: &Response) -> bool {
    res.header("idempotent-replayed") == Some("true")
}

#[test]
fn a_retried_create_replays_the_first_answer_byte_for_byte_and_creates_one_flow() {
    let gw = Gateway::start(&default_config());
    let body = json!({"action": "create_flow", "goal": "once"});
    let first = keyed(&gw, "order-1", &body);
    assert_eq!(first.status, 200, "{}", first.text);
    assert!(!replayed(&first), "a first use is not a replay");

    // The same action with other spacing and key order is the same request.
    let again = gw.post(
        ROUTE_PATH,
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {SECRET}")),
            ("x-openclaw-idempotency-key", "order-1"),
        ],
        br#"{ "goal" : "once",   "action" : "create_flow" }"#,
    );
    assert_eq!(again.status, 200);
    assert!(replayed(&again));
    assert_eq!(again.text, first.text, "the stored body, byte for byte");
    assert_eq!(
        again.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(flows_with_goal(&gw, "once").len(), 1);

    // Another key is another request.
    let other = keyed(&gw, "order-2", &body);
    assert!(!replayed(&other));
    assert_ne!(
        other.json["result"]["flow"]["flowId"],
        first.json["result"]["flow"]["flowId"]
    );
    assert_eq!(flows_with_goal(&gw, "once").len(), 2);
}

#[test]
fn a_key_reused_for_another_request_is_422_and_runs_nothing() {
    let gw = Gateway::start(&default_config());
    let first = keyed(&gw, "k", &json!({"action": "create_flow", "goal": "a"}));
    assert_eq!(first.status, 200);
    let other = keyed(&gw, "k", &json!({"action": "create_flow", "goal": "b"}));
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.json["code"], "idempotency_key_mismatch");
    assert!(flows_with_goal(&gw, "b").is_empty());
}

#[test]
fn outcomes_that_ran_are_replayed_too_conflicts_and_not_found_included() {
    let gw = Gateway::start(&default_config());
    let flow = gw.create_flow("f");
    let id = flow["flowId"].as_str().unwrap();
    let stale = json!({"action": "finish_flow", "flowId": id, "expectedRevision": 7});
    let conflict = keyed(&gw, "stale", &stale);
    assert_eq!(conflict.status, 409);
    let missing = json!({"action": "cancel_flow", "flowId": "no-such-flow"});
    let not_found = keyed(&gw, "missing", &missing);
    assert_eq!(not_found.status, 404);
    // The flow moves on; the keys still answer what they first answered.
    let finished = gw.action(json!({"action": "finish_flow", "flowId": id, "expectedRevision": 0}));
    assert_eq!(finished.status, 200);
    for (key, body, first) in [
        ("stale", &stale, &conflict),
        ("missing", &missing, &not_found),
    ] {
        let again = keyed(&gw, key, body);
        assert!(replayed(&again), "{key}");
        assert_eq!(
            (again.status, &again.text),
            (first.status, &first.text),
            "{key}"
        );
    }
}

#[test]
fn a_finish_whose_answer_was_lost_gets_the_original_200_when_retried() {
    let gw = Gateway::start(&default_config());
    let flow = gw.create_flow("lost answer");
    let body = json!({"action": "finish_flow", "flowId": flow["flowId"], "expectedRevision": 0})
        .to_string();
    // Send the request whole; once its write shows, hang up without
    // reading the answer.
    let mut stream = TcpStream::connect(gw.addr).unwrap();
    write!(
        stream,
        "POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nauthorization: Bearer {SECRET}\r\nidempotency-key: finish-1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let read = json!({"action": "get_flow", "flowId": flow["flowId"]});
    let finished =
        (0..500).any(|_| gw.action(read.clone()).json["result"]["flow"]["revision"] == 1);
    assert!(finished, "the first request's write never showed");
    drop(stream);

    // The retry may still find the first request running (409 with
    // Retry-After); a client retries that, and then gets the first answer.
    let body: Value = serde_json::from_str(&body).unwrap();
    let mut retry = keyed(&gw, "finish-1", &body);
    for _ in 0..200 {
        if retry.status != 409 || retry.json["code"] != "idempotency_in_progress" {
            break;
        }
        assert_eq!(retry.header("retry-after"), Some("1"));
        retry = keyed(&gw, "finish-1", &body);
    }
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert!(replayed(&retry));
    assert_eq!(retry.json["result"]["applied"], true);
    assert_eq!(retry.json["result"]["flow"]["status"], "succeeded");
    assert_eq!(retry.json["result"]["flow"]["revision"], 1);
}

#[test]
fn concurrent_requests_with_one_key_run_once() {
    let gw = Gateway::start(&gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": {"maxInFlight": 64}}))}}),
        json!({}),
    ));
    let body = json!({"action": "create_flow", "goal": "raced"});
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| keyed(&gw, "race-key", &body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
    assert!(!created.is_empty());
    for r in &answers {
        match r.status {
            200 => assert_eq!(r.text, created[0].text, "every 200 is the one answer"),
            409 => {
                assert_eq!(r.json["code"], "idempotency_in_progress");
                assert_eq!(r.header("retry-after"), Some("1"));
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(flows_with_goal(&gw, "raced").len(), 1);
}

#[test]
fn concurrent_retries_of_a_finished_key_all_get_the_first_answer() {
    let gw = Gateway::start(&gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": {"maxInFlight": 64}}))}}),
        json!({}),
    ));
    let body = json!({"action": "create_flow", "goal": "retried"});
    let first = keyed(&gw, "retried-key", &body);
    assert_eq!(first.status, 200, "{}", first.text);
    // A burst of retries (a client's retry storm, several workers of one
    // automation) once the first answer is out: none is "in progress".
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| keyed(&gw, "retried-key", &body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(replayed(r));
        assert_eq!(r.text, first.text);
    }
    assert_eq!(flows_with_goal(&gw, "retried").len(), 1);
}

#[test]
fn a_route_can_require_a_key_on_writes_and_reads_never_need_one() {
    let gw = Gateway::start(&gateway_config(
        json!({"routes": {"zapier": route(json!({"idempotency": {"required": true}}))}}),
        json!({}),
    ));
    let refused = gw.action(json!({"action": "create_flow", "goal": "g"}));
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json["code"], "idempotency_key_required");
    assert_eq!(gw.action(json!({"action": "list_flows"})).status, 200);
    assert_eq!(
        keyed(&gw, "k", &json!({"action": "create_flow", "goal": "g"})).status,
        200
    );
}

#[test]
fn malformed_keys_are_refused_before_anything_runs() {
    let gw = Gateway::start(&default_config());
    let body = json!({"action": "create_flow", "goal": "bad key"});
    let long = "k".repeat(256);
    let cases: [&[(&str, &str)]; 6] = [
        &[("idempotency-key", "")],
        &[("idempotency-key", &long)],
        // A control character (HTTP allows a tab inside a header value).
        &[("idempotency-key", "a\tb")],
        &[("idempotency-key", "caf\u{e9}")],
        &[("idempotency-key", "a"), ("idempotency-key", "a")],
        &[
            ("idempotency-key", "a"),
            ("x-openclaw-idempotency-key", "b"),
        ],
    ];
    for extra in cases {
        let res = with_headers(&gw, extra, &body);
        assert_eq!(res.status, 400, "{extra:?}: {}", res.text);
        assert_eq!(res.json["code"], "invalid_idempotency_key", "{extra:?}");
    }
    let longest = "k".repeat(255);
    assert_eq!(keyed(&gw, &longest, &body).status, 200);
    assert_eq!(flows_with_goal(&gw, "bad key").len(), 1);
}

#[test]
fn reads_ignore_the_key_and_store_nothing() {
    let gw = Gateway::start(&default_config());
    let flow = gw.create_flow("read me");
    let read = json!({"action": "get_flow", "flowId": flow["flowId"]});
    let before = keyed(&gw, "read-key", &read);
    assert_eq!(before.json["result"]["flow"]["revision"], 0);
    gw.action(json!({"action": "finish_flow", "flowId": flow["flowId"], "expectedRevision": 0}));
    let after = keyed(&gw, "read-key", &read);
    assert!(!replayed(&after));
    assert_eq!(after.json["result"]["flow"]["revision"], 1);
    // The key was never recorded, so a write may still use it.
    let write = keyed(
        &gw,
        "read-key",
        &json!({"action": "create_flow", "goal": "w"}),
    );
    assert_eq!(write.status, 200);
    assert!(!replayed(&write));
}

#[test]
fn requests_refused_before_the_action_ran_store_nothing() {
    let gw = Gateway::start(&gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": {"maxBodyBytes": 200}}))}}),
        json!({}),
    ));
    let good = json!({"action": "create_flow", "goal": "after refusals"});
    // 400: the schema refused it.
    let bad = keyed(&gw, "k1", &json!({"action": "create_flow"}));
    assert_eq!(bad.status, 400);
    // 401: the wrong secret.
    let unauthorized = gw.post(
        ROUTE_PATH,
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer wrong-secret-0123456"),
            ("idempotency-key", "k2"),
        ],
        good.to_string().as_bytes(),
    );
    assert_eq!(unauthorized.status, 401);
    // 413: too large.
    let big = json!({"action": "create_flow", "goal": "x".repeat(300)});
    assert_eq!(keyed(&gw, "k3", &big).status, 413);
    for key in ["k1", "k2", "k3"] {
        let res = keyed(&gw, key, &good);
        assert_eq!(res.status, 200, "{key}: {}", res.text);
        assert!(!replayed(&res), "{key} ran anew");
    }
    assert_eq!(flows_with_goal(&gw, "after refusals").len(), 3);
}

#[test]
fn a_request_the_store_could_not_persist_leaves_no_record() {
    let config = gateway_config(
        json!({"routes": {"zapier": route(json!({}))}}),
        json!({"tasks": {"maxStoreBytes": 65536}}),
    );
    // The embedded store's size quota makes the write fail.
    let gw = Gateway::start_embedded(&config);
    let big = "x".repeat(16_000);
    let mut refused = None;
    for i in 0..64 {
        let key = format!("fill-{i}");
        let res = keyed(&gw, &key, &json!({"action": "create_flow", "goal": big}));
        if res.status == 503 {
            refused = Some((key, res));
            break;
        }
        assert_eq!(res.status, 200, "{}", res.text);
    }
    let (key, first) = refused.expect("the store fills up");
    assert_eq!(first.json["code"], "persist_failed");
    let again = keyed(&gw, &key, &json!({"action": "create_flow", "goal": big}));
    assert_eq!(again.status, 503, "it ran anew and failed anew");
    assert!(!replayed(&again));
}

#[test]
fn keys_survive_a_restart_and_kill_9_under_keyed_load() {
    let config = gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": {"maxInFlight": 64, "rateLimitMaxRequests": 100000}}))}}),
        json!({}),
    );
    let gw = Gateway::start(&config);
    let acknowledged: Vec<(String, Response)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let gw = &gw;
                s.spawn(move || {
                    (0..25)
                        .map(|i| {
                            let key = format!("load-{t}-{i}");
                            let body = json!({"action": "create_flow", "goal": key});
                            (key.clone(), keyed(gw, &key, &body))
                        })
                        .filter(|(_, r)| r.status == 200)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(acknowledged.len(), 100);
    let dir = gw.kill9();
    let gw = Gateway::start_in(dir, &config, &[]);
    for (key, first) in &acknowledged {
        let body = json!({"action": "create_flow", "goal": key});
        let again = keyed(&gw, key, &body);
        assert!(replayed(&again), "{key}");
        assert_eq!(again.text, first.text, "{key}");
        let flows = flows_with_goal(&gw, key);
        assert_eq!(flows.len(), 1, "{key} maps to exactly one flow");
        assert_eq!(flows[0]["flowId"], first.json["result"]["flow"]["flowId"]);
    }
}
