//! Flow creation and the five revision-checked mutations (set_waiting,
//! resume, finish, fail, request_cancel), evaluated inside the writer.

use std::sync::Arc;

use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::outcome::{MutationCode, MutationOutcome};
use openclaw_ffi::records::{CreateFlow, FlowRecord, FlowStatus, SyncMode};
use openclaw_ffi::runtime::WriteOutcome;

use super::batch::BatchView;
use super::error::invalid_input;
use super::model::{
    apply_patch, is_managed, is_terminal, json_equal, patch_matches, patch_sets_value, trimmed,
    trimmed_opt, FlowEntry, JSON_NULL,
};
use super::ops::{Answer, Change, Ctx, Evaluation, Mutation};

pub(crate) fn create(
    view: &mut BatchView<'_>,
    ctx: &Ctx,
    owner: &Arc<str>,
    input: &CreateFlow,
) -> Evaluation {
    let controller_id = trimmed(input.controller_id.as_str());
    if controller_id.is_none() {
        return Evaluation {
            answer: Err(invalid_input("Managed flow controllerId is required.")),
            changes: Vec::new(),
        };
    }
    let record = FlowRecord {
        flow_id: view.fresh_id(),
        sync_mode: SyncMode::Managed,
        controller_id,
        revision: 0,
        status: input.status,
        notify_policy: input.notify_policy,
        goal: RString::from(input.goal.trim()),
        current_step: trimmed_opt(&input.current_step),
        blocked_task_id: ROption::RNone,
        blocked_summary: ROption::RNone,
        state_json: input.state_json.clone(),
        wait_json: input.wait_json.clone(),
        cancel_requested_at: ROption::RNone,
        created_at: ctx.now,
        updated_at: ctx.now,
        ended_at: ROption::RNone,
    };
    let entry = Arc::new(FlowEntry {
        owner: Arc::clone(owner),
        seq: view.next_seq(),
        record: record.clone(),
    });
    Evaluation::writes(
        Answer::Write(WriteOutcome::Created(record)),
        vec![Change::PutFlow(entry)],
    )
}

fn refused(code: MutationCode, flow: Option<&FlowEntry>) -> Evaluation {
    Evaluation::read_only(Answer::Write(WriteOutcome::Mutation(MutationOutcome {
        code,
        flow: flow.map(|f| f.record.clone()).into(),
    })))
}

/// A retried `finish`/`fail` whose first attempt already applied.
fn is_idempotent_retry(flow: &FlowRecord, mutation: &Mutation) -> bool {
    let expected = mutation.expected_revision();
    if expected.checked_add(1) != Some(flow.revision) {
        return false;
    }
    match mutation {
        Mutation::Finish(i) => {
            flow.status == FlowStatus::Succeeded
                && (i.state_json.is_none() || json_equal(&i.state_json, &flow.state_json))
        }
        Mutation::Fail(i) => {
            flow.status == FlowStatus::Failed
                && (i.state_json.is_none() || json_equal(&i.state_json, &flow.state_json))
                && patch_matches(&flow.blocked_task_id, &i.blocked_task_id)
                && patch_matches(&flow.blocked_summary, &i.blocked_summary)
        }
        _ => false,
    }
}

pub(crate) fn mutate(
    view: &BatchView<'_>,
    ctx: &Ctx,
    owner: &str,
    mutation: &Mutation,
) -> Evaluation {
    let Some(entry) = view.owned_flow(owner, mutation.flow_id()) else {
        return refused(MutationCode::NOT_FOUND, None);
    };
    let flow = &entry.record;
    if !is_managed(flow) {
        return refused(MutationCode::NOT_MANAGED, Some(&entry));
    }
    if is_idempotent_retry(flow, mutation) {
        return refused(MutationCode::APPLIED, Some(&entry));
    }
    if flow.revision != mutation.expected_revision() || is_terminal(flow) {
        return refused(MutationCode::REVISION_CONFLICT, Some(&entry));
    }
    let refuses_cancelled = matches!(mutation, Mutation::SetWaiting(_) | Mutation::Resume(_));
    if refuses_cancelled && flow.cancel_requested_at.is_some() {
        return refused(MutationCode::CANCEL_REQUESTED, Some(&entry));
    }
    let mut next = flow.clone();
    apply(&mut next, mutation, ctx.now);
    next.revision = flow.revision + 1;
    next.updated_at = ctx.now;
    let new_entry = Arc::new(FlowEntry {
        owner: Arc::clone(&entry.owner),
        seq: entry.seq,
        record: next.clone(),
    });
    Evaluation::writes(
        Answer::Write(WriteOutcome::Mutation(MutationOutcome {
            code: MutationCode::APPLIED,
            flow: ROption::RSome(next),
        })),
        vec![Change::PutFlow(new_entry)],
    )
}

fn keep_or(current: &ROption<RString>, supplied: &ROption<RString>) -> ROption<RString> {
    if supplied.is_some() {
        supplied.clone()
    } else {
        current.clone()
    }
}

fn json_null() -> ROption<RString> {
    ROption::RSome(RString::from(JSON_NULL))
}

fn apply(flow: &mut FlowRecord, mutation: &Mutation, now: u64) {
    match mutation {
        Mutation::SetWaiting(i) => {
            let blocked =
                patch_sets_value(&i.blocked_task_id) || patch_sets_value(&i.blocked_summary);
            flow.current_step = apply_patch(&flow.current_step, &i.current_step);
            flow.state_json = keep_or(&flow.state_json, &i.state_json);
            flow.wait_json = keep_or(&flow.wait_json, &i.wait_json);
            if blocked {
                flow.status = FlowStatus::Blocked;
                flow.blocked_task_id = apply_patch(&flow.blocked_task_id, &i.blocked_task_id);
                flow.blocked_summary = apply_patch(&flow.blocked_summary, &i.blocked_summary);
            } else {
                flow.status = FlowStatus::Waiting;
                flow.blocked_task_id = ROption::RNone;
                flow.blocked_summary = ROption::RNone;
            }
            flow.ended_at = ROption::RNone;
        }
        Mutation::Resume(i) => {
            flow.status = i.status;
            flow.current_step = apply_patch(&flow.current_step, &i.current_step);
            flow.state_json = keep_or(&flow.state_json, &i.state_json);
            flow.wait_json = json_null();
            flow.blocked_task_id = ROption::RNone;
            flow.blocked_summary = ROption::RNone;
            flow.ended_at = ROption::RNone;
        }
        Mutation::Finish(i) => {
            flow.status = FlowStatus::Succeeded;
            flow.state_json = keep_or(&flow.state_json, &i.state_json);
            flow.wait_json = json_null();
            flow.blocked_task_id = ROption::RNone;
            flow.blocked_summary = ROption::RNone;
            flow.ended_at = ROption::RSome(now);
        }
        Mutation::Fail(i) => {
            flow.status = FlowStatus::Failed;
            flow.state_json = keep_or(&flow.state_json, &i.state_json);
            flow.wait_json = json_null();
            flow.blocked_task_id = apply_patch(&flow.blocked_task_id, &i.blocked_task_id);
            flow.blocked_summary = apply_patch(&flow.blocked_summary, &i.blocked_summary);
            flow.ended_at = ROption::RSome(now);
        }
        Mutation::RequestCancel { .. } => {
            flow.cancel_requested_at = ROption::RSome(now);
        }
    }
}
