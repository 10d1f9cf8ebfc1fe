//! `BoundTaskFlow::read`: a hot flow is answered on the caller's thread
//! before `read` returns; anything the cache cannot answer is read by a
//! reader thread; every kind answers as its blocking method does.

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RString};
use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::records::TaskRuntime;
use openclaw_ffi::runtime::{
    BoundTaskFlow, ReadCompletion, ReadCompletion_TO, ReadOutcome, ReadRequest,
};
use parking_lot::Mutex;

use super::support::*;
use crate::taskflow::Bound;

type Answered = (RResult<ReadOutcome, TaskFlowError>, Option<String>);

struct Recorder(Mutex<Sender<Answered>>);

impl ReadCompletion for Recorder {
    fn complete(&self, outcome: RResult<ReadOutcome, TaskFlowError>) {
        let thread = thread::current().name().map(str::to_owned);
        let _ = self.0.lock().send((outcome, thread));
    }
}

/// Submits a read; returns its answers as they come.
fn submit(bound: &Bound, request: ReadRequest) -> Receiver<Answered> {
    let (tx, rx) = mpsc::channel();
    let done = ReadCompletion_TO::from_value(Recorder(Mutex::new(tx)), TD_Opaque);
    bound.read(request, done);
    rx
}

/// The one answer of a read, and the thread that gave it.
fn answer(rx: &Receiver<Answered>) -> (ReadOutcome, Option<String>) {
    let (outcome, thread) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(rx.recv().is_err(), "answered more than once");
    (outcome.unwrap(), thread)
}

#[test]
fn a_hot_flow_is_answered_before_read_returns_on_the_callers_thread() {
    let h = Harness::with(|o| o.cache_max_flows = 10);
    let bound = h.bind("s");
    let flow = create(&bound, "hot");
    let rx = submit(&bound, ReadRequest::Get(flow.flow_id.clone()));
    let (outcome, thread) = rx.try_recv().expect("answered before read returned");
    assert_eq!(
        outcome.unwrap(),
        ReadOutcome::Flow(Some(flow.clone()).into())
    );
    assert_eq!(thread, thread::current().name().map(str::to_owned));
    // Another session's flow reads as missing, from the cache too.
    let rx = submit(&h.bind("other"), ReadRequest::Get(flow.flow_id));
    let (outcome, _) = rx.try_recv().expect("answered before read returned");
    assert_eq!(outcome.unwrap(), ReadOutcome::Flow(None.into()));
}

#[test]
fn a_cold_flow_is_read_by_a_reader_thread_with_its_committed_state() {
    let h = Harness::with(|o| o.cache_max_flows = 10);
    let bound = h.bind("s");
    let first = create(&bound, "first");
    let first = applied(ok(bound.set_waiting(waiting(&first.flow_id, 0))));
    for _ in 0..20 {
        create(&bound, "pushes the first out of the cache");
    }
    let (outcome, thread) = answer(&submit(&bound, ReadRequest::Get(first.flow_id.clone())));
    assert_eq!(outcome, ReadOutcome::Flow(Some(first).into()));
    assert!(
        thread.is_some_and(|t| t.starts_with("taskflow-reader-")),
        "answered on a reader thread"
    );
}

#[test]
fn every_kind_of_read_answers_as_its_blocking_method() {
    let h = Harness::with(|o| o.cache_max_flows = 2);
    let bound = h.bind("s");
    let older = create(&bound, "older");
    ok(bound.run_task(task_input(&older.flow_id, TaskRuntime::Acp)));
    let newer = create(&bound, "newer");
    applied(ok(bound.finish(finish(&newer.flow_id, 0))));
    let id = |f: &openclaw_ffi::records::FlowRecord| RString::from(f.flow_id.as_str());
    let cases = [
        (ReadRequest::List, ReadOutcome::Flows(ok(bound.list()))),
        (
            ReadRequest::FindLatest,
            ReadOutcome::Flow(ok(bound.find_latest())),
        ),
        (
            ReadRequest::Resolve("s".into()),
            ReadOutcome::Flow(ok(bound.resolve(RStr::from("s")))),
        ),
        (
            ReadRequest::Resolve(id(&older)),
            ReadOutcome::Flow(ok(bound.resolve(RStr::from(older.flow_id.as_str())))),
        ),
        (
            ReadRequest::TaskSummary(id(&older)),
            ReadOutcome::Summary(ok(
                bound.get_task_summary(RStr::from(older.flow_id.as_str()))
            )),
        ),
        (
            ReadRequest::Get("missing".into()),
            ReadOutcome::Flow(None.into()),
        ),
    ];
    for (request, expected) in cases {
        let (outcome, _) = answer(&submit(&bound, request.clone()));
        assert_eq!(outcome, expected, "{request:?}");
    }
    // The live flow is the older one: the newer ended.
    let (outcome, _) = answer(&submit(&bound, ReadRequest::Resolve("s".into())));
    assert_eq!(
        outcome,
        ReadOutcome::Flow(ok(bound.get(RStr::from(older.flow_id.as_str()))))
    );
}

#[test]
fn reads_submitted_after_close_are_still_answered() {
    let h = Harness::new();
    let bound = h.bind("s");
    let flow = create(&bound, "g");
    h.store.close();
    let (outcome, _) = answer(&submit(&bound, ReadRequest::List));
    assert_eq!(outcome, ReadOutcome::Flows(vec![flow].into()));
}
