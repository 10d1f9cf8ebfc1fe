//! Route access policy over real HTTP: `allowFrom` on the client address
//! resolved through the trusted proxies (checked before the rate limit) and
//! the per-route `actions` allow-list (checked after the schema).

use serde_json::{json, Value};

use crate::support::*;

const INSIDE: &str = "203.0.113.7";
const OUTSIDE: &str = "198.51.100.1";
const LIST: &[u8] = br#"{"action":"list_flows"}"#;

fn list_from(gw: &Gateway, path: &str, forwarded_for: Option<&str>) -> Response {
    let mut headers = authed();
    if let Some(ip) = forwarded_for {
        headers.push(("x-forwarded-for", ip.to_owned()));
    }
    gw.post(path, &hdrs(&headers), LIST)
}

fn behind_proxy(plugin: Value) -> Value {
    gateway_config(
        plugin,
        json!({"gateway": {"bind": "127.0.0.1", "port": 0, "trustedProxies": ["127.0.0.1"]}}),
    )
}

fn code(res: &Response) -> (u16, &str) {
    (res.status, res.json["code"].as_str().unwrap_or(""))
}

#[test]
fn allow_from_matches_the_client_named_by_a_trusted_proxy() {
    let gw = Gateway::start(&behind_proxy(json!({"routes": {
        "zapier": route(json!({"allowFrom": ["203.0.113.0/24", "2001:db8::/32"]}))
    }})));
    assert_eq!(list_from(&gw, ROUTE_PATH, Some(INSIDE)).status, 200);
    assert_eq!(list_from(&gw, ROUTE_PATH, Some("2001:db8::5")).status, 200);
    // A mapped hop is its IPv4 address.
    assert_eq!(
        list_from(&gw, ROUTE_PATH, Some("::ffff:203.0.113.9")).status,
        200
    );
    // Spoofing an inside hop left of the real client does not help.
    let spoofed = format!("{INSIDE}, {OUTSIDE}");
    let res = list_from(&gw, ROUTE_PATH, Some(&spoofed));
    assert_eq!(
        res.json,
        json!({"ok": false, "code": "forbidden", "error": "Forbidden"})
    );
    assert_eq!(res.status, 403);
    // The proxy named no client: unknown, so refused.
    assert_eq!(code(&list_from(&gw, ROUTE_PATH, None)), (403, "forbidden"));
}

#[test]
fn allow_from_matches_a_direct_peer_and_ignores_what_it_forwards() {
    let gw = Gateway::start(&gateway_config(
        json!({"routes": {
            "zapier": route(json!({"allowFrom": ["127.0.0.0/8"]})),
            "far": route(json!({"path": "/plugins/webhooks/far", "allowFrom": [INSIDE]})),
        }}),
        json!({}),
    ));
    assert_eq!(list_from(&gw, ROUTE_PATH, None).status, 200);
    assert_eq!(list_from(&gw, ROUTE_PATH, Some(OUTSIDE)).status, 200);
    let far = list_from(&gw, "/plugins/webhooks/far", Some(INSIDE));
    assert_eq!(code(&far), (403, "forbidden"));
}

#[test]
fn an_ipv4_mapped_peer_matches_its_ipv4_block() {
    let plugin = json!({"routes": {
        "zapier": route(json!({"allowFrom": ["127.0.0.1"]})),
        "mapped": route(json!({"path": "/plugins/webhooks/mapped", "allowFrom": ["::ffff:127.0.0.0/104"]})),
        "v6": route(json!({"path": "/plugins/webhooks/v6", "allowFrom": ["::/0"]})),
    }});
    // An IPv6 socket bound to a mapped address sees IPv4 clients as
    // `::ffff:127.0.0.1`.
    let gw = Gateway::start(&gateway_config(
        plugin,
        json!({"gateway": {"bind": "::ffff:127.0.0.1", "port": 0}}),
    ));
    assert!(gw.addr.is_ipv6(), "{}", gw.addr);
    assert_eq!(list_from(&gw, ROUTE_PATH, None).status, 200);
    assert_eq!(list_from(&gw, "/plugins/webhooks/mapped", None).status, 200);
    let v6 = list_from(&gw, "/plugins/webhooks/v6", None);
    assert_eq!(code(&v6), (403, "forbidden"), "a mapped peer is IPv4");
}

#[test]
fn refused_addresses_spend_no_rate_limit_budget() {
    let gw = Gateway::start(&behind_proxy(json!({"routes": {
        "zapier": route(json!({"allowFrom": [INSIDE], "limits": {"rateLimitMaxRequests": 2}}))
    }})));
    // The method is judged first.
    assert_eq!(gw.request("GET", ROUTE_PATH, &[], b"").status, 405);
    // Were these counted, the third would be 429.
    for i in 0..5 {
        let res = list_from(&gw, ROUTE_PATH, Some(OUTSIDE));
        assert_eq!(code(&res), (403, "forbidden"), "request {i}");
        assert!(res.header("retry-after").is_none());
    }
    let statuses: Vec<u16> = (0..3)
        .map(|_| list_from(&gw, ROUTE_PATH, Some(INSIDE)).status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
}

#[test]
fn the_plugin_wide_allow_from_applies_unless_a_route_sets_its_own() {
    let gw = Gateway::start(&behind_proxy(json!({
        "allowFrom": [INSIDE],
        "routes": {
            "zapier": route(json!({})),
            "open": route(json!({"path": "/plugins/webhooks/open", "allowFrom": ["0.0.0.0/0", "::/0"]})),
        }
    })));
    assert_eq!(list_from(&gw, ROUTE_PATH, Some(INSIDE)).status, 200);
    assert_eq!(list_from(&gw, ROUTE_PATH, Some(OUTSIDE)).status, 403);
    let open = list_from(&gw, "/plugins/webhooks/open", Some(OUTSIDE));
    assert_eq!(open.status, 200);
}

const READS: [&str; 5] = [
    "get_flow",
    "list_flows",
    "find_latest_flow",
    "resolve_flow",
    "get_task_summary",
];

#[test]
fn a_read_only_route_serves_reads_and_refuses_writes() {
    let reader_path = "/plugins/webhooks/reader";
    let gw = Gateway::start(&gateway_config(
        json!({"routes": {
            "zapier": route(json!({})),
            "reader": route(json!({"path": reader_path, "actions": READS})),
        }}),
        json!({}),
    ));
    let flow = gw.create_flow("watched");
    let flow_id = flow["flowId"].as_str().unwrap();
    let read = |body: Value| gw.post(reader_path, &hdrs(&authed()), body.to_string().as_bytes());

    let got = read(json!({"action": "get_flow", "flowId": flow_id}));
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json["result"]["flow"]["flowId"], flow_id);
    for body in [
        json!({"action": "list_flows"}),
        json!({"action": "find_latest_flow"}),
        json!({"action": "get_task_summary", "flowId": flow_id}),
    ] {
        assert_eq!(read(body.clone()).status, 200, "{body}");
    }

    for (name, body) in [
        (
            "create_flow",
            json!({"action": "create_flow", "goal": "sneaky"}),
        ),
        (
            "cancel_flow",
            json!({"action": "cancel_flow", "flowId": flow_id}),
        ),
        (
            "fail_flow",
            json!({"action": "fail_flow", "flowId": flow_id, "expectedRevision": 0}),
        ),
    ] {
        let res = read(body);
        assert_eq!(res.status, 403, "{name}: {}", res.text);
        assert_eq!(
            res.json,
            json!({"ok": false, "routeId": "reader", "code": "action_forbidden",
                   "error": format!("action {name} is not allowed on this route")})
        );
    }
    // The schema is judged first.
    let invalid = read(json!({"action": "create_flow"}));
    assert_eq!(code(&invalid), (400, "invalid_request"));
    // Nothing was written.
    let after = gw.action(json!({"action": "get_flow", "flowId": flow_id}));
    assert_eq!(after.json["result"]["flow"], flow);
    let listed = gw.action(json!({"action": "list_flows"}));
    assert_eq!(listed.json["result"]["flows"].as_array().unwrap().len(), 1);
}

#[test]
fn access_config_mistakes_are_all_listed_with_their_paths() {
    let mut signed = route(json!({"path": "/signed", "signing": {
        "scheme": "hmac", "secrets": ["whsec_c2hvcnQ="], "toleranceSec": 7200
    }}));
    signed.as_object_mut().unwrap().remove("secret");
    let mut bare = route(json!({"path": "/bare"}));
    bare.as_object_mut().unwrap().remove("secret");
    let config = gateway_config(
        json!({
            "allowFrom": ["10.0.0.0/99"],
            "routes": {
                "signed": signed,
                "bare": bare,
                "listed": route(json!({"path": "/listed", "secret": [], "actions": ["get_flow", "delete_flow"]})),
            }
        }),
        json!({}),
    );
    let out = Gateway::run_to_exit(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(!out.stdout.contains("listening on"));
    let base = "plugins.entries.webhooks.config";
    for expected in [
        "allowFrom.0: expected an IP address or CIDR block",
        "routes.signed.signing.scheme: expected one of standard-webhooks",
        "routes.signed.signing.secrets.0: decodes to 5 bytes; at least 24 are required",
        "routes.signed.signing.toleranceSec: expected a whole number from 1 to 3600",
        "routes.bare.secret: is required unless signing is set",
        "routes.listed.secret: expected 1 to 4 entries, got 0",
        "routes.listed.actions.1: expected one of create_flow,",
    ] {
        let expected = format!("{base}.{expected}");
        assert!(
            out.stderr.contains(&expected),
            "missing {expected:?} in:\n{}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("(7 problems)"), "{}", out.stderr);
}
