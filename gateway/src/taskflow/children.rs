//! Child tasks inside the writer: `run_task` (record, dedupe, metadata merge)
//! and `cancel` (cancel active children and the flow in one write).

use std::sync::Arc;

use abi_stable::std_types::{ROption, RString, RVec};
use openclaw_ffi::outcome::{CancelCode, CancelOutcome, RunTaskCode, RunTaskOutcome};
use openclaw_ffi::records::{
    FlowStatus, NotifyPolicy, RunTask, TaskRecord, TaskRuntime, TaskStatus,
};
use openclaw_ffi::runtime::WriteOutcome;

use super::batch::BatchView;
use super::model::{
    agent_id_from_session_key, collapsed_opt, is_managed, is_terminal, trimmed_opt, FlowEntry,
    TaskEntry, JSON_NULL,
};
use super::ops::{Answer, Change, Ctx, Evaluation};

pub(crate) const CANCELLED_BY_OPERATOR: &str = "Cancelled by operator.";

fn run_answer(code: RunTaskCode, flow: Option<&FlowEntry>, task: Option<TaskRecord>) -> Answer {
    Answer::Write(WriteOutcome::RunTask(RunTaskOutcome {
        code,
        flow: flow.map(|f| f.record.clone()).into(),
        task: task.into(),
    }))
}

pub(crate) fn run_task(
    view: &mut BatchView<'_>,
    ctx: &Ctx,
    owner: &str,
    input: &RunTask,
) -> Evaluation {
    let Some(flow) = view.owned_flow(owner, input.flow_id.as_str()) else {
        return Evaluation::read_only(run_answer(RunTaskCode::NOT_FOUND, None, None));
    };
    let refusal = if !is_managed(&flow.record) {
        Some(RunTaskCode::NOT_MANAGED)
    } else if flow.record.cancel_requested_at.is_some() {
        Some(RunTaskCode::CANCEL_REQUESTED)
    } else if is_terminal(&flow.record) {
        Some(RunTaskCode::TERMINAL)
    } else {
        None
    };
    if let Some(code) = refusal {
        return Evaluation::read_only(run_answer(code, Some(&flow), None));
    }
    if let Some(existing) = find_reusable(view, &flow, input) {
        let merged = merge_metadata(&existing.record, input);
        let mut changes = Vec::new();
        if merged != existing.record {
            changes.push(Change::PutTask(Arc::new(TaskEntry {
                owner: Arc::clone(&existing.owner),
                seq: existing.seq,
                record: merged.clone(),
            })));
        }
        let answer = run_answer(RunTaskCode::REUSED, Some(&flow), Some(merged));
        return Evaluation::writes(answer, changes);
    }
    let record = new_task(&flow, view.fresh_id(), ctx.now, input);
    let entry = Arc::new(TaskEntry {
        owner: Arc::clone(&flow.owner),
        seq: view.next_seq(),
        record: record.clone(),
    });
    let answer = run_answer(RunTaskCode::CREATED, Some(&flow), Some(record));
    Evaluation::writes(answer, vec![Change::PutTask(entry)])
}

/// Same run scope: run id, runtime, owner, child session key and flow.
/// Exact label and task text match, or (acp only) any task of that scope.
fn find_reusable(
    view: &BatchView<'_>,
    flow: &FlowEntry,
    input: &RunTask,
) -> Option<Arc<TaskEntry>> {
    let run_id = trimmed_opt(&input.run_id);
    if run_id.is_none() {
        return None;
    }
    let child = trimmed_opt(&input.child_session_key);
    let label = trimmed_opt(&input.label);
    let mut scope: Vec<Arc<TaskEntry>> = view
        .flow_tasks(flow.id())
        .into_iter()
        .filter(|t| {
            t.record.run_id == run_id
                && t.record.runtime == input.runtime
                && t.owner == flow.owner
                && t.record.child_session_key == child
        })
        .collect();
    // Oldest first, non-cli first: the preferred task of a run scope.
    scope.reverse();
    scope.sort_by_key(|t| t.record.runtime == TaskRuntime::Cli);
    let exact = scope
        .iter()
        .find(|t| t.record.label == label && t.record.task == input.task)
        .cloned();
    match exact {
        Some(t) => Some(t),
        None if input.runtime == TaskRuntime::Acp => scope.into_iter().next(),
        None => None,
    }
}

fn fill(current: &ROption<RString>, supplied: ROption<RString>) -> ROption<RString> {
    if current.is_some() {
        current.clone()
    } else {
        supplied
    }
}

fn merge_metadata(existing: &TaskRecord, input: &RunTask) -> TaskRecord {
    let mut t = existing.clone();
    t.source_id = fill(&t.source_id, trimmed_opt(&input.source_id));
    t.parent_task_id = fill(&t.parent_task_id, trimmed_opt(&input.parent_task_id));
    t.agent_id = fill(&t.agent_id, trimmed_opt(&input.agent_id));
    let label = trimmed_opt(&input.label);
    if input.prefer_metadata {
        if label.is_some() {
            t.label = label;
        }
        if !input.task.trim().is_empty() {
            t.task = input.task.clone();
        }
    } else {
        t.label = fill(&t.label, label);
    }
    if t.delivery_status.as_str() != "delivered" {
        t.delivery_status = RString::from("pending");
    }
    if let ROption::RSome(policy) = input.notify_policy {
        if t.notify_policy == NotifyPolicy::Silent && policy != NotifyPolicy::Silent {
            t.notify_policy = policy;
        }
    }
    t
}

fn new_task(flow: &FlowEntry, task_id: RString, now: u64, input: &RunTask) -> TaskRecord {
    let running = input.status == TaskStatus::Running;
    let started_at: Option<u64> = if running {
        input.started_at.into()
    } else {
        None
    };
    let last_event_in: Option<u64> = if running {
        input.last_event_at.into()
    } else {
        None
    };
    let created_at = [Some(now), started_at, last_event_in]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(now);
    let floor = started_at.unwrap_or(created_at);
    let last_event_at = last_event_in.or(started_at).unwrap_or(now).max(floor);
    let child = trimmed_opt(&input.child_session_key);
    let agent_id = match trimmed_opt(&input.agent_id) {
        ROption::RSome(id) => ROption::RSome(id),
        ROption::RNone => child
            .as_ref()
            .and_then(|c| agent_id_from_session_key(c.as_str()).into())
            .or_else(|| agent_id_from_session_key(&flow.owner).into())
            .map(RString::from),
    };
    TaskRecord {
        task_id,
        runtime: input.runtime,
        source_id: trimmed_opt(&input.source_id),
        child_session_key: child,
        parent_flow_id: ROption::RSome(flow.record.flow_id.clone()),
        parent_task_id: trimmed_opt(&input.parent_task_id),
        agent_id,
        run_id: trimmed_opt(&input.run_id),
        label: trimmed_opt(&input.label),
        error: ROption::RNone,
        progress_summary: if running {
            collapsed_opt(&input.progress_summary)
        } else {
            ROption::RNone
        },
        terminal_summary: ROption::RNone,
        terminal_outcome: ROption::RNone,
        scope_kind: RString::from("session"),
        task: input.task.clone(),
        status: if running {
            TaskStatus::Running
        } else {
            TaskStatus::Queued
        },
        delivery_status: RString::from("pending"),
        notify_policy: input.notify_policy.unwrap_or(NotifyPolicy::DoneOnly),
        created_at,
        started_at: started_at.into(),
        ended_at: ROption::RNone,
        last_event_at: ROption::RSome(last_event_at),
        cleanup_after: ROption::RNone,
    }
}

fn records(tasks: &[Arc<TaskEntry>]) -> RVec<TaskRecord> {
    tasks.iter().map(|t| t.record.clone()).collect()
}

pub(crate) fn cancel(view: &BatchView<'_>, ctx: &Ctx, owner: &str, flow_id: &str) -> Evaluation {
    let Some(flow) = view.owned_flow(owner, flow_id) else {
        return Evaluation::read_only(Answer::Write(WriteOutcome::Cancel(CancelOutcome {
            code: CancelCode::NOT_FOUND,
            flow: ROption::RNone,
            tasks: RVec::new(),
        })));
    };
    let tasks = view.flow_tasks(flow_id);
    if is_terminal(&flow.record) {
        return Evaluation::read_only(Answer::Write(WriteOutcome::Cancel(CancelOutcome {
            code: CancelCode::TERMINAL,
            flow: ROption::RSome(flow.record.clone()),
            tasks: records(&tasks),
        })));
    }
    let now = ctx.now;
    let mut changes = Vec::new();
    let mut after = Vec::with_capacity(tasks.len());
    for task in tasks {
        if !task.is_active() {
            after.push(task);
            continue;
        }
        let mut r = task.record.clone();
        r.status = TaskStatus::Cancelled;
        r.ended_at = ROption::RSome(now);
        r.last_event_at = ROption::RSome(now);
        r.error = ROption::RSome(RString::from(CANCELLED_BY_OPERATOR));
        r.cleanup_after = ROption::RSome(now.saturating_add(ctx.retention_ms));
        let entry = Arc::new(TaskEntry {
            owner: Arc::clone(&task.owner),
            seq: task.seq,
            record: r,
        });
        changes.push(Change::PutTask(Arc::clone(&entry)));
        after.push(entry);
    }
    let mut f = flow.record.clone();
    if f.cancel_requested_at.is_none() {
        f.cancel_requested_at = ROption::RSome(now);
    }
    f.status = FlowStatus::Cancelled;
    f.blocked_task_id = ROption::RNone;
    f.blocked_summary = ROption::RNone;
    f.wait_json = ROption::RSome(RString::from(JSON_NULL));
    f.ended_at = ROption::RSome(now);
    f.updated_at = now;
    f.revision = flow.record.revision + 1;
    changes.push(Change::PutFlow(Arc::new(FlowEntry {
        owner: Arc::clone(&flow.owner),
        seq: flow.seq,
        record: f.clone(),
    })));
    let answer = Answer::Write(WriteOutcome::Cancel(CancelOutcome {
        code: CancelCode::CANCELLED,
        flow: ROption::RSome(f),
        tasks: records(&after),
    }));
    Evaluation::writes(answer, changes)
}
