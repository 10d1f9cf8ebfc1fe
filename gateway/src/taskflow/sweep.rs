//! Maintenance: finalising cancel-requested flows and pruning old terminal
//! flows with their tasks. The scan reads the index; the writer re-checks
//! every candidate before it changes anything.

use std::sync::Arc;

use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::records::FlowStatus;

use super::index::Index;
use super::model::{is_managed, is_terminal, FlowEntry, JSON_NULL};
use super::ops::{Answer, BatchView, Change, Ctx, Outcome};

/// What one maintenance pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Cancel-requested flows finalised `cancelled`.
    pub finalized: usize,
    pub pruned_flows: usize,
    pub pruned_tasks: usize,
}

impl SweepReport {
    pub fn add(&mut self, other: SweepReport) {
        self.finalized += other.finalized;
        self.pruned_flows += other.pruned_flows;
        self.pruned_tasks += other.pruned_tasks;
    }
}

/// Candidates per writer operation, so a large sweep never holds up a batch.
pub(crate) const SWEEP_CHUNK: usize = 256;

fn wants_finalize(flow: &FlowEntry) -> bool {
    is_managed(&flow.record)
        && !is_terminal(&flow.record)
        && flow.record.cancel_requested_at.is_some()
}

fn wants_prune(flow: &FlowEntry, now: u64, retention_ms: u64) -> bool {
    if !is_terminal(&flow.record) {
        return false;
    }
    let ended = flow.record.ended_at.unwrap_or(flow.record.updated_at);
    now >= ended.saturating_add(retention_ms)
}

/// Flow ids to finalise and to prune, judged on the committed index.
pub(crate) fn scan(index: &Index, now: u64, retention_ms: u64) -> (Vec<String>, Vec<String>) {
    let mut finalize = Vec::new();
    let mut prune = Vec::new();
    for flow in index.all_flows() {
        let target = if wants_finalize(flow) {
            &mut finalize
        } else if wants_prune(flow, now, retention_ms) {
            &mut prune
        } else {
            continue;
        };
        if !index.has_active_task(flow.id()) {
            target.push(flow.id().to_owned());
        }
    }
    (finalize, prune)
}

/// The writer's half: re-check each candidate against the batch view.
pub(crate) fn apply(
    view: &BatchView<'_>,
    ctx: &Ctx,
    finalize: &[String],
    prune: &[String],
) -> Outcome {
    let mut report = SweepReport::default();
    let mut changes = Vec::new();
    for id in finalize {
        let Some(flow) = view.flow(id) else { continue };
        if !wants_finalize(&flow) || view.has_active_task(id) {
            continue;
        }
        let mut f = flow.record.clone();
        f.status = FlowStatus::Cancelled;
        f.blocked_task_id = ROption::RNone;
        f.blocked_summary = ROption::RNone;
        f.wait_json = ROption::RSome(RString::from(JSON_NULL));
        f.ended_at = ROption::RSome(ctx.now);
        f.updated_at = ctx.now;
        f.revision += 1;
        changes.push(Change::PutFlow(Arc::new(FlowEntry {
            owner: Arc::clone(&flow.owner),
            seq: flow.seq,
            record: f,
        })));
        report.finalized += 1;
    }
    for id in prune {
        let Some(flow) = view.flow(id) else { continue };
        if !wants_prune(&flow, ctx.now, ctx.retention_ms) {
            continue;
        }
        let tasks = view.flow_tasks(id);
        if tasks.iter().any(|t| t.is_active()) {
            continue;
        }
        for task in &tasks {
            changes.push(Change::DeleteTask {
                id: task.id().to_owned(),
                seq: task.seq,
            });
        }
        changes.push(Change::DeleteFlow {
            id: id.clone(),
            seq: flow.seq,
        });
        report.pruned_flows += 1;
        report.pruned_tasks += tasks.len();
    }
    Outcome::writes(Answer::Sweep(report), changes)
}
