//! `BoundTaskFlow::watch` / `unwatch` and the watch registry: a waker is
//! woken exactly once, at once when its wait is already settled, otherwise
//! by the commit of the write that settles it, and never after `unwatch`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RStr;
use openclaw_ffi::records::{FlowRecord, FlowStatus};
use openclaw_ffi::runtime::{BoundTaskFlow, FlowWaker, FlowWakerBox, FlowWaker_TO, WatchTicket};
use parking_lot::Mutex;

use super::support::*;
use crate::taskflow::Bound;

const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits to conclude that nothing is coming. Only used to
/// assert absence; never to order events.
const QUIET: Duration = Duration::from_millis(100);

/// A waker that reports the name of the thread each call ran on, and
/// whether the host has dropped it.
struct Probe {
    calls: Mutex<Sender<Option<String>>>,
    dropped: Arc<AtomicBool>,
}

impl FlowWaker for Probe {
    fn wake(&self) {
        let name = thread::current().name().map(str::to_owned);
        let _ = self.calls.lock().send(name);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

struct Watched {
    ticket: WatchTicket,
    calls: Receiver<Option<String>>,
    dropped: Arc<AtomicBool>,
}

impl Watched {
    /// The thread of the one call, waiting for it.
    fn woken(&self) -> Option<String> {
        self.calls
            .recv_timeout(WAIT)
            .expect("the waker was not woken")
    }

    fn assert_not_woken(&self) {
        assert_eq!(
            self.calls.recv_timeout(QUIET),
            Err(RecvTimeoutError::Timeout)
        );
    }

    fn assert_woken_once(&self) {
        self.woken();
        self.assert_released();
    }

    /// No further call: the host released the waker.
    fn assert_released(&self) {
        assert_eq!(
            self.calls.recv_timeout(WAIT),
            Err(RecvTimeoutError::Disconnected)
        );
        assert!(self.dropped.load(Ordering::SeqCst));
    }
}

fn probe() -> (FlowWakerBox, Receiver<Option<String>>, Arc<AtomicBool>) {
    let (tx, rx) = mpsc::channel();
    let dropped = Arc::new(AtomicBool::new(false));
    let waker = FlowWaker_TO::from_value(
        Probe {
            calls: Mutex::new(tx),
            dropped: Arc::clone(&dropped),
        },
        TD_Opaque,
    );
    (waker, rx, dropped)
}

fn watch(bound: &Bound, flow_id: &str, above: u64) -> Watched {
    let (waker, calls, dropped) = probe();
    let ticket = ok(bound.watch(RStr::from_str(flow_id), above, waker));
    Watched {
        ticket,
        calls,
        dropped,
    }
}

fn resume_to_running(bound: &Bound, flow: &FlowRecord) -> FlowRecord {
    applied(ok(bound.resume(resume(
        &flow.flow_id,
        flow.revision,
        FlowStatus::Running,
    ))))
}

#[test]
fn a_wait_already_settled_is_woken_before_watch_returns() {
    let h = Harness::new();
    let bound = h.bind("agent:main:main");
    let flow = create(&bound, "watched");
    let moved = resume_to_running(&bound, &flow);
    // The flow moved past the revision the reader saw before it watched.
    let behind = watch(&bound, moved.flow_id.as_str(), flow.revision);
    assert_eq!(
        behind.calls.try_recv().ok(),
        Some(thread::current().name().map(str::to_owned)),
        "woken inside watch, on the caller's thread"
    );
    behind.assert_released();
    // Missing, another session's, and terminal flows never change for
    // this reader again.
    watch(&bound, "no-such-flow", 0).assert_woken_once();
    let other = h.bind("agent:other:main");
    watch(&other, moved.flow_id.as_str(), moved.revision).assert_woken_once();
    let done = applied(ok(bound.finish(finish(&moved.flow_id, moved.revision))));
    watch(&bound, done.flow_id.as_str(), done.revision).assert_woken_once();
    assert_eq!(h.store.waiting(), 0);
}

#[test]
fn a_commit_wakes_exactly_the_watchers_of_the_flows_it_settles_on_the_writer_thread() {
    let h = Harness::new();
    let bound = h.bind("agent:main:main");
    let a = create(&bound, "a");
    let b = create(&bound, "b");
    let on_a = [
        watch(&bound, a.flow_id.as_str(), a.revision),
        watch(&bound, a.flow_id.as_str(), a.revision),
    ];
    let on_a_later = watch(&bound, a.flow_id.as_str(), a.revision + 1);
    let on_b = watch(&bound, b.flow_id.as_str(), b.revision);
    assert_eq!(h.store.waiting(), 4);
    on_a[0].assert_not_woken();

    let a1 = resume_to_running(&bound, &a);
    for w in &on_a {
        assert_eq!(w.woken().as_deref(), Some("taskflow-writer"));
        w.assert_released();
    }
    on_a_later.assert_not_woken();
    on_b.assert_not_woken();
    assert_eq!(h.store.waiting(), 2);

    // A rejected write commits nothing and wakes nobody.
    let stale = ok(bound.resume(resume(&a.flow_id, a.revision, FlowStatus::Running)));
    assert_ne!(stale.code, openclaw_ffi::outcome::MutationCode::APPLIED);
    on_a_later.assert_not_woken();

    resume_to_running(&bound, &a1);
    on_a_later.assert_woken_once();
    on_b.assert_not_woken();
    assert_eq!(h.store.waiting(), 1);
}

#[test]
fn unwatch_releases_the_waker_and_a_later_commit_does_not_call_it() {
    let h = Harness::new();
    let bound = h.bind("agent:main:main");
    let flow = create(&bound, "abandoned");
    let gone = watch(&bound, flow.flow_id.as_str(), flow.revision);
    let kept = watch(&bound, flow.flow_id.as_str(), flow.revision);
    assert_eq!(h.store.waiting(), 2);
    bound.unwatch(gone.ticket);
    assert!(gone.dropped.load(Ordering::SeqCst), "the host released it");
    assert_eq!(h.store.waiting(), 1);
    // Unknown and already-released tickets are ignored.
    bound.unwatch(gone.ticket);
    bound.unwatch(WatchTicket { id: u64::MAX });
    assert_eq!(h.store.waiting(), 1);

    resume_to_running(&bound, &flow);
    kept.assert_woken_once();
    assert_eq!(
        gone.calls.recv_timeout(WAIT),
        Err(RecvTimeoutError::Disconnected),
        "never called"
    );
    // Unwatching a woken ticket is harmless.
    bound.unwatch(kept.ticket);
    assert_eq!(h.store.waiting(), 0);
}

#[test]
fn a_watch_racing_the_commit_it_waits_for_is_never_missed() {
    let h = Harness::new();
    let bound = h.bind("agent:main:main");
    let mut flow = create(&bound, "raced");
    for _ in 0..300 {
        let seen = flow.revision;
        let start = Arc::new(Barrier::new(2));
        let writer = {
            let (bound, start, flow) = (bound.clone(), Arc::clone(&start), flow.clone());
            thread::spawn(move || {
                start.wait();
                let status = if flow.status == FlowStatus::Running {
                    FlowStatus::Queued
                } else {
                    FlowStatus::Running
                };
                applied(ok(bound.resume(resume(
                    &flow.flow_id,
                    flow.revision,
                    status,
                ))))
            })
        };
        start.wait();
        let watched = watch(&bound, flow.flow_id.as_str(), seen);
        flow = writer.join().unwrap();
        assert!(flow.revision > seen);
        watched.assert_woken_once();
        bound.unwatch(watched.ticket);
    }
    assert_eq!(h.store.waiting(), 0);
}

#[test]
fn closing_the_store_wakes_every_watcher() {
    let h = Harness::new();
    let bound = h.bind("agent:main:main");
    let flow = create(&bound, "open at close");
    let watched = watch(&bound, flow.flow_id.as_str(), flow.revision);
    watched.assert_not_woken();
    h.store.close();
    watched.assert_woken_once();
    assert_eq!(h.store.waiting(), 0);
}
