//! Operations: the admin listener (`/metrics`, `/healthz`, `/readyz`, its
//! token), the exposition read back by a Prometheus parser, counters moved
//! by scripted requests, readiness during a stop, the previous-interface
//! plugin, the audit log, its cap, and JSON logs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prometheus_parse::{LineInfo, Scrape, Value as Sample};
use serde_json::{json, Value};

use openclaw_ffi::module::FFI_VERSION;

use crate::support::*;

pub(crate) const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// The default setup plus an admin listener on an ephemeral port.
pub(crate) fn config_with_admin(admin: Value) -> Value {
    let mut config = default_config();
    config["gateway"]["admin"] = admin;
    config
}

/// The admin address the Gateway logged when it started.
pub(crate) fn admin_addr(gw: &Gateway) -> SocketAddr {
    let logs = gw.printed();
    let at = logs
        .find("admin listening on http://")
        .unwrap_or_else(|| panic!("no admin listener in the logs:\n{logs}"));
    let rest = &logs[at + "admin listening on http://".len()..];
    let end = rest.find([' ', '"', '\n']).unwrap_or(rest.len());
    rest[..end].parse().unwrap()
}

fn admin_get(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    http(addr, "GET", path, &headers, b"")
}

/// Scrapes `/metrics`, checks that every line is one the Prometheus text
/// format allows, and parses it.
pub(crate) fn scrape(addr: SocketAddr, token: Option<&str>) -> Scrape {
    let res = admin_get(addr, "/metrics", token);
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    for line in res.text.lines() {
        let info = LineInfo::parse(line);
        let ok = if line.starts_with("# HELP ") {
            matches!(info, LineInfo::Doc { .. })
        } else if line.starts_with("# TYPE ") {
            matches!(info, LineInfo::Type { .. })
        } else {
            matches!(info, LineInfo::Sample { value, .. } if value.parse::<f64>().is_ok() || value == "+Inf")
        };
        assert!(ok, "not a Prometheus text line: {line:?}");
    }
    Scrape::parse(res.text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// Counter and gauge values by `name{label="value",...}` (labels sorted).
pub(crate) fn values(scrape: &Scrape) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in &scrape.samples {
        let v = match &s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
            Sample::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Sample::Summary(_) => continue,
        };
        let mut labels: Vec<(&String, &String)> = s.labels.iter().collect();
        labels.sort();
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        out.insert(format!("{}{{{}}}", s.metric, labels.join(",")), v);
    }
    out
}

pub(crate) fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels = labels.to_vec();
    labels.sort();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

pub(crate) fn requests(route: &str, action: &str, code: &str) -> String {
    series(
        "openclaw_webhooks_requests_total",
        &[("route", route), ("action", action), ("code", code)],
    )
}

fn rejections(route: &str, reason: &str) -> String {
    series(
        "openclaw_webhooks_rejections_total",
        &[("route", route), ("reason", reason)],
    )
}

fn key_uses(route: &str, result: &str) -> String {
    series(
        "openclaw_webhooks_idempotency_keys_total",
        &[("route", route), ("result", result)],
    )
}

#[test]
fn the_exposition_parses_and_every_series_exists_from_the_start() {
    let gw = Gateway::start(&config_with_admin(json!({"port": 0})));
    let metrics = values(&scrape(admin_addr(&gw), None));
    for (name, labels) in [
        (
            "openclaw_webhooks_requests_total",
            vec![
                ("route", "zapier"),
                ("action", "create_flow"),
                ("code", "ok"),
            ],
        ),
        (
            "openclaw_webhooks_requests_total",
            vec![
                ("route", "zapier"),
                ("action", "none"),
                ("code", "unauthorized"),
            ],
        ),
        (
            "openclaw_webhooks_rejections_total",
            vec![("route", "zapier"), ("reason", "rate_limited")],
        ),
        (
            "openclaw_webhooks_request_duration_seconds",
            vec![("route", "zapier"), ("action", "get_flow")],
        ),
        (
            "openclaw_webhooks_in_flight_requests",
            vec![("route", "zapier")],
        ),
        ("openclaw_webhooks_waiters", vec![("route", "zapier")]),
        (
            "openclaw_webhooks_idempotency_keys_total",
            vec![("route", "zapier"), ("result", "first")],
        ),
        (
            "openclaw_webhooks_secret_slot_matches_total",
            vec![("route", "zapier"), ("slot", "0")],
        ),
        (
            "openclaw_webhooks_callback_deliveries_total",
            vec![("route", "zapier"), ("result", "delivered")],
        ),
        ("openclaw_webhooks_unrouted_requests_total", vec![]),
        ("openclaw_taskflow_flows", vec![("status", "succeeded")]),
        ("openclaw_taskflow_cached_flows", vec![]),
        ("openclaw_taskflow_store_commit_duration_seconds", vec![]),
        ("openclaw_taskflow_store_commit_batch_size", vec![]),
    ] {
        let key = series(name, &labels);
        assert_eq!(metrics.get(&key), Some(&0.0), "{key} missing or not 0");
    }
    assert_eq!(metrics.get("openclaw_gateway_ready{}"), Some(&1.0));
    let plugin = metrics
        .keys()
        .find(|k| k.starts_with("openclaw_gateway_plugin_info{"))
        .expect("plugin info");
    assert!(plugin.contains(r#"metrics="true""#), "{plugin}");
    assert!(plugin.contains(r#"plugin="webhooks""#), "{plugin}");
    assert!(metrics
        .keys()
        .any(|k| k.starts_with("openclaw_webhooks_build_info{")));
    assert!(metrics
        .keys()
        .any(|k| k.starts_with("openclaw_gateway_build_info{")));
    // Labels never carry session keys, flow ids or addresses.
    for key in metrics.keys() {
        assert!(
            !key.contains(SESSION) && !key.contains("127.0.0.1"),
            "{key}"
        );
    }
}

/// Sends scripted requests, each with the series it must move by one.
struct Script<'a> {
    gw: &'a Gateway,
    expected: BTreeMap<String, f64>,
}

impl Script<'_> {
    fn expect(&mut self, res: &Response, status: u16, series: &[String]) {
        assert_eq!(res.status, status, "{}", res.text);
        for s in series {
            *self.expected.entry(s.clone()).or_default() += 1.0;
        }
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], body: Value) -> Response {
        self.gw.post(path, headers, body.to_string().as_bytes())
    }
}

#[test]
fn counters_move_by_exactly_the_scripted_requests() {
    let plugin = json!({
        "limits": {"rateLimitMaxRequests": 1000},
        "routes": {
            "zapier": route(json!({"limits": {"maxInFlight": 1}})),
            "strict": route(json!({"path": "/plugins/webhooks/strict", "idempotency": {"required": true}})),
            "tiny": route(json!({"path": "/plugins/webhooks/tiny", "limits": {"rateLimitMaxRequests": 2, "maxBodyBytes": 64}})),
        }
    });
    let mut config = gateway_config(plugin, json!({}));
    config["gateway"]["admin"] = json!({"port": 0});
    // Counts the embedded store's cache and the in-process limits too.
    let gw = Gateway::start_embedded(&config);
    let admin = admin_addr(&gw);
    let before = values(&scrape(admin, None));

    let mut s = Script {
        gw: &gw,
        expected: BTreeMap::new(),
    };
    let auth = format!("Bearer {SECRET}");
    let json_auth = [
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    let ok = |a: &str| requests("zapier", a, "ok");

    // Every action once.
    let res = gw.action(json!({"action": "create_flow", "goal": "scripted"}));
    s.expect(&res, 200, &[ok("create_flow")]);
    let flow = res.json["result"]["flow"]["flowId"]
        .as_str()
        .unwrap()
        .to_owned();
    for (action, body) in [
        ("get_flow", json!({"action": "get_flow", "flowId": flow})),
        ("list_flows", json!({"action": "list_flows"})),
        ("find_latest_flow", json!({"action": "find_latest_flow"})),
        (
            "resolve_flow",
            json!({"action": "resolve_flow", "token": flow}),
        ),
        (
            "get_task_summary",
            json!({"action": "get_task_summary", "flowId": flow}),
        ),
    ] {
        let res = gw.action(body);
        s.expect(&res, 200, &[ok(action)]);
    }
    let res = gw.action(json!({"action": "set_waiting", "flowId": flow, "expectedRevision": 0}));
    s.expect(&res, 200, &[ok("set_waiting")]);
    let res = gw.action(json!({"action": "resume_flow", "flowId": flow, "expectedRevision": 1}));
    s.expect(&res, 200, &[ok("resume_flow")]);
    let res =
        gw.action(json!({"action": "run_task", "flowId": flow, "runtime": "acp", "task": "t"}));
    s.expect(&res, 200, &[ok("run_task")]);
    let res = gw.action(json!({"action": "request_cancel", "flowId": flow, "expectedRevision": 2}));
    s.expect(&res, 200, &[ok("request_cancel")]);
    let res = gw.action(json!({"action": "cancel_flow", "flowId": flow}));
    s.expect(&res, 200, &[ok("cancel_flow")]);
    let res = gw.action(json!({"action": "finish_flow", "flowId": flow, "expectedRevision": 0}));
    s.expect(
        &res,
        409,
        &[requests("zapier", "finish_flow", "revision_conflict")],
    );
    let other = gw.create_flow("to fail");
    s.expected
        .entry(ok("create_flow"))
        .and_modify(|v| *v += 1.0);
    let res =
        gw.action(json!({"action": "fail_flow", "flowId": other["flowId"], "expectedRevision": 0}));
    s.expect(&res, 200, &[ok("fail_flow")]);
    let res =
        gw.action(json!({"action": "finish_flow", "flowId": "missing", "expectedRevision": 0}));
    s.expect(&res, 404, &[requests("zapier", "finish_flow", "not_found")]);

    // Each rejection reason that a request can be scripted into.
    let reject = |route: &str, action: &str, reason: &str| {
        vec![requests(route, action, reason), rejections(route, reason)]
    };
    let res = gw.request("GET", ROUTE_PATH, &[], b"");
    s.expect(&res, 405, &reject("zapier", "none", "method_not_allowed"));
    let res = gw.post(ROUTE_PATH, &[("content-type", "text/plain")], b"{}");
    s.expect(
        &res,
        415,
        &reject("zapier", "none", "unsupported_media_type"),
    );
    let res = s.post(
        ROUTE_PATH,
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer wrong-secret"),
        ],
        json!({"action": "list_flows"}),
    );
    s.expect(&res, 401, &reject("zapier", "none", "unauthorized"));
    let res = gw.post(ROUTE_PATH, &json_auth, b"{not json");
    s.expect(&res, 400, &reject("zapier", "none", "invalid_body"));
    let res = s.post(ROUTE_PATH, &json_auth, json!({"action": "no_such_action"}));
    s.expect(&res, 400, &reject("zapier", "none", "invalid_request"));
    let res = s.post(
        ROUTE_PATH,
        &json_auth,
        json!({"action": "run_task", "flowId": flow, "runtime": "acp", "task": "t", "childSessionKey": "agent:other:x"}),
    );
    s.expect(
        &res,
        403,
        &reject("zapier", "run_task", "child_session_forbidden"),
    );
    let bad_key = [json_auth[0], json_auth[1], ("idempotency-key", "has space")];
    let res = s.post(
        ROUTE_PATH,
        &bad_key,
        json!({"action": "create_flow", "goal": "k"}),
    );
    s.expect(
        &res,
        400,
        &reject("zapier", "create_flow", "invalid_idempotency_key"),
    );
    // In flight: a request holds the only slot while its body is awaited.
    let body = json!({"action": "list_flows"}).to_string();
    let framing = format!("Connection: close\r\ncontent-length: {}\r\n", body.len());
    let (head, tail) = body.as_bytes().split_at(5);
    // `100 Continue` comes once the held request has passed its checks and
    // holds the slot, so no probe can take the slot before it.
    let mut held = begin_request_until_continue(gw.addr, &framing, head);
    let res = s.post(ROUTE_PATH, &json_auth, json!({"action": "list_flows"}));
    s.expect(&res, 429, &reject("zapier", "none", "in_flight_limited"));
    std::io::Write::write_all(&mut held, tail).unwrap();
    let res = read_response(&mut held);
    s.expect(&res, 200, &[ok("list_flows")]);

    // Idempotency: a first use, a replay, another request under the key.
    let keyed = [
        json_auth[0],
        json_auth[1],
        ("idempotency-key", "scripted-key-1"),
    ];
    let res = s.post(
        ROUTE_PATH,
        &keyed,
        json!({"action": "create_flow", "goal": "once"}),
    );
    s.expect(&res, 200, &[ok("create_flow"), key_uses("zapier", "first")]);
    let res = s.post(
        ROUTE_PATH,
        &keyed,
        json!({"action": "create_flow", "goal": "once"}),
    );
    assert_eq!(res.header("idempotent-replayed"), Some("true"));
    s.expect(
        &res,
        200,
        &[ok("create_flow"), key_uses("zapier", "replayed")],
    );
    let res = s.post(
        ROUTE_PATH,
        &keyed,
        json!({"action": "create_flow", "goal": "twice"}),
    );
    let mut moved = reject("zapier", "create_flow", "idempotency_key_mismatch");
    moved.push(key_uses("zapier", "mismatch"));
    s.expect(&res, 422, &moved);

    // The route that requires keys; the route with small limits.
    let res = s.post(
        "/plugins/webhooks/strict",
        &json_auth,
        json!({"action": "create_flow", "goal": "g"}),
    );
    s.expect(
        &res,
        400,
        &reject("strict", "create_flow", "idempotency_key_required"),
    );
    let big = json!({"action": "create_flow", "goal": "x".repeat(100)});
    let res = s.post("/plugins/webhooks/tiny", &json_auth, big);
    s.expect(&res, 413, &reject("tiny", "none", "payload_too_large"));
    let res = s.post(
        "/plugins/webhooks/tiny",
        &json_auth,
        json!({"action": "list_flows"}),
    );
    s.expect(&res, 200, &[requests("tiny", "list_flows", "ok")]);
    let res = s.post(
        "/plugins/webhooks/tiny",
        &json_auth,
        json!({"action": "list_flows"}),
    );
    s.expect(&res, 429, &reject("tiny", "none", "rate_limited"));
    let res = s.post("/plugins/webhooks/nowhere", &json_auth, json!({}));
    s.expect(
        &res,
        404,
        &["openclaw_webhooks_unrouted_requests_total{}".to_owned()],
    );

    let after = values(&scrape(admin, None));
    let counted = |k: &str| {
        k.starts_with("openclaw_webhooks_requests_total")
            || k.starts_with("openclaw_webhooks_rejections_total")
            || k.starts_with("openclaw_webhooks_idempotency_keys_total")
            || k.starts_with("openclaw_webhooks_unrouted_requests_total")
    };
    let mut moved = BTreeMap::new();
    for (k, v) in after.iter().filter(|(k, _)| counted(k)) {
        let delta = v - before.get(k).copied().unwrap_or(0.0);
        if delta != 0.0 {
            moved.insert(k.clone(), delta);
        }
    }
    assert_eq!(moved, s.expected);
    // Every request above authenticated with slot 0, except the refusals
    // before or at the secret check.
    let slot = series(
        "openclaw_webhooks_secret_slot_matches_total",
        &[("route", "zapier"), ("slot", "0")],
    );
    assert!(after[&slot] > 20.0, "{}", after[&slot]);
    assert_eq!(
        after[&series(
            "openclaw_webhooks_in_flight_requests",
            &[("route", "zapier")]
        )],
        0.0
    );
    assert!(after[&series("openclaw_taskflow_flows", &[("status", "failed")])] >= 1.0);
    assert!(after["openclaw_taskflow_store_commit_batch_size{}"] >= 1.0);
    // The flows just written are in the store's cache.
    assert!(after["openclaw_taskflow_cached_flows{}"] >= 1.0);
}

#[test]
fn the_admin_token_is_required_when_set_and_resolved_through_the_providers() {
    let config = config_with_admin(json!({
        "port": 0,
        "token": {"source": "env", "provider": "default", "id": "OPENCLAW_IT_ADMIN_TOKEN"}
    }));
    let gw = Gateway::start_with_env(&config, &[("OPENCLAW_IT_ADMIN_TOKEN", ADMIN_TOKEN)]);
    let admin = admin_addr(&gw);
    for path in ["/metrics", "/healthz", "/readyz"] {
        let res = admin_get(admin, path, None);
        assert_eq!(res.status, 401, "{path}");
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
        assert!(!res.text.contains(ADMIN_TOKEN));
        assert_eq!(admin_get(admin, path, Some("wrong-token")).status, 401);
        // The webhook secret is no admin credential.
        assert_eq!(admin_get(admin, path, Some(SECRET)).status, 401);
        assert_eq!(
            admin_get(admin, path, Some(ADMIN_TOKEN)).status,
            200,
            "{path}"
        );
    }
    scrape(admin, Some(ADMIN_TOKEN));
    assert!(!gw.logs().contains(ADMIN_TOKEN));

    // The admin token does not open the webhook routes either.
    let res = gw.post(
        ROUTE_PATH,
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {ADMIN_TOKEN}")),
        ],
        br#"{"action":"list_flows"}"#,
    );
    assert_eq!(res.status, 401);

    // A token that cannot be resolved refuses the start.
    let out = Gateway::run_to_exit(&config, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("gateway.admin.token"), "{}", out.stderr);
    assert!(!out.stdout.contains("listening on"));
}

#[test]
fn without_an_admin_section_there_is_no_admin_listener() {
    let gw = Gateway::start(&default_config());
    assert!(!gw.printed().contains("admin listening"));
}

#[test]
fn readyz_turns_503_on_sigterm_before_the_webhook_listener_closes() {
    let mut gw = Gateway::start(&config_with_admin(json!({"port": 0})));
    let admin = admin_addr(&gw);
    assert_eq!(admin_get(admin, "/readyz", None).status, 200);
    assert_eq!(admin_get(admin, "/healthz", None).status, 200);
    // A request held open keeps the drain going: its body is incomplete.
    let body = json!({"action": "create_flow", "goal": "drained"}).to_string();
    let framing = format!("Connection: close\r\ncontent-length: {}\r\n", body.len());
    let (head, tail) = body.as_bytes().split_at(10);
    let mut held = begin_request(gw.addr, &framing, head);
    // The request is in flight once the gauge says so.
    let in_flight = series(
        "openclaw_webhooks_in_flight_requests",
        &[("route", "zapier")],
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while values(&scrape(admin, None))[&in_flight] < 1.0 {
        assert!(Instant::now() < deadline, "the held request never arrived");
    }
    gw.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = admin_get(admin, "/readyz", None);
        if res.status == 503 {
            assert_eq!(res.text.trim(), "draining");
            break;
        }
        assert_eq!(res.status, 200);
        assert!(Instant::now() < deadline, "/readyz never turned 503");
    }
    // Not ready, yet alive and still serving the request in flight.
    assert_eq!(admin_get(admin, "/healthz", None).status, 200);
    let metrics = values(&scrape(admin, None));
    assert_eq!(metrics["openclaw_gateway_ready{}"], 0.0);
    assert_eq!(metrics[&in_flight], 1.0);
    std::io::Write::write_all(&mut held, tail).unwrap();
    let res = read_response(&mut held);
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["flow"]["goal"], "drained");
    assert_eq!(gw.wait(Duration::from_secs(20)).code(), Some(0));
}

#[test]
fn a_plugin_built_against_the_previous_interface_loads_serves_and_has_no_metrics() {
    let fixture = plugin_dirs()
        .iter()
        .map(|d| d.join("libprevious_plugin.so"))
        .find(|p| p.is_file())
        .expect("the previous-plugin fixture is built by `cargo test`");
    let dir = TempDir::new("previous");
    let lib = dir.path().join("libopenclaw_webhooks.so");
    std::fs::copy(&fixture, &lib).unwrap();
    let mut config = config_with_admin(json!({"port": 0}));
    config["plugins"]["load"]["paths"] = json!([dir.path()]);
    let gw = Gateway::start(&config);
    let res = gw.post("/anything", &[], b"");
    assert_eq!(res.status, 200);
    assert_eq!(
        res.json,
        json!({"ok": true, "plugin": "previous-interface"})
    );
    let logs = gw.logs();
    assert!(
        logs.contains(&format!(
            "plugin webhooks (ffi {FFI_VERSION}) reports no metrics"
        )),
        "{logs}"
    );
    let admin = admin_addr(&gw);
    let metrics = values(&scrape(admin, None));
    let plugin = series(
        "openclaw_gateway_plugin_info",
        &[
            ("plugin", "webhooks"),
            ("version", "0.1.0"),
            ("ffi_version", FFI_VERSION),
            ("metrics", "false"),
        ],
    );
    assert_eq!(metrics.get(&plugin), Some(&1.0), "{metrics:#?}");
    assert!(!metrics.keys().any(|k| k.starts_with("openclaw_webhooks_")));
    assert_eq!(metrics["openclaw_gateway_ready{}"], 1.0);
}

/// Parses every stderr line of a Gateway that logs JSON.
fn json_lines(logs: &str) -> Vec<Value> {
    logs.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            for key in ["time", "level", "target", "message", "fields"] {
                assert!(v.get(key).is_some(), "{key} missing: {line}");
            }
            assert!(v["fields"].is_object(), "{line}");
            v
        })
        .collect()
}

fn audit(lines: &[Value], message: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["target"] == "plugin:webhooks:audit" && l["message"] == message)
        .map(|l| l["fields"].clone())
        .collect()
}

#[test]
fn json_logs_are_one_object_per_line_with_an_audit_line_per_write() {
    let mut config = default_config();
    config["logging"] = json!({"format": "json"});
    let mut gw = Gateway::start(&config);
    let flow = gw.create_flow("audited");
    let id = flow["flowId"].as_str().unwrap();
    let res = gw.post(
        ROUTE_PATH,
        &[
            ("content-type", "application/json"),
            ("authorization", &format!("Bearer {SECRET}")),
            ("idempotency-key", "audit-key-1"),
        ],
        json!({"action": "finish_flow", "flowId": id, "expectedRevision": 0})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(res.status, 200, "{}", res.text);
    let res = gw.action(json!({"action": "fail_flow", "flowId": id, "expectedRevision": 0}));
    assert_eq!(res.status, 409);
    let res = gw.action(json!({"action": "get_flow", "flowId": id}));
    assert_eq!(res.status, 200);
    let res = gw.post(ROUTE_PATH, &[("content-type", "application/json")], b"{}");
    assert_eq!(res.status, 401);
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait(Duration::from_secs(20)).code(), Some(0));

    let logs = gw.logs();
    let lines = json_lines(&logs);
    assert!(lines.iter().any(|l| l["message"] == "stopped"));
    let writes = audit(&lines, "write");
    assert_eq!(writes.len(), 3, "reads are not audited: {writes:#?}");
    assert_eq!(writes[0]["action"], "create_flow");
    assert_eq!(writes[0]["flowId"], id);
    assert_eq!(writes[0]["revisionBefore"], Value::Null);
    assert_eq!(writes[0]["revisionAfter"], 0);
    assert_eq!(writes[0]["idempotencyKey"], Value::Null);
    let finish = &writes[1];
    assert_eq!(finish["route"], "zapier");
    assert_eq!(finish["action"], "finish_flow");
    assert_eq!(finish["flowId"], id);
    assert_eq!(finish["revisionBefore"], 0);
    assert_eq!(finish["revisionAfter"], 1);
    assert_eq!(finish["code"], "ok");
    assert_eq!(finish["status"], 200);
    assert_eq!(finish["secretSlot"], 0);
    assert_eq!(finish["client"], "127.0.0.1");
    assert!(finish["latencyMs"].as_f64().unwrap() > 0.0);
    let digest = finish["idempotencyKey"].as_str().unwrap();
    assert!(digest.starts_with("sha256:") && !digest.contains("audit-key-1"));
    assert_eq!(writes[2]["code"], "revision_conflict");
    assert_eq!(writes[2]["revisionBefore"], 0);
    assert_eq!(writes[2]["revisionAfter"], 1);
    let rejected = audit(&lines, "rejected");
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["code"], "unauthorized");
    assert_eq!(rejected[0]["route"], "zapier");
    for line in lines
        .iter()
        .filter(|l| l["target"] == "plugin:webhooks:audit")
    {
        let text = line.to_string();
        for secret in [SECRET, SESSION, "audit-key-1", "audited"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[test]
fn a_flood_of_wrong_secrets_writes_at_most_the_cap_of_audit_lines() {
    const FLOOD: usize = 10_000;
    const THREADS: usize = 4;
    const CAP: usize = 10;
    let plugin = json!({
        "limits": {"rateLimitMaxRequests": 1_000_000},
        "routes": {"zapier": route(json!({}))}
    });
    let mut config = gateway_config(plugin, json!({"logging": {"format": "json"}}));
    config["gateway"]["admin"] = json!({"port": 0});
    let mut gw = Gateway::start(&config);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(120);
    let addr = gw.addr;
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(move || {
                for _ in 0..FLOOD / THREADS {
                    let res = http(
                        addr,
                        "POST",
                        ROUTE_PATH,
                        &[
                            ("content-type", "application/json"),
                            ("authorization", "Bearer wrong-secret-value"),
                        ],
                        b"{}",
                    );
                    assert_eq!(res.status, 401);
                    assert!(Instant::now() < deadline, "the flood took too long");
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let metrics = values(&scrape(admin_addr(&gw), None));
    assert_eq!(metrics[&rejections("zapier", "unauthorized")], FLOOD as f64);
    gw.signal(libc::SIGTERM);
    assert_eq!(gw.wait(Duration::from_secs(20)).code(), Some(0));

    let lines = json_lines(&gw.logs());
    let written = audit(&lines, "rejected").len();
    let summaries = audit(&lines, "rejection lines suppressed");
    let suppressed: u64 = summaries
        .iter()
        .map(|s| {
            assert_eq!(s["code"], "unauthorized");
            s["suppressed"].as_u64().unwrap()
        })
        .sum();
    // One window of the cap per minute the flood lasted (and the one it
    // started in).
    let windows = elapsed.as_secs() as usize / 60 + 2;
    assert!(
        written <= CAP * windows,
        "{written} lines for {windows} windows"
    );
    assert!(summaries.len() <= windows, "{} summaries", summaries.len());
    assert_eq!(written as u64 + suppressed, FLOOD as u64);
    assert!(lines.len() < 100, "{} log lines", lines.len());
}
