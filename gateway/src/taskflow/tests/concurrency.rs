//! Exact compare-and-set and group commit under concurrent callers.

use std::sync::{Arc, Barrier};
use std::thread;

use abi_stable::std_types::{RResult, RStr};
use openclaw_ffi::outcome::MutationCode;
use openclaw_ffi::records::FlowStatus;
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;

#[test]
fn of_sixteen_concurrent_mutations_with_one_expected_revision_exactly_one_applies() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    for round in 0..5u64 {
        let id = create(&bound, "contended").flow_id;
        let barrier = Arc::new(Barrier::new(16));
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let bound = bound.clone();
                let barrier = Arc::clone(&barrier);
                let id = id.clone();
                thread::spawn(move || {
                    barrier.wait();
                    if i % 2 == 0 {
                        ok(bound.set_waiting(waiting(&id, 0)))
                    } else {
                        ok(bound.resume(resume(&id, 0, FlowStatus::Running)))
                    }
                })
            })
            .collect();
        let outcomes: Vec<_> = handles.into_iter().map(|t| t.join().unwrap()).collect();
        let applied_count = outcomes
            .iter()
            .filter(|o| o.code == MutationCode::APPLIED)
            .count();
        assert_eq!(applied_count, 1, "round {round}");
        for o in outcomes.iter().filter(|o| o.code != MutationCode::APPLIED) {
            assert_eq!(o.code, MutationCode::REVISION_CONFLICT);
            assert_eq!(o.flow.as_ref().unwrap().revision, 1);
        }
        assert_eq!(ok(bound.get(RStr::from(id.as_str()))).unwrap().revision, 1);
    }
    drop(bound);
    h.reopen();
    for flow in ok(h.bind("s").list()).iter() {
        assert_eq!(flow.revision, 1);
    }
}

#[test]
fn concurrent_callers_retrying_on_conflict_apply_every_mutation_once() {
    let h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "counter").flow_id;
    let threads = 8;
    let per_thread = 20;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let bound = bound.clone();
            let id = id.clone();
            thread::spawn(move || {
                let mut done = 0;
                while done < per_thread {
                    let rev = ok(bound.get(RStr::from(id.as_str()))).unwrap().revision;
                    if ok(bound.set_waiting(waiting(&id, rev))).code == MutationCode::APPLIED {
                        done += 1;
                    }
                }
            })
        })
        .collect();
    for t in handles {
        t.join().unwrap();
    }
    let flow = ok(bound.get(RStr::from(id.as_str()))).unwrap();
    assert_eq!(flow.revision, threads * per_thread);
}

#[test]
fn concurrent_creates_are_all_distinct_and_all_visible() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    let handles: Vec<_> = (0..32)
        .map(|_| {
            let bound = bound.clone();
            thread::spawn(move || {
                (0..10)
                    .map(|_| create(&bound, "g").flow_id)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<_> = handles
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 320);
    assert_eq!(ok(bound.list()).len(), 320);
    drop(bound);
    h.reopen();
    assert_eq!(h.store.flow_count(), 320);
}

#[test]
fn a_panic_inside_a_method_becomes_an_internal_error() {
    let result: RResult<u32, _> = crate::taskflow::bound::guarded(|| panic!("boom"));
    let e = err(result);
    assert_eq!(e.code, openclaw_ffi::outcome::ErrorCode::INTERNAL);
}
