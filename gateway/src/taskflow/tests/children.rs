//! Child tasks: run_task records, dedupe, refusals, summaries and cancel.

use abi_stable::std_types::{ROption, RStr};
use openclaw_ffi::outcome::{CancelCode, ErrorCode, RunTaskCode};
use openclaw_ffi::records::{FlowStatus, NotifyPolicy, TaskRuntime, TaskStatus, TaskSummary};
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;

#[test]
fn run_task_records_a_queued_child_without_touching_the_flow() {
    let h = Harness::new();
    let bound = h.bind("agent:main:hooks");
    let flow = create(&bound, "g");
    let mut input = task_input(&flow.flow_id, TaskRuntime::Subagent);
    input.run_id = ROption::RSome(s(" run-1 "));
    input.label = ROption::RSome(s(" label "));
    input.child_session_key = ROption::RSome(s("agent:worker:hooks:child"));
    let out = ok(bound.run_task(input));
    assert_eq!(out.code, RunTaskCode::CREATED);
    assert_eq!(out.flow, ROption::RSome(flow.clone()));
    let task = out.task.unwrap();
    assert!(is_uuid_v4(task.task_id.as_str()));
    assert_eq!(task.parent_flow_id, ROption::RSome(flow.flow_id.clone()));
    assert_eq!(task.run_id, ROption::RSome(s("run-1")));
    assert_eq!(task.label, ROption::RSome(s("label")));
    assert_eq!(task.agent_id, ROption::RSome(s("worker")));
    assert_eq!(task.scope_kind.as_str(), "session");
    assert_eq!(task.delivery_status.as_str(), "pending");
    assert_eq!(task.notify_policy, NotifyPolicy::DoneOnly);
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(
        (task.created_at, task.last_event_at),
        (T0, ROption::RSome(T0))
    );
    assert_eq!(task.started_at, ROption::RNone);
    let summary = ok(bound.get_task_summary(RStr::from(flow.flow_id.as_str()))).unwrap();
    assert_eq!((summary.total, summary.active), (1, 1));
    assert_eq!(
        ok(bound.get(RStr::from(flow.flow_id.as_str())))
            .unwrap()
            .revision,
        0
    );
}

#[test]
fn run_task_takes_the_agent_id_explicitly_then_from_the_child_then_from_the_owner() {
    let h = Harness::new();
    let bound = h.bind("agent:owner:main");
    let id = create(&bound, "g").flow_id;
    let mut explicit = task_input(&id, TaskRuntime::Acp);
    explicit.agent_id = ROption::RSome(s("chosen"));
    explicit.child_session_key = ROption::RSome(s("agent:child:x"));
    assert_eq!(
        ok(bound.run_task(explicit)).task.unwrap().agent_id,
        ROption::RSome(s("chosen"))
    );
    let plain = task_input(&id, TaskRuntime::Acp);
    assert_eq!(
        ok(bound.run_task(plain)).task.unwrap().agent_id,
        ROption::RSome(s("owner"))
    );
    let other = h.bind("global");
    let gid = create(&other, "g").flow_id;
    assert_eq!(
        ok(other.run_task(task_input(&gid, TaskRuntime::Acp)))
            .task
            .unwrap()
            .agent_id,
        ROption::RNone
    );
}

#[test]
fn a_running_child_lowers_created_at_to_its_earliest_timestamp() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut input = task_input(&id, TaskRuntime::Subagent);
    input.status = TaskStatus::Running;
    input.started_at = ROption::RSome(T0 - 50);
    input.progress_summary = ROption::RSome(s("  half   way  "));
    input.notify_policy = ROption::RSome(NotifyPolicy::Silent);
    let task = ok(bound.run_task(input)).task.unwrap();
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.created_at, T0 - 50);
    assert_eq!(task.started_at, ROption::RSome(T0 - 50));
    assert_eq!(task.last_event_at, ROption::RSome(T0 - 50));
    assert_eq!(task.progress_summary, ROption::RSome(s("half way")));
    assert_eq!(task.notify_policy, NotifyPolicy::Silent);
}

#[test]
fn a_retried_run_id_reuses_the_task_and_merges_missing_metadata() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut input = task_input(&id, TaskRuntime::Subagent);
    input.run_id = ROption::RSome(s("run-7"));
    input.notify_policy = ROption::RSome(NotifyPolicy::Silent);
    let first = ok(bound.run_task(input.clone())).task.unwrap();
    input.source_id = ROption::RSome(s("src"));
    input.notify_policy = ROption::RSome(NotifyPolicy::StateChanges);
    let again = ok(bound.run_task(input.clone()));
    assert_eq!(again.code, RunTaskCode::REUSED);
    let reused = again.task.unwrap();
    assert_eq!(reused.task_id, first.task_id);
    assert_eq!(reused.source_id, ROption::RSome(s("src")));
    assert_eq!(reused.notify_policy, NotifyPolicy::StateChanges);
    let summary = ok(bound.get_task_summary(RStr::from(id.as_str()))).unwrap();
    assert_eq!(summary.total, 1);

    // A different task text under the same run id is a new subagent task.
    input.task = s("another thing");
    assert_eq!(ok(bound.run_task(input)).code, RunTaskCode::CREATED);
}

#[test]
fn an_acp_run_scope_reuses_its_oldest_task_whatever_the_label() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut input = task_input(&id, TaskRuntime::Acp);
    input.run_id = ROption::RSome(s("r"));
    input.child_session_key = ROption::RSome(s("s:child"));
    let first = ok(bound.run_task(input.clone())).task.unwrap();
    input.label = ROption::RSome(s("new label"));
    input.task = s("other text");
    input.prefer_metadata = true;
    let out = ok(bound.run_task(input.clone()));
    assert_eq!(out.code, RunTaskCode::REUSED);
    let t = out.task.unwrap();
    assert_eq!(t.task_id, first.task_id);
    assert_eq!(
        (t.label, t.task.as_str()),
        (ROption::RSome(s("new label")), "other text")
    );
    // Another child session key is another run scope.
    input.child_session_key = ROption::RSome(s("s:other"));
    assert_eq!(ok(bound.run_task(input)).code, RunTaskCode::CREATED);
}

#[test]
fn run_task_without_a_run_id_always_creates() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let input = task_input(&id, TaskRuntime::Acp);
    let a = ok(bound.run_task(input.clone())).task.unwrap();
    let b = ok(bound.run_task(input)).task.unwrap();
    assert_ne!(a.task_id, b.task_id);
}

#[test]
fn run_task_is_refused_after_cancel_request_and_on_terminal_flows() {
    let h = Harness::new();
    let bound = h.bind("s");
    let a = create(&bound, "a").flow_id;
    applied(ok(bound.request_cancel(request_cancel(&a, 0))));
    let out = ok(bound.run_task(task_input(&a, TaskRuntime::Acp)));
    assert_eq!(out.code, RunTaskCode::CANCEL_REQUESTED);
    assert_eq!(out.flow.unwrap().revision, 1);
    let b = create(&bound, "b").flow_id;
    applied(ok(bound.finish(finish(&b, 0))));
    let out = ok(bound.run_task(task_input(&b, TaskRuntime::Acp)));
    assert_eq!(out.code, RunTaskCode::TERMINAL);
    assert_eq!(out.task, ROption::RNone);
    assert_eq!(
        ok(bound.get_task_summary(RStr::from(b.as_str())))
            .unwrap()
            .total,
        0
    );
}

#[test]
fn run_task_refuses_a_flow_that_is_not_managed() {
    let mut h = Harness::new();
    let id = "22222222-2222-4222-8222-222222222222";
    with_raw_sql(&mut h, &mirrored_flow_sql(id, "s"));
    let bound = h.bind("s");
    let out = ok(bound.run_task(task_input(&s(id), TaskRuntime::Acp)));
    assert_eq!(out.code, RunTaskCode::NOT_MANAGED);
    assert_eq!(out.flow.unwrap().flow_id.as_str(), id);
}

#[test]
fn run_task_rejects_an_empty_task_text_or_a_terminal_status() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut blank = task_input(&id, TaskRuntime::Acp);
    blank.task = s("  ");
    assert_eq!(err(bound.run_task(blank)).code, ErrorCode::INVALID_INPUT);
    let mut done = task_input(&id, TaskRuntime::Acp);
    done.status = TaskStatus::Succeeded;
    assert_eq!(err(bound.run_task(done)).code, ErrorCode::INVALID_INPUT);
}

#[test]
fn the_task_summary_is_zero_filled_and_counts_by_status_and_runtime() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let rid = RStr::from(id.as_str());
    assert_eq!(
        ok(bound.get_task_summary(rid)),
        ROption::RSome(TaskSummary::default())
    );
    ok(bound.run_task(task_input(&id, TaskRuntime::Acp)));
    let mut running = task_input(&id, TaskRuntime::Subagent);
    running.status = TaskStatus::Running;
    ok(bound.run_task(running));
    let cancelled = ok(bound.cancel(rid));
    assert_eq!(cancelled.code, CancelCode::CANCELLED);
    let summary = ok(bound.get_task_summary(rid)).unwrap();
    assert_eq!(
        (
            summary.total,
            summary.active,
            summary.terminal,
            summary.failures
        ),
        (2, 0, 2, 0)
    );
    assert_eq!(summary.by_status, [0, 0, 0, 0, 0, 2, 0]);
    assert_eq!(summary.by_runtime, [1, 1, 0, 0]);
}

#[test]
fn cancel_settles_active_children_and_the_flow_in_one_write() {
    let h = Harness::new();
    let bound = h.bind("s");
    let flow = create(&bound, "g");
    let id = flow.flow_id.clone();
    let mut w = waiting(&id, 0);
    w.wait_json = ROption::RSome(s("{}"));
    applied(ok(bound.set_waiting(w)));
    let older = ok(bound.run_task(task_input(&id, TaskRuntime::Acp)))
        .task
        .unwrap();
    h.advance(5);
    let newer = ok(bound.run_task(task_input(&id, TaskRuntime::Subagent)))
        .task
        .unwrap();
    h.set_now(T0 + 1000);
    let out = ok(bound.cancel(RStr::from(id.as_str())));
    assert_eq!(out.code, CancelCode::CANCELLED);
    let f = out.flow.unwrap();
    assert_eq!((f.status, f.revision), (FlowStatus::Cancelled, 2));
    assert_eq!(f.cancel_requested_at, ROption::RSome(T0 + 1000));
    assert_eq!(
        (f.ended_at, f.updated_at),
        (ROption::RSome(T0 + 1000), T0 + 1000)
    );
    assert_eq!(f.wait_json, ROption::RSome(s("null")));
    let ids: Vec<_> = out.tasks.iter().map(|t| t.task_id.clone()).collect();
    assert_eq!(ids, vec![newer.task_id, older.task_id]);
    for t in out.tasks.iter() {
        assert_eq!(t.status, TaskStatus::Cancelled);
        assert_eq!(t.error, ROption::RSome(s("Cancelled by operator.")));
        assert_eq!(
            (t.ended_at, t.last_event_at),
            (ROption::RSome(T0 + 1000), ROption::RSome(T0 + 1000))
        );
        assert_eq!(t.cleanup_after, ROption::RSome(T0 + 1000 + 7 * DAY));
    }
    assert_eq!(ok(bound.get(RStr::from(id.as_str()))).unwrap(), f);
}

#[test]
fn cancel_keeps_an_earlier_cancel_request_time() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    applied(ok(bound.request_cancel(request_cancel(&id, 0))));
    h.advance(10);
    let f = ok(bound.cancel(RStr::from(id.as_str()))).flow.unwrap();
    assert_eq!(f.cancel_requested_at, ROption::RSome(T0));
    assert_eq!((f.revision, f.ended_at), (2, ROption::RSome(T0 + 10)));
}

#[test]
fn cancel_of_a_terminal_flow_reports_it_with_its_tasks_and_writes_nothing() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    ok(bound.run_task(task_input(&id, TaskRuntime::Acp)));
    let done = applied(ok(bound.finish(finish(&id, 0))));
    let out = ok(bound.cancel(RStr::from(id.as_str())));
    assert_eq!(out.code, CancelCode::TERMINAL);
    assert_eq!(out.flow, ROption::RSome(done.clone()));
    assert_eq!(out.tasks.len(), 1);
    assert_eq!(out.tasks[0].status, TaskStatus::Queued);
    assert_eq!(ok(bound.get(RStr::from(id.as_str()))).unwrap(), done);
}
