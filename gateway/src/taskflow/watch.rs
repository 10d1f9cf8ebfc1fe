//! The watch registry: the wakers of reads that wait for a flow to change,
//! keyed by flow id. The writer hands it every commit's flow changes after
//! publishing them and takes out each waker whose wait the commit settles;
//! it wakes them, once each, right after answering the batch's writes.
//!
//! Rules:
//! - A waiter registers before it reads the index (see `Store::watch`):
//!   a commit published before the read is seen by the read, one published
//!   after it finds the registration.
//! - A commit nobody waits for costs one atomic load.
//! - No lock is held while a waker runs.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use openclaw_ffi::records::FlowRecord;
use openclaw_ffi::runtime::FlowWakerBox;
use parking_lot::Mutex;

use super::model::is_terminal;

/// What one commit did to one flow.
pub(crate) enum FlowChange<'a> {
    Put(&'a FlowRecord),
    Deleted(&'a str),
}

/// Whether a reader that has seen `above` has something new to read in
/// `flow`: a later revision, or an end (a terminal flow never changes
/// again).
pub(crate) fn settles(flow: &FlowRecord, above: u64) -> bool {
    flow.revision > above || is_terminal(flow)
}

#[derive(Default)]
pub(crate) struct Watchers {
    /// How many wakers are registered; read without the lock.
    len: AtomicUsize,
    next_ticket: AtomicU64,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    by_flow: HashMap<Arc<str>, HashMap<u64, Watcher>>,
    /// Ticket -> the flow it watches, for `remove`.
    flow_of: HashMap<u64, Arc<str>>,
}

struct Watcher {
    above: u64,
    waker: FlowWakerBox,
}

impl Registry {
    fn take(&mut self, ticket: u64) -> Option<FlowWakerBox> {
        let flow_id = self.flow_of.remove(&ticket)?;
        let watchers = self.by_flow.get_mut(&flow_id)?;
        let watcher = watchers.remove(&ticket);
        if watchers.is_empty() {
            self.by_flow.remove(&flow_id);
        }
        watcher.map(|w| w.waker)
    }
}

impl Watchers {
    /// Registers `waker` for `flow_id` and returns its ticket (never 0).
    pub fn add(&self, flow_id: &str, above: u64, waker: FlowWakerBox) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed) + 1;
        let mut registry = self.registry.lock();
        let key = match registry.by_flow.get_key_value(flow_id) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::from(flow_id),
        };
        registry
            .by_flow
            .entry(Arc::clone(&key))
            .or_default()
            .insert(ticket, Watcher { above, waker });
        registry.flow_of.insert(ticket, key);
        // Counted while the lock is held, so a commit that follows the
        // caller's read sees the registration.
        self.len.fetch_add(1, Ordering::SeqCst);
        ticket
    }

    /// Unregisters `ticket`, handing back its waker if it was not woken.
    pub fn remove(&self, ticket: u64) -> Option<FlowWakerBox> {
        let waker = self.registry.lock().take(ticket);
        if waker.is_some() {
            self.len.fetch_sub(1, Ordering::SeqCst);
        }
        waker
    }

    /// Wakes `ticket` now, unless it was already woken or removed.
    pub fn fire(&self, ticket: u64) {
        if let Some(waker) = self.remove(ticket) {
            wake(vec![waker]);
        }
    }

    /// Unregisters and returns every waker whose wait `changes` settle,
    /// for [`wake`]. Runs on the writer thread after the commit is
    /// published to the index.
    pub fn settled<'a>(
        &self,
        changes: impl IntoIterator<Item = FlowChange<'a>>,
    ) -> Vec<FlowWakerBox> {
        if self.len.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        let mut due: Vec<(u64, FlowWakerBox)> = Vec::new();
        {
            let mut registry = self.registry.lock();
            for change in changes {
                let (flow_id, flow) = match change {
                    FlowChange::Put(flow) => (flow.flow_id.as_str(), Some(flow)),
                    FlowChange::Deleted(id) => (id, None),
                };
                let Some(watchers) = registry.by_flow.get_mut(flow_id) else {
                    continue;
                };
                due.extend(
                    watchers
                        .extract_if(|_, w| flow.is_none_or(|f| settles(f, w.above)))
                        .map(|(ticket, w)| (ticket, w.waker)),
                );
                if watchers.is_empty() {
                    registry.by_flow.remove(flow_id);
                }
            }
            for (ticket, _) in &due {
                registry.flow_of.remove(ticket);
            }
        }
        self.len.fetch_sub(due.len(), Ordering::SeqCst);
        due.into_iter().map(|(_, waker)| waker).collect()
    }

    /// The ids of the flows some read waits on.
    pub fn flow_ids(&self) -> Vec<String> {
        if self.len.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        let registry = self.registry.lock();
        registry.by_flow.keys().map(|id| id.to_string()).collect()
    }

    /// Wakes every registered waker (the store is closing).
    pub fn wake_all(&self) {
        let wakers: Vec<FlowWakerBox> = {
            let mut registry = self.registry.lock();
            registry.flow_of.clear();
            registry
                .by_flow
                .drain()
                .flat_map(|(_, watchers)| watchers.into_values().map(|w| w.waker))
                .collect()
        };
        self.len.fetch_sub(wakers.len(), Ordering::SeqCst);
        wake(wakers);
    }

    /// How many wakers are registered.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::SeqCst)
    }
}

/// Calls each waker once, then drops it. A waker is the caller's code: a
/// fault in one must not take the writer down or skip the others.
pub(crate) fn wake(wakers: impl IntoIterator<Item = FlowWakerBox>) {
    for waker in wakers {
        if catch_unwind(AssertUnwindSafe(|| waker.wake())).is_err() {
            log::error!("taskflow store: a flow waker panicked");
        }
    }
}
