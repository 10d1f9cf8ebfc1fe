//! Unit tests of `request`.

use super::*;
use serde_json::json;

fn first_error(v: Value) -> String {
    parse(&v).unwrap_err()[0].to_string()
}

#[test]
fn create_flow_trims_and_defaults() {
    let a = parse(&json!({"action":"create_flow","goal":"  Review inbound queue "})).unwrap();
    let Action::CreateFlow(c) = a else {
        panic!("wrong action")
    };
    assert_eq!(c.goal.as_str(), "Review inbound queue");
    assert_eq!(c.status, FlowStatus::Queued);
    assert_eq!(c.notify_policy, NotifyPolicy::DoneOnly);
    assert!(c.controller_id.is_empty());
    assert_eq!(c.state_json, ROption::RNone);
}

#[test]
fn json_null_is_kept_as_a_value() {
    let a = parse(&json!({"action":"create_flow","goal":"g","stateJson":null})).unwrap();
    let Action::CreateFlow(c) = a else {
        panic!("wrong action")
    };
    assert_eq!(c.state_json, ROption::RSome("null".into()));
}

#[test]
fn whole_floats_are_stored_as_integers_like_javascript_would() {
    let a = parse(&json!({"action":"create_flow","goal":"g",
        "stateJson": serde_json::from_str::<Value>(r#"{"a":1.0,"b":1e3,"c":1.5,"d":[-2.0,{"e":0.0}],"f":1e300}"#).unwrap()}))
    .unwrap();
    let Action::CreateFlow(c) = a else {
        panic!("wrong action")
    };
    assert_eq!(
        c.state_json,
        ROption::RSome(r#"{"a":1,"b":1000,"c":1.5,"d":[-2,{"e":0}],"f":1e+300}"#.into())
    );
}

#[test]
fn unknown_actions_and_keys_are_refused() {
    let unknown_action = "action: Invalid discriminator value. Expected 'create_flow' | 'get_flow' | 'list_flows' | 'find_latest_flow' | 'resolve_flow' | 'get_task_summary' | 'set_waiting' | 'resume_flow' | 'finish_flow' | 'fail_flow' | 'request_cancel' | 'cancel_flow' | 'run_task'";
    assert_eq!(first_error(json!({"action":"drop_tables"})), unknown_action);
    assert_eq!(first_error(json!({"goal":"x"})), unknown_action);
    assert_eq!(first_error(json!({"action":5})), unknown_action);
    assert_eq!(
        first_error(json!({"action":"list_flows","extra":1})),
        "Unrecognized key: \"extra\""
    );
    assert_eq!(
        first_error(json!([1])),
        "Invalid input: expected object, received array"
    );
}

#[test]
fn the_action_name_and_enumerations_match_exactly() {
    for name in [" list_flows ", "list_flows ", "LIST_FLOWS", "List_flows"] {
        let issues = parse(&json!({"action": name})).unwrap_err();
        assert_eq!(issues[0].path, "action", "{name:?}");
    }
    assert_eq!(
        first_error(json!({"action":"create_flow","goal":"g","status":" running"})),
        "status: Invalid option: expected one of \"queued\"|\"running\"|\"waiting\"|\"blocked\""
    );
    assert_eq!(
        first_error(json!({"action":"create_flow","goal":"g","notifyPolicy":"Silent"})),
        "notifyPolicy: Invalid option: expected one of \"done_only\"|\"state_changes\"|\"silent\""
    );
    assert!(parse(&json!({"action":"create_flow","goal":" g ","status":"running"})).is_ok());
}

#[test]
fn issues_name_the_field_and_follow_zod_wording() {
    assert_eq!(
        first_error(json!({"action":"create_flow"})),
        "goal: Invalid input: expected string, received undefined"
    );
    assert_eq!(
        first_error(json!({"action":"create_flow","goal":"  "})),
        "goal: Too small: expected string to have >=1 characters"
    );
    assert_eq!(
        first_error(json!({"action":"set_waiting","flowId":"f","expectedRevision":-1})),
        "expectedRevision: Too small: expected number to be >=0"
    );
    assert_eq!(
        first_error(json!({"action":"run_task","flowId":"f","runtime":"cli","task":"t"})),
        "runtime: Invalid option: expected one of \"subagent\"|\"acp\""
    );
}

#[test]
fn get_flow_waits_only_when_asked_with_checked_bounds() {
    let plain = parse(&json!({"action":"get_flow","flowId":" f "})).unwrap();
    assert_eq!(
        plain,
        Action::GetFlow {
            flow_id: "f".into(),
            wait: None
        }
    );
    let Action::GetFlow { wait, .. } =
        parse(&json!({"action":"get_flow","flowId":"f","waitForRevisionAbove":3})).unwrap()
    else {
        panic!("wrong action")
    };
    assert_eq!(
        wait,
        Some(WaitFor {
            above_revision: 3,
            timeout: MAX_WAIT
        })
    );
    let Action::GetFlow { wait, .. } =
        parse(&json!({"action":"get_flow","flowId":"f","waitForRevisionAbove":0,"waitMs":1}))
            .unwrap()
    else {
        panic!("wrong action")
    };
    assert_eq!(wait.unwrap().timeout, std::time::Duration::from_millis(1));

    let get = |extra: Value| {
        let mut v = json!({"action":"get_flow","flowId":"f"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        first_error(v)
    };
    assert_eq!(
        get(json!({"waitMs": 100})),
        format!("waitMs: {WAIT_MS_ALONE_MESSAGE}")
    );
    assert_eq!(
        get(json!({"waitForRevisionAbove": -1})),
        "waitForRevisionAbove: Too small: expected number to be >=0"
    );
    assert_eq!(
        get(json!({"waitForRevisionAbove": "1"})),
        "waitForRevisionAbove: Invalid input: expected number, received string"
    );
    assert_eq!(
        get(json!({"waitForRevisionAbove": 1, "waitMs": 0})),
        "waitMs: Too small: expected number to be >=1"
    );
    assert_eq!(
        get(json!({"waitForRevisionAbove": 1, "waitMs": 25001})),
        "waitMs: Too big: expected number to be <=25000"
    );
    assert_eq!(
        get(json!({"waitForRevisionAbove": 1, "waitMs": 2.5})),
        "waitMs: Invalid input: expected int, received number"
    );
    assert_eq!(
        get(json!({"waitForRevisionAbove": 1, "waitMs": null})),
        "waitMs: Invalid input: expected number, received null"
    );
}

#[test]
fn running_only_fields_need_status_running() {
    let v = json!({"action":"run_task","flowId":"f","runtime":"acp","task":"t","startedAt":10});
    assert_eq!(first_error(v), format!("status: {RUNNING_ONLY_MESSAGE}"));
    let v =
        json!({"action":"run_task","flowId":"f","runtime":"acp","task":"t","progressSummary":null});
    assert_eq!(first_error(v), format!("status: {RUNNING_ONLY_MESSAGE}"));
    let ok = json!({"action":"run_task","flowId":"f","runtime":"acp","task":"t","status":"running","startedAt":10,"lastEventAt":10});
    assert!(parse(&ok).is_ok());
}

#[test]
fn every_issue_is_listed() {
    let issues =
        parse(&json!({"action":"fail_flow","flowId":1,"blockedSummary":3,"x":1})).unwrap_err();
    let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
    assert_eq!(paths, ["flowId", "expectedRevision", "blockedSummary", ""]);
}

#[test]
fn nullable_fields_distinguish_clear_from_keep() {
    let a = parse(&json!({"action":"set_waiting","flowId":"f","expectedRevision":0,"currentStep":null,"blockedSummary":" s "}))
        .unwrap();
    let Action::SetWaiting(s) = a else {
        panic!("wrong action")
    };
    assert_eq!(s.current_step, TextPatch::Clear);
    assert_eq!(s.blocked_summary, TextPatch::Set("s".into()));
    assert_eq!(s.blocked_task_id, TextPatch::Keep);
}
