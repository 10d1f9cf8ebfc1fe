//! `BoundTaskFlow::submit`, the path every production write takes: the
//! write is queued, `submit` returns at once, and the completion is called
//! exactly once — on the writer thread after the commit, or at once when
//! the write never reaches the writer.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString};
use openclaw_ffi::outcome::{CancelCode, ErrorCode, MutationCode, RunTaskCode, TaskFlowError};
use openclaw_ffi::records::{FlowRecord, FlowStatus, TaskRuntime, TaskStatus};
use openclaw_ffi::runtime::{
    BoundTaskFlow, StoredReply, WriteCompletion, WriteCompletionBox, WriteCompletion_TO,
    WriteOutcome, WriteRequest,
};
use parking_lot::Mutex;

use super::support::*;
use crate::taskflow::{Bound, Store};

const WAIT: Duration = Duration::from_secs(10);

type Completed = Result<WriteOutcome, TaskFlowError>;

/// What one call of a completion saw.
#[derive(Debug)]
struct Call {
    outcome: Completed,
    thread: Option<String>,
    /// How many flows the store held when the completion ran.
    flows_visible: usize,
}

/// A completion that reports each call on a channel. The channel closes
/// when the host releases the completion.
struct Recorder {
    store: Store,
    calls: Mutex<Sender<Call>>,
}

impl WriteCompletion for Recorder {
    fn render(&self, _: &WriteOutcome) -> ROption<StoredReply> {
        ROption::RNone
    }

    fn complete(&self, outcome: RResult<WriteOutcome, TaskFlowError>) {
        let call = Call {
            outcome: outcome.into_result(),
            thread: thread::current().name().map(str::to_owned),
            flows_visible: self.store.flow_count(),
        };
        let _ = self.calls.lock().send(call);
    }
}

fn recorder(store: &Store) -> (WriteCompletionBox, Receiver<Call>) {
    let (tx, rx) = mpsc::channel();
    let recorder = Recorder {
        store: store.clone(),
        calls: Mutex::new(tx),
    };
    (WriteCompletion_TO::from_value(recorder, TD_Opaque), rx)
}

/// The one call a completion received; fails if it is called again, never
/// called, or kept by the host after it was called.
fn only_call(calls: &Receiver<Call>) -> Call {
    let call = calls
        .recv_timeout(WAIT)
        .expect("the completion was never called");
    match calls.recv_timeout(WAIT) {
        Err(RecvTimeoutError::Disconnected) => call,
        Ok(second) => panic!("the completion was called twice: {call:?} then {second:?}"),
        Err(RecvTimeoutError::Timeout) => panic!("the completion was kept after its call"),
    }
}

/// Submits a write and returns its one completion call.
fn submit(h: &Harness, bound: &Bound, request: WriteRequest) -> Call {
    let (done, calls) = recorder(&h.store);
    bound.submit(request, ROption::RNone, done);
    only_call(&calls)
}

/// The outcome of a write the writer committed.
fn committed(call: Call) -> WriteOutcome {
    assert_eq!(call.thread.as_deref(), Some("taskflow-writer"), "{call:?}");
    call.outcome.unwrap()
}

/// Submits a mutation that must apply; the flow it left.
fn mutated(h: &Harness, bound: &Bound, request: WriteRequest) -> FlowRecord {
    match committed(submit(h, bound, request)) {
        WriteOutcome::Mutation(m) => applied(m),
        other => panic!("expected a mutation, got {other:?}"),
    }
}

/// Submits a write that must be refused before `submit` returns; the error.
fn refused_at_once(h: &Harness, bound: &Bound, request: WriteRequest) -> TaskFlowError {
    let (done, calls) = recorder(&h.store);
    bound.submit(request, ROption::RNone, done);
    let call = calls.try_recv().expect("the refusal waited for the writer");
    let released = matches!(calls.try_recv(), Err(mpsc::TryRecvError::Disconnected));
    assert!(released, "the completion was called twice or kept");
    call.outcome.unwrap_err()
}

fn created_flow(h: &Harness, bound: &Bound, goal: &str) -> FlowRecord {
    match committed(submit(h, bound, WriteRequest::Create(create_input(goal)))) {
        WriteOutcome::Created(flow) => flow,
        other => panic!("expected a created flow, got {other:?}"),
    }
}

#[test]
fn every_write_kind_submitted_completes_once_with_its_outcome_after_the_commit() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    let a = created_flow(&h, &bound, "a");
    assert_eq!((a.revision, a.status), (0, FlowStatus::Queued));
    let a1 = mutated(&h, &bound, WriteRequest::SetWaiting(waiting(&a.flow_id, 0)));
    assert_eq!((a1.revision, a1.status), (1, FlowStatus::Waiting));
    let a2 = mutated(
        &h,
        &bound,
        WriteRequest::Resume(resume(&a.flow_id, 1, FlowStatus::Running)),
    );
    assert_eq!((a2.revision, a2.status), (2, FlowStatus::Running));
    let run = committed(submit(
        &h,
        &bound,
        WriteRequest::RunTask(task_input(&a.flow_id, TaskRuntime::Acp)),
    ));
    let WriteOutcome::RunTask(run) = run else {
        panic!("expected a run_task outcome, got {run:?}")
    };
    assert_eq!(run.code, RunTaskCode::CREATED);
    let task = run.task.unwrap();
    let a3 = mutated(
        &h,
        &bound,
        WriteRequest::RequestCancel(request_cancel(&a.flow_id, 2)),
    );
    assert_eq!(a3.cancel_requested_at, ROption::RSome(T0));
    let cancel = committed(submit(&h, &bound, WriteRequest::Cancel(a.flow_id.clone())));
    let WriteOutcome::Cancel(cancel) = cancel else {
        panic!("expected a cancel outcome, got {cancel:?}")
    };
    assert_eq!(cancel.code, CancelCode::CANCELLED);
    assert_eq!(cancel.tasks[0].task_id, task.task_id);
    assert_eq!(cancel.tasks[0].status, TaskStatus::Cancelled);
    let a4 = cancel.flow.unwrap();
    let b = created_flow(&h, &bound, "b");
    let b1 = mutated(&h, &bound, WriteRequest::Finish(finish(&b.flow_id, 0)));
    assert_eq!(b1.status, FlowStatus::Succeeded);
    let c = created_flow(&h, &bound, "c");
    let c1 = mutated(&h, &bound, WriteRequest::Fail(fail(&c.flow_id, 0)));
    assert_eq!(c1.status, FlowStatus::Failed);

    drop(bound);
    h.reopen();
    let bound = h.bind("s");
    for flow in [a4, b1, c1] {
        assert_eq!(
            ok(bound.get(RStr::from(flow.flow_id.as_str()))),
            ROption::RSome(flow)
        );
    }
}

#[test]
fn invalid_input_is_refused_through_the_completion_before_submit_returns() {
    let h = Harness::new();
    let bound = h.bind("s");
    let mut bad_json = create_input("g");
    bad_json.state_json = ROption::RSome(s("{"));
    let flow = create(&bound, "g");
    let mut no_text = task_input(&flow.flow_id, TaskRuntime::Acp);
    no_text.task = s("  ");
    for request in [
        WriteRequest::Create(bad_json),
        WriteRequest::RunTask(no_text),
    ] {
        let e = refused_at_once(&h, &bound, request);
        assert_eq!(e.code, ErrorCode::INVALID_INPUT);
    }
    assert_eq!(h.store.flow_count(), 1);
    assert_eq!(
        ok(bound.get_task_summary(RStr::from(flow.flow_id.as_str())))
            .unwrap()
            .total,
        0
    );
}

/// A completion that holds the writer thread until it is released, so that
/// later submits queue up behind it.
struct Gate {
    entered: Mutex<Sender<()>>,
    release: Mutex<Receiver<()>>,
}

impl WriteCompletion for Gate {
    fn render(&self, _: &WriteOutcome) -> ROption<StoredReply> {
        ROption::RNone
    }

    fn complete(&self, _: RResult<WriteOutcome, TaskFlowError>) {
        let _ = self.entered.lock().send(());
        // Also returns when the test drops the sender (on failure).
        let _ = self.release.lock().recv_timeout(WAIT);
    }
}

#[test]
fn submits_queued_behind_a_busy_writer_share_one_commit_and_one_of_a_revision_applies() {
    const CALLERS: usize = 16;
    let mut h = Harness::new();
    let bound = h.bind("s");
    let contended = create(&bound, "contended").flow_id;
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let gate = Gate {
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    };
    bound.submit(
        WriteRequest::Create(create_input("gate")),
        ROption::RNone,
        WriteCompletion_TO::from_value(gate, TD_Opaque),
    );
    entered
        .recv_timeout(WAIT)
        .expect("the gate write never completed");

    // Each caller submits a create and a mutation of the contended flow at
    // revision 0; submit returns while the writer is still held.
    let barrier = Arc::new(Barrier::new(CALLERS));
    let callers: Vec<_> = (0..CALLERS)
        .map(|i| {
            let (bound, barrier, id, store) = (
                bound.clone(),
                Arc::clone(&barrier),
                contended.clone(),
                h.store.clone(),
            );
            thread::spawn(move || {
                let (create_done, create_calls) = recorder(&store);
                let (mutate_done, mutate_calls) = recorder(&store);
                barrier.wait();
                bound.submit(
                    WriteRequest::Create(create_input(&format!("c{i}"))),
                    ROption::RNone,
                    create_done,
                );
                bound.submit(
                    WriteRequest::SetWaiting(waiting(&id, 0)),
                    ROption::RNone,
                    mutate_done,
                );
                (create_calls, mutate_calls)
            })
        })
        .collect();
    let receivers: Vec<_> = callers.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        h.store.flow_count(),
        2,
        "a write committed while the writer was held"
    );
    release.send(()).unwrap();

    let mut applied_count = 0;
    for (create_calls, mutate_calls) in &receivers {
        let created = only_call(create_calls);
        let mutated = only_call(mutate_calls);
        // One commit: every answer comes after every write of the batch.
        for call in [&created, &mutated] {
            assert_eq!(call.flows_visible, 2 + CALLERS, "{call:?}");
        }
        assert!(matches!(committed(created), WriteOutcome::Created(_)));
        let WriteOutcome::Mutation(m) = committed(mutated) else {
            panic!("expected a mutation outcome")
        };
        match m.code {
            MutationCode::APPLIED => applied_count += 1,
            code => assert_eq!(code, MutationCode::REVISION_CONFLICT),
        }
        assert_eq!(m.flow.unwrap().revision, 1);
    }
    assert_eq!(applied_count, 1);
    drop(bound);
    h.reopen();
    assert_eq!(h.store.flow_count(), 2 + CALLERS);
    let flow = ok(h.bind("s").get(RStr::from(contended.as_str()))).unwrap();
    assert_eq!(flow.revision, 1);
}

#[test]
fn a_write_beyond_the_quota_completes_with_persist_failed_and_changes_nothing() {
    let h = Harness::with(|o| o.max_store_bytes = Some(64 * 1024));
    let bound = h.bind("s");
    let flow = create(&bound, "small");
    let mut big = create_input("big");
    big.state_json = ROption::RSome(RString::from(format!("\"{}\"", "x".repeat(200 * 1024))));
    let call = submit(&h, &bound, WriteRequest::Create(big));
    assert_eq!(call.thread.as_deref(), Some("taskflow-writer"));
    let e = call.outcome.unwrap_err();
    assert_eq!(e.code, ErrorCode::PERSIST_FAILED);
    assert_eq!(e.message.as_str(), "TaskFlow persistence failed.");
    assert_eq!(h.store.flow_count(), 1);
    // The store keeps writing what fits.
    mutated(&h, &bound, WriteRequest::Finish(finish(&flow.flow_id, 0)));
}

#[test]
fn a_write_submitted_after_close_completes_with_persist_failed_before_submit_returns() {
    let h = Harness::new();
    let bound = h.bind("s");
    let flow = create(&bound, "g");
    h.store.close();
    for request in [
        WriteRequest::Create(create_input("late")),
        WriteRequest::Finish(finish(&flow.flow_id, 0)),
    ] {
        let e = refused_at_once(&h, &bound, request);
        assert_eq!(e.code, ErrorCode::PERSIST_FAILED);
    }
    assert_eq!(
        ok(bound.get(RStr::from(flow.flow_id.as_str()))).unwrap(),
        flow
    );
}
