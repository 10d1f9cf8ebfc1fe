//! The 13 actions over HTTP: results, views, outcome codes and the
//! TaskFlow state rules, as a client of the OpenClaw plugin sees them.

use serde_json::{json, Value};

use crate::support::*;

fn flow_id(flow: &Value) -> String {
    flow["flowId"].as_str().unwrap().to_owned()
}

fn rev(flow: &Value) -> u64 {
    flow["revision"].as_u64().unwrap()
}

const CHILD: &str = "agent:main:main:acp:child";

#[test]
fn create_flow_uses_the_bound_session_and_scrubs_owner_metadata() {
    let gw = Gateway::start(&default_config());
    let res = gw.action(json!({"action": "create_flow", "goal": "Review inbound queue"}));
    assert_eq!(res.status, 200);
    assert_eq!(res.json["ok"], true);
    assert_eq!(res.json["routeId"], "zapier");
    assert_eq!(res.json["result"]["created"], true);
    let flow = &res.json["result"]["flow"];
    assert_eq!(flow["syncMode"], "managed");
    assert_eq!(flow["controllerId"], "webhooks/zapier");
    assert_eq!(flow["goal"], "Review inbound queue");
    assert_eq!(flow["status"], "queued");
    assert_eq!(flow["notifyPolicy"], "done_only");
    assert_eq!(flow["revision"], 0);
    let id = flow_id(flow);
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4", "UUID v4");
    for hidden in [
        "ownerKey",
        "requesterOrigin",
        "requesterSessionKey",
        "sessionKey",
    ] {
        assert!(flow.get(hidden).is_none(), "{hidden} leaked");
    }
    assert!(!res.text.contains(SESSION));
    let keys: Vec<&str> = flow
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "flowId",
            "syncMode",
            "controllerId",
            "revision",
            "status",
            "notifyPolicy",
            "goal",
            "createdAt",
            "updatedAt"
        ]
    );
    let got = gw.action(json!({"action": "get_flow", "flowId": id}));
    assert_eq!(got.json["result"]["flow"], *flow);
}

#[test]
fn create_flow_keeps_every_field_and_json_null() {
    let gw = Gateway::start(&default_config());
    let res = gw.action(json!({
        "action": "create_flow", "goal": "g", "controllerId": "zap/custom", "status": "running",
        "notifyPolicy": "state_changes", "currentStep": " step one ", "stateJson": null, "waitJson": {"until": [1, 2.5, "x"]}
    }));
    assert_eq!(res.status, 200, "{}", res.text);
    let flow = &res.json["result"]["flow"];
    assert_eq!(flow["controllerId"], "zap/custom");
    assert_eq!(flow["status"], "running");
    assert_eq!(flow["notifyPolicy"], "state_changes");
    assert_eq!(flow["currentStep"], "step one");
    assert!(flow.as_object().unwrap().contains_key("stateJson"));
    assert_eq!(flow["stateJson"], Value::Null);
    assert_eq!(flow["waitJson"], json!({"until": [1, 2.5, "x"]}));
    let terminal = gw.action(json!({"action": "create_flow", "goal": "g", "status": "succeeded"}));
    assert_eq!(terminal.status, 400);
}

#[test]
fn run_task_records_a_child_inside_the_session_tree_and_scrubs_ownership() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("parent"));
    let res = gw.action(json!({
        "action": "run_task", "flowId": id, "runtime": "acp", "childSessionKey": CHILD,
        "task": "Inspect the next message batch", "status": "running", "startedAt": 10, "lastEventAt": 10
    }));
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.json["result"]["created"], true);
    let task = &res.json["result"]["task"];
    assert_eq!(task["parentFlowId"], id.as_str());
    assert_eq!(task["childSessionKey"], CHILD);
    assert_eq!(task["runtime"], "acp");
    assert_eq!(task["status"], "running");
    assert_eq!(task["scopeKind"], "session");
    assert_eq!(task["startedAt"], 10);
    assert!(task.get("ownerKey").is_none());
    assert!(task.get("requesterSessionKey").is_none());
    assert_eq!(
        res.json["result"]["flow"]["revision"], 0,
        "run_task does not touch the flow"
    );
}

#[test]
fn run_task_outside_the_session_tree_is_forbidden() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("parent"));
    for child in [
        "agent:victim:acp:child",
        "agent:main:main",
        "agent:main:mainframe:x",
    ] {
        let res = gw.action(json!({"action": "run_task", "flowId": id, "runtime": "acp", "childSessionKey": child, "task": "t"}));
        assert_eq!(res.status, 403, "{child}");
        assert_eq!(res.json["ok"], false);
        assert_eq!(res.json["code"], "child_session_forbidden");
    }
    let summary = gw.action(json!({"action": "get_task_summary", "flowId": id}));
    assert_eq!(summary.json["result"]["summary"]["total"], 0);
}

#[test]
fn mutations_of_a_missing_flow_are_404() {
    let gw = Gateway::start(&default_config());
    let res = gw
        .action(json!({"action": "set_waiting", "flowId": "flow-missing", "expectedRevision": 0}));
    assert_eq!(res.status, 404);
    assert_eq!(
        res.json,
        json!({"ok": false, "routeId": "zapier", "code": "not_found", "error": "TaskFlow not found.",
               "result": {"applied": false, "code": "not_found"}})
    );
}

#[test]
fn a_stale_revision_is_409_with_the_current_flow() {
    let gw = Gateway::start(&default_config());
    let flow = gw.create_flow("g");
    let res = gw
        .action(json!({"action": "set_waiting", "flowId": flow_id(&flow), "expectedRevision": 1}));
    assert_eq!(res.status, 409);
    assert_eq!(res.json["code"], "revision_conflict");
    assert_eq!(
        res.json["error"],
        "TaskFlow changed since the caller's expected revision."
    );
    assert_eq!(res.json["result"]["applied"], false);
    assert_eq!(res.json["result"]["code"], "revision_conflict");
    assert_eq!(res.json["result"]["current"]["flowId"], flow["flowId"]);
    assert_eq!(res.json["result"]["current"]["revision"], 0);
}

#[test]
fn a_retried_run_id_reuses_the_same_task() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("g"));
    let call = || {
        gw.action(json!({"action": "run_task", "flowId": id, "runtime": "acp", "childSessionKey": CHILD, "runId": "retry-me", "task": "t"}))
    };
    let first = call();
    let second = call();
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 200);
    assert_eq!(
        first.json["result"]["task"]["taskId"],
        second.json["result"]["task"]["taskId"]
    );
    assert_eq!(second.json["result"]["created"], true);
    assert_eq!(second.json["result"]["reused"], true);
    let summary = gw.action(json!({"action": "get_task_summary", "flowId": id}));
    assert_eq!(summary.json["result"]["summary"]["total"], 1);
}

#[test]
fn a_collaborative_refinement_episode_round_trips() {
    let gw = Gateway::start(&default_config());
    let state = json!({"draft": {"sections": [{"title": "Intro", "notes": ["a", "b"], "score": 0.5}], "meta": {"nested": {"deep": [null, true, 3]}}}});
    let res = gw.action(json!({"action": "create_flow", "goal": "refine", "stateJson": state}));
    let flow = &res.json["result"]["flow"];
    assert_eq!(flow["stateJson"], state);
    let id = flow_id(flow);
    let task = gw.action(json!({"action": "run_task", "flowId": id, "runtime": "subagent", "childSessionKey": "agent:main:main:subagent:r1", "task": "review"}));
    assert_eq!(task.status, 200);
    let wait = json!({"kind": "reviewer", "timeoutMs": 60000});
    let waiting = gw.action(json!({"action": "set_waiting", "flowId": id, "expectedRevision": 0, "currentStep": "review", "waitJson": wait}));
    assert_eq!(waiting.status, 200, "{}", waiting.text);
    let w = &waiting.json["result"]["flow"];
    assert_eq!(w["status"], "waiting");
    assert_eq!(w["waitJson"], wait);
    assert_eq!(w["stateJson"], state, "state kept");
    let new_state = json!({"draft": {"sections": []}, "round": 2});
    let resumed = gw.action(json!({"action": "resume_flow", "flowId": id, "expectedRevision": rev(w), "status": "running", "stateJson": new_state}));
    assert_eq!(resumed.status, 200);
    let r = &resumed.json["result"]["flow"];
    assert_eq!(r["status"], "running");
    assert_eq!(r["stateJson"], new_state);
    assert_eq!(
        r["waitJson"],
        Value::Null,
        "resume clears the wait to JSON null"
    );
    let stale = gw.action(json!({"action": "resume_flow", "flowId": id, "expectedRevision": rev(w), "stateJson": new_state}));
    assert_eq!(stale.status, 409);
    assert_eq!(stale.json["code"], "revision_conflict");
    let finished =
        gw.action(json!({"action": "finish_flow", "flowId": id, "expectedRevision": rev(r)}));
    assert_eq!(finished.status, 200);
    let f = &finished.json["result"]["flow"];
    assert_eq!(f["status"], "succeeded");
    assert_eq!(f["stateJson"], new_state);
    assert!(f["endedAt"].as_u64().is_some());
    assert_eq!(rev(f), 3);
}

#[test]
fn cancelling_a_terminal_flow_is_409_terminal() {
    let gw = Gateway::start(&default_config());
    let flow = gw.create_flow("g");
    let id = flow_id(&flow);
    assert_eq!(
        gw.action(json!({"action": "finish_flow", "flowId": id, "expectedRevision": 0}))
            .status,
        200
    );
    let res = gw.action(json!({"action": "cancel_flow", "flowId": id}));
    assert_eq!(res.status, 409);
    assert_eq!(res.json["ok"], false);
    assert_eq!(res.json["code"], "terminal");
    assert_eq!(res.json["error"], "Flow is already succeeded.");
    assert_eq!(res.json["result"]["found"], true);
    assert_eq!(res.json["result"]["cancelled"], false);
    assert_eq!(res.json["result"]["reason"], "Flow is already succeeded.");
}

#[test]
fn cancel_flow_lists_tasks_whenever_the_flow_was_found_even_when_empty() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("idle"));
    let keys = |res: &Response| -> Vec<String> {
        res.json["result"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let idle = gw.action(json!({"action": "cancel_flow", "flowId": id}));
    assert_eq!(idle.status, 200, "{}", idle.text);
    assert_eq!(keys(&idle), ["found", "cancelled", "flow", "tasks"]);
    assert_eq!(idle.json["result"]["tasks"], json!([]));
    let terminal = gw.action(json!({"action": "cancel_flow", "flowId": id}));
    assert_eq!(terminal.status, 409);
    assert_eq!(terminal.json["code"], "terminal");
    assert_eq!(
        keys(&terminal),
        ["found", "cancelled", "reason", "flow", "tasks"]
    );
    assert_eq!(terminal.json["result"]["tasks"], json!([]));
    let missing = gw.action(json!({"action": "cancel_flow", "flowId": "nope"}));
    assert_eq!(missing.status, 404);
    assert_eq!(
        keys(&missing),
        ["found", "cancelled", "reason"],
        "no flow, no tasks"
    );
}

#[test]
fn terminal_flows_are_never_resurrected() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("g"));
    let failed = gw.action(json!({"action": "fail_flow", "flowId": id, "expectedRevision": 0, "blockedSummary": "broke"}));
    assert_eq!(failed.status, 200);
    assert_eq!(failed.json["result"]["flow"]["status"], "failed");
    for body in [
        json!({"action": "resume_flow", "flowId": id, "expectedRevision": 1}),
        json!({"action": "set_waiting", "flowId": id, "expectedRevision": 1}),
        json!({"action": "finish_flow", "flowId": id, "expectedRevision": 1}),
        json!({"action": "request_cancel", "flowId": id, "expectedRevision": 1}),
    ] {
        let res = gw.action(body.clone());
        assert_eq!(res.status, 409, "{body}");
        assert_eq!(res.json["code"], "revision_conflict");
        assert_eq!(res.json["result"]["current"]["status"], "failed");
    }
    let run = gw.action(json!({"action": "run_task", "flowId": id, "runtime": "acp", "task": "t"}));
    assert_eq!(run.status, 409);
    assert_eq!(run.json["code"], "terminal");
    assert_eq!(run.json["error"], "Flow is already failed.");
}

#[test]
fn a_retried_finish_after_a_lost_response_is_acknowledged_again() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("g"));
    let body = json!({"action": "finish_flow", "flowId": id, "expectedRevision": 0, "stateJson": {"done": true}});
    let first = gw.action(body.clone());
    assert_eq!(first.status, 200);
    let retry = gw.action(body);
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.json["result"]["applied"], true);
    assert_eq!(retry.json["result"]["flow"], first.json["result"]["flow"]);
    let different = gw.action(json!({"action": "finish_flow", "flowId": id, "expectedRevision": 0, "stateJson": {"done": false}}));
    assert_eq!(different.status, 409);
}

#[test]
fn after_request_cancel_resume_wait_and_new_tasks_are_refused() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("g"));
    let req = gw.action(json!({"action": "request_cancel", "flowId": id, "expectedRevision": 0}));
    assert_eq!(req.status, 200);
    let flow = &req.json["result"]["flow"];
    assert!(flow["cancelRequestedAt"].as_u64().is_some());
    assert_eq!(flow["status"], "queued");
    for body in [
        json!({"action": "resume_flow", "flowId": id, "expectedRevision": 1}),
        json!({"action": "set_waiting", "flowId": id, "expectedRevision": 1}),
    ] {
        let res = gw.action(body.clone());
        assert_eq!(res.status, 409, "{body}");
        assert_eq!(res.json["code"], "cancel_requested");
    }
    let run = gw.action(json!({"action": "run_task", "flowId": id, "runtime": "acp", "task": "t"}));
    assert_eq!(run.status, 409);
    assert_eq!(run.json["code"], "cancel_requested");
    assert_eq!(
        run.json["error"],
        "Flow cancellation has already been requested."
    );
}

#[test]
fn cancel_flow_cancels_active_child_records_then_the_flow() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("g"));
    for n in 0..2 {
        let res = gw.action(json!({"action": "run_task", "flowId": id, "runtime": "acp", "childSessionKey": format!("{CHILD}{n}"), "task": "t"}));
        assert_eq!(res.status, 200);
    }
    let res = gw.action(json!({"action": "cancel_flow", "flowId": id}));
    assert_eq!(res.status, 200, "{}", res.text);
    let result = &res.json["result"];
    assert_eq!(result["found"], true);
    assert_eq!(result["cancelled"], true);
    assert_eq!(result["flow"]["status"], "cancelled");
    let tasks = result["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    for t in tasks {
        assert_eq!(t["status"], "cancelled");
        assert_eq!(t["error"], "Cancelled by operator.");
    }
    let summary = gw.action(json!({"action": "get_task_summary", "flowId": id}));
    let s = &summary.json["result"]["summary"];
    assert_eq!(s["active"], 0);
    assert_eq!(s["byStatus"]["cancelled"], 2);
    let missing = gw.action(json!({"action": "cancel_flow", "flowId": "nope"}));
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json["result"],
        json!({"found": false, "cancelled": false, "reason": "Flow not found."})
    );
}

#[test]
fn task_summaries_have_every_key() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("g"));
    gw.action(json!({"action": "run_task", "flowId": id, "runtime": "subagent", "task": "t", "status": "running"}));
    let res = gw.action(json!({"action": "get_task_summary", "flowId": id}));
    assert_eq!(
        res.json["result"]["summary"],
        json!({"total": 1, "active": 1, "terminal": 0, "failures": 0,
               "byStatus": {"queued": 0, "running": 1, "succeeded": 0, "failed": 0, "timed_out": 0, "cancelled": 0, "lost": 0},
               "byRuntime": {"subagent": 1, "acp": 0, "cli": 0, "cron": 0}})
    );
    let none = gw.action(json!({"action": "get_task_summary", "flowId": "nope"}));
    assert_eq!(none.status, 200);
    assert_eq!(none.json["result"], json!({"summary": null}));
}

#[test]
fn reads_list_newest_first_and_resolve_by_id_or_session() {
    let gw = Gateway::start(&default_config());
    let a = flow_id(&gw.create_flow("a"));
    let b = flow_id(&gw.create_flow("b"));
    let list = gw.action(json!({"action": "list_flows"}));
    let ids: Vec<&str> = list.json["result"]["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flowId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [b.as_str(), a.as_str()]);
    let latest = gw.action(json!({"action": "find_latest_flow"}));
    assert_eq!(latest.json["result"]["flow"]["flowId"], b.as_str());
    gw.action(json!({"action": "finish_flow", "flowId": b, "expectedRevision": 0}));
    let by_session = gw.action(json!({"action": "resolve_flow", "token": SESSION}));
    assert_eq!(
        by_session.json["result"]["flow"]["flowId"],
        a.as_str(),
        "newest non-terminal"
    );
    let latest = gw.action(json!({"action": "find_latest_flow"}));
    assert_eq!(
        latest.json["result"]["flow"]["flowId"],
        b.as_str(),
        "newest of any status"
    );
    let by_id = gw.action(json!({"action": "resolve_flow", "token": b}));
    assert_eq!(by_id.json["result"]["flow"]["flowId"], b.as_str());
    let other = gw.action(json!({"action": "resolve_flow", "token": "agent:other:main"}));
    assert_eq!(other.json["result"], json!({"flow": null}));
}

#[test]
fn set_waiting_becomes_blocked_only_with_blocked_details() {
    let gw = Gateway::start(&default_config());
    let id = flow_id(&gw.create_flow("g"));
    let blocked = gw.action(json!({"action": "set_waiting", "flowId": id, "expectedRevision": 0, "blockedSummary": "needs approval", "blockedTaskId": "t-1"}));
    let f = &blocked.json["result"]["flow"];
    assert_eq!(f["status"], "blocked");
    assert_eq!(f["blockedSummary"], "needs approval");
    let waiting = gw.action(json!({"action": "set_waiting", "flowId": id, "expectedRevision": 1}));
    let f = &waiting.json["result"]["flow"];
    assert_eq!(f["status"], "waiting");
    assert!(
        f.get("blockedSummary").is_none(),
        "stale blocked details are cleared: {f}"
    );
}

#[test]
fn a_flow_of_another_session_is_indistinguishable_from_a_missing_one() {
    let config = gateway_config(
        json!({"routes": {
            "zapier": route(json!({})),
            "other": route(json!({"path": "/plugins/webhooks/other", "sessionKey": "agent:other:main"}))
        }}),
        json!({}),
    );
    let gw = Gateway::start(&config);
    let id = flow_id(&gw.create_flow("mine"));
    let other = |body: Value| {
        gw.post(
            "/plugins/webhooks/other",
            &hdrs(&authed()),
            body.to_string().as_bytes(),
        )
    };
    let cases = [
        (
            json!({"action": "get_flow", "flowId": id}),
            200,
            json!({"flow": null}),
        ),
        (
            json!({"action": "resolve_flow", "token": id}),
            200,
            json!({"flow": null}),
        ),
        (
            json!({"action": "get_task_summary", "flowId": id}),
            200,
            json!({"summary": null}),
        ),
        (json!({"action": "list_flows"}), 200, json!({"flows": []})),
        (
            json!({"action": "find_latest_flow"}),
            200,
            json!({"flow": null}),
        ),
        (
            json!({"action": "finish_flow", "flowId": id, "expectedRevision": 0}),
            404,
            json!({"applied": false, "code": "not_found"}),
        ),
        (
            json!({"action": "cancel_flow", "flowId": id}),
            404,
            json!({"found": false, "cancelled": false, "reason": "Flow not found."}),
        ),
        (
            json!({"action": "run_task", "flowId": id, "runtime": "acp", "task": "t"}),
            404,
            json!({"found": false, "created": false, "reason": "Flow not found."}),
        ),
    ];
    for (body, status, result) in cases {
        let res = other(body.clone());
        assert_eq!(res.status, status, "{body}");
        assert_eq!(res.json["result"], result, "{body}");
    }
    let mine = gw.action(json!({"action": "get_flow", "flowId": id}));
    assert_eq!(
        mine.json["result"]["flow"]["revision"], 0,
        "nothing was written"
    );
}
