//! The batch overlay: committed state as the index holds it, plus the
//! changes staged by earlier operations of the same batch, so each
//! operation is evaluated against everything before it.

use std::collections::HashMap;
use std::sync::Arc;

use abi_stable::std_types::RString;

use super::index::Index;
use super::model::{new_id, FlowEntry, TaskEntry};
use super::ops::Change;

/// Committed state plus the changes applied earlier in this batch.
pub(crate) struct BatchView<'a> {
    index: &'a Index,
    flows: HashMap<String, Option<Arc<FlowEntry>>>,
    tasks: HashMap<String, Option<Arc<TaskEntry>>>,
    /// Flow id -> ids of tasks linked to it that are new in this batch.
    added_tasks: HashMap<String, Vec<String>>,
    next_seq: &'a mut u64,
}

impl<'a> BatchView<'a> {
    pub fn new(index: &'a Index, next_seq: &'a mut u64) -> Self {
        Self {
            index,
            flows: HashMap::new(),
            tasks: HashMap::new(),
            added_tasks: HashMap::new(),
            next_seq,
        }
    }

    /// A random id not used by any flow or task.
    pub fn fresh_id(&self) -> RString {
        loop {
            let id = new_id();
            if self.flow(&id).is_none() && self.task(&id).is_none() {
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
        match self.flows.get(flow_id) {
            Some(staged) => staged.clone(),
            None => self.index.flow(flow_id).cloned(),
        }
    }

    /// The flow if `owner` owns it; otherwise it does not exist.
    pub fn owned_flow(&self, owner: &str, flow_id: &str) -> Option<Arc<FlowEntry>> {
        self.flow(flow_id).filter(|f| &*f.owner == owner)
    }

    pub fn task(&self, task_id: &str) -> Option<Arc<TaskEntry>> {
        match self.tasks.get(task_id) {
            Some(staged) => staged.clone(),
            None => self.index.task(task_id).cloned(),
        }
    }

    /// Tasks linked to the flow, newest first.
    pub fn flow_tasks(&self, flow_id: &str) -> Vec<Arc<TaskEntry>> {
        let committed = self.index.flow_tasks(flow_id).map(|t| t.id().to_owned());
        let added = self.added_tasks.get(flow_id).into_iter().flatten().cloned();
        let mut out: Vec<Arc<TaskEntry>> = committed
            .chain(added)
            .filter_map(|id| self.task(&id))
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
                    let is_new = self.task(t.id()).is_none();
                    if is_new {
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
