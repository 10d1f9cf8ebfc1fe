//! Unit tests of `config`.

use super::*;

fn issues(json: &str) -> Vec<String> {
    match parse(json) {
        Ok(_) => Vec::new(),
        Err(issues) => issues.iter().map(|i| i.to_string()).collect(),
    }
}

#[test]
fn a_minimal_route_gets_the_documented_defaults() {
    let c = parse(r#"{"routes":{"zapier":{"sessionKey":"agent:main:main","secret":"shared-secret-0123456"}}}"#)
        .unwrap();
    let r = &c.routes[0];
    assert_eq!(r.path, "/plugins/webhooks/zapier");
    assert_eq!(r.controller_id, "webhooks/zapier");
    assert!(r.enabled);
    assert_eq!(r.limits, Limits::default());
}

#[test]
fn paths_differing_only_in_case_conflict() {
    let got = issues(
        r#"{"routes":{
            "first":{"path":"/plugins/webhooks/shared","sessionKey":"s","secret":"x"},
            "second":{"path":"/Plugins/Webhooks/Shared","sessionKey":"s","secret":"y"}}}"#,
    );
    assert_eq!(
        got,
        ["routes.second.path: conflicts with routes.first.path (/Plugins/Webhooks/Shared)"]
    );
}

#[test]
fn configured_paths_resolve_dot_segments_like_request_paths() {
    let c = parse(
        r#"{"routes":{
            "a":{"path":"/hooks/../plugins/webhooks/./a/","sessionKey":"s","secret":"x"},
            "b":{"path":"plugins/x/../b","sessionKey":"s","secret":"x"}}}"#,
    )
    .unwrap();
    assert_eq!(c.routes[0].path, "/plugins/webhooks/a");
    assert_eq!(c.routes[1].path, "/plugins/b");
    assert_eq!(resolve_path("x/y/../z"), "/x/z");
}

#[test]
fn a_dot_segment_path_cannot_escape_the_duplicate_check() {
    let got = issues(
        r#"{"routes":{
            "first":{"path":"/plugins/webhooks/shared","sessionKey":"s","secret":"x"},
            "second":{"path":"/plugins/other/../webhooks/shared","sessionKey":"s","secret":"y"}}}"#,
    );
    assert_eq!(
        got,
        ["routes.second.path: conflicts with routes.first.path (/plugins/webhooks/shared)"]
    );
}

#[test]
fn paths_no_request_can_reach_are_refused() {
    let got = issues(
        r#"{"routes":{
            "q":{"path":"/hooks?x=1","sessionKey":"s","secret":"x"},
            "f":{"path":"/hooks#top","sessionKey":"s","secret":"x"},
            "u":{"path":"/h\u00fcks","sessionKey":"s","secret":"x"},
            "sp":{"path":"/my hooks","sessionKey":"s","secret":"x"},
            "lt":{"path":"/<hooks>","sessionKey":"s","secret":"x"},
            "ok":{"path":"/h%C3%BCks/[a]{b}|c~d\"e\\f^g_!$&'()*+,;=:@","sessionKey":"s","secret":"x"}}}"#,
    );
    let clients = "(write it percent-encoded, as clients send it)";
    assert_eq!(
        got,
        [
            "routes.q.path: no request can reach it: a request's path ends at '?'".to_owned(),
            "routes.f.path: no request can reach it: a request's path ends at '#'".to_owned(),
            format!("routes.u.path: no request can reach it: a request's path cannot carry 'ü' {clients}"),
            format!("routes.sp.path: no request can reach it: a request's path cannot carry ' ' {clients}"),
            format!("routes.lt.path: no request can reach it: a request's path cannot carry '<' {clients}"),
        ]
    );
}

#[test]
fn route_limits_override_plugin_limits_field_by_field() {
    let c = parse(
        r#"{"limits":{"maxInFlight":2,"rateLimitMaxRequests":5,"ipv6PrefixBits":48},
            "routes":{"a":{"sessionKey":"s","secret":"x","limits":{"rateLimitMaxRequests":9}},
                      "b":{"sessionKey":"s","secret":"x","limits":{"ipv6PrefixBits":128}}}}"#,
    )
    .unwrap();
    assert_eq!(c.routes[0].limits.ipv6_prefix_bits, 48);
    assert_eq!(c.routes[1].limits.ipv6_prefix_bits, 128);
    assert_eq!(Limits::default().ipv6_prefix_bits, 64);
    let l = c.routes[0].limits;
    assert_eq!(l.max_in_flight, 2);
    assert_eq!(l.rate_limit_max_requests, 9);
    assert_eq!(l.max_body_bytes, 262_144);
}

#[test]
fn max_waiters_defaults_to_1024_and_is_checked() {
    let c = parse(
        r#"{"limits":{"maxWaiters":7},
            "routes":{"a":{"sessionKey":"s","secret":"x"},
                      "b":{"sessionKey":"s","secret":"y","limits":{"maxWaiters":9}}}}"#,
    )
    .unwrap();
    assert_eq!(Limits::default().max_waiters, 1024);
    assert_eq!(c.routes[0].limits.max_waiters, 7);
    assert_eq!(c.routes[1].limits.max_waiters, 9);
    assert_eq!(
        issues(r#"{"routes":{"a":{"sessionKey":"s","secret":"x","limits":{"maxWaiters":0}}}}"#),
        ["routes.a.limits.maxWaiters: expected a whole number from 1 to 1000000"]
    );
}

#[test]
fn every_mistake_is_reported_with_its_path() {
    let got = issues(
        r#"{"routs":{},"routes":{
            "bad id":{"sessionKey":"s","secret":"x"},
            "b":{"secret":{"source":"vault","provider":"p","id":"i"},"extra":1},
            "c":{"sessionKey":"s","secret":"x","limits":{"maxInFlight":0,"ipv6PrefixBits":16}}}}"#,
    );
    assert_eq!(
        got,
        [
            "routs: unknown key",
            "routes.bad id: route id must match [A-Za-z0-9_-]{1,64}",
            "routes.b.extra: unknown key",
            "routes.b.sessionKey: is required",
            "routes.b.secret.source: expected one of env, file, exec",
            "routes.c.limits.maxInFlight: expected a whole number from 1 to 100000",
            "routes.c.limits.ipv6PrefixBits: expected a whole number from 32 to 128",
        ]
    );
}

#[test]
fn duplicate_normalised_paths_name_both_routes() {
    let got = issues(
        r#"{"routes":{
            "first":{"path":"/plugins/webhooks/shared","sessionKey":"s","secret":"x"},
            "second":{"path":"/plugins/webhooks/shared/","sessionKey":"s","secret":"y"}}}"#,
    );
    assert_eq!(
        got,
        ["routes.second.path: conflicts with routes.first.path (/plugins/webhooks/shared)"]
    );
}

#[test]
fn disabled_routes_do_not_reserve_paths() {
    let c = parse(
        r#"{"routes":{
            "first":{"enabled":false,"path":"/x","sessionKey":"s","secret":"x"},
            "second":{"path":"/x","sessionKey":"s","secret":"y"}}}"#,
    );
    assert!(c.is_ok());
}
