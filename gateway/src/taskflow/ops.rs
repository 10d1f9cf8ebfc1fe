//! Operations as the writer receives them, their answers, and the row
//! changes evaluating one stages.

use std::sync::Arc;

use abi_stable::std_types::RString;
use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::records::{CreateFlow, Fail, Finish, Resume, RunTask, SetWaiting};
use openclaw_ffi::runtime::{DueEvents, WriteOutcome};

use super::keys::Record;
use super::model::{FlowEntry, TaskEntry};
use super::outbox::{OutboxOp, Row};

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
    /// Maintenance: deletes at most `limit` expired idempotency records.
    PruneKeys {
        limit: usize,
    },
    /// Claiming, settling and pruning outbox events.
    Outbox(OutboxOp),
}

/// What one maintenance pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Cancel-requested flows finalised `cancelled`.
    pub finalized: usize,
    pub pruned_flows: usize,
    pub pruned_tasks: usize,
    /// Never-settled children of flows past retention, marked `lost`.
    pub lost_tasks: usize,
    /// Expired idempotency records.
    pub pruned_keys: usize,
    /// Outbox events settled longer ago than the retention.
    pub pruned_events: usize,
}

impl SweepReport {
    pub fn add(&mut self, other: SweepReport) {
        self.finalized += other.finalized;
        self.pruned_flows += other.pruned_flows;
        self.pruned_tasks += other.pruned_tasks;
        self.lost_tasks += other.lost_tasks;
        self.pruned_keys += other.pruned_keys;
        self.pruned_events += other.pruned_events;
    }
}

/// The writer's answer to an operation: a write's outcome exactly as the
/// stable ABI reports it, or what a sweep changed.
// One per operation, moved once; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Answer {
    Write(WriteOutcome),
    Sweep(SweepReport),
    /// Outbox events claimed for delivery.
    Events(DueEvents),
    /// Delivery attempts recorded.
    Settled,
}

/// A row change staged by an operation.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    PutFlow(Arc<FlowEntry>),
    PutTask(Arc<TaskEntry>),
    DeleteFlow {
        id: String,
        seq: u64,
    },
    DeleteTask {
        id: String,
        seq: u64,
    },
    /// Idempotency records live only on disk: nothing to publish.
    PutRecord(Arc<Record>),
    DeleteRecord {
        rowid: i64,
    },
    /// Outbox events live only on disk too.
    Outbox(Row),
}

/// What evaluating an operation produced: its answer and the row changes to
/// commit with it.
pub(crate) struct Evaluation {
    pub answer: Result<Answer, TaskFlowError>,
    pub changes: Vec<Change>,
}

impl Evaluation {
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
