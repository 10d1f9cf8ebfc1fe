//! The host's reader threads: reads submitted with `BoundTaskFlow::read`
//! that the cache cannot answer are queued here and answered by one of a
//! few threads, each reading through its own connection (see `readers`),
//! so that no caller's thread waits on disk.
//!
//! Rules:
//! - A hot `get` is answered on the caller's thread before `read`
//!   returns; only a read that needs the disk is queued.
//! - Stopping drains the queue: every queued read is answered. A read
//!   submitted after the stop is answered on the caller's thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use abi_stable::std_types::{ROption, RResult};
use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::runtime::{ReadCompletionBox, ReadOutcome, ReadRequest};
use parking_lot::Mutex;

use super::bound::Bound;
use super::error::StoreError;
use super::reads::Cached;

/// Reader threads: enough to keep a few disk reads in flight.
pub(crate) const READ_THREADS: usize = 4;

pub(crate) type Job = Box<dyn FnOnce() + Send>;

pub(crate) struct ReadPool {
    tx: Mutex<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl ReadPool {
    pub fn start(path: &Path, threads: usize) -> Result<Self, StoreError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..threads.max(1))
            .map(|i| {
                let rx = Arc::clone(&rx);
                thread::Builder::new()
                    .name(format!("taskflow-reader-{i}"))
                    .spawn(move || work(&rx))
                    .map_err(|source| StoreError::Thread {
                        path: path.to_path_buf(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
        })
    }

    /// Queues `job`; gives it back when the pool has stopped.
    pub(crate) fn queue(&self, job: Job) -> Option<Job> {
        match self.tx.lock().as_ref() {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        }
    }

    /// Answers what is queued, then stops the threads. Never joins the
    /// calling thread (the last handle of a store may drop on one).
    pub fn stop(&self) {
        drop(self.tx.lock().take());
        let me = thread::current().id();
        for handle in self.threads.lock().drain(..) {
            if handle.thread().id() != me && handle.join().is_err() {
                log::error!("taskflow store: a reader thread panicked");
            }
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = rx.lock().recv();
        let Ok(job) = job else { return };
        if catch_unwind(AssertUnwindSafe(job)).is_err() {
            log::error!("taskflow store: a read panicked");
        }
    }
}

fn complete(done: &ReadCompletionBox, outcome: Result<ReadOutcome, TaskFlowError>) {
    // The completion is the caller's code: a fault in it stays here.
    if catch_unwind(AssertUnwindSafe(|| done.complete(RResult::from(outcome)))).is_err() {
        log::error!("taskflow store: a read completion panicked");
    }
}

impl Bound {
    /// `BoundTaskFlow::read`: inline from the cache when it knows the
    /// answer, else on a reader thread.
    pub(crate) fn read_async(&self, request: ReadRequest, done: ReadCompletionBox) {
        if let ReadRequest::Get(id) | ReadRequest::Resolve(id) = &request {
            match self.store().cached_flow(self.owner(), id.as_str()) {
                Cached::Owned(flow) => {
                    let flow = ROption::RSome(flow.record.clone());
                    return complete(&done, Ok(ReadOutcome::Flow(flow)));
                }
                Cached::NotOwned if matches!(request, ReadRequest::Get(_)) => {
                    return complete(&done, Ok(ReadOutcome::Flow(ROption::RNone)));
                }
                _ => {}
            }
        }
        let bound = self.clone();
        let job: Job = Box::new(move || {
            let outcome = bound.read_now(&request);
            complete(&done, outcome);
        });
        if let Some(job) = self.store().read_pool().queue(job) {
            job();
        }
    }
}
