//! Creation, binding, reads, ordering and owner scoping.

use abi_stable::std_types::{ROption, RStr};
use openclaw_ffi::outcome::{CancelCode, ErrorCode, MutationCode, RunTaskCode};
use openclaw_ffi::records::{FlowStatus, NotifyPolicy, SyncMode, TaskRuntime};
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;

#[test]
fn binding_trims_the_session_key_and_refuses_an_empty_one() {
    let h = Harness::new();
    let bound = h.store.bind("  agent:main:hooks  ").unwrap();
    assert_eq!(bound.session_key().as_str(), "agent:main:hooks");
    let e = h.store.bind("   ").err().unwrap();
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    assert_eq!(
        e.message.as_str(),
        "TaskFlow runtime requires a bound sessionKey."
    );
}

#[test]
fn create_managed_builds_a_queued_managed_flow_at_revision_zero() {
    let h = Harness::new();
    let bound = h.bind("agent:main:hooks");
    let mut input = create_input("  Ship it  ");
    input.controller_id = s("  webhooks/route-a ");
    input.current_step = ROption::RSome(s("  fetch "));
    input.state_json = ROption::RSome(s(r#"{"a":1}"#));
    input.notify_policy = NotifyPolicy::StateChanges;
    let flow = ok(bound.create_managed(input));
    assert!(is_uuid_v4(flow.flow_id.as_str()), "{}", flow.flow_id);
    assert_eq!(flow.sync_mode, SyncMode::Managed);
    assert_eq!(flow.controller_id, ROption::RSome(s("webhooks/route-a")));
    assert_eq!(flow.revision, 0);
    assert_eq!(flow.status, FlowStatus::Queued);
    assert_eq!(flow.notify_policy, NotifyPolicy::StateChanges);
    assert_eq!(flow.goal.as_str(), "Ship it");
    assert_eq!(flow.current_step, ROption::RSome(s("fetch")));
    assert_eq!(flow.state_json, ROption::RSome(s(r#"{"a":1}"#)));
    assert_eq!(flow.wait_json, ROption::RNone);
    assert_eq!(flow.cancel_requested_at, ROption::RNone);
    assert_eq!((flow.created_at, flow.updated_at), (T0, T0));
    assert_eq!(flow.ended_at, ROption::RNone);
    assert_eq!(
        ok(bound.get(RStr::from(flow.flow_id.as_str()))),
        ROption::RSome(flow)
    );
}

#[test]
fn create_managed_turns_blank_optional_text_into_absent_fields() {
    let h = Harness::new();
    let bound = h.bind("s");
    let mut input = create_input("g");
    input.current_step = ROption::RSome(s("   "));
    let flow = ok(bound.create_managed(input));
    assert_eq!(flow.current_step, ROption::RNone);
}

#[test]
fn create_managed_requires_a_controller_id_and_writes_nothing_without_one() {
    let h = Harness::new();
    let bound = h.bind("s");
    let mut input = create_input("g");
    input.controller_id = s("  ");
    let e = err(bound.create_managed(input));
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    assert_eq!(e.message.as_str(), "Managed flow controllerId is required.");
    assert_eq!(h.store.flow_count(), 0);
}

#[test]
fn create_managed_rejects_payloads_that_are_not_json() {
    let h = Harness::new();
    let bound = h.bind("s");
    let mut input = create_input("g");
    input.wait_json = ROption::RSome(s("{not json"));
    assert_eq!(
        err(bound.create_managed(input)).code,
        ErrorCode::INVALID_INPUT
    );
    assert_eq!(h.store.flow_count(), 0);
}

#[test]
fn json_null_payloads_are_kept_distinct_from_absent_ones() {
    let h = Harness::new();
    let bound = h.bind("s");
    let mut input = create_input("g");
    input.state_json = ROption::RSome(s("null"));
    let flow = ok(bound.create_managed(input));
    assert_eq!(flow.state_json, ROption::RSome(s("null")));
    assert_eq!(flow.wait_json, ROption::RNone);
    let resumed = applied(ok(bound.resume(resume(
        &flow.flow_id,
        0,
        FlowStatus::Running,
    ))));
    assert_eq!(resumed.state_json, ROption::RSome(s("null")));
    assert_eq!(resumed.wait_json, ROption::RSome(s("null")));
}

#[test]
fn list_returns_newest_first_and_breaks_timestamp_ties_by_creation_order() {
    let h = Harness::new();
    let bound = h.bind("s");
    let a = create(&bound, "a");
    let b = create(&bound, "b");
    h.advance(10);
    let c = create(&bound, "c");
    let ids: Vec<String> = ok(bound.list())
        .iter()
        .map(|f| f.flow_id.to_string())
        .collect();
    assert_eq!(
        ids,
        vec![
            c.flow_id.to_string(),
            b.flow_id.to_string(),
            a.flow_id.to_string()
        ]
    );
    assert_eq!(ok(bound.find_latest()).unwrap().flow_id, c.flow_id);
}

#[test]
fn find_latest_returns_the_newest_flow_of_any_status() {
    let h = Harness::new();
    let bound = h.bind("s");
    assert_eq!(ok(bound.find_latest()), ROption::RNone);
    create(&bound, "old");
    h.advance(1);
    let new = create(&bound, "new");
    applied(ok(bound.finish(finish(&new.flow_id, 0))));
    let latest = ok(bound.find_latest()).unwrap();
    assert_eq!(
        (latest.flow_id, latest.status),
        (new.flow_id, FlowStatus::Succeeded)
    );
}

#[test]
fn resolve_by_session_key_returns_the_newest_live_flow_or_nothing() {
    let h = Harness::new();
    let bound = h.bind("agent:main:hooks");
    assert_eq!(
        ok(bound.resolve(RStr::from("agent:main:hooks"))),
        ROption::RNone
    );
    let live = create(&bound, "live");
    h.advance(1);
    let done = create(&bound, "done");
    applied(ok(bound.finish(finish(&done.flow_id, 0))));
    let by_key = ok(bound.resolve(RStr::from("  agent:main:hooks ")));
    assert_eq!(by_key.unwrap().flow_id, live.flow_id);
    let by_id = ok(bound.resolve(RStr::from(done.flow_id.as_str())));
    assert_eq!(by_id.unwrap().flow_id, done.flow_id);
    applied(ok(bound.fail(fail(&live.flow_id, 0))));
    assert_eq!(
        ok(bound.resolve(RStr::from("agent:main:hooks"))),
        ROption::RNone
    );
    assert_eq!(
        ok(bound.resolve(RStr::from("something-else"))),
        ROption::RNone
    );
}

#[test]
fn resolve_does_not_trim_a_flow_id() {
    let h = Harness::new();
    let bound = h.bind("s");
    let flow = create(&bound, "g");
    let padded = format!(" {} ", flow.flow_id);
    assert_eq!(
        ok(bound.resolve(RStr::from(padded.as_str()))),
        ROption::RNone
    );
    assert_eq!(ok(bound.get(RStr::from(padded.as_str()))), ROption::RNone);
}

#[test]
fn a_foreign_flow_is_indistinguishable_from_a_missing_one_in_every_method() {
    let h = Harness::new();
    let owner = h.bind("agent:a:main");
    let other = h.bind("agent:b:main");
    let flow = create(&owner, "mine");
    let id = flow.flow_id.clone();
    let rid = RStr::from(id.as_str());

    assert_eq!(ok(other.get(rid)), ROption::RNone);
    assert!(ok(other.list()).is_empty());
    assert_eq!(ok(other.find_latest()), ROption::RNone);
    assert_eq!(ok(other.resolve(rid)), ROption::RNone);
    assert_eq!(
        ok(other.resolve(RStr::from("agent:a:main"))),
        ROption::RNone
    );
    assert_eq!(ok(other.get_task_summary(rid)), ROption::RNone);
    for outcome in [
        ok(other.set_waiting(waiting(&id, 0))),
        ok(other.resume(resume(&id, 0, FlowStatus::Running))),
        ok(other.finish(finish(&id, 0))),
        ok(other.fail(fail(&id, 0))),
        ok(other.request_cancel(request_cancel(&id, 0))),
    ] {
        assert_eq!(outcome.code, MutationCode::NOT_FOUND);
        assert_eq!(outcome.flow, ROption::RNone);
    }
    let cancel = ok(other.cancel(rid));
    assert_eq!(cancel.code, CancelCode::NOT_FOUND);
    assert_eq!(cancel.flow, ROption::RNone);
    assert!(cancel.tasks.is_empty());
    let run = ok(other.run_task(task_input(&id, TaskRuntime::Subagent)));
    assert_eq!(run.code, RunTaskCode::NOT_FOUND);
    assert_eq!((run.flow, run.task), (ROption::RNone, ROption::RNone));

    // Nothing was written: the owner still sees revision 0 and no tasks.
    let current = ok(owner.get(rid)).unwrap();
    assert_eq!(current, flow);
    assert_eq!(ok(owner.get_task_summary(rid)).unwrap().total, 0);
}

#[test]
fn a_missing_flow_is_not_found_in_every_method() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = s("00000000-0000-4000-8000-000000000000");
    assert_eq!(
        ok(bound.set_waiting(waiting(&id, 0))).code,
        MutationCode::NOT_FOUND
    );
    assert_eq!(
        ok(bound.cancel(RStr::from(id.as_str()))).code,
        CancelCode::NOT_FOUND
    );
    assert_eq!(
        ok(bound.run_task(task_input(&id, TaskRuntime::Acp))).code,
        RunTaskCode::NOT_FOUND
    );
}

#[test]
fn a_bound_store_works_through_the_stable_abi_trait_object() {
    use abi_stable::sabi_trait::TD_Opaque;
    use openclaw_ffi::runtime::{BoundTaskFlowBox, BoundTaskFlow_TO};
    let h = Harness::new();
    let boxed: BoundTaskFlowBox = BoundTaskFlow_TO::from_value(h.bind("s"), TD_Opaque);
    let flow = ok(boxed.create_managed(create_input("through the abi")));
    assert_eq!(boxed.session_key().as_str(), "s");
    assert_eq!(
        ok(boxed.get(RStr::from(flow.flow_id.as_str()))),
        ROption::RSome(flow)
    );
}
