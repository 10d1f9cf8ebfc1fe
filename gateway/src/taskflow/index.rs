//! The in-memory index of committed flows and tasks that every read uses:
//! by id, per owner in list order, and per flow in task order.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use openclaw_ffi::records::FlowStatus;

use super::model::{FlowEntry, OrderKey, TaskEntry};

#[derive(Default)]
pub(crate) struct Index {
    flows: HashMap<String, Arc<FlowEntry>>,
    /// Owner -> flows, newest first.
    owners: HashMap<Arc<str>, BTreeMap<OrderKey, Arc<FlowEntry>>>,
    tasks: HashMap<String, Arc<TaskEntry>>,
    /// Flow id -> linked tasks, newest first.
    flow_tasks: HashMap<String, BTreeMap<OrderKey, Arc<TaskEntry>>>,
    /// Flows per status, in the order of `FlowStatus::ALL`.
    by_status: [usize; FlowStatus::ALL.len()],
}

fn status_slot(status: FlowStatus) -> usize {
    FlowStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or_default()
}

impl Index {
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// How many flows are in each status.
    pub fn status_counts(&self) -> [(FlowStatus, usize); FlowStatus::ALL.len()] {
        std::array::from_fn(|i| (FlowStatus::ALL[i], self.by_status[i]))
    }

    pub fn flow(&self, flow_id: &str) -> Option<&Arc<FlowEntry>> {
        self.flows.get(flow_id)
    }

    /// The flow if `owner` owns it.
    pub fn owned_flow(&self, owner: &str, flow_id: &str) -> Option<&Arc<FlowEntry>> {
        self.flows.get(flow_id).filter(|f| &*f.owner == owner)
    }

    /// The owner's flows, newest first.
    pub fn owner_flows<'a>(&'a self, owner: &str) -> impl Iterator<Item = &'a Arc<FlowEntry>> + 'a {
        self.owners.get(owner).into_iter().flat_map(|m| m.values())
    }

    pub fn all_flows(&self) -> impl Iterator<Item = &Arc<FlowEntry>> + '_ {
        self.flows.values()
    }

    pub fn task(&self, task_id: &str) -> Option<&Arc<TaskEntry>> {
        self.tasks.get(task_id)
    }

    /// Tasks linked to the flow, newest first.
    pub fn flow_tasks<'a>(
        &'a self,
        flow_id: &str,
    ) -> impl Iterator<Item = &'a Arc<TaskEntry>> + 'a {
        self.flow_tasks
            .get(flow_id)
            .into_iter()
            .flat_map(|m| m.values())
    }

    pub fn has_active_task(&self, flow_id: &str) -> bool {
        self.flow_tasks(flow_id).any(|t| t.is_active())
    }

    pub fn put_flow(&mut self, entry: Arc<FlowEntry>) {
        self.by_status[status_slot(entry.record.status)] += 1;
        if let Some(old) = self.flows.insert(entry.id().to_owned(), Arc::clone(&entry)) {
            self.unlink_owner(&old);
        }
        let owner = match self.owners.get_key_value(&*entry.owner) {
            Some((k, _)) => Arc::clone(k),
            None => Arc::clone(&entry.owner),
        };
        self.owners
            .entry(owner)
            .or_default()
            .insert(entry.order_key(), entry);
    }

    pub fn remove_flow(&mut self, flow_id: &str) {
        if let Some(old) = self.flows.remove(flow_id) {
            self.unlink_owner(&old);
        }
    }

    fn unlink_owner(&mut self, old: &FlowEntry) {
        let slot = status_slot(old.record.status);
        self.by_status[slot] = self.by_status[slot].saturating_sub(1);
        if let Some(map) = self.owners.get_mut(&*old.owner) {
            map.remove(&old.order_key());
            if map.is_empty() {
                self.owners.remove(&*old.owner);
            }
        }
    }

    pub fn put_task(&mut self, entry: Arc<TaskEntry>) {
        if let Some(old) = self.tasks.insert(entry.id().to_owned(), Arc::clone(&entry)) {
            self.unlink_flow(&old);
        }
        if let Some(flow_id) = entry.flow_id() {
            self.flow_tasks
                .entry(flow_id.to_owned())
                .or_default()
                .insert(entry.order_key(), Arc::clone(&entry));
        }
    }

    pub fn remove_task(&mut self, task_id: &str) {
        if let Some(old) = self.tasks.remove(task_id) {
            self.unlink_flow(&old);
        }
    }

    fn unlink_flow(&mut self, old: &TaskEntry) {
        if let Some(flow_id) = old.flow_id() {
            if let Some(map) = self.flow_tasks.get_mut(flow_id) {
                map.remove(&old.order_key());
                if map.is_empty() {
                    self.flow_tasks.remove(flow_id);
                }
            }
        }
    }
}
