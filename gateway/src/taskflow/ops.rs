//! Write operations as the writer receives them, their answers, the row
//! changes they stage, and the batch view (committed state plus the changes
//! staged earlier in the same batch) they are evaluated against.

use std::collections::HashMap;
use std::sync::Arc;

use abi_stable::std_types::RString;
use openclaw_ffi::outcome::{CancelOutcome, MutationOutcome, RunTaskOutcome, TaskFlowError};
use openclaw_ffi::records::{CreateFlow, Fail, Finish, FlowRecord, Resume, RunTask, SetWaiting};

use super::index::Index;
use super::model::{new_id, FlowEntry, TaskEntry};
use super::sweep::SweepReport;

/// One of the five revision-checked mutations.
#[derive(Debug, Clone)]
pub(crate) enum Mutation {
    SetWaiting(SetWaiting),
    Resume(Resume),
    Finish(Finish),
    Fail(Fail),
    RequestCancel { flow_id: RString, expected: u64 },
}

impl Mutation {
    pub fn flow_id(&self) -> &str {
        match self {
            Self::SetWaiting(i) => i.flow_id.as_str(),
            Self::Resume(i) => i.flow_id.as_str(),
            Self::Finish(i) => i.flow_id.as_str(),
            Self::Fail(i) => i.flow_id.as_str(),
            Self::RequestCancel { flow_id, .. } => flow_id.as_str(),
        }
    }

    pub fn expected_revision(&self) -> u64 {
        match self {
            Self::SetWaiting(i) => i.expected_revision,
            Self::Resume(i) => i.expected_revision,
            Self::Finish(i) => i.expected_revision,
            Self::Fail(i) => i.expected_revision,
            Self::RequestCancel { expected, .. } => *expected,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Op {
    Create {
        owner: Arc<str>,
        input: CreateFlow,
    },
    Mutate {
        owner: Arc<str>,
        mutation: Mutation,
    },
    Cancel {
        owner: Arc<str>,
        flow_id: RString,
    },
    RunTask {
        owner: Arc<str>,
        input: RunTask,
    },
    /// Maintenance: candidates found by a scan, re-checked by the writer.
    Sweep {
        finalize: Vec<String>,
        prune: Vec<String>,
    },
}

#[derive(Debug)]
pub(crate) enum Answer {
    Flow(FlowRecord),
    Mutation(MutationOutcome),
    Cancel(CancelOutcome),
    RunTask(Box<RunTaskOutcome>),
    Sweep(SweepReport),
}

/// A row change staged by an operation.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    PutFlow(Arc<FlowEntry>),
    PutTask(Arc<TaskEntry>),
    DeleteFlow { id: String, seq: u64 },
    DeleteTask { id: String, seq: u64 },
}

/// What evaluating an operation produced.
pub(crate) struct Outcome {
    pub answer: Result<Answer, TaskFlowError>,
    pub changes: Vec<Change>,
}

impl Outcome {
    pub fn read_only(answer: Answer) -> Self {
        Self {
            answer: Ok(answer),
            changes: Vec::new(),
        }
    }

    pub fn writes(answer: Answer, changes: Vec<Change>) -> Self {
        Self {
            answer: Ok(answer),
            changes,
        }
    }
}

/// Evaluation context shared by all operations of a batch.
pub(crate) struct Ctx {
    pub now: u64,
    pub retention_ms: u64,
}

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
            }
        }
    }
}

/// Applies committed changes to the published index.
pub(crate) fn publish(index: &mut Index, changes: &[Change]) {
    for change in changes {
        match change {
            Change::PutFlow(f) => index.put_flow(Arc::clone(f)),
            Change::PutTask(t) => index.put_task(Arc::clone(t)),
            Change::DeleteFlow { id, .. } => index.remove_flow(id),
            Change::DeleteTask { id, .. } => index.remove_task(id),
        }
    }
}
