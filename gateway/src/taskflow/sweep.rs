//! Maintenance: finalising cancel-requested flows and pruning old terminal
//! flows with their tasks. Candidates come from indexed queries, a chunk
//! at a time (`Candidates`); the writer re-checks every candidate before
//! it changes anything.
//!
//! `run_task` only records children, and nothing settles a record whose
//! work was never reported. So that such records cannot keep a finished
//! flow (and its memory) forever, a terminal flow past retention first has
//! its still-active children marked `lost`; it is pruned, with them, by the
//! next sweep. A flow is never deleted while a child is active.

use std::sync::Arc;

use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::records::{FlowStatus, TaskStatus};

use std::path::Path;

use rusqlite::Connection;

use super::batch::BatchView;
use super::error::StoreError;
use super::model::{is_managed, is_terminal, FlowEntry, TaskEntry, JSON_NULL};
use super::ops::{Answer, Change, Ctx, Evaluation, SweepReport};
use super::rows::{self, EndedCursor};

/// The `error` of a child marked `lost` by the sweep.
pub(crate) const NEVER_SETTLED: &str =
    "The task was never settled, and its flow ended longer ago than the retention period.";

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

/// One pass's walk over the candidates: each flow is offered once per
/// pass (a flow whose children are marked `lost` is pruned by the next
/// pass, not re-offered by this one).
pub(crate) struct Candidates {
    /// Flows that ended at or before this are past retention.
    cutoff: Option<u64>,
    finalize_after: Option<i64>,
    prune_after: Option<EndedCursor>,
}

impl Candidates {
    pub fn new(now: u64, retention_ms: u64) -> Self {
        Self {
            cutoff: now.checked_sub(retention_ms),
            finalize_after: Some(-1),
            prune_after: Some((i64::MIN, i64::MIN)),
        }
    }

    /// The next up to `limit` flow ids of each kind (to finalise, to
    /// prune); both empty once the pass has seen every candidate.
    pub fn next_chunk(
        &mut self,
        conn: &Connection,
        path: &Path,
        limit: usize,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        self.next_chunk_from(
            limit,
            |after| rows::cancel_requested(conn, path, after, limit),
            |cutoff, after| rows::ended_before(conn, path, cutoff, after, limit),
        )
    }

    /// [`Candidates::next_chunk`] over any backend's two candidate
    /// queries (see `rows::cancel_requested` and `rows::ended_before`).
    pub fn next_chunk_from(
        &mut self,
        limit: usize,
        cancel_requested: impl FnOnce(i64) -> Result<Vec<(i64, String)>, StoreError>,
        ended_before: impl FnOnce(u64, EndedCursor) -> Result<Vec<(EndedCursor, String)>, StoreError>,
    ) -> Result<(Vec<String>, Vec<String>), StoreError> {
        let mut finalize = Vec::new();
        if let Some(after) = self.finalize_after {
            let found = cancel_requested(after)?;
            self.finalize_after = found
                .last()
                .map(|(seq, _)| *seq)
                .filter(|_| found.len() == limit);
            finalize = found.into_iter().map(|(_, id)| id).collect();
        }
        let mut prune = Vec::new();
        match (self.prune_after, self.cutoff) {
            (Some(after), Some(cutoff)) => {
                let found = ended_before(cutoff, after)?;
                self.prune_after = found
                    .last()
                    .map(|(c, _)| *c)
                    .filter(|_| found.len() == limit);
                prune = found.into_iter().map(|(_, id)| id).collect();
            }
            _ => self.prune_after = None,
        }
        Ok((finalize, prune))
    }
}

/// The writer's half: re-check each candidate against the batch view.
pub(crate) fn apply(
    view: &BatchView<'_>,
    ctx: &Ctx,
    finalize: &[String],
    prune: &[String],
) -> Evaluation {
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
            for task in tasks.iter().filter(|t| t.is_active()) {
                let mut t = task.record.clone();
                t.status = TaskStatus::Lost;
                t.ended_at = ROption::RSome(ctx.now);
                t.last_event_at = ROption::RSome(ctx.now);
                t.cleanup_after = ROption::RSome(ctx.now);
                t.error = ROption::RSome(RString::from(NEVER_SETTLED));
                changes.push(Change::PutTask(Arc::new(TaskEntry {
                    owner: Arc::clone(&task.owner),
                    seq: task.seq,
                    record: t,
                })));
                report.lost_tasks += 1;
            }
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
    Evaluation::writes(Answer::Sweep(report), changes)
}
