//! The request pipeline before any action runs: routing, method, content
//! type, authentication, the body guard, and the JSON envelope that every
//! rejection shares.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

fn assert_common_headers(res: &Response) {
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
}

#[test]
fn unknown_paths_get_a_json_404() {
    let gw = Gateway::start(&default_config());
    let res = gw.post("/plugins/webhooks/nope", &hdrs(&authed()), b"{}");
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json,
        json!({"ok": false, "code": "not_found", "error": "Not Found"})
    );
    assert_common_headers(&res);
    let root = gw.request("GET", "/", &[], b"");
    assert_eq!(root.status, 404);
    assert_common_headers(&root);
}

#[test]
fn a_trailing_slash_reaches_the_same_route() {
    let gw = Gateway::start(&default_config());
    let res = gw.post(
        &format!("{ROUTE_PATH}/"),
        &hdrs(&authed()),
        br#"{"action":"list_flows"}"#,
    );
    assert_eq!(res.status, 200);
    let res = gw.post(
        &format!("{ROUTE_PATH}?x=1"),
        &hdrs(&authed()),
        br#"{"action":"list_flows"}"#,
    );
    assert_eq!(res.status, 200, "the query string is ignored for routing");
}

#[test]
fn only_post_is_allowed() {
    let gw = Gateway::start(&default_config());
    for method in ["GET", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let res = gw.request(method, ROUTE_PATH, &hdrs(&authed()), b"");
        assert_eq!(res.status, 405, "{method}");
        assert_eq!(res.header("allow"), Some("POST"));
        assert_eq!(
            res.json,
            json!({"ok": false, "code": "method_not_allowed", "error": "Method Not Allowed"})
        );
        assert_common_headers(&res);
    }
}

#[test]
fn non_json_content_types_are_refused() {
    let gw = Gateway::start(&default_config());
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonp",
    ] {
        let res = gw.post(
            ROUTE_PATH,
            &[
                ("content-type", ct),
                ("authorization", &format!("Bearer {SECRET}")),
            ],
            br#"{"action":"list_flows"}"#,
        );
        assert_eq!(res.status, 415, "{ct}");
        assert_eq!(
            res.json,
            json!({"ok": false, "code": "unsupported_media_type", "error": "Unsupported Media Type"})
        );
    }
    let res = gw.post(
        ROUTE_PATH,
        &[
            ("content-type", "application/vnd.zapier+json; charset=utf-8"),
            ("authorization", &format!("Bearer {SECRET}")),
        ],
        br#"{"action":"list_flows"}"#,
    );
    assert_eq!(res.status, 200, "+json types are JSON");
}

#[test]
fn a_compressed_body_is_refused_as_an_unsupported_media_type() {
    let gw = Gateway::start(&default_config());
    // A gzip member holding `{"action":"list_flows"}`.
    let gzipped: &[u8] = &[
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xab, 0x56, 0x4a, 0x4c, 0x2e,
        0xc9, 0xcc, 0xcf, 0x53, 0xb2, 0x52, 0xca, 0xc9, 0x2c, 0x2e, 0x89, 0x4f, 0xcb, 0xc9, 0x2f,
        0x2f, 0x56, 0xaa, 0x05, 0x00, 0x6b, 0xdb, 0xe7, 0xef, 0x17, 0x00, 0x00, 0x00,
    ];
    let authed = authed();
    for coding in ["gzip", "identity, gzip", "br"] {
        let mut headers = hdrs(&authed);
        headers.push(("content-encoding", coding));
        let res = gw.post(ROUTE_PATH, &headers, gzipped);
        assert_eq!(res.status, 415, "{coding}");
        assert_eq!(
            res.json,
            json!({"ok": false, "code": "unsupported_media_type", "error": "Unsupported Content-Encoding"})
        );
        assert_eq!(res.header("accept-encoding"), Some("identity"));
        assert_common_headers(&res);
    }
    let mut headers = hdrs(&authed);
    headers.push(("content-encoding", "identity"));
    let res = gw.post(ROUTE_PATH, &headers, br#"{"action":"list_flows"}"#);
    assert_eq!(res.status, 200, "identity is no coding at all");
}

#[test]
fn rejections_before_authentication_do_not_name_the_route() {
    let config = gateway_config(
        json!({"routes": {"internal-billing-7": route(json!({
            "path": "/hooks/in",
            "limits": {"rateLimitMaxRequests": 4, "maxBodyBytes": 64}
        }))}}),
        json!({}),
    );
    let gw = Gateway::start(&config);
    let list = br#"{"action":"list_flows"}"#;
    let wrong = [
        ("content-type", "application/json"),
        ("authorization", "Bearer wrong"),
    ];
    let text = [
        ("content-type", "text/plain"),
        ("authorization", "Bearer wrong"),
    ];
    let refusals = [
        gw.request("GET", "/hooks/in", &wrong, b""),
        gw.post("/hooks/in", &text, list),
        gw.post("/hooks/in", &wrong, list),
    ];
    for res in &refusals {
        assert!(
            res.json.get("routeId").is_none() && !res.text.contains("internal-billing-7"),
            "{} names the route: {}",
            res.status,
            res.text
        );
    }
    let statuses: Vec<u16> = refusals.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [405, 415, 401]);

    // After authentication the route is named, as in every action answer.
    let authed = authed();
    let authed = hdrs(&authed);
    let too_large = gw.post("/hooks/in", &authed, &[b' '; 65]);
    assert_eq!(too_large.status, 413);
    assert_eq!(too_large.json["routeId"], "internal-billing-7");
    let invalid = gw.post("/hooks/in", &authed, br#"{"action":"nope"}"#);
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.json["routeId"], "internal-billing-7");

    // The fifth request the limit counts (the 405 is not) is refused
    // before the secret.
    let limited = gw.post("/hooks/in", &authed, list);
    assert_eq!(limited.status, 429);
    assert!(limited.json.get("routeId").is_none(), "{}", limited.text);
}

#[test]
fn missing_and_wrong_secrets_get_the_same_401_and_change_nothing() {
    let gw = Gateway::start(&default_config());
    let create = json!({"action": "create_flow", "goal": "should not exist"}).to_string();
    let attempts: [&[(&str, &str)]; 4] = [
        &[("content-type", "application/json")],
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer wrong-secret"),
        ],
        &[
            ("content-type", "application/json"),
            ("x-openclaw-webhook-secret", "wrong-secret"),
        ],
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Basic {SECRET}")),
        ],
    ];
    for headers in attempts {
        let res = gw.post(ROUTE_PATH, headers, create.as_bytes());
        assert_eq!(res.status, 401, "{headers:?}");
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        assert_eq!(
            res.json,
            json!({"ok": false, "code": "unauthorized", "error": "unauthorized"})
        );
        assert!(!res.text.contains(SECRET));
    }
    let list = gw.action(json!({"action": "list_flows"}));
    assert_eq!(list.json["result"]["flows"], json!([]));
}

#[test]
fn both_secret_headers_authenticate_and_bearer_wins() {
    let gw = Gateway::start(&default_config());
    let body = br#"{"action":"list_flows"}"#;
    let ok = |h: &[(&str, &str)]| gw.post(ROUTE_PATH, h, body).status;
    assert_eq!(
        ok(&[
            ("content-type", "application/json"),
            ("x-openclaw-webhook-secret", SECRET)
        ]),
        200
    );
    assert_eq!(
        ok(&[
            ("content-type", "application/json"),
            ("authorization", &format!("bearer   {SECRET}  "))
        ]),
        200
    );
    assert_eq!(
        ok(&[
            ("content-type", "application/json"),
            ("authorization", "Bearer wrong"),
            ("x-openclaw-webhook-secret", SECRET)
        ]),
        401
    );
    assert_eq!(
        ok(&[
            ("content-type", "application/json"),
            ("authorization", "Basic abc"),
            ("x-openclaw-webhook-secret", SECRET)
        ]),
        200
    );
}

#[test]
fn a_credential_header_sent_on_two_lines_is_refused_even_when_both_are_right() {
    let gw = Gateway::start(&default_config());
    let create = json!({"action": "create_flow", "goal": "should not exist"}).to_string();
    let bearer = format!("Bearer {SECRET}");
    let json_type = ("content-type", "application/json");
    let attempts: [&[(&str, &str)]; 4] = [
        &[
            json_type,
            ("authorization", &bearer),
            ("authorization", &bearer),
        ],
        &[
            json_type,
            ("authorization", "Bearer wrong-secret"),
            ("authorization", &bearer),
        ],
        &[
            json_type,
            ("x-openclaw-webhook-secret", SECRET),
            ("x-openclaw-webhook-secret", SECRET),
        ],
        // A repeated alternate header spoils a valid bearer token too.
        &[
            json_type,
            ("authorization", &bearer),
            ("x-openclaw-webhook-secret", SECRET),
            ("x-openclaw-webhook-secret", "wrong-secret"),
        ],
    ];
    for headers in attempts {
        let res = gw.post(ROUTE_PATH, headers, create.as_bytes());
        assert_eq!(res.status, 401, "{headers:?}");
        assert_eq!(res.json["code"], "unauthorized", "{headers:?}");
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    }
    let list = gw.action(json!({"action": "list_flows"}));
    assert_eq!(list.json["result"]["flows"], json!([]));
}

fn small_body_config(max: u64, timeout_ms: u64) -> serde_json::Value {
    gateway_config(
        json!({"routes": {"zapier": route(json!({"limits": {"maxBodyBytes": max, "bodyTimeoutMs": timeout_ms}}))}}),
        json!({}),
    )
}

#[test]
fn a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_413() {
    let gw = Gateway::start(&small_body_config(64, 15_000));
    let base = json!({"action": "list_flows"}).to_string();
    let exact = format!("{base}{}", " ".repeat(64 - base.len()));
    assert_eq!(exact.len(), 64);
    let res = gw.post(ROUTE_PATH, &hdrs(&authed()), exact.as_bytes());
    assert_eq!(res.status, 200, "{}", res.text);
    let over = format!("{exact} ");
    let res = gw.post(ROUTE_PATH, &hdrs(&authed()), over.as_bytes());
    assert_eq!(res.status, 413);
    assert_eq!(res.json["code"], "payload_too_large");
    assert_eq!(res.header("connection"), Some("close"));
}

#[test]
fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let gw = Gateway::start(&small_body_config(64, 15_000));
    let mut stream = begin_request(gw.addr, "content-length: 1000000\r\n", b"");
    let started = Instant::now();
    let res = read_response(&mut stream);
    assert_eq!(res.status, 413);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_chunked_body_over_the_limit_is_413() {
    let gw = Gateway::start(&small_body_config(64, 15_000));
    let mut stream = begin_request(
        gw.addr,
        "transfer-encoding: chunked\r\nconnection: close\r\n",
        b"",
    );
    for _ in 0..3 {
        write!(stream, "20\r\n{}\r\n", " ".repeat(32)).unwrap();
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let res = read_response(&mut stream);
    assert_eq!(res.status, 413);
}

#[test]
fn a_body_that_does_not_arrive_in_time_gets_408() {
    let gw = Gateway::start(&small_body_config(1024, 300));
    let mut stream = begin_request(gw.addr, "content-length: 50\r\n", br#"{"action""#);
    let started = Instant::now();
    let res = read_response(&mut stream);
    assert_eq!(res.status, 408);
    assert_eq!(
        res.json,
        json!({"ok": false, "routeId": "zapier", "code": "request_timeout", "error": "Request body timeout"})
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn bodies_that_are_not_utf8_json_are_invalid_body() {
    let gw = Gateway::start(&default_config());
    let deep = "[".repeat(5000) + &"]".repeat(5000);
    for body in [
        &b""[..],
        b"   ",
        b"{not json",
        b"\xff\xfe\x00",
        deep.as_bytes(),
        b"{\"a\":1e999}",
    ] {
        let res = gw.post(ROUTE_PATH, &hdrs(&authed()), body);
        assert_eq!(res.status, 400, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(res.json["code"], "invalid_body");
        assert_eq!(res.json["routeId"], "zapier");
    }
    let res = gw.post(ROUTE_PATH, &hdrs(&authed()), b"\xff\xfe");
    assert_eq!(res.json["error"], "request body is not valid UTF-8");
}

#[test]
fn schema_failures_list_every_issue_with_the_first_as_error() {
    let gw = Gateway::start(&default_config());
    let res = gw.action(json!({"action": "run_task", "flowId": "f", "runtime": "cli", "extra": 1}));
    assert_eq!(res.status, 400);
    assert_eq!(res.json["ok"], false);
    assert_eq!(res.json["routeId"], "zapier");
    assert_eq!(res.json["code"], "invalid_request");
    assert_eq!(
        res.json["error"],
        "runtime: Invalid option: expected one of \"subagent\"|\"acp\""
    );
    assert_eq!(
        res.json["issues"],
        json!([
            {"path": "runtime", "message": "Invalid option: expected one of \"subagent\"|\"acp\""},
            {"path": "task", "message": "Invalid input: expected string, received undefined"},
            {"path": "", "message": "Unrecognized key: \"extra\""}
        ])
    );
    let res = gw.action(json!({"action": "run_task", "flowId": "f", "runtime": "acp", "task": "t", "startedAt": 10}));
    assert_eq!(res.status, 400);
    assert_eq!(
        res.json["error"],
        "status: status must be running when startedAt, lastEventAt, or progressSummary is provided"
    );
    for body in [
        json!([]),
        json!("x"),
        json!(null),
        json!({"action": "nope"}),
        json!({"action": " list_flows "}),
        json!({"action": "LIST_FLOWS"}),
        json!({"action": "create_flow", "goal": "g", "status": "queued "}),
    ] {
        let res = gw.action(body.clone());
        assert_eq!(res.status, 400, "{body}");
        assert_eq!(res.json["code"], "invalid_request");
    }
}
