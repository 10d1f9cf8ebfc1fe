//! The store many times larger than its cache: 10,000 flows behind a
//! cache of 100. Every read answers the committed state, revision checks
//! stay exact under contention, reads never go back to an older revision
//! than one acknowledged, and retention prunes flows cached or not.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use abi_stable::std_types::{ROption, RStr, RString};
use openclaw_ffi::outcome::MutationCode;
use openclaw_ffi::records::{FlowRecord, FlowStatus, NotifyPolicy, SyncMode, TaskRuntime};
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;
use crate::taskflow::cache::{FlowCache, Published};
use crate::taskflow::model::FlowEntry;
use crate::taskflow::Store;

const CACHE: usize = 100;

fn small_cache() -> Harness {
    Harness::with(|o| o.cache_max_flows = CACHE)
}

/// Creates `per_session` flows in each of `sessions` sessions (one thread
/// per session, so that their writes share commits); returns each
/// session's flows in creation order.
fn fill(h: &Harness, sessions: usize, per_session: usize) -> Vec<Vec<FlowRecord>> {
    let handles: Vec<_> = (0..sessions)
        .map(|i| {
            let bound = h.bind(&format!("agent:s{i}:main"));
            thread::spawn(move || {
                (0..per_session)
                    .map(|n| create(&bound, &format!("goal {n}")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    handles.into_iter().map(|t| t.join().unwrap()).collect()
}

fn get(bound: &impl BoundTaskFlow, id: &RString) -> Option<FlowRecord> {
    ok(bound.get(RStr::from(id.as_str()))).into_option()
}

#[test]
fn every_read_of_ten_thousand_flows_behind_a_cache_of_a_hundred_answers_the_committed_state() {
    let mut h = small_cache();
    let mut sessions = fill(&h, 20, 500);
    // Every third flow moves on a revision; the newest of each session
    // ends, so that `resolve` has to look past it.
    for (i, flows) in sessions.iter_mut().enumerate() {
        let bound = h.bind(&format!("agent:s{i}:main"));
        for flow in flows.iter_mut().step_by(3) {
            *flow = applied(ok(bound.set_waiting(waiting(&flow.flow_id, 0))));
        }
        let last = flows.last_mut().unwrap();
        *last = applied(ok(bound.finish(finish(&last.flow_id, last.revision))));
    }
    assert!(h.store.cached_flows() <= CACHE);
    assert_eq!(h.store.flow_count(), 10_000);
    for round in 0..2 {
        for (i, flows) in sessions.iter().enumerate() {
            let owner = format!("agent:s{i}:main");
            let bound = h.bind(&owner);
            for flow in flows {
                assert_eq!(
                    get(&bound, &flow.flow_id).as_ref(),
                    Some(flow),
                    "round {round}"
                );
            }
            let newest_first: Vec<FlowRecord> = flows.iter().rev().cloned().collect();
            assert_eq!(ok(bound.list()).into_vec(), newest_first);
            assert_eq!(ok(bound.find_latest()).into_option().as_ref(), flows.last());
            let live = ok(bound.resolve(RStr::from(owner.as_str()))).into_option();
            assert_eq!(live.as_ref(), flows.get(flows.len() - 2));
            // Another session's flows read as missing, cached or not.
            let other = h.bind(&format!("agent:s{}:main", (i + 1) % 20));
            assert_eq!(get(&other, &flows[0].flow_id), None);
        }
        assert!(h.store.cached_flows() <= CACHE);
        // The same after a restart, with nothing loaded at open.
        h.store.close();
        let options = options_for(&h.dir, &h.now, |o| o.cache_max_flows = CACHE);
        h.store = Store::open(options).unwrap();
        assert_eq!(h.store.cached_flows(), 0);
        assert_eq!(h.store.flow_count(), 10_000);
    }
}

#[test]
fn contended_mutations_of_cold_flows_apply_once_each_and_reads_never_go_back() {
    let h = small_cache();
    let flows: Vec<RString> = fill(&h, 4, 150)
        .into_iter()
        .flatten()
        .map(|f| f.flow_id)
        .collect();
    let acked: Arc<Vec<AtomicU64>> = Arc::new(flows.iter().map(|_| AtomicU64::new(0)).collect());
    let flows = Arc::new(flows);
    let done = Arc::new(AtomicBool::new(false));
    // Readers: every read answers at least the revision acknowledged
    // before it began.
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (flows, acked, done) = (Arc::clone(&flows), Arc::clone(&acked), Arc::clone(&done));
            let store = h.store.clone();
            thread::spawn(move || {
                let mut reads = 0u64;
                let mut i = r * 7;
                while !done.load(Ordering::SeqCst) {
                    i = (i + 13) % flows.len();
                    let owner = format!("agent:s{}:main", i / 150);
                    let before = acked[i].load(Ordering::SeqCst);
                    let flow = get(&store.bind(&owner).unwrap(), &flows[i]).unwrap();
                    assert!(
                        flow.revision >= before,
                        "read {} after {before} was acknowledged",
                        flow.revision
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    // Writers: eight per round race on every flow with the same expected
    // revision; exactly one wins each.
    for round in 0..3u64 {
        let wins: Vec<_> = (0..8)
            .map(|w| {
                let (flows, acked) = (Arc::clone(&flows), Arc::clone(&acked));
                let store = h.store.clone();
                thread::spawn(move || {
                    let mut won = vec![0u32; flows.len()];
                    for k in 0..flows.len() {
                        let i = (k * 7 + w * 61) % flows.len();
                        let bound = store.bind(&format!("agent:s{}:main", i / 150)).unwrap();
                        let outcome = if round % 2 == 0 {
                            ok(bound.set_waiting(waiting(&flows[i], round)))
                        } else {
                            ok(bound.resume(resume(&flows[i], round, FlowStatus::Running)))
                        };
                        match outcome.code {
                            MutationCode::APPLIED => {
                                acked[i].fetch_max(round + 1, Ordering::SeqCst);
                                won[i] += 1;
                            }
                            code => {
                                assert_eq!(code, MutationCode::REVISION_CONFLICT);
                                assert_eq!(outcome.flow.as_ref().unwrap().revision, round + 1);
                            }
                        }
                    }
                    won
                })
            })
            .map(|t| t.join().unwrap())
            .collect();
        for i in 0..flows.len() {
            let total: u32 = wins.iter().map(|w| w[i]).sum();
            assert_eq!(total, 1, "round {round}, flow {i}");
        }
    }
    done.store(true, Ordering::SeqCst);
    let reads: u64 = readers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(reads > 0);
    for (i, id) in flows.iter().enumerate() {
        let bound = h.bind(&format!("agent:s{}:main", i / 150));
        assert_eq!(get(&bound, id).unwrap().revision, 3);
    }
    assert!(h.store.cached_flows() <= CACHE);
}

#[test]
fn retention_prunes_flows_behind_a_small_cache_in_chunks_cached_or_not() {
    let h = small_cache();
    let flows: Vec<FlowRecord> = fill(&h, 4, 250).into_iter().flatten().collect();
    let owner_of = |i: usize| format!("agent:s{}:main", i / 250);
    // Every other flow ends; one of them keeps an active child.
    let mut ended = Vec::new();
    for (i, flow) in flows.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let bound = h.bind(&owner_of(i));
        if i == 0 {
            ok(bound.run_task(task_input(&flow.flow_id, TaskRuntime::Acp)));
        }
        applied(ok(bound.finish(finish(&flow.flow_id, 0))));
        ended.push(i);
    }
    h.advance(8 * DAY);
    // The newest ended flows are in the cache now.
    for &i in ended.iter().rev().take(50) {
        assert!(get(&h.bind(&owner_of(i)), &flows[i].flow_id).is_some());
    }
    let report = h.store.sweep_now();
    assert_eq!(report.pruned_flows, 499);
    assert_eq!(report.lost_tasks, 1);
    for &i in &ended[1..] {
        assert_eq!(
            get(&h.bind(&owner_of(i)), &flows[i].flow_id),
            None,
            "flow {i}"
        );
    }
    assert!(get(&h.bind(&owner_of(0)), &flows[0].flow_id).is_some());
    assert_eq!(h.store.flow_count(), 501);
    assert_eq!(ok(h.bind(&owner_of(0)).list()).len(), 126);
    assert_eq!(ok(h.bind(&owner_of(250)).list()).len(), 125);
    // The flow whose child was marked lost goes with the next sweep.
    let report = h.store.sweep_now();
    assert_eq!((report.pruned_flows, report.pruned_tasks), (1, 1));
    assert_eq!(h.store.flow_count(), 500);
    let by_status: HashMap<FlowStatus, usize> = h.store.flows_by_status().into_iter().collect();
    assert_eq!(by_status[&FlowStatus::Queued], 500);
    assert_eq!(by_status[&FlowStatus::Succeeded], 0);
}

fn entry(id: &str, revision: u64) -> Arc<FlowEntry> {
    let record = FlowRecord {
        flow_id: s(id),
        sync_mode: SyncMode::Managed,
        controller_id: ROption::RSome(s("webhooks/test")),
        revision,
        status: FlowStatus::Queued,
        notify_policy: NotifyPolicy::DoneOnly,
        goal: s("g"),
        current_step: ROption::RNone,
        blocked_task_id: ROption::RNone,
        blocked_summary: ROption::RNone,
        state_json: ROption::RNone,
        wait_json: ROption::RNone,
        cancel_requested_at: ROption::RNone,
        created_at: T0,
        updated_at: T0,
        ended_at: ROption::RNone,
    };
    Arc::new(FlowEntry {
        owner: Arc::from("s"),
        seq: 1,
        record,
    })
}

#[test]
fn a_load_that_raced_a_commit_never_replaces_what_the_commit_published() {
    let cache = FlowCache::new(10);
    // A reader misses, takes the generation, reads revision 1 from disk;
    // meanwhile the writer commits revision 2 and publishes it.
    let generation = cache.generation();
    cache.publish([Published::Put(&entry("a", 2))]);
    cache.offer(generation, &entry("a", 1));
    assert_eq!(cache.get("a").unwrap().record.revision, 2);
    // A load that raced a delete does not bring the flow back.
    let generation = cache.generation();
    cache.publish([Published::Deleted("a")]);
    cache.offer(generation, &entry("a", 2));
    assert!(cache.get("a").is_none());
    // With no commit in between, the load is kept.
    let generation = cache.generation();
    cache.offer(generation, &entry("b", 4));
    assert_eq!(cache.get("b").unwrap().record.revision, 4);
    // Commits of other flows do not keep a load out.
    let generation = cache.generation();
    cache.publish([Published::Put(&entry("c", 0))]);
    cache.offer(generation, &entry("d", 7));
    assert_eq!(cache.get("d").unwrap().record.revision, 7);
    // A commit of the flow that was then evicted still keeps the older
    // load out.
    let small = FlowCache::new(1);
    let generation = small.generation();
    small.publish([Published::Put(&entry("e", 3))]);
    small.publish([Published::Put(&entry("f", 0))]);
    assert!(small.get("e").is_none(), "evicted");
    small.offer(generation, &entry("e", 2));
    assert!(small.get("e").is_none());
}

#[test]
fn a_load_older_than_the_changes_the_cache_remembers_is_not_kept() {
    let cache = FlowCache::new(10);
    let generation = cache.generation();
    // More published changes than the cache remembers, none of "a".
    for i in 0..5000 {
        cache.publish([Published::Put(&entry(&format!("other-{i}"), 0))]);
    }
    cache.offer(generation, &entry("a", 1));
    assert!(cache.get("a").is_none());
    let generation = cache.generation();
    cache.offer(generation, &entry("a", 1));
    assert!(cache.get("a").is_some());
}

#[test]
fn the_cache_keeps_at_most_its_capacity_and_spares_what_was_read() {
    let cache = FlowCache::new(3);
    for id in ["a", "b", "c"] {
        cache.publish([Published::Put(&entry(id, 0))]);
    }
    assert!(cache.get("a").is_some());
    cache.publish([Published::Put(&entry("d", 0))]);
    assert_eq!(cache.len(), 3);
    // "a" was read since it went in; one of the others made room.
    assert!(cache.get("a").is_some());
    assert!(cache.get("d").is_some());
    assert_eq!(
        ["b", "c"]
            .iter()
            .filter(|id| cache.get(id).is_some())
            .count(),
        1
    );
}
