//! Kill -9 in the middle of a stream of writes: every acknowledged write is
//! on disk after reopening, and nothing is half-written.
//!
//! The test re-executes its own binary as a child (selected by an env var)
//! that streams creates and mutations and prints `ACK <flowId> <revision>`
//! after each acknowledged write; the parent SIGKILLs it mid-stream. The
//! store keeps a cache of only [`CACHE`] flows, far fewer than it writes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use abi_stable::std_types::RString;
use openclaw_ffi::records::FlowStatus;
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;
use crate::taskflow::{Store, StoreOptions};

const CHILD_ENV: &str = "OPENCLAW_TASKFLOW_CRASH_CHILD";
const WORKERS: usize = 4;
const CACHE: usize = 100;
/// Acknowledgements seen before the kill: about three times the cache in
/// flows (four writes each).
const ACKS: usize = 1200;

/// The status a flow of this stream has at each revision.
fn status_at(revision: u64) -> Option<FlowStatus> {
    [
        FlowStatus::Queued,
        FlowStatus::Waiting,
        FlowStatus::Running,
        FlowStatus::Succeeded,
    ]
    .get(usize::try_from(revision).ok()?)
    .copied()
}

fn ack(id: &RString, revision: u64) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "ACK {id} {revision}").unwrap();
    out.flush().unwrap();
}

/// Child mode: stream writes until killed (or for at most 60 s).
fn child(path: PathBuf) {
    let mut options = StoreOptions::new(path);
    options.cache_max_flows = CACHE;
    let store = Store::open(options).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let bound = store.bind("agent:crash:main").unwrap();
            thread::spawn(move || {
                while Instant::now() < deadline {
                    let id = create(&bound, "crash").flow_id;
                    ack(&id, 0);
                    applied(ok(bound.set_waiting(waiting(&id, 0))));
                    ack(&id, 1);
                    applied(ok(bound.resume(resume(&id, 1, FlowStatus::Running))));
                    ack(&id, 2);
                    applied(ok(bound.finish(finish(&id, 2))));
                    ack(&id, 3);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

/// Never leaves the child running if the parent fails early.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_process_keeps_every_acknowledged_write_and_nothing_half_written() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        child(PathBuf::from(path));
        return;
    }
    let dir = TempDir::new();
    let path = dir.path().join("crash").join("store.sqlite");
    let module = module_path!()
        .split_once("::")
        .map(|(_, m)| m)
        .unwrap_or(module_path!());
    let name = format!(
        "{module}::a_killed_process_keeps_every_acknowledged_write_and_nothing_half_written"
    );
    let mut proc = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &name, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let proc = &mut proc.0;
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut record = |line: &str| {
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (id, rev) = rest.split_once(' ').unwrap();
            let rev: u64 = rev.trim().parse().unwrap();
            let slot = acked.entry(id.to_owned()).or_insert(rev);
            *slot = (*slot).max(rev);
            true
        } else {
            false
        }
    };
    let mut seen = 0;
    for line in lines.by_ref() {
        if record(&line.unwrap()) {
            seen += 1;
            if seen >= ACKS {
                break;
            }
        }
    }
    assert!(
        seen >= ACKS,
        "the child stopped early after {seen} acknowledgements"
    );
    proc.kill().unwrap(); // SIGKILL
    proc.wait().unwrap();
    // Lines already written before the kill were acknowledged too.
    for line in lines {
        match line {
            Ok(line) => {
                record(&line);
            }
            Err(_) => break,
        }
    }

    let mut options = StoreOptions::new(path);
    options.sweep_interval = Duration::from_secs(3600);
    options.cache_max_flows = CACHE;
    let store = Store::open(options).unwrap();
    let bound = store.bind("agent:crash:main").unwrap();
    // Each acknowledged flow read by id too, most of them from disk.
    for (id, rev) in &acked {
        let flow = ok(bound.get(id.as_str().into()))
            .into_option()
            .unwrap_or_else(|| panic!("acknowledged flow {id} lost"));
        assert!(
            flow.revision >= *rev,
            "{id}: acked {rev}, read {}",
            flow.revision
        );
    }
    let flows = bound.list();
    let flows = ok(flows);
    let stored: HashMap<String, _> = flows
        .iter()
        .map(|f| (f.flow_id.to_string(), f.clone()))
        .collect();
    for (id, rev) in &acked {
        let flow = stored
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged flow {id} lost"));
        // The write after the last acknowledgement may have committed too.
        assert!(
            flow.revision == *rev || flow.revision == rev + 1,
            "{id}: acked {rev}, stored {}",
            flow.revision
        );
    }
    for flow in flows.iter() {
        assert_eq!(
            Some(flow.status),
            status_at(flow.revision),
            "half-written flow {flow:?}"
        );
        if !acked.contains_key(flow.flow_id.as_str()) {
            assert_eq!(
                flow.revision, 0,
                "an unacknowledged flow went past its creation"
            );
        }
    }
    let unacked = flows.len() - acked.len();
    eprintln!(
        "crash: {} acknowledged flows, {} stored, {unacked} never acknowledged",
        acked.len(),
        flows.len()
    );
    assert!(
        unacked <= WORKERS,
        "{unacked} flows were never acknowledged"
    );
    store.close();
}
