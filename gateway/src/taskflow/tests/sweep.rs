//! Maintenance: cancel finalisation and retention pruning with a fake clock.

use std::time::{Duration, Instant};

use abi_stable::std_types::{ROption, RStr};
use openclaw_ffi::records::{FlowStatus, TaskRuntime, TaskStatus, TextPatch};
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;
use crate::taskflow::SweepReport;

#[test]
fn a_cancel_requested_flow_without_active_children_is_finalised_cancelled() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let mut w = waiting(&id, 0);
    w.blocked_summary = TextPatch::Set(s("b"));
    w.wait_json = ROption::RSome(s("{}"));
    applied(ok(bound.set_waiting(w)));
    applied(ok(bound.request_cancel(request_cancel(&id, 1))));
    h.set_now(T0 + 60_000);
    let report = h.store.sweep_now();
    assert_eq!(
        report,
        SweepReport {
            finalized: 1,
            ..SweepReport::default()
        }
    );
    let f = ok(bound.get(RStr::from(id.as_str()))).unwrap();
    assert_eq!((f.status, f.revision), (FlowStatus::Cancelled, 3));
    assert_eq!(f.cancel_requested_at, ROption::RSome(T0));
    assert_eq!(
        (f.ended_at, f.updated_at),
        (ROption::RSome(T0 + 60_000), T0 + 60_000)
    );
    assert_eq!(
        (f.blocked_summary, f.wait_json),
        (ROption::RNone, ROption::RSome(s("null")))
    );
    assert_eq!(h.store.sweep_now(), SweepReport::default());
}

#[test]
fn a_cancel_requested_flow_with_an_active_child_is_left_alone() {
    let mut h = Harness::new();
    let id = "33333333-3333-4333-8333-333333333333";
    let bound = h.bind("s");
    let flow = create(&bound, "g");
    ok(bound.run_task(task_input(&flow.flow_id, TaskRuntime::Acp)));
    applied(ok(bound.request_cancel(request_cancel(&flow.flow_id, 0))));
    drop(bound);
    // A managed flow that is cancel-requested but has no child, via SQL.
    with_raw_sql(
        &mut h,
        &format!(
            "INSERT INTO flows (flow_id, seq, owner_key, sync_mode, controller_id, revision, \
             status, notify_policy, goal, cancel_requested_at, created_at, updated_at) VALUES \
             ('{id}', 99, 's', 'managed', 'c', 0, 'blocked', 'done_only', 'g', {T0}, {T0}, {T0})"
        ),
    );
    assert_eq!(h.store.sweep_now().finalized, 1);
    let bound = h.bind("s");
    let kept = ok(bound.get(RStr::from(flow.flow_id.as_str()))).unwrap();
    assert_eq!((kept.status, kept.revision), (FlowStatus::Queued, 1));
    assert_eq!(
        ok(bound.get(RStr::from(id))).unwrap().status,
        FlowStatus::Cancelled
    );
}

#[test]
fn old_terminal_flows_are_pruned_with_their_tasks_and_others_are_kept() {
    let h = Harness::new();
    let bound = h.bind("s");
    let old_done = create(&bound, "old").flow_id;
    ok(bound.run_task(task_input(&old_done, TaskRuntime::Acp)));
    ok(bound.cancel(RStr::from(old_done.as_str())));
    let old_running = create(&bound, "running").flow_id;
    let old_blocked = create(&bound, "blocked").flow_id;
    let mut w = waiting(&old_blocked, 0);
    w.blocked_summary = TextPatch::Set(s("needs a human"));
    applied(ok(bound.set_waiting(w)));
    h.set_now(T0 + 6 * DAY);
    let fresh_done = create(&bound, "fresh").flow_id;
    applied(ok(bound.finish(finish(&fresh_done, 0))));

    h.set_now(T0 + 7 * DAY - 1);
    assert_eq!(h.store.sweep_now(), SweepReport::default());
    h.set_now(T0 + 8 * DAY);
    let report = h.store.sweep_now();
    assert_eq!(
        report,
        SweepReport {
            pruned_flows: 1,
            pruned_tasks: 1,
            ..SweepReport::default()
        }
    );
    assert_eq!(ok(bound.get(RStr::from(old_done.as_str()))), ROption::RNone);
    assert_eq!(
        ok(bound.get_task_summary(RStr::from(old_done.as_str()))),
        ROption::RNone
    );
    for kept in [&old_running, &old_blocked, &fresh_done] {
        assert!(ok(bound.get(RStr::from(kept.as_str()))).is_some());
    }
    h.set_now(T0 + 14 * DAY);
    assert_eq!(h.store.sweep_now().pruned_flows, 1);
    assert_eq!(h.store.flow_count(), 2);
}

#[test]
fn a_terminal_flow_with_an_active_child_is_never_deleted_before_its_child_settles() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    ok(bound.run_task(task_input(&id, TaskRuntime::Acp)));
    applied(ok(bound.finish(finish(&id, 0))));
    drop(bound);
    h.set_now(T0 + 6 * DAY);
    assert_eq!(h.store.sweep_now(), SweepReport::default());
    let summary = |h: &Harness| ok(h.bind("s").get_task_summary(RStr::from(id.as_str())));
    assert_eq!(summary(&h).unwrap().active, 1);

    // Past retention, the never-settled child is marked lost; the flow stays.
    h.set_now(T0 + 30 * DAY);
    let report = h.store.sweep_now();
    assert_eq!(
        report,
        SweepReport {
            lost_tasks: 1,
            ..SweepReport::default()
        }
    );
    h.reopen();
    let after = summary(&h).unwrap();
    assert_eq!((after.active, after.total, after.failures), (0, 1, 1));
    let cancel = ok(h.bind("s").cancel(RStr::from(id.as_str())));
    let task = &cancel.tasks[0];
    assert_eq!(task.status, TaskStatus::Lost);
    assert_eq!(
        task.error.as_ref().map(|e| e.as_str()),
        ROption::RSome(super::super::sweep::NEVER_SETTLED)
    );

    // With no active child left, the next sweep prunes flow and task.
    let report = h.store.sweep_now();
    assert_eq!(
        report,
        SweepReport {
            pruned_flows: 1,
            pruned_tasks: 1,
            ..SweepReport::default()
        }
    );
    assert!(summary(&h).is_none());
}

#[test]
fn pruning_is_durable_and_measured_from_updated_at_without_an_end() {
    let mut h = Harness::new();
    let ids: Vec<_> = (0..30).map(|_| create(&h.bind("s"), "g").flow_id).collect();
    let mut sql = String::new();
    for id in &ids {
        sql.push_str(&format!(
            "UPDATE flows SET status = 'lost' WHERE flow_id = '{id}';"
        ));
    }
    with_raw_sql(&mut h, &sql);
    h.set_now(T0 + 7 * DAY);
    assert_eq!(h.store.sweep_now().pruned_flows, 30);
    h.reopen();
    assert_eq!(h.store.flow_count(), 0);
}

#[test]
fn the_background_sweeper_runs_on_its_interval_and_stops_on_close() {
    let h = Harness::with(|o| o.sweep_interval = Duration::from_millis(20));
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    applied(ok(bound.request_cancel(request_cancel(&id, 0))));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ok(bound.get(RStr::from(id.as_str()))).unwrap().status;
        if status == FlowStatus::Cancelled {
            break;
        }
        assert!(Instant::now() < deadline, "the sweeper never ran");
        // The sweeper thread signals nothing a test can wait on; its effect
        // is what this bounded poll watches for.
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    h.store.close();
    assert!(started.elapsed() < Duration::from_secs(2));
}
