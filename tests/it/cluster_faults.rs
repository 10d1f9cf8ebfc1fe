//! Several Gateways on one PostgreSQL, under faults: a node killed under
//! write load loses no acknowledged write; an unreachable PostgreSQL
//! answers 503 within 5 s and service resumes by itself; an unreachable
//! Redis leaves each node its own limits until it answers again; an
//! embedded store moved by `migrate` is served and written on.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cluster::{cluster_config, id, two_nodes};
use crate::support::*;

#[test]
fn every_write_a_killed_node_acknowledged_is_readable_on_the_other() {
    let schema = PgSchema::new("cluster_kill");
    let (a, b) = two_nodes(&schema);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, acked, stop) = (a.addr, Arc::clone(&acked), Arc::clone(&stop));
            std::thread::spawn(move || {
                let base = authed();
                let mut headers = hdrs(&base);
                headers.push(("connection", "close"));
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let body = json!({"action": "create_flow", "goal": format!("w{w}-{n}")});
                    n += 1;
                    let Some(res) = try_http(addr, &headers, &body) else {
                        break;
                    };
                    if res.status == 200 {
                        acked.lock().unwrap().push(id(&res.json["result"]["flow"]));
                    }
                }
            })
        })
        .collect();
    // Kill under load, once a good number of writes were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 100 {
        assert!(Instant::now() < deadline, "the writes did not get going");
        std::thread::yield_now();
    }
    drop(a.kill9());
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let listed = b.action(json!({"action": "list_flows"}));
    let stored: HashSet<String> = listed.json["result"]["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    for flow_id in &acked {
        assert!(
            stored.contains(flow_id),
            "acknowledged flow {flow_id} is lost"
        );
    }
}

/// A POST that reports a connection failure (the node was killed) as
/// `None` instead of panicking.
fn try_http(
    addr: std::net::SocketAddr,
    headers: &[(&str, &str)],
    body: &Value,
) -> Option<Response> {
    let body = body.to_string();
    std::panic::catch_unwind(|| http(addr, "POST", ROUTE_PATH, headers, body.as_bytes())).ok()
}

#[test]
fn an_unreachable_postgres_answers_503_within_five_seconds_and_service_resumes() {
    let schema = PgSchema::new("cluster_cut");
    let proxy = TcpProxy::start(PgSchema::server_addr());
    // Polled until it recovers: no rate limit in the way.
    let unlimited = json!({"limits": {"rateLimitMaxRequests": 1_000_000}});
    let gw = Gateway::start(&cluster_config(
        &schema.url_through(proxy.addr()),
        unlimited,
    ));
    let flow = gw.create_flow("before the cut");
    let flow_id = id(&flow);

    proxy.cut();
    let timed = |body: Value| {
        let started = Instant::now();
        let res = gw.action(body);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "answered after {took:?}: {}",
            res.text
        );
        res
    };
    let write = timed(json!({"action": "create_flow", "goal": "during the cut"}));
    assert_eq!(write.status, 503, "{}", write.text);
    assert_eq!(write.json["code"], "persist_failed");
    let read = timed(json!({"action": "get_flow", "flowId": flow_id}));
    assert_eq!(read.status, 503, "{}", read.text);
    assert_eq!(read.json["code"], "store_unavailable");
    let list = timed(json!({"action": "list_flows"}));
    assert_eq!(list.json["code"], "store_unavailable", "{}", list.text);

    proxy.restore();
    // Recovers by itself: no restart, the next requests reconnect.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = gw.action(json!({"action": "get_flow", "flowId": flow_id}));
        if res.status == 200 {
            assert_eq!(res.json["result"]["flow"], flow);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reads did not resume: {}",
            res.text
        );
    }
    let created = gw.action(json!({"action": "create_flow", "goal": "after the cut"}));
    assert_eq!(created.status, 200, "{}", created.text);
}

#[test]
fn an_embedded_store_moved_by_migrate_is_served_and_written_on_postgresql() {
    let schema = PgSchema::new("cluster_moved");
    let mut single = Gateway::start_embedded(&default_config());
    let before: Vec<String> = (0..8)
        .map(|i| id(&single.create_flow(&format!("before {i}"))))
        .collect();
    single.signal(15);
    assert!(single.wait(Duration::from_secs(30)).success());
    let dir = single.kill9();

    let config = cluster_config(&schema.url(), json!({}));
    let config_path = dir.write("cluster.json5", &config.to_string());
    let out = std::process::Command::new(gateway_bin())
        .arg("migrate")
        .arg("--from-state-dir")
        .arg(dir.path().join("state"))
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let gw = Gateway::start(&config);
    for flow_id in &before {
        let got = gw.action(json!({"action": "get_flow", "flowId": flow_id}));
        assert_eq!(
            got.json["result"]["flow"]["flowId"],
            flow_id.as_str(),
            "{}",
            got.text
        );
    }
    // New rows get creation numbers past the copied ones (which
    // PostgreSQL numbered anew): none collides, each is listed.
    let after: Vec<Value> = (0..8)
        .map(|i| gw.create_flow(&format!("after {i}")))
        .collect();
    let list = gw.action(json!({"action": "list_flows"}));
    let flows = list.json["result"]["flows"].as_array().unwrap();
    assert_eq!(flows.len(), 16, "{}", list.text);
    assert_eq!(flows[0]["flowId"], after[7]["flowId"]);
}

#[test]
fn an_event_claimed_by_a_killed_node_is_delivered_by_the_other_once_its_lease_ends() {
    const KEY: &str = "whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
    let schema = PgSchema::new("cluster_lease");
    let receiver = Receiver::start(&[KEY]);
    // The first attempt is never answered: the node that made it dies
    // holding the event's lease (its timeout plus the worker's margin).
    receiver.respond_with(|_| Reply::Hang);
    let config = cluster_config(
        &schema.url(),
        json!({"callbacks": {
            "url": receiver.url("/hooks/openclaw"),
            "allowInsecureHttp": true,
            "signing": {"secrets": [KEY]},
            "timeoutMs": 1000,
        }}),
    );
    let a = Gateway::start(&config);
    let created = a.action(json!({"action": "create_flow", "goal": "leased",
        "notifyPolicy": "state_changes"}));
    assert_eq!(created.status, 200, "{}", created.text);
    let first = receiver.wait_for(1, Duration::from_secs(30));
    drop(a.kill9());
    receiver.respond_with(|_| Reply::Status(200));
    let _b = Gateway::start(&config);
    let got = receiver.wait_until(Duration::from_secs(90), |d| {
        d.iter().any(|x| x.id == first[0].id && x.attempt == 2)
    });
    let again = got
        .iter()
        .find(|x| x.id == first[0].id && x.attempt == 2)
        .unwrap();
    assert_eq!(again.flow_id(), id(&created.json["result"]["flow"]));
    assert!(again.verified);
}

#[test]
fn an_unreachable_redis_leaves_each_node_its_own_limits_until_it_answers_again() {
    let schema = PgSchema::new("redis_cut");
    let proxy = TcpProxy::start(redis_addr());
    let mut config = cluster_config(
        &schema.url(),
        json!({"limits": {"rateLimitMaxRequests": 4, "rateLimitWindowMs": 60_000}}),
    );
    config["cluster"]["redis"]["url"] = json!(format!("redis://{}/", proxy.addr()));
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    let list = |gw: &Gateway| gw.action(json!({"action": "list_flows"})).status;

    proxy.cut();
    // Each node applies the limit on its own: 4 each, not 4 between them.
    for gw in [&a, &b] {
        let answers: Vec<u16> = (0..5).map(|_| list(gw)).collect();
        assert_eq!(answers, [200, 200, 200, 200, 429], "{}", gw.logs());
        assert!(gw.logs().contains("Redis is unreachable"), "{}", gw.logs());
    }

    proxy.restore();
    // Both local windows are spent, so a node's first 200 is Redis
    // deciding again (each reconnects by itself within a second or so).
    for gw in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while list(gw) != 200 {
            assert!(
                Instant::now() < deadline,
                "limits never shared again: {}",
                gw.logs()
            );
        }
        assert!(gw.logs().contains("Redis answers again"), "{}", gw.logs());
    }
    // Shared again: the window has 2 of its 4 left, between both nodes.
    let admitted = (0..12)
        .filter(|i| list(if i % 2 == 0 { &a } else { &b }) == 200)
        .count();
    assert_eq!(admitted, 2, "{}\n{}", a.logs(), b.logs());
}

#[test]
fn the_in_flight_slot_of_a_node_killed_with_9_returns_within_30_seconds() {
    let schema = PgSchema::new("slot_kill");
    let config = cluster_config(&schema.url(), json!({"limits": {"maxInFlight": 1}}));
    let (a, b) = (Gateway::start(&config), Gateway::start(&config));
    let body = br#"{"action":"list_flows"}"#;
    let framing = format!("content-length: {}\r\n", body.len());
    // Node A holds the client's one slot, then dies without giving it back.
    let _held = begin_request_until_continue(a.addr, &framing, b"");
    let refused = b.action(json!({"action": "list_flows"}));
    assert_eq!(
        refused.json["code"], "in_flight_limited",
        "{}",
        refused.text
    );
    let killed = Instant::now();
    drop(a.kill9());
    loop {
        let res = b.action(json!({"action": "list_flows"}));
        if res.status == 200 {
            break;
        }
        assert_eq!(res.json["code"], "in_flight_limited", "{}", res.text);
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the dead node's slot is still held"
        );
        // Polled at a client's pace (a refusal says `Retry-After`), which
        // also keeps the polling inside the route's rate limit; the signal
        // is the 200 itself.
        std::thread::sleep(Duration::from_millis(200));
    }
}
