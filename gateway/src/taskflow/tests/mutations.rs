//! The five revision-checked mutations: pipeline order, field effects,
//! terminal and cancel guards, idempotent retries.

use abi_stable::std_types::{ROption, RStr};
use openclaw_ffi::outcome::{ErrorCode, MutationCode};
use openclaw_ffi::records::{FlowStatus, TextPatch};
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;

#[test]
fn managed_flows_move_through_revision_checked_transitions() {
    // Anchor conformance item 1, with this contract's timestamps (now).
    let h = Harness::new();
    let bound = h.bind("s");
    let mut input = create_input("g");
    input.current_step = ROption::RSome(s("start"));
    input.state_json = ROption::RSome(s(r#"{"n":0}"#));
    let flow = ok(bound.create_managed(input));
    let id = flow.flow_id.clone();

    h.set_now(T0 + 100);
    let mut w = waiting(&id, 0);
    w.current_step = TextPatch::Set(s("wait"));
    w.wait_json = ROption::RSome(s(r#"{"until":1}"#));
    let f1 = applied(ok(bound.set_waiting(w)));
    assert_eq!((f1.revision, f1.status), (1, FlowStatus::Waiting));
    assert_eq!(f1.current_step, ROption::RSome(s("wait")));
    assert_eq!(f1.wait_json, ROption::RSome(s(r#"{"until":1}"#)));
    assert_eq!(f1.updated_at, T0 + 100);

    let stale = ok(bound.set_waiting(waiting(&id, 0)));
    assert_eq!(stale.code, MutationCode::REVISION_CONFLICT);
    assert_eq!(stale.flow.unwrap().revision, 1);

    let f2 = applied(ok(bound.resume(resume(&id, 1, FlowStatus::Running))));
    assert_eq!((f2.revision, f2.status), (2, FlowStatus::Running));
    assert_eq!(f2.wait_json, ROption::RSome(s("null")));

    h.set_now(T0 + 400);
    let f3 = applied(ok(bound.request_cancel(request_cancel(&id, 2))));
    assert_eq!((f3.revision, f3.status), (3, FlowStatus::Running));
    assert_eq!(f3.cancel_requested_at, ROption::RSome(T0 + 400));

    h.set_now(T0 + 500);
    let mut fl = fail(&id, 3);
    fl.blocked_summary = TextPatch::Set(s("boom"));
    let f4 = applied(ok(bound.fail(fl)));
    assert_eq!((f4.revision, f4.status), (4, FlowStatus::Failed));
    assert_eq!(f4.blocked_summary, ROption::RSome(s("boom")));
    assert_eq!(f4.ended_at, ROption::RSome(T0 + 500));
    assert_eq!(f4.cancel_requested_at, ROption::RSome(T0 + 400));

    let list = ok(bound.list());
    assert_eq!(list.len(), 1);
    assert_eq!(list[0], f4);
}

#[test]
fn set_waiting_with_blocked_fields_blocks_and_without_them_clears_them() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut w = waiting(&id, 0);
    w.blocked_task_id = TextPatch::Set(s(" task-1 "));
    w.blocked_summary = TextPatch::Set(s("needs approval"));
    let blocked = applied(ok(bound.set_waiting(w)));
    assert_eq!(blocked.status, FlowStatus::Blocked);
    assert_eq!(blocked.blocked_task_id, ROption::RSome(s("task-1")));
    assert_eq!(blocked.blocked_summary, ROption::RSome(s("needs approval")));
    assert_eq!(blocked.ended_at, ROption::RNone);

    let mut only_summary = waiting(&id, 1);
    only_summary.blocked_summary = TextPatch::Set(s("still blocked"));
    let kept = applied(ok(bound.set_waiting(only_summary)));
    assert_eq!(kept.status, FlowStatus::Blocked);
    assert_eq!(kept.blocked_task_id, ROption::RSome(s("task-1")));

    let mut blank = waiting(&id, 2);
    blank.blocked_summary = TextPatch::Set(s("   "));
    let unblocked = applied(ok(bound.set_waiting(blank)));
    assert_eq!(unblocked.status, FlowStatus::Waiting);
    assert_eq!(unblocked.blocked_task_id, ROption::RNone);
    assert_eq!(unblocked.blocked_summary, ROption::RNone);
}

#[test]
fn resume_defaults_are_applied_and_blocked_fields_and_wait_json_are_cleared() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut w = waiting(&id, 0);
    w.blocked_task_id = TextPatch::Set(s("t"));
    w.wait_json = ROption::RSome(s("[1]"));
    w.state_json = ROption::RSome(s(r#"{"k":true}"#));
    applied(ok(bound.set_waiting(w)));
    let mut r = resume(&id, 1, FlowStatus::Queued);
    r.current_step = TextPatch::Clear;
    let f = applied(ok(bound.resume(r)));
    assert_eq!(f.status, FlowStatus::Queued);
    assert_eq!(f.wait_json, ROption::RSome(s("null")));
    assert_eq!(f.blocked_task_id, ROption::RNone);
    assert_eq!(f.current_step, ROption::RNone);
    assert_eq!(f.state_json, ROption::RSome(s(r#"{"k":true}"#)));
}

#[test]
fn resume_refuses_a_status_other_than_queued_or_running() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let e = err(bound.resume(resume(&id, 0, FlowStatus::Succeeded)));
    assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    assert_eq!(ok(bound.get(RStr::from(id.as_str()))).unwrap().revision, 0);
}

#[test]
fn finish_succeeds_the_flow_and_stamps_its_end() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut w = waiting(&id, 0);
    w.blocked_summary = TextPatch::Set(s("b"));
    w.current_step = TextPatch::Set(s("step"));
    applied(ok(bound.set_waiting(w)));
    h.set_now(T0 + 9);
    let mut fin = finish(&id, 1);
    fin.state_json = ROption::RSome(s(r#"{"done":1}"#));
    let f = applied(ok(bound.finish(fin)));
    assert_eq!((f.status, f.revision), (FlowStatus::Succeeded, 2));
    assert_eq!(f.ended_at, ROption::RSome(T0 + 9));
    assert_eq!(f.updated_at, T0 + 9);
    assert_eq!(f.wait_json, ROption::RSome(s("null")));
    assert_eq!(f.blocked_summary, ROption::RNone);
    assert_eq!(f.current_step, ROption::RSome(s("step")));
    assert_eq!(f.state_json, ROption::RSome(s(r#"{"done":1}"#)));
}

#[test]
fn terminal_flows_are_never_resurrected() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let done = applied(ok(bound.finish(finish(&id, 0))));
    for outcome in [
        ok(bound.set_waiting(waiting(&id, 1))),
        ok(bound.resume(resume(&id, 1, FlowStatus::Running))),
        ok(bound.fail(fail(&id, 1))),
        ok(bound.request_cancel(request_cancel(&id, 1))),
        ok(bound.finish(finish(&id, 1))),
    ] {
        assert_eq!(outcome.code, MutationCode::REVISION_CONFLICT);
        assert_eq!(outcome.flow, ROption::RSome(done.clone()));
    }
    assert_eq!(ok(bound.get(RStr::from(id.as_str()))).unwrap(), done);
}

#[test]
fn a_blocked_flow_with_an_end_is_terminal() {
    let h = Harness::new();
    let mut h = h;
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    drop(bound);
    with_raw_sql(
        &mut h,
        &format!("UPDATE flows SET status = 'blocked', ended_at = {T0} WHERE flow_id = '{id}'"),
    );
    let bound = h.bind("s");
    let outcome = ok(bound.resume(resume(&id, 0, FlowStatus::Running)));
    assert_eq!(outcome.code, MutationCode::REVISION_CONFLICT);
}

#[test]
fn a_retried_finish_is_acknowledged_without_a_second_write() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut fin = finish(&id, 0);
    fin.state_json = ROption::RSome(s(r#"{"a":1,"b":[2]}"#));
    let first = applied(ok(bound.finish(fin)));
    h.advance(50);
    let mut retry = finish(&id, 0);
    retry.state_json = ROption::RSome(s(r#"{ "b": [2], "a": 1 }"#));
    let again = applied(ok(bound.finish(retry)));
    assert_eq!(again, first);
    let mut different = finish(&id, 0);
    different.state_json = ROption::RSome(s(r#"{"a":2}"#));
    assert_eq!(
        ok(bound.finish(different)).code,
        MutationCode::REVISION_CONFLICT
    );
    assert_eq!(
        ok(bound.fail(fail(&id, 0))).code,
        MutationCode::REVISION_CONFLICT
    );
    assert_eq!(ok(bound.get(RStr::from(id.as_str()))).unwrap(), first);
}

#[test]
fn a_retried_fail_is_acknowledged_only_when_its_blocked_fields_match() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut f = fail(&id, 0);
    f.blocked_summary = TextPatch::Set(s("broken"));
    let first = applied(ok(bound.fail(f.clone())));
    assert_eq!(applied(ok(bound.fail(f))), first);
    assert_eq!(applied(ok(bound.fail(fail(&id, 0)))), first);
    let mut other = fail(&id, 0);
    other.blocked_summary = TextPatch::Set(s("different"));
    assert_eq!(ok(bound.fail(other)).code, MutationCode::REVISION_CONFLICT);
    assert_eq!(
        ok(bound.finish(finish(&id, 0))).code,
        MutationCode::REVISION_CONFLICT
    );
}

#[test]
fn resume_and_set_waiting_are_refused_once_cancel_is_requested() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let requested = applied(ok(bound.request_cancel(request_cancel(&id, 0))));
    let r = ok(bound.resume(resume(&id, 1, FlowStatus::Running)));
    assert_eq!(r.code, MutationCode::CANCEL_REQUESTED);
    assert_eq!(r.flow, ROption::RSome(requested.clone()));
    assert_eq!(
        ok(bound.set_waiting(waiting(&id, 1))).code,
        MutationCode::CANCEL_REQUESTED
    );
    // A stale revision is still reported as a conflict first.
    assert_eq!(
        ok(bound.resume(resume(&id, 0, FlowStatus::Running))).code,
        MutationCode::REVISION_CONFLICT
    );
    // finish and fail stay possible.
    let done = applied(ok(bound.finish(finish(&id, 1))));
    assert_eq!(done.cancel_requested_at, requested.cancel_requested_at);
}

#[test]
fn a_flow_that_is_not_managed_refuses_every_mutation_with_its_current_state() {
    let mut h = Harness::new();
    let id = "11111111-1111-4111-8111-111111111111";
    with_raw_sql(&mut h, &mirrored_flow_sql(id, "s"));
    let bound = h.bind("s");
    let rid = s(id);
    for outcome in [
        ok(bound.set_waiting(waiting(&rid, 4))),
        ok(bound.resume(resume(&rid, 4, FlowStatus::Running))),
        ok(bound.finish(finish(&rid, 4))),
        ok(bound.fail(fail(&rid, 4))),
        ok(bound.request_cancel(request_cancel(&rid, 4))),
    ] {
        assert_eq!(outcome.code, MutationCode::NOT_MANAGED);
        assert_eq!(outcome.flow.unwrap().revision, 4);
    }
    assert_eq!(
        ok(bound.get(RStr::from(id))).unwrap().status,
        FlowStatus::Running
    );
}

#[test]
fn request_cancel_records_intent_without_changing_status() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    h.set_now(T0 + 7);
    let f = applied(ok(bound.request_cancel(request_cancel(&id, 0))));
    assert_eq!(
        (f.status, f.revision, f.updated_at),
        (FlowStatus::Queued, 1, T0 + 7)
    );
    assert_eq!(f.cancel_requested_at, ROption::RSome(T0 + 7));
}
