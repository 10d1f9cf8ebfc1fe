//! Throughput of the TaskFlow store: create, get, list of 1,000 flows and a
//! revision-checked mutation, at 1, 8 and 64 concurrent caller threads.
//!
//! `cargo bench --bench store` (release). Each cell runs for a bounded time
//! (`STORE_BENCH_SECS`, default 1.5) on a store in a temporary directory;
//! `STORE_BENCH_OPS=create,mutation` picks and orders the operations.

// A benchmark aborts on any failure; that is its error handling.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use abi_stable::std_types::{RResult, RStr, RString};
use openclaw_ffi::records::{CreateFlow, FlowStatus, NotifyPolicy, SetWaiting, TextPatch};
use openclaw_ffi::runtime::BoundTaskFlow;
use openclaw_gateway::taskflow::{Bound, Store, StoreOptions};

const THREADS: [usize; 3] = [1, 8, 64];

fn input(goal: &str) -> CreateFlow {
    CreateFlow {
        controller_id: RString::from("bench/controller"),
        goal: RString::from(goal),
        status: FlowStatus::Queued,
        notify_policy: NotifyPolicy::DoneOnly,
        current_step: None.into(),
        state_json: Some(RString::from(r#"{"source":"bench","n":1}"#)).into(),
        wait_json: None.into(),
    }
}

fn create(bound: &Bound) -> RString {
    match bound.create_managed(input("bench")) {
        RResult::ROk(flow) => flow.flow_id,
        RResult::RErr(e) => panic!("create failed: {}", e.message),
    }
}

fn set_waiting(bound: &Bound, id: &RString, rev: u64) {
    let outcome = bound.set_waiting(SetWaiting {
        flow_id: id.clone(),
        expected_revision: rev,
        current_step: TextPatch::Set(RString::from("step")),
        blocked_task_id: TextPatch::Keep,
        blocked_summary: TextPatch::Keep,
        state_json: None.into(),
        wait_json: None.into(),
    });
    match outcome {
        RResult::ROk(o) if o.code.0 == 0 => {}
        other => panic!("mutation failed: {other:?}"),
    }
}

struct Cell {
    ops: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

/// Runs `op(thread_index, iteration)` on `threads` threads for `secs`.
fn run_cell<F>(threads: usize, secs: f64, op: F) -> Cell
where
    F: Fn(usize, u64) + Send + Sync + 'static,
{
    let op = Arc::new(op);
    let barrier = Arc::new(Barrier::new(threads + 1));
    let budget = Duration::from_secs_f64(secs);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let op = Arc::clone(&op);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let start = Instant::now();
                let mut lat = Vec::new();
                let mut i = 0u64;
                while start.elapsed() < budget {
                    let t0 = Instant::now();
                    op(t, i);
                    lat.push(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
                    i += 1;
                }
                lat
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut latencies_ns = Vec::new();
    for h in handles {
        latencies_ns.extend(h.join().expect("bench thread panicked"));
    }
    let elapsed = start.elapsed();
    latencies_ns.sort_unstable();
    Cell {
        ops: latencies_ns.len() as u64,
        elapsed,
        latencies_ns,
    }
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let secs: f64 = std::env::var("STORE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.5);
    let dir: PathBuf = std::env::temp_dir().join(format!("taskflow-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open(StoreOptions::new(dir.join("store.sqlite"))).expect("open store");

    let reader = store.bind("bench:get").expect("bind");
    let get_id = create(&reader);
    let lister = store.bind("bench:list").expect("bind");
    let fill: Vec<_> = (0..16)
        .map(|_| {
            let b = lister.clone();
            thread::spawn(move || (0..1000 / 16 + 1).for_each(|_| drop(create(&b))))
        })
        .collect();
    fill.into_iter().for_each(|h| h.join().expect("fill"));
    let listed = match lister.list() {
        RResult::ROk(v) => v.len(),
        RResult::RErr(e) => panic!("{}", e.message),
    };

    println!("TaskFlow store benchmark ({secs} s per cell, list over {listed} flows)");
    println!(
        "{:<10} {:>7} {:>12} {:>10} {:>10} {:>10}",
        "operation", "threads", "ops/s", "p50 us", "p99 us", "ops"
    );
    let ops: Vec<String> = std::env::var("STORE_BENCH_OPS")
        .unwrap_or_else(|_| "create,get,list,mutation".into())
        .split(',')
        .map(|s| s.trim().to_owned())
        .collect();
    for op in ops.iter().map(String::as_str) {
        for &threads in &THREADS {
            let cell = match op {
                "create" => {
                    let b = store.bind("bench:create").expect("bind");
                    run_cell(threads, secs, move |_, _| drop(create(&b)))
                }
                "get" => {
                    let b = reader.clone();
                    let id = get_id.clone();
                    run_cell(threads, secs, move |_, _| {
                        let found = b.get(RStr::from(id.as_str()));
                        assert!(matches!(found, RResult::ROk(ref f) if f.is_some()));
                    })
                }
                "list" => {
                    let b = lister.clone();
                    run_cell(threads, secs, move |_, _| {
                        let all = b.list();
                        assert!(matches!(all, RResult::ROk(ref v) if v.len() == listed));
                    })
                }
                _ => {
                    let b = store.bind("bench:mutate").expect("bind");
                    let ids: Vec<RString> = (0..threads).map(|_| create(&b)).collect();
                    run_cell(threads, secs, move |t, i| set_waiting(&b, &ids[t], i))
                }
            };
            println!(
                "{:<10} {:>7} {:>12.0} {:>10.1} {:>10.1} {:>10}",
                op,
                threads,
                cell.ops as f64 / cell.elapsed.as_secs_f64(),
                pct(&cell.latencies_ns, 0.50),
                pct(&cell.latencies_ns, 0.99),
                cell.ops
            );
        }
    }
    println!("flows in store at the end: {}", store.flow_count());
    store.close();
    let _ = std::fs::remove_dir_all(&dir);
}
