//! Outbox events: staged in the same commit as the change that emits them
//! (and never without it), filtered by the flow's notify policy, due one at
//! a time per flow in revision order, leased while being delivered,
//! recovered after a reopen, and pruned after retention.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RVec};
use openclaw_ffi::outcome::ErrorCode;
use openclaw_ffi::records::{CreateFlow, FlowStatus, NotifyPolicy};
use openclaw_ffi::runtime::{
    BoundTaskFlow, DueEvents, EventOutcome, EventWaker, EventWaker_TO, OutboxEvent, Settlement,
};

use super::support::*;
use crate::taskflow::Bound;

const SCOPE: &str = "route-a";
const LEASE: u64 = 60_000;

#[derive(Clone, Default)]
struct Wakes(Arc<AtomicUsize>);

impl EventWaker for Wakes {
    fn wake(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Wakes {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn subscribe(bound: &Bound, scope: &str) -> Wakes {
    let wakes = Wakes::default();
    ok(bound.subscribe_events(
        scope.into(),
        EventWaker_TO::from_value(wakes.clone(), TD_Opaque),
    ));
    wakes
}

fn with_policy(goal: &str, policy: NotifyPolicy) -> CreateFlow {
    let mut input = create_input(goal);
    input.notify_policy = policy;
    input
}

fn claim(h: &Harness, bound: &Bound) -> DueEvents {
    let now = h.now.load(Ordering::SeqCst);
    ok(bound.due_events(SCOPE.into(), now, 100, now + LEASE))
}

/// (revision, created, status) of each claimed event.
fn summary(events: &[OutboxEvent]) -> Vec<(u64, bool, FlowStatus)> {
    events
        .iter()
        .map(|e| (e.flow.revision, e.created, e.flow.status))
        .collect()
}

fn settle(bound: &Bound, id: u64, outcome: EventOutcome) {
    ok(bound.settle_events(
        SCOPE.into(),
        RVec::from(vec![Settlement {
            id,
            outcome,
            error: ROption::RNone,
        }]),
    ));
}

/// Claims and delivers everything due, one round at a time, and returns
/// what was delivered in order.
fn drain(h: &Harness, bound: &Bound) -> Vec<(u64, bool, FlowStatus)> {
    let mut all = Vec::new();
    loop {
        let due = claim(h, bound);
        if due.events.is_empty() {
            return all;
        }
        all.extend(summary(&due.events));
        for e in due.events.iter() {
            settle(bound, e.id, EventOutcome::Delivered);
        }
    }
}

/// Drives a flow through waiting, running and succeeded.
fn lifecycle(bound: &Bound, policy: NotifyPolicy) -> abi_stable::std_types::RString {
    let id = ok(bound.create_managed(with_policy("g", policy))).flow_id;
    applied(ok(bound.set_waiting(waiting(&id, 0))));
    // Same status again: no status change.
    applied(ok(bound.set_waiting(waiting(&id, 1))));
    applied(ok(bound.resume(resume(&id, 2, FlowStatus::Running))));
    applied(ok(bound.request_cancel(request_cancel(&id, 3))));
    applied(ok(bound.finish(finish(&id, 4))));
    id
}

#[test]
fn state_changes_emits_the_creation_and_every_status_change_in_revision_order() {
    let h = Harness::new();
    let bound = h.bind("s");
    let wakes = subscribe(&bound, SCOPE);
    lifecycle(&bound, NotifyPolicy::StateChanges);
    assert!(wakes.count() >= 1, "the subscriber was woken");
    assert_eq!(
        drain(&h, &bound),
        [
            (0, true, FlowStatus::Queued),
            (1, false, FlowStatus::Waiting),
            (3, false, FlowStatus::Running),
            (5, false, FlowStatus::Succeeded),
        ]
    );
}

#[test]
fn done_only_emits_only_the_terminal_transition_and_silent_nothing() {
    let h = Harness::new();
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    lifecycle(&bound, NotifyPolicy::DoneOnly);
    assert_eq!(drain(&h, &bound), [(5, false, FlowStatus::Succeeded)]);
    lifecycle(&bound, NotifyPolicy::Silent);
    let id = ok(bound.create_managed(with_policy("c", NotifyPolicy::DoneOnly))).flow_id;
    ok(bound.cancel(id.as_rstr()));
    assert_eq!(drain(&h, &bound), [(1, false, FlowStatus::Cancelled)]);
}

#[test]
fn the_event_commits_with_its_change_and_a_change_that_fails_stages_none() {
    let mut h = Harness::with(|o| o.max_store_bytes = Some(256 * 1024));
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    // Refused writes change nothing and emit nothing.
    let id = ok(bound.create_managed(with_policy("g", NotifyPolicy::StateChanges))).flow_id;
    let conflict = ok(bound.set_waiting(waiting(&id, 7)));
    assert!(
        conflict.flow.is_some() && conflict.code != openclaw_ffi::outcome::MutationCode::APPLIED
    );
    // A write that cannot be made durable leaves neither its flow nor its
    // event behind.
    let mut big = with_policy("too big", NotifyPolicy::StateChanges);
    big.state_json = ROption::RSome(format!("\"{}\"", "x".repeat(512 * 1024)).into());
    assert_eq!(
        err(bound.create_managed(big)).code,
        ErrorCode::PERSIST_FAILED
    );
    assert_eq!(h.store.flow_count(), 1);
    // The acknowledged write's event is durable: it is there after a reopen.
    h.reopen();
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    assert_eq!(drain(&h, &bound), [(0, true, FlowStatus::Queued)]);
}

#[test]
fn only_subscribed_scopes_of_the_owning_session_get_events() {
    let h = Harness::new();
    let mine = h.bind("s");
    let theirs = h.bind("other");
    subscribe(&mine, SCOPE);
    subscribe(&mine, "route-b");
    ok(theirs.create_managed(with_policy("theirs", NotifyPolicy::StateChanges)));
    ok(mine.create_managed(with_policy("mine", NotifyPolicy::StateChanges)));
    assert_eq!(drain(&h, &mine).len(), 1);
    let b = ok(mine.due_events("route-b".into(), T0, 10, T0 + LEASE));
    assert_eq!(b.events.len(), 1, "each scope gets its own event");
    // Another session can neither take over nor read the scope.
    let refused = theirs.subscribe_events(
        SCOPE.into(),
        EventWaker_TO::from_value(Wakes::default(), TD_Opaque),
    );
    assert_eq!(err(refused).code, ErrorCode::INVALID_INPUT);
    assert_eq!(
        err(theirs.due_events(SCOPE.into(), T0, 10, T0)).code,
        ErrorCode::INVALID_INPUT
    );
    assert_eq!(
        err(mine.due_events("".into(), T0, 10, T0)).code,
        ErrorCode::INVALID_INPUT
    );
}

#[test]
fn a_flow_s_later_events_wait_until_the_earlier_one_is_settled_for_good() {
    let h = Harness::new();
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    let id = ok(bound.create_managed(with_policy("g", NotifyPolicy::StateChanges))).flow_id;
    applied(ok(bound.resume(resume(&id, 0, FlowStatus::Running))));
    let other = ok(bound.create_managed(with_policy("o", NotifyPolicy::StateChanges))).flow_id;
    let due = claim(&h, &bound);
    // The head of each flow only.
    assert_eq!(due.events.len(), 2);
    assert!(due.events.iter().all(|e| e.created));
    assert_eq!(due.next_due_at, ROption::RSome(T0 + LEASE), "leased");
    assert!(
        claim(&h, &bound).events.is_empty(),
        "leased events are not due"
    );
    let head = due.events.iter().find(|e| e.flow.flow_id == id).unwrap();
    // A retry keeps the flow's later event waiting.
    settle(&bound, head.id, EventOutcome::Retry { at: T0 + 5_000 });
    let other_head = due.events.iter().find(|e| e.flow.flow_id == other).unwrap();
    settle(&bound, other_head.id, EventOutcome::Delivered);
    let due = claim(&h, &bound);
    assert!(due.events.is_empty());
    assert_eq!(due.next_due_at, ROption::RSome(T0 + 5_000));
    h.advance(5_000);
    let due = claim(&h, &bound);
    assert_eq!(summary(&due.events), [(0, true, FlowStatus::Queued)]);
    assert_eq!(due.events[0].attempts, 1);
    assert_eq!(due.events[0].id, head.id, "the same event, retried");
    // Dead counts as settled for good: the next revision is due.
    settle(&bound, head.id, EventOutcome::Dead);
    assert_eq!(drain(&h, &bound), [(1, false, FlowStatus::Running)]);
}

#[test]
fn an_event_cut_off_mid_delivery_is_due_again_at_once_after_a_reopen() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    ok(bound.create_managed(with_policy("g", NotifyPolicy::StateChanges)));
    assert_eq!(claim(&h, &bound).events.len(), 1);
    h.reopen();
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    let due = claim(&h, &bound);
    assert_eq!(
        due.events.len(),
        1,
        "redelivered without waiting for the lease"
    );
    // A settlement for an event already settled for good changes nothing.
    let id = due.events[0].id;
    settle(&bound, id, EventOutcome::Gone);
    settle(&bound, id, EventOutcome::Retry { at: T0 });
    assert!(claim(&h, &bound).events.is_empty());
}

#[test]
fn settled_events_are_pruned_after_retention_in_chunks_and_open_ones_are_kept() {
    let h = Harness::new();
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    let n = crate::taskflow::sweep::SWEEP_CHUNK + 5;
    for i in 0..n {
        ok(bound.create_managed(with_policy(&format!("g{i}"), NotifyPolicy::StateChanges)));
    }
    let open = ok(bound.create_managed(with_policy("open", NotifyPolicy::StateChanges)));
    let mut delivered = 0;
    loop {
        let due = claim(&h, &bound);
        let mut progressed = false;
        for e in due.events.iter().filter(|e| e.flow.flow_id != open.flow_id) {
            settle(&bound, e.id, EventOutcome::Delivered);
            delivered += 1;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    assert_eq!(delivered, n);
    assert_eq!(h.store.sweep_now().pruned_events, 0, "not old enough yet");
    h.advance(8 * DAY);
    assert_eq!(h.store.sweep_now().pruned_events, n);
    // The open event survives (its lease has long run out).
    let due = claim(&h, &bound);
    assert_eq!(due.events.len(), 1);
    assert_eq!(due.events[0].flow.flow_id, open.flow_id);
}

#[test]
fn no_subscription_no_events() {
    let h = Harness::new();
    let bound = h.bind("s");
    ok(bound.create_managed(with_policy("before", NotifyPolicy::StateChanges)));
    subscribe(&bound, SCOPE);
    ok(bound.create_managed(with_policy("after", NotifyPolicy::StateChanges)));
    let due = claim(&h, &bound);
    assert_eq!(due.events.len(), 1);
    assert_eq!(due.events[0].flow.goal.as_str(), "after");
}

#[test]
fn the_stored_flow_reads_back_exactly() {
    use crate::taskflow::outbox::{flow_from_json, flow_json};
    let h = Harness::new();
    let bound = h.bind("s");
    let mut input = with_policy("g", NotifyPolicy::StateChanges);
    input.state_json = ROption::RSome("{\"a\":[1,2.5,null]}".into());
    input.current_step = ROption::RSome("step".into());
    let id = ok(bound.create_managed(input)).flow_id;
    let flow = applied(ok(bound.request_cancel(request_cancel(&id, 0))));
    assert_eq!(flow_from_json(&flow_json(&flow)), Some(flow));
    assert_eq!(flow_from_json("{}"), None);
    assert_eq!(flow_from_json("not json"), None);
}

#[test]
fn open_events_of_a_store_from_before_schema_5_keep_their_flows_order() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    let id = ok(bound.create_managed(with_policy("g", NotifyPolicy::StateChanges))).flow_id;
    applied(ok(bound.resume(resume(&id, 0, FlowStatus::Running))));
    ok(bound.create_managed(with_policy("o", NotifyPolicy::StateChanges)));
    drop(bound);
    // As a store of schema 4 had it: open events found by flow id.
    with_raw_sql(
        &mut h,
        "DROP INDEX outbox_open; ALTER TABLE outbox DROP COLUMN flow_seq; \
         CREATE INDEX outbox_open ON outbox(scope, flow_id, revision) WHERE settled_at IS NULL; \
         PRAGMA user_version = 4",
    );
    let bound = h.bind("s");
    subscribe(&bound, SCOPE);
    // Migrated at open: the first flow's second event still waits for its
    // first, and is due once that one is settled.
    assert_eq!(
        drain(&h, &bound),
        [
            (0, true, FlowStatus::Queued),
            (0, true, FlowStatus::Queued),
            (1, false, FlowStatus::Running),
        ]
    );
    let conn = rusqlite::Connection::open(h.path()).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::taskflow::schema::SCHEMA_VERSION);
}
