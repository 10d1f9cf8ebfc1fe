//! Acknowledged writes survive `kill -9`; a store that cannot persist
//! answers 503 and loses nothing that was acknowledged.

use serde_json::{json, Value};

use crate::support::*;

#[test]
fn acknowledged_writes_survive_kill_9_and_read_back_exactly() {
    let config = default_config();
    let gw = Gateway::start(&config);
    let mut flows = Vec::new();
    for i in 0..20 {
        let body = if i % 2 == 0 {
            json!({"action": "create_flow", "goal": format!("g{i}"), "stateJson": null})
        } else {
            json!({"action": "create_flow", "goal": format!("g{i}"), "stateJson": {"i": i}, "waitJson": [i]})
        };
        let res = gw.action(body);
        assert_eq!(res.status, 200);
        flows.push(res.json["result"]["flow"].clone());
    }
    let id = flows[0]["flowId"].as_str().unwrap().to_owned();
    let waited = gw.action(json!({"action": "set_waiting", "flowId": id, "expectedRevision": 0, "waitJson": null, "currentStep": "s"}));
    assert_eq!(waited.status, 200);
    flows[0] = waited.json["result"]["flow"].clone();
    let requested = gw.action(
        json!({"action": "request_cancel", "flowId": flows[1]["flowId"], "expectedRevision": 0}),
    );
    flows[1] = requested.json["result"]["flow"].clone();

    let dir = gw.kill9();
    let gw = Gateway::start_in(dir, &config, &[]);
    for flow in &flows {
        let got = gw.action(json!({"action": "get_flow", "flowId": flow["flowId"]}));
        assert_eq!(got.json["result"]["flow"], *flow);
    }
    let first = &flows[0];
    assert!(
        first.as_object().unwrap().contains_key("stateJson"),
        "JSON null survives as a value"
    );
    assert!(first.as_object().unwrap().contains_key("waitJson"));
    assert_eq!(first["waitJson"], Value::Null);
    assert!(
        !flows[2].as_object().unwrap().contains_key("waitJson"),
        "absent stays absent"
    );
}

#[test]
fn a_store_that_cannot_persist_answers_503_and_keeps_what_was_acknowledged() {
    let config = gateway_config(
        json!({"routes": {"zapier": route(json!({}))}}),
        // Room for the empty schema (about 64 KiB) and a few flows.
        json!({"tasks": {"maxStoreBytes": 131072}}),
    );
    // The embedded store's size quota.
    let gw = Gateway::start_embedded(&config);
    let big = "x".repeat(16_000);
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..40 {
        let res = gw.action(
            json!({"action": "create_flow", "goal": format!("g{i}"), "stateJson": {"pad": big}}),
        );
        match res.status {
            200 => acknowledged.push(
                res.json["result"]["flow"]["flowId"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ),
            _ => {
                refused = Some(res);
                break;
            }
        }
    }
    let refused = refused.expect("the quota was never hit");
    assert_eq!(refused.status, 503);
    assert_eq!(
        refused.json,
        json!({"ok": false, "routeId": "zapier", "code": "persist_failed", "error": "TaskFlow persistence failed.",
               "result": {"created": false, "code": "persist_failed"}})
    );
    assert!(!acknowledged.is_empty());
    let list = gw.action(json!({"action": "list_flows"}));
    assert_eq!(list.status, 200);
    assert_eq!(
        list.json["result"]["flows"].as_array().unwrap().len(),
        acknowledged.len()
    );
    let id = &acknowledged[0];
    let bigger = "y".repeat(120_000);
    let res = gw.action(json!({"action": "finish_flow", "flowId": id, "expectedRevision": 0, "stateJson": {"pad": bigger}}));
    assert_eq!(res.status, 503);
    assert_eq!(
        res.json["result"],
        json!({"applied": false, "code": "persist_failed"})
    );
    let got = gw.action(json!({"action": "get_flow", "flowId": id}));
    assert_eq!(
        got.json["result"]["flow"]["revision"], 0,
        "the failed write left no trace"
    );
}

#[test]
fn a_gateway_caching_ten_flows_serves_forty_exactly_before_and_after_kill_9() {
    let config = gateway_config(
        json!({"routes": {"zapier": route(json!({}))}}),
        json!({"tasks": {"cacheMaxFlows": 10}}),
    );
    // The embedded store's cache.
    let gw = Gateway::start_embedded(&config);
    let mut flows: Vec<Value> = (0..40).map(|i| gw.create_flow(&format!("g{i}"))).collect();
    for flow in flows.iter_mut().step_by(4) {
        let res = gw.action(json!({"action": "set_waiting", "flowId": flow["flowId"], "expectedRevision": 0, "currentStep": "step"}));
        assert_eq!(res.status, 200);
        *flow = res.json["result"]["flow"].clone();
    }
    // A stale revision on a flow long out of the cache still conflicts.
    let stale = gw.action(
        json!({"action": "finish_flow", "flowId": flows[0]["flowId"], "expectedRevision": 0}),
    );
    assert_eq!(stale.status, 409, "{}", stale.json);
    let check = |gw: &Gateway| {
        for flow in &flows {
            let got = gw.action(json!({"action": "get_flow", "flowId": flow["flowId"]}));
            assert_eq!(got.json["result"]["flow"], *flow);
        }
        let listed = gw.action(json!({"action": "list_flows"}));
        let newest_first: Vec<Value> = flows.iter().rev().cloned().collect();
        assert_eq!(listed.json["result"]["flows"], json!(newest_first));
    };
    check(&gw);
    let dir = gw.kill9();
    let gw = Gateway::start_in(dir, &config, &[]);
    check(&gw);
}
