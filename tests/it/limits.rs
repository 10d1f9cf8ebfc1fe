//! The fixed-window rate limit and the in-flight limit, with small
//! configured limits and exact counts.

use std::io::Write;
use std::net::{Shutdown, TcpStream};

use serde_json::{json, Value};

use crate::support::*;

fn list_as(gw: &Gateway, path: &str, secret: &str, forwarded_for: Option<&str>) -> Response {
    let forwarded: Vec<(&str, &str)> = forwarded_for
        .map(|ip| ("x-forwarded-for", ip))
        .into_iter()
        .collect();
    gw.post_json(path, secret, &forwarded, r#"{"action":"list_flows"}"#)
}

#[test]
fn the_first_refusal_is_request_max_plus_one_with_retry_after() {
    let gw = Gateway::start(&limited(
        json!({"rateLimitMaxRequests": 3, "rateLimitWindowMs": 60_000}),
        json!({}),
    ));
    for i in 0..3 {
        assert_eq!(
            list_as(&gw, ROUTE_PATH, SECRET, None).status,
            200,
            "request {}",
            i + 1
        );
    }
    let res = list_as(&gw, ROUTE_PATH, SECRET, None);
    assert_eq!(res.status, 429);
    assert_eq!(
        res.json,
        json!({"ok": false, "code": "rate_limited", "error": "Too Many Requests"})
    );
    let retry: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
}

#[test]
fn failed_authentications_spend_the_same_budget() {
    let gw = Gateway::start(&limited(json!({"rateLimitMaxRequests": 3}), json!({})));
    assert_eq!(list_as(&gw, ROUTE_PATH, "wrong", None).status, 401);
    assert_eq!(list_as(&gw, ROUTE_PATH, "wrong", None).status, 401);
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 200);
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 429);
}

#[test]
fn wrong_methods_are_refused_before_they_are_counted() {
    let gw = Gateway::start(&limited(json!({"rateLimitMaxRequests": 2}), json!({})));
    for _ in 0..5 {
        assert_eq!(gw.request("GET", ROUTE_PATH, &[], b"").status, 405);
    }
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 200);
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 200);
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 429);
}

#[test]
fn a_path_with_and_without_trailing_slash_shares_one_budget() {
    let gw = Gateway::start(&limited(json!({"rateLimitMaxRequests": 2}), json!({})));
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 200);
    assert_eq!(
        list_as(&gw, &format!("{ROUTE_PATH}/"), SECRET, None).status,
        200
    );
    assert_eq!(
        list_as(&gw, &format!("{ROUTE_PATH}/"), SECRET, None).status,
        429
    );
}

/// The statuses of `list_flows` sent in order, each through the trusted
/// proxy on behalf of the client named in its `X-Forwarded-For`.
fn statuses_for(gw: &Gateway, forwarded: &[&str]) -> Vec<u16> {
    forwarded
        .iter()
        .map(|xff| list_as(gw, ROUTE_PATH, SECRET, Some(xff)).status)
        .collect()
}

fn behind_proxy(limits: Value) -> Value {
    limited(limits, json!({"trustedProxies": ["127.0.0.1"]}))
}

#[test]
fn clients_behind_a_trusted_proxy_get_their_own_budgets() {
    let gw = Gateway::start(&behind_proxy(json!({"rateLimitMaxRequests": 2})));
    let (a, b) = ("203.0.113.1", "203.0.113.2");
    // The last one spoofs a hop left of the real client: same budget as `a`.
    let spoofed = "198.51.100.9, 203.0.113.1";
    assert_eq!(
        statuses_for(&gw, &[a, a, a, b, spoofed]),
        [200, 200, 429, 200, 429]
    );
}

#[test]
fn forwarded_lines_form_one_list_so_a_forged_first_line_is_not_the_key() {
    let gw = Gateway::start(&behind_proxy(json!({"rateLimitMaxRequests": 2})));
    let auth = format!("Bearer {SECRET}");
    // Each request forges a new first line; the proxy appended its own line
    // naming the real client, 203.0.113.1, whose budget of 2 they all share.
    let statuses: Vec<u16> = ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .map(|forged| {
            let headers = [
                ("content-type", "application/json"),
                ("authorization", auth.as_str()),
                ("x-forwarded-for", forged),
                ("x-forwarded-for", "203.0.113.1"),
            ];
            gw.post(ROUTE_PATH, &headers, br#"{"action":"list_flows"}"#)
                .status
        })
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    // Another client behind the same proxy keeps its own budget.
    assert_eq!(statuses_for(&gw, &["203.0.113.2"]), [200]);
}

#[test]
fn a_table_full_of_authenticated_clients_sends_new_ones_to_one_overflow_bucket() {
    // The in-process limiter's key table.
    let gw = Gateway::start_embedded(&behind_proxy(
        json!({"rateLimitMaxRequests": 2, "maxTrackedKeys": 2}),
    ));
    let [a, b, c, d, e] = [
        "203.0.113.1",
        "203.0.113.2",
        "203.0.113.3",
        "203.0.113.4",
        "203.0.113.5",
    ];
    // a and b authenticate and fill the table; c, d and e share one
    // overflow bucket of 2; a's window survived them.
    assert_eq!(
        statuses_for(&gw, &[a, b, c, d, e, a, a]),
        [200, 200, 200, 200, 429, 200, 429]
    );
}

#[test]
fn a_client_spraying_addresses_cannot_lock_out_clients_with_the_secret() {
    let gw = Gateway::start(&behind_proxy(
        json!({"rateLimitMaxRequests": 5, "maxTrackedKeys": 16}),
    ));
    let (known, newcomer) = ("203.0.113.1", "203.0.113.2");
    assert_eq!(statuses_for(&gw, &[known]), [200]);
    // 600 addresses without the secret, through the trusted proxy: far more
    // than the table holds. Meanwhile the known client keeps sending, and a
    // client never seen before arrives in the middle of the spray.
    let mut served = Vec::new();
    for n in 0..600u32 {
        let sprayed = format!("198.51.{}.{}", n / 200, n % 200 + 1);
        let res = list_as(&gw, ROUTE_PATH, "wrong-secret", Some(&sprayed));
        assert_ne!(res.status, 200, "{sprayed}");
        if n % 200 == 100 {
            served.extend(statuses_for(&gw, &[known, newcomer]));
        }
    }
    assert_eq!(served, [200; 6]);
}

#[test]
fn addresses_of_one_ipv6_network_share_one_budget() {
    let gw = Gateway::start(&behind_proxy(json!({"rateLimitMaxRequests": 2})));
    // One /64 (the default), then its neighbour.
    assert_eq!(
        statuses_for(
            &gw,
            &[
                "2001:db8:0:1::1",
                "2001:db8:0:1:ffff::2",
                "2001:db8:0:1::3",
                "2001:db8:0:2::1"
            ]
        ),
        [200, 200, 429, 200]
    );
    let per_address = Gateway::start(&behind_proxy(
        json!({"rateLimitMaxRequests": 2, "ipv6PrefixBits": 128}),
    ));
    assert_eq!(
        statuses_for(
            &per_address,
            &["2001:db8:0:1::1", "2001:db8:0:1::1", "2001:db8:0:1::3"]
        ),
        [200, 200, 200]
    );
}

/// Opens a request that the server has admitted, so that it holds its
/// in-flight slot until its body is sent.
fn hold_slot(gw: &Gateway) -> TcpStream {
    begin_request_until_continue(
        gw.addr,
        "Connection: close\r\ncontent-length: 23\r\n",
        br#"{"action":"#,
    )
}

fn assert_in_flight_limited(res: &Response) {
    assert_eq!(res.status, 429, "{}", res.text);
    assert_eq!(res.json["code"], "in_flight_limited");
    assert_eq!(res.header("retry-after"), Some("1"));
}

#[test]
fn the_in_flight_limit_refuses_one_more_and_frees_the_slot_afterwards() {
    let gw = Gateway::start(&limited(json!({"maxInFlight": 1}), json!({})));
    let mut held = hold_slot(&gw);
    assert_in_flight_limited(&list_as(&gw, ROUTE_PATH, SECRET, None));
    held.write_all(b"\"list_flows\"}").unwrap();
    assert_eq!(read_response(&mut held).status, 200);
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 200);
}

#[test]
fn a_client_that_disconnects_mid_body_releases_its_slot() {
    let gw = Gateway::start(&limited(json!({"maxInFlight": 1}), json!({})));
    let mut held = hold_slot(&gw);
    assert_in_flight_limited(&list_as(&gw, ROUTE_PATH, SECRET, None));
    // The client goes away mid-body: its end of stream is what the server
    // sees of a disconnect. Keeping the read half open lets the test see
    // the server finish the request (which frees the slot) by its answer.
    held.shutdown(Shutdown::Write).unwrap();
    let res = read_response(&mut held);
    assert_eq!(res.status, 400, "{}", res.text);
    assert_eq!(res.json["code"], "invalid_body");
    assert_eq!(list_as(&gw, ROUTE_PATH, SECRET, None).status, 200);
}
