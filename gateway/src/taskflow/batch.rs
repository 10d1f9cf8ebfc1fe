//! The batch overlay: committed state (looked up through [`Committed`])
//! plus the changes staged by earlier operations of the same batch, so
//! each operation is evaluated against everything before it.
//!
//! A lookup that fails (a disk error, an undecodable row) reads as
//! absent and marks the view failed; the writer then refuses the
//! operation with `PERSIST_FAILED` instead of trusting its evaluation.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use abi_stable::std_types::RString;

use super::committed::Committed;
use super::error::{read_failed, StoreError};
use super::model::{new_id, FlowEntry, TaskEntry};
use super::ops::Change;

/// Committed state plus the changes applied earlier in this batch.
pub(crate) struct BatchView<'a> {
    committed: &'a dyn Committed,
    flows: HashMap<String, Option<Arc<FlowEntry>>>,
    tasks: HashMap<String, Option<Arc<TaskEntry>>>,
    /// Committed flows already looked up in this batch.
    seen: RefCell<HashMap<String, Option<Arc<FlowEntry>>>>,
    /// Flow id -> ids of tasks linked to it that are new in this batch.
    added_tasks: HashMap<String, Vec<String>>,
    next_seq: &'a mut u64,
    failed: Cell<bool>,
}

impl<'a> BatchView<'a> {
    pub fn new(committed: &'a dyn Committed, next_seq: &'a mut u64) -> Self {
        Self {
            committed,
            flows: HashMap::new(),
            tasks: HashMap::new(),
            seen: RefCell::default(),
            added_tasks: HashMap::new(),
            next_seq,
            failed: Cell::new(false),
        }
    }

    /// Whether a lookup failed since the last call (and clears it).
    pub fn take_failure(&self) -> bool {
        self.failed.replace(false)
    }

    fn checked<T: Default>(&self, result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|err| {
            read_failed(&err);
            self.failed.set(true);
            T::default()
        })
    }

    /// A random id not used by any flow or task.
    pub fn fresh_id(&self) -> RString {
        let check = self.committed.checks_fresh_ids();
        loop {
            let id = new_id();
            let free = if check {
                self.flow(&id).is_none() && self.task(&id).is_none()
            } else {
                !self.flows.contains_key(id.as_str()) && !self.tasks.contains_key(id.as_str())
            };
            if free {
                return id;
            }
        }
    }

    /// A fresh creation sequence number (shared by flows and tasks).
    pub fn next_seq(&mut self) -> u64 {
        let seq = *self.next_seq;
        *self.next_seq += 1;
        seq
    }

    pub fn flow(&self, flow_id: &str) -> Option<Arc<FlowEntry>> {
        if let Some(staged) = self.flows.get(flow_id) {
            return staged.clone();
        }
        if let Some(seen) = self.seen.borrow().get(flow_id) {
            return seen.clone();
        }
        let found = self.checked(self.committed.flow(flow_id));
        self.seen
            .borrow_mut()
            .insert(flow_id.to_owned(), found.clone());
        found
    }

    /// The flow if `owner` owns it; otherwise it does not exist.
    pub fn owned_flow(&self, owner: &str, flow_id: &str) -> Option<Arc<FlowEntry>> {
        self.flow(flow_id).filter(|f| &*f.owner == owner)
    }

    pub fn task(&self, task_id: &str) -> Option<Arc<TaskEntry>> {
        match self.tasks.get(task_id) {
            Some(staged) => staged.clone(),
            None => self.checked(self.committed.task(task_id)),
        }
    }

    /// Tasks linked to the flow, newest first.
    pub fn flow_tasks(&self, flow_id: &str) -> Vec<Arc<TaskEntry>> {
        let committed = self.checked(self.committed.flow_tasks(flow_id));
        let committed = committed
            .into_iter()
            .filter_map(|t| match self.tasks.get(t.id()) {
                Some(staged) => staged.clone(),
                None => Some(t),
            });
        let added = self
            .added_tasks
            .get(flow_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tasks.get(id).cloned().flatten());
        let mut out: Vec<Arc<TaskEntry>> = committed
            .chain(added)
            .filter(|t| t.flow_id() == Some(flow_id))
            .collect();
        out.sort_by_key(|t| t.order_key());
        out.dedup_by(|a, b| a.id() == b.id());
        out
    }

    pub fn has_active_task(&self, flow_id: &str) -> bool {
        self.flow_tasks(flow_id).iter().any(|t| t.is_active())
    }

    /// Records changes that reached the database inside this batch.
    pub fn apply(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::PutFlow(f) => {
                    self.flows.insert(f.id().to_owned(), Some(Arc::clone(f)));
                }
                Change::PutTask(t) => {
                    // Listed with the flow's tasks whether or not it is new:
                    // `flow_tasks` keeps one copy of each task.
                    if !self.tasks.contains_key(t.id()) {
                        if let Some(flow_id) = t.flow_id() {
                            self.added_tasks
                                .entry(flow_id.to_owned())
                                .or_default()
                                .push(t.id().to_owned());
                        }
                    }
                    self.tasks.insert(t.id().to_owned(), Some(Arc::clone(t)));
                }
                Change::DeleteFlow { id, .. } => {
                    self.flows.insert(id.clone(), None);
                }
                Change::DeleteTask { id, .. } => {
                    self.tasks.insert(id.clone(), None);
                }
                // The writer tracks the batch's idempotency records itself.
                Change::PutRecord(_) | Change::DeleteRecord { .. } | Change::Outbox(_) => {}
            }
        }
    }
}
