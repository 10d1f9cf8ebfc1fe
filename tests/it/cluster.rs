//! Several Gateways on one PostgreSQL: each test starts real Gateway
//! processes on a schema of its own, and a flow written through one is
//! read, changed and cancelled through the other, with revision checks and
//! idempotency keys exact across them, and waiting reads woken across
//! them. Faults are in `cluster_faults`.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// The standard route on PostgreSQL at `url` and the test Redis, under a
/// Redis key prefix of its own (every Gateway started from one config
/// counts its limits with the others, and with no other test's).
pub(crate) fn cluster_config(url: &str, route_extra: Value) -> Value {
    gateway_config(
        json!({"routes": {"zapier": route(route_extra)}}),
        json!({"cluster": {
            "postgres": {"url": url, "poolSize": 4},
            "redis": {"url": redis_url(), "keyPrefix": redis_prefix("it")}
        }}),
    )
}

pub(crate) fn two_nodes(schema: &PgSchema) -> (Gateway, Gateway) {
    let config = cluster_config(&schema.url(), json!({}));
    (Gateway::start(&config), Gateway::start(&config))
}

pub(crate) fn rev(flow: &Value) -> u64 {
    flow["revision"].as_u64().unwrap()
}

pub(crate) fn id(flow: &Value) -> String {
    flow["flowId"].as_str().unwrap().to_owned()
}

fn keyed(gw: &Gateway, key: &str, body: &Value) -> Response {
    let base = authed();
    let mut headers = hdrs(&base);
    headers.push(("idempotency-key", key));
    gw.post(ROUTE_PATH, &headers, body.to_string().as_bytes())
}

#[test]
fn a_flow_created_on_one_node_is_read_changed_and_cancelled_on_the_other() {
    let schema = PgSchema::new("cluster_flow");
    let (a, b) = two_nodes(&schema);
    let flow = a.create_flow("shared goal");
    let flow_id = id(&flow);

    let got = b.action(json!({"action": "get_flow", "flowId": flow_id}));
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json["result"]["flow"], flow);
    let listed = b.action(json!({"action": "list_flows"}));
    assert_eq!(
        listed.json["result"]["flows"][0]["flowId"],
        flow_id.as_str()
    );

    let waiting = b.action(json!({"action": "set_waiting", "flowId": flow_id,
        "expectedRevision": rev(&flow), "currentStep": "review"}));
    assert_eq!(waiting.status, 200, "{}", waiting.text);
    let after = waiting.json["result"]["flow"].clone();
    assert_eq!(rev(&after), rev(&flow) + 1);
    // Node A sees B's change at once: nothing is cached per node.
    let seen = a.action(json!({"action": "get_flow", "flowId": flow_id}));
    assert_eq!(seen.json["result"]["flow"], after);
    // A stale revision is refused on either node.
    let stale = a.action(json!({"action": "finish_flow", "flowId": flow_id,
        "expectedRevision": rev(&flow)}));
    assert_eq!(stale.json["code"], "revision_conflict", "{}", stale.text);

    let cancelled = b.action(json!({"action": "cancel_flow", "flowId": flow_id}));
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    let seen = a.action(json!({"action": "get_flow", "flowId": flow_id}));
    assert_eq!(
        seen.json["result"]["flow"]["status"], "cancelled",
        "{}",
        seen.text
    );
}

#[test]
fn child_tasks_run_on_one_node_are_counted_and_cancelled_on_the_other() {
    let schema = PgSchema::new("cluster_tasks");
    let (a, b) = two_nodes(&schema);
    let flow_id = id(&a.create_flow("parent"));
    for n in 0..2 {
        let res = a.action(
            json!({"action": "run_task", "flowId": flow_id, "runtime": "acp",
            "childSessionKey": format!("{SESSION}:child:{n}"), "task": "t", "status": "running"}),
        );
        assert_eq!(res.status, 200, "{}", res.text);
    }
    let summary = b.action(json!({"action": "get_task_summary", "flowId": flow_id}));
    assert_eq!(
        summary.json["result"]["summary"]["active"], 2,
        "{}",
        summary.text
    );

    let res = b.action(json!({"action": "cancel_flow", "flowId": flow_id}));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["flow"]["status"], "cancelled");
    let tasks = res.json["result"]["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "{}", res.text);
    assert!(
        tasks.iter().all(|t| t["status"] == "cancelled"),
        "{}",
        res.text
    );
    let summary = a.action(json!({"action": "get_task_summary", "flowId": flow_id}));
    let s = &summary.json["result"]["summary"];
    assert_eq!(s["active"], 0, "{}", summary.text);
    assert_eq!(s["byStatus"]["cancelled"], 2, "{}", summary.text);
}

#[test]
fn of_sixteen_same_revision_mutations_over_two_nodes_exactly_one_applies() {
    let schema = PgSchema::new("cluster_race");
    // Sixteen at once from one client: the in-flight limit, shared by the
    // two nodes, must not be what refuses them.
    let config = cluster_config(&schema.url(), json!({"limits": {"maxInFlight": 64}}));
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    let flow = a.create_flow("raced");
    let (flow_id, revision) = (id(&flow), rev(&flow));
    let nodes = [a.addr, b.addr];
    let start = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|i| {
            let (addr, start, flow_id) = (nodes[i % 2], Arc::clone(&start), flow_id.clone());
            std::thread::spawn(move || {
                let body = json!({"action": "set_waiting", "flowId": flow_id,
                    "expectedRevision": revision, "currentStep": format!("step {i}")});
                let base = authed();
                let mut headers = hdrs(&base);
                headers.push(("connection", "close"));
                start.wait();
                http(
                    addr,
                    "POST",
                    ROUTE_PATH,
                    &headers,
                    body.to_string().as_bytes(),
                )
            })
        })
        .collect();
    let answers: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let applied = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        applied,
        1,
        "{:?}",
        answers.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    for refused in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(
            refused.json["code"], "revision_conflict",
            "{}",
            refused.text
        );
    }
    let now = b.action(json!({"action": "get_flow", "flowId": flow_id}));
    assert_eq!(rev(&now.json["result"]["flow"]), revision + 1);
}

#[test]
fn an_idempotency_key_used_on_one_node_replays_on_the_other() {
    let schema = PgSchema::new("cluster_keys");
    let (a, b) = two_nodes(&schema);
    let body = json!({"action": "create_flow", "goal": "once"});
    let first = keyed(&a, "key-across-nodes", &body);
    assert_eq!(first.status, 200, "{}", first.text);
    let again = keyed(&b, "key-across-nodes", &body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.text, first.text, "the first answer, byte for byte");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = keyed(
        &b,
        "key-across-nodes",
        &json!({"action": "create_flow", "goal": "else"}),
    );
    assert_eq!(
        other.json["code"], "idempotency_key_mismatch",
        "{}",
        other.text
    );
    let list = a.action(json!({"action": "list_flows"}));
    assert_eq!(list.json["result"]["flows"].as_array().unwrap().len(), 1);
}

#[test]
fn one_key_sent_to_both_nodes_at_once_creates_one_flow() {
    let schema = PgSchema::new("cluster_key_race");
    let (a, b) = two_nodes(&schema);
    let nodes = [a.addr, b.addr];
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (addr, start) = (nodes[i % 2], Arc::clone(&start));
            std::thread::spawn(move || {
                let body = json!({"action": "create_flow", "goal": "raced key"});
                let base = authed();
                let mut headers = hdrs(&base);
                headers.extend([("connection", "close"), ("idempotency-key", "raced-key")]);
                start.wait();
                http(
                    addr,
                    "POST",
                    ROUTE_PATH,
                    &headers,
                    body.to_string().as_bytes(),
                )
            })
        })
        .collect();
    let answers: Vec<Response> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let created: Vec<&Response> = answers.iter().filter(|r| r.status == 200).collect();
    assert!(!created.is_empty());
    for res in &answers {
        // A retry that finds its key still running on the same node is
        // told so; every other answer is the one reply.
        if res.status != 200 {
            assert_eq!(res.json["code"], "idempotency_in_progress", "{}", res.text);
        }
    }
    assert!(
        created.iter().all(|r| r.text == created[0].text),
        "one reply for the key"
    );
    let list = b.action(json!({"action": "list_flows"}));
    assert_eq!(
        list.json["result"]["flows"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
}

#[test]
fn a_waiting_read_on_one_node_is_woken_by_a_commit_on_the_other() {
    let schema = PgSchema::new("cluster_wait");
    let a = Gateway::start(&cluster_config(&schema.url(), json!({})));
    // One waiter at most on B, so a probe tells when it waits (see
    // `waiting.rs`).
    let b = Gateway::start(&cluster_config(
        &schema.url(),
        json!({"limits": {"maxWaiters": 1}}),
    ));
    let flow = a.create_flow("watched");
    let flow_id = id(&flow);
    let wait = |flow_id: &str, above: u64, wait_ms: u64| {
        json!({"action": "get_flow", "flowId": flow_id,
            "waitForRevisionAbove": above, "waitMs": wait_ms})
    };
    let post = |addr, body: &Value| {
        let base = authed();
        let mut headers = hdrs(&base);
        headers.push(("connection", "close"));
        http(
            addr,
            "POST",
            ROUTE_PATH,
            &headers,
            body.to_string().as_bytes(),
        )
    };
    let waiter = {
        let (addr, body) = (b.addr, wait(&flow_id, rev(&flow), 20_000));
        std::thread::spawn(move || loop {
            let started = Instant::now();
            let res = post(addr, &body);
            // A probe may hold the only place for a moment.
            if res.status != 429 {
                return (res, started.elapsed());
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = post(b.addr, &wait("probe-no-such-flow", 0, 1));
        if probe.json["code"] == "too_many_waiters" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the waiter never waited: {}",
            probe.text
        );
    }
    let changed = a.action(json!({"action": "set_waiting", "flowId": flow_id,
        "expectedRevision": rev(&flow)}));
    assert_eq!(changed.status, 200, "{}", changed.text);
    let (res, took) = waiter.join().unwrap();
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(rev(&res.json["result"]["flow"]), rev(&flow) + 1);
    assert!(
        took < Duration::from_secs(10),
        "woken after {took:?}, not by the commit"
    );
}

#[test]
fn the_retention_sweep_prunes_ended_flows_from_postgres() {
    let schema = PgSchema::new("cluster_sweep");
    let mut config = cluster_config(&schema.url(), json!({}));
    config["tasks"] = json!({"retentionMs": 1, "sweepIntervalMs": 100});
    let gw = Gateway::start(&config);
    let flow = gw.create_flow("short-lived");
    let finished = gw.action(json!({"action": "finish_flow", "flowId": id(&flow),
        "expectedRevision": rev(&flow)}));
    assert_eq!(finished.status, 200, "{}", finished.text);
    // The sweep says what it pruned.
    gw.wait_for_log("pruned 1 flows");
    let res = gw.action(json!({"action": "get_flow", "flowId": id(&flow)}));
    assert_eq!(res.json["result"]["flow"], Value::Null, "{}", res.text);
    let left: i64 = schema
        .client()
        .query_one("SELECT count(*) FROM flows", &[])
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

#[test]
fn callbacks_of_writes_on_both_nodes_are_delivered_once_each_in_revision_order() {
    const KEY: &str = "whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let schema = PgSchema::new("cluster_callbacks");
    let receiver = Receiver::start(&[KEY]);
    let config = cluster_config(
        &schema.url(),
        json!({"callbacks": {
            "url": receiver.url("/hooks/openclaw"),
            "allowInsecureHttp": true,
            "signing": {"secrets": [KEY]},
            "timeoutMs": 5000,
            "retryScheduleMs": [50],
        }}),
    );
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    let mut expected = Vec::new();
    for (n, (first, second)) in [(&a, &b), (&b, &a)].into_iter().enumerate() {
        let created = first.action(json!({"action": "create_flow",
            "goal": format!("notified {n}"), "notifyPolicy": "state_changes"}));
        assert_eq!(created.status, 200, "{} {}", created.text, first.logs());
        let flow = created.json["result"]["flow"].clone();
        let running = second.action(json!({"action": "resume_flow", "flowId": id(&flow),
            "expectedRevision": rev(&flow), "status": "running"}));
        assert_eq!(running.status, 200, "{}", running.text);
        let done = first.action(json!({"action": "finish_flow", "flowId": id(&flow),
            "expectedRevision": rev(&flow) + 1}));
        assert_eq!(done.status, 200, "{}", done.text);
        expected.extend((0..3).map(|r| (id(&flow), rev(&flow) + r)));
    }
    receiver.wait_for(expected.len(), Duration::from_secs(30));
    // Every event settled on both nodes: nothing is left to arrive late.
    let mut client = schema.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open: i64 = client
            .query_one("SELECT count(*) FROM outbox WHERE settled_at IS NULL", &[])
            .unwrap()
            .get(0);
        if open == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{open} events never settled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deliveries = receiver.deliveries();
    assert!(
        deliveries.iter().all(|d| d.verified),
        "every signature verifies"
    );
    let mut got: Vec<(String, u64)> = deliveries
        .iter()
        .map(|d| (d.flow_id().to_owned(), d.revision()))
        .collect();
    // Per flow, in revision order, each change once.
    for flow in expected.iter().map(|(f, _)| f).collect::<HashSet<_>>() {
        let revisions: Vec<u64> = got
            .iter()
            .filter(|(f, _)| f == flow)
            .map(|(_, r)| *r)
            .collect();
        let mut sorted = revisions.clone();
        sorted.sort_unstable();
        assert_eq!(revisions, sorted, "flow {flow}: out of revision order");
    }
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    let ids: HashSet<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), deliveries.len(), "one webhook-id per event");
}

#[test]
fn a_rate_limit_admits_exactly_its_count_across_two_nodes() {
    let schema = PgSchema::new("rate");
    let config = cluster_config(
        &schema.url(),
        json!({"limits": {"rateLimitMaxRequests": 20, "rateLimitWindowMs": 60_000}}),
    );
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    let answers: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let gw = if t % 2 == 0 { &a } else { &b };
                s.spawn(move || {
                    (0..5)
                        .map(|_| gw.action(json!({"action": "list_flows"})).status)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let admitted = answers.iter().filter(|s| **s == 200).count();
    let limited = answers.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, limited), (20, 20), "{answers:?}");
    // Both nodes refused some: the count is shared, not split.
    for gw in [&a, &b] {
        assert_eq!(gw.action(json!({"action": "list_flows"})).status, 429);
    }
}

#[test]
fn the_in_flight_limit_holds_across_two_nodes() {
    let schema = PgSchema::new("inflight");
    let config = cluster_config(&schema.url(), json!({"limits": {"maxInFlight": 1}}));
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    let body = br#"{"action":"list_flows"}"#;
    let framing = format!("content-length: {}\r\n", body.len());
    // Invited on node A: its slot is held until its body ends.
    let mut held = begin_request_until_continue(a.addr, &framing, b"");
    let refused = begin_request_expecting_continue(b.addr, &framing, b"")
        .expect_err("node B must see node A's slot");
    assert_eq!(refused.status, 429, "{}", refused.text);
    assert_eq!(refused.json["code"], "in_flight_limited");
    // The body arrives, A answers and gives the slot back (the release
    // reaches Redis just after the answer): B serves.
    std::io::Write::write_all(&mut held, body).unwrap();
    assert_eq!(read_response(&mut held).status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let res = b.action(json!({"action": "list_flows"}));
        if res.status == 200 {
            break;
        }
        assert_eq!(res.json["code"], "in_flight_limited", "{}", res.text);
        assert!(Instant::now() < deadline, "node A's slot never came back");
    }
}

/// The flows a node's `/metrics` reports: all of them, and the failed ones.
fn flows_reported(gw: &Gateway) -> (f64, f64) {
    use crate::ops::{admin_addr, scrape, series, values};
    let v = values(&scrape(admin_addr(gw), None));
    let total = v
        .iter()
        .filter(|(k, _)| k.starts_with("openclaw_taskflow_flows{"))
        .map(|(_, n)| n)
        .sum();
    let failed = v[&series("openclaw_taskflow_flows", &[("status", "failed")])];
    (total, failed)
}

#[test]
fn every_node_reports_the_clusters_flows_by_status_whichever_node_wrote_them() {
    let schema = PgSchema::new("cluster_gauge");
    let mut config = cluster_config(&schema.url(), json!({}));
    config["gateway"]["admin"] = json!({"port": 0});
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    assert_eq!([flows_reported(&a), flows_reported(&b)], [(0.0, 0.0); 2]);
    for n in 0..3 {
        a.create_flow(&format!("counted {n}"));
    }
    let failed = a.create_flow("ends failed");
    let ended = b.action(json!({"action": "fail_flow", "flowId": id(&failed),
        "expectedRevision": rev(&failed)}));
    assert_eq!(ended.status, 200, "{}", ended.text);
    // Node B counts A's creations, and A B's change, within a recount
    // (every 10 s); then both report the same four flows, one failed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = [flows_reported(&a), flows_reported(&b)];
        if seen == [(4.0, 1.0); 2] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nodes report (total, failed) {seen:?}, not the cluster's (4, 1)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
