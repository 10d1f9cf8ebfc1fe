//! What clients see of flows, tasks and summaries.
//!
//! Views are built field by field in the OpenClaw order; owner and session
//! metadata never appear. Optional text fields appear only when non-empty;
//! JSON payloads appear whenever present, a stored JSON `null` included.

use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::records::{FlowRecord, TaskRecord, TaskRuntime, TaskStatus, TaskSummary};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowView<'a> {
    flow_id: &'a str,
    sync_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    controller_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_step: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_summary: Option<&'a str>,
    revision: u64,
    status: &'static str,
    notify_policy: &'static str,
    goal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_json: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait_json: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel_requested_at: Option<u64>,
    created_at: u64,
    updated_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<u64>,
}

pub fn flow(f: &FlowRecord) -> FlowView<'_> {
    FlowView {
        flow_id: &f.flow_id,
        sync_mode: f.sync_mode.as_str(),
        controller_id: text(f.controller_id.as_ref().into_option()),
        current_step: text(f.current_step.as_ref().into_option()),
        blocked_task_id: text(f.blocked_task_id.as_ref().into_option()),
        blocked_summary: text(f.blocked_summary.as_ref().into_option()),
        revision: f.revision,
        status: f.status.as_str(),
        notify_policy: f.notify_policy.as_str(),
        goal: &f.goal,
        state_json: json(f.state_json.as_ref().into_option()),
        wait_json: json(f.wait_json.as_ref().into_option()),
        cancel_requested_at: f.cancel_requested_at.into_option(),
        created_at: f.created_at,
        updated_at: f.updated_at,
        ended_at: f.ended_at.into_option(),
    }
}

pub fn flows(list: &[FlowRecord]) -> Vec<FlowView<'_>> {
    list.iter().map(flow).collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView<'a> {
    task_id: &'a str,
    runtime: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_session_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_flow_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_task_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress_summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminal_summary: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    terminal_outcome: Option<&'a str>,
    scope_kind: &'a str,
    task: &'a str,
    status: &'static str,
    delivery_status: &'a str,
    notify_policy: &'static str,
    created_at: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_event_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cleanup_after: Option<u64>,
}

pub fn task(t: &TaskRecord) -> TaskView<'_> {
    TaskView {
        task_id: &t.task_id,
        runtime: t.runtime.as_str(),
        source_id: opt(&t.source_id).filter(|s| !s.is_empty()),
        child_session_key: opt(&t.child_session_key).filter(|s| !s.is_empty()),
        parent_flow_id: opt(&t.parent_flow_id).filter(|s| !s.is_empty()),
        parent_task_id: opt(&t.parent_task_id).filter(|s| !s.is_empty()),
        agent_id: opt(&t.agent_id).filter(|s| !s.is_empty()),
        run_id: opt(&t.run_id).filter(|s| !s.is_empty()),
        label: opt(&t.label).filter(|s| !s.is_empty()),
        error: opt(&t.error).filter(|s| !s.is_empty()),
        progress_summary: opt(&t.progress_summary).filter(|s| !s.is_empty()),
        terminal_summary: opt(&t.terminal_summary).filter(|s| !s.is_empty()),
        terminal_outcome: opt(&t.terminal_outcome).filter(|s| !s.is_empty()),
        scope_kind: &t.scope_kind,
        task: &t.task,
        status: t.status.as_str(),
        delivery_status: &t.delivery_status,
        notify_policy: t.notify_policy.as_str(),
        created_at: t.created_at,
        started_at: t.started_at.into_option(),
        ended_at: t.ended_at.into_option(),
        last_event_at: t.last_event_at.into_option(),
        cleanup_after: t.cleanup_after.into_option(),
    }
}

pub fn tasks(list: &[TaskRecord]) -> Vec<TaskView<'_>> {
    list.iter().map(task).collect()
}

/// `{total, active, terminal, failures, byStatus, byRuntime}` with every
/// status and runtime key present.
pub struct SummaryView<'a>(pub &'a TaskSummary);

impl Serialize for SummaryView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sum = self.0;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("total", &sum.total)?;
        map.serialize_entry("active", &sum.active)?;
        map.serialize_entry("terminal", &sum.terminal)?;
        map.serialize_entry("failures", &sum.failures)?;
        map.serialize_entry(
            "byStatus",
            &Counts(&TaskStatus::ALL.map(|s| s.as_str()), &sum.by_status),
        )?;
        map.serialize_entry(
            "byRuntime",
            &Counts(&TaskRuntime::ALL.map(|r| r.as_str()), &sum.by_runtime),
        )?;
        map.end()
    }
}

struct Counts<'a>(&'a [&'static str], &'a [u64]);

impl Serialize for Counts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0.iter().zip(self.1) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

fn opt(v: &ROption<RString>) -> Option<&str> {
    v.as_ref().into_option().map(|s| s.as_str())
}

fn text(v: Option<&RString>) -> Option<&str> {
    v.map(|s| s.as_str()).filter(|s| !s.is_empty())
}

/// Stored JSON text as a raw value. The host only stores text that was
/// valid JSON; should that ever fail, the field reads as absent and the
/// fault is logged, rather than failing the whole response.
fn json(v: Option<&RString>) -> Option<&RawValue> {
    let text = v?.as_str();
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => Some(raw),
        Err(e) => {
            log::error!(target: "webhooks", "stored JSON payload is invalid and was omitted: {e}");
            None
        }
    }
}
