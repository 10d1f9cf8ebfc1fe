//! Inputs the fuzz targets in `fuzz/` made interesting, pinned as plain
//! tests: each must be refused with a clear error, never a panic, a hang or
//! a stack overflow. See `fuzz/README.md`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use openclaw_webhooks::auth::presented_secret;
use openclaw_webhooks::body::{is_json, parse_json};
use openclaw_webhooks::client_ip::{ClientKey, IpNet, ProxyPolicy};
use openclaw_webhooks::error::Code;
use openclaw_webhooks::limits::{InFlightLimiter, RateLimiter};
use openclaw_webhooks::{config, request};

fn config_issues(text: &str) -> Vec<String> {
    match config::parse(text) {
        Ok(_) => panic!("config was accepted: {text:.200}"),
        Err(issues) => {
            assert!(!issues.is_empty());
            issues.iter().map(ToString::to_string).collect()
        }
    }
}

fn headers(pairs: &[(&[u8], &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name).unwrap_or_else(|e| panic!("{name:?}: {e}")),
            HeaderValue::from_bytes(value).unwrap_or_else(|e| panic!("{value:?}: {e}")),
        );
    }
    map
}

#[test]
fn deeply_nested_plugin_config_is_refused_as_invalid_json() {
    for depth in [129, 10_000, 200_000] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!(
                "{{\"routes\":{}1{}}}",
                open.repeat(depth),
                close.repeat(depth)
            );
            let issues = config_issues(&text);
            assert!(issues[0].contains("not valid JSON"), "{issues:?}");
        }
        let unclosed = "[".repeat(depth);
        assert!(config_issues(&unclosed)[0].contains("not valid JSON"));
    }
}

#[test]
fn huge_and_odd_numbers_in_limits_are_range_errors() {
    for n in [
        "18446744073709551616",
        "-1",
        "-0",
        "1.5",
        "1e3",
        "1e308",
        "0.0000000000000000000000001",
    ] {
        let text = format!(
            r#"{{"routes":{{"a":{{"sessionKey":"s","secret":"x","limits":{{"maxBodyBytes":{n}}}}}}}}}"#
        );
        let issues = config_issues(&text);
        assert_eq!(
            issues,
            ["routes.a.limits.maxBodyBytes: expected a whole number from 1 to 67108864"],
            "for {n}"
        );
    }
    // Beyond f64: serde_json refuses the text itself.
    assert!(config_issues(r#"{"workers":1e400}"#)[0].contains("not valid JSON"));
}

#[test]
fn odd_route_ids_and_strings_in_config_are_issues() {
    let long_id = "a".repeat(65);
    let text = format!(
        r#"{{"routes":{{"{long_id}":{{"sessionKey":"s","secret":"x"}},"é":{{"sessionKey":"\u0000","secret":" \t "}},"":{{}}}}}}"#
    );
    let issues = config_issues(&text);
    assert!(
        issues.iter().any(|i| i.contains("route id must match")),
        "{issues:?}"
    );
    assert!(
        issues
            .iter()
            .any(|i| i.ends_with("secret: must not be empty")),
        "{issues:?}"
    );
    // A lone surrogate escape is not valid JSON text.
    assert!(config_issues(r#"{"routes":{"\ud800":{}}}"#)[0].contains("not valid JSON"));
}

#[test]
fn bodies_that_are_not_utf8_or_json_are_invalid_body() {
    let deep = "[".repeat(100_000);
    let deep_closed = "{\"a\":".repeat(5_000) + "1" + &"}".repeat(5_000);
    let bad: [&[u8]; 9] = [
        b"\xff\xfe{}",
        b"{\"action\":\"list_flows\"}\xc0",
        b"\xef\xbb\xbf{\"action\":\"list_flows\"}",
        b"\x00",
        b" \t\r\n ",
        b"{\"action\":\"get_flow\",\"flowId\":\"\\ud800\"}",
        b"1e400",
        deep.as_bytes(),
        deep_closed.as_bytes(),
    ];
    for body in bad {
        let err = parse_json(body).unwrap_err();
        assert_eq!(
            err.code,
            Code::InvalidBody,
            "for {:?}",
            &body[..body.len().min(40)]
        );
    }
}

#[test]
fn nested_but_allowed_bodies_reach_the_schema_and_get_issues() {
    let nested = "[".repeat(100) + &"]".repeat(100);
    let body =
        format!(r#"{{"action":"create_flow","goal":"g","stateJson":{nested},"extra":{nested}}}"#);
    let value = parse_json(body.as_bytes()).unwrap();
    let issues = request::parse(&value).unwrap_err();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].message, "Unrecognized key: \"extra\"");
}

#[test]
fn out_of_range_revisions_and_timestamps_are_issues() {
    for n in [
        "9007199254740992",
        "1e308",
        "-0.5",
        "18446744073709551616",
        "1.0000001",
    ] {
        let body = format!(r#"{{"action":"request_cancel","flowId":"f","expectedRevision":{n}}}"#);
        let value = parse_json(body.as_bytes()).unwrap();
        let issues = request::parse(&value).unwrap_err();
        assert_eq!(issues[0].path, "expectedRevision", "for {n}");
    }
    for v in [
        serde_json::json!([]),
        serde_json::json!("create_flow"),
        serde_json::json!({"action": ["create_flow"]}),
        serde_json::json!({"action": " run_task ", "runtime": "acp", "flowId": "f", "task": "t", "startedAt": 1}),
    ] {
        assert!(!request::parse(&v).unwrap_err().is_empty(), "for {v}");
    }
}

#[test]
fn non_ascii_header_bytes_never_count_as_a_secret_or_content_type() {
    let h = headers(&[
        (b"authorization", b"Bearer \xe2\x82\xac"),
        (b"x-openclaw-webhook-secret", b"\xff"),
        (b"content-type", b"application/json\x80"),
    ]);
    assert_eq!(presented_secret(&h), Some(""));
    assert!(!is_json(&h));
    // obs-text in Authorization: the alternate header is consulted instead.
    let h = headers(&[
        (b"authorization", b"Bearer \x80"),
        (b"x-openclaw-webhook-secret", b" alt "),
    ]);
    assert_eq!(presented_secret(&h), Some("alt"));
    let h = headers(&[
        (b"authorization", b"Bearer"),
        (b"content-type", b" Application/Problem+JSON ;x"),
    ]);
    assert_eq!(presented_secret(&h), Some(""));
    assert!(is_json(&h), "any +json media type counts");
}

#[test]
fn garbage_forwarding_headers_fall_back_to_the_shared_proxy_bucket() {
    let policy = ProxyPolicy {
        trusted: vec![IpNet::parse("10.0.0.0/8").unwrap()],
        allow_real_ip_fallback: true,
    };
    let peer: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
    let h = headers(&[
        (
            b"x-forwarded-for",
            b",,, [::1, 1.2.3.4:99999, [, ], :80, \xff",
        ),
        (b"x-real-ip", b"[::ffff:5.5.5.5]:1"),
    ]);
    // No forwarded hop parses; the real IP does, and is canonicalised.
    assert_eq!(
        policy.client_key(Some(peer), &h),
        ClientKey::Ip("5.5.5.5".parse().unwrap())
    );
    let h = headers(&[(b"x-forwarded-for", b"\xff\xfe")]);
    assert_eq!(
        policy.client_key(Some(peer), &h),
        ClientKey::UnknownBehindProxy
    );
    for bad in [
        "",
        "/",
        "1.2.3.4/",
        "1.2.3.4/33",
        "::/129",
        "1.2.3.4/-1",
        "[::1]/8",
        "1.2.3.4/8/8",
    ] {
        assert!(IpNet::parse(bad).is_none(), "{bad:?} parsed");
    }
}

#[test]
fn repeated_credential_headers_present_no_secret_whatever_their_bytes() {
    for (name, values) in [
        (&b"authorization"[..], [&b"Bearer a"[..], &b"Bearer a"[..]]),
        (b"authorization", [b"Bearer \xff", b""]),
        (b"x-openclaw-webhook-secret", [b"", b""]),
        (b"x-openclaw-webhook-secret", [b"\x80", b"s"]),
    ] {
        let h = headers(&[(name, values[0]), (name, values[1])]);
        assert_eq!(presented_secret(&h), None, "{name:?} {values:?}");
    }
}

#[test]
fn forwarded_lines_with_garbage_end_the_walk_at_the_garbage() {
    let policy = ProxyPolicy {
        trusted: vec![IpNet::parse("10.0.0.0/8").unwrap()],
        allow_real_ip_fallback: false,
    };
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let key = |pairs: &[(&[u8], &[u8])]| policy.client_key(Some(peer), &headers(pairs));
    let xff = &b"x-forwarded-for"[..];
    // A line that is not text, right of a forged address: no client.
    assert_eq!(
        key(&[(xff, b"198.51.100.1"), (xff, b"\xff")]),
        ClientKey::UnknownBehindProxy
    );
    // Right of it, a real client is still found.
    assert_eq!(
        key(&[(xff, b"\xff"), (xff, b"203.0.113.9, 10.0.0.2")]),
        ClientKey::Ip("203.0.113.9".parse().unwrap())
    );
    // Only commas and blanks, on many lines: no client, no panic.
    let blank: Vec<(&[u8], &[u8])> = (0..100).map(|_| (xff, &b" ,, , "[..])).collect();
    assert_eq!(key(&blank), ClientKey::UnknownBehindProxy);
}

#[test]
fn limiters_survive_zero_windows_and_far_future_times() {
    let key = ClientKey::Ip(IpAddr::from([10, 0, 0, 1]));
    let zero = RateLimiter::new(Duration::ZERO, 1, 0);
    let t0 = Instant::now();
    for i in 0..5 {
        assert!(zero.check(key, t0 + Duration::from_millis(i)).is_ok());
    }
    // Times before the limiter was built (another worker's clock read).
    let rl = RateLimiter::new(Duration::from_secs(60), 1, 1);
    let earlier = t0.checked_sub(Duration::from_secs(3600)).unwrap_or(t0);
    assert!(rl.check(key, earlier).is_ok());
    assert!(rl.check(key, earlier).is_err());
    let far = t0 + Duration::from_secs(10 * 365 * 24 * 3600);
    assert!(rl.check(ClientKey::Unknown, far).is_ok());
    assert!(
        rl.check(key, far).is_ok(),
        "key 1's window expired long ago"
    );

    let lim = InFlightLimiter::new(1, 0);
    let a = lim.acquire(key).unwrap();
    let b = lim.acquire(ClientKey::Unknown).unwrap();
    assert!(lim.acquire(ClientKey::UnknownBehindProxy).is_none());
    drop((a, b));
    assert_eq!(lim.in_flight(), 0);
}
