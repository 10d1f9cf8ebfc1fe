//! The action schemas: a parsed JSON body becomes a typed [`Action`], or a
//! list of issues worded like the OpenClaw plugin's (zod) messages.
//!
//! Every member is strict (unknown keys are refused). Strings are trimmed
//! before their length is checked and the trimmed value is what is used;
//! the action name and enumerations match exactly (see `fields`).

mod fields;

use abi_stable::std_types::{ROption, RString};
use jsoncfg::Issue;
use openclaw_ffi::records::{
    CreateFlow, Fail, Finish, FlowStatus, NotifyPolicy, RequestCancel, Resume, RunTask, SetWaiting,
    TaskRuntime, TaskStatus, TextPatch,
};
use serde_json::Value;

use self::fields::{issue, received, Fields};

use crate::wait::{WaitFor, MAX_WAIT};

/// The exact message of the `run_task` cross-field rule.
pub const RUNNING_ONLY_MESSAGE: &str =
    "status must be running when startedAt, lastEventAt, or progressSummary is provided";

/// The exact message of the `get_flow` cross-field rule.
pub const WAIT_MS_ALONE_MESSAGE: &str = "waitMs is only allowed with waitForRevisionAbove";

/// Every action name, in schema order.
pub const ACTIONS: [&str; 13] = [
    "create_flow",
    "get_flow",
    "list_flows",
    "find_latest_flow",
    "resolve_flow",
    "get_task_summary",
    "set_waiting",
    "resume_flow",
    "finish_flow",
    "fail_flow",
    "request_cancel",
    "cancel_flow",
    "run_task",
];

/// One validated request.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `controller_id` is empty when the request gave none (the route's
    /// default applies).
    CreateFlow(CreateFlow),
    GetFlow {
        flow_id: String,
        /// Set when the read waits for the flow to change.
        wait: Option<WaitFor>,
    },
    ListFlows,
    FindLatestFlow,
    ResolveFlow {
        token: String,
    },
    GetTaskSummary {
        flow_id: String,
    },
    SetWaiting(SetWaiting),
    ResumeFlow(Resume),
    FinishFlow(Finish),
    FailFlow(Fail),
    RequestCancel(RequestCancel),
    CancelFlow {
        flow_id: String,
    },
    RunTask(RunTask),
}

impl Action {
    /// The action's name on the wire (one of [`ACTIONS`]).
    pub fn name(&self) -> &'static str {
        match self {
            Self::CreateFlow(_) => "create_flow",
            Self::GetFlow { .. } => "get_flow",
            Self::ListFlows => "list_flows",
            Self::FindLatestFlow => "find_latest_flow",
            Self::ResolveFlow { .. } => "resolve_flow",
            Self::GetTaskSummary { .. } => "get_task_summary",
            Self::SetWaiting(_) => "set_waiting",
            Self::ResumeFlow(_) => "resume_flow",
            Self::FinishFlow(_) => "finish_flow",
            Self::FailFlow(_) => "fail_flow",
            Self::RequestCancel(_) => "request_cancel",
            Self::CancelFlow { .. } => "cancel_flow",
            Self::RunTask(_) => "run_task",
        }
    }
}

/// Validates a request body.
///
/// # Errors
///
/// Every issue found, in schema order, unknown keys last.
pub fn parse(value: &Value) -> Result<Action, Vec<Issue>> {
    let Value::Object(obj) = value else {
        return Err(vec![issue(
            "",
            format!(
                "Invalid input: expected object, received {}",
                received(Some(value))
            ),
        )]);
    };
    let name = obj.get("action").and_then(Value::as_str);
    let Some(name) = name.filter(|n| ACTIONS.contains(n)) else {
        return Err(vec![issue("action", unknown_action_message())]);
    };
    let mut f = Fields::new(obj);
    let action = match name {
        "create_flow" => create_flow(&mut f),
        "get_flow" => get_flow(&mut f),
        "list_flows" => Some(Action::ListFlows),
        "find_latest_flow" => Some(Action::FindLatestFlow),
        "resolve_flow" => f.text("token").map(|token| Action::ResolveFlow { token }),
        "get_task_summary" => f
            .text("flowId")
            .map(|flow_id| Action::GetTaskSummary { flow_id }),
        "set_waiting" => set_waiting(&mut f),
        "resume_flow" => resume_flow(&mut f),
        "finish_flow" => finish_flow(&mut f),
        "fail_flow" => fail_flow(&mut f),
        "request_cancel" => request_cancel(&mut f),
        "cancel_flow" => f
            .text("flowId")
            .map(|flow_id| Action::CancelFlow { flow_id }),
        _ => run_task(&mut f),
    };
    f.finish(action)
}

/// A missing or unknown `action`, worded as the OpenClaw plugin words it:
/// `Invalid discriminator value. Expected 'create_flow' | 'get_flow' | …`
/// with all thirteen actions in schema order.
fn unknown_action_message() -> String {
    let expected: Vec<String> = ACTIONS.iter().map(|a| format!("'{a}'")).collect();
    format!(
        "Invalid discriminator value. Expected {}",
        expected.join(" | ")
    )
}

/// `get_flow`, waiting when `waitForRevisionAbove` (a revision) is given;
/// `waitMs` (1 to 25000, default 25000) only with it.
fn get_flow(f: &mut Fields<'_>) -> Option<Action> {
    let flow_id = f.text("flowId");
    let above = match f.get("waitForRevisionAbove") {
        None => None,
        v => f.integer("waitForRevisionAbove", v),
    };
    let given_ms = match f.get("waitMs") {
        None => None,
        v => wait_ms(f, v),
    };
    if f.issues.is_empty() && given_ms.is_some() && above.is_none() {
        f.issues.push(issue("waitMs", WAIT_MS_ALONE_MESSAGE));
    }
    let wait = above.map(|above_revision| WaitFor {
        above_revision,
        timeout: given_ms.map_or(MAX_WAIT, std::time::Duration::from_millis),
    });
    Some(Action::GetFlow {
        flow_id: flow_id?,
        wait,
    })
}

/// `waitMs`: a whole number of milliseconds from 1 to 25000.
fn wait_ms(f: &mut Fields<'_>, v: Option<&Value>) -> Option<u64> {
    const KEY: &str = "waitMs";
    let max = MAX_WAIT.as_millis() as f64;
    let Some(n) = v
        .and_then(Value::as_f64)
        .filter(|_| v.is_some_and(Value::is_number))
    else {
        f.expected(KEY, "number", v);
        return None;
    };
    if n.fract() != 0.0 {
        f.expected(KEY, "int", v);
        None
    } else if n < 1.0 {
        f.issues
            .push(issue(KEY, "Too small: expected number to be >=1"));
        None
    } else if n > max {
        f.issues.push(issue(
            KEY,
            format!("Too big: expected number to be <={max}"),
        ));
        None
    } else {
        Some(n as u64)
    }
}

fn create_flow(f: &mut Fields<'_>) -> Option<Action> {
    let goal = f.text("goal");
    let controller_id = f.opt_text("controllerId");
    let status = f.opt_choice(
        "status",
        &[
            FlowStatus::Queued,
            FlowStatus::Running,
            FlowStatus::Waiting,
            FlowStatus::Blocked,
        ],
        |s| s.as_str(),
    );
    let notify_policy = f.opt_choice("notifyPolicy", &NOTIFY_POLICIES, |p| p.as_str());
    // `null` is treated as absent for create.
    let current_step = match f.nullable("currentStep") {
        TextPatch::Set(s) => ROption::RSome(s),
        _ => ROption::RNone,
    };
    let state_json = f.json("stateJson");
    let wait_json = f.json("waitJson");
    Some(Action::CreateFlow(CreateFlow {
        controller_id: controller_id.map(RString::from).unwrap_or_default(),
        goal: goal?.into(),
        status: status.unwrap_or(FlowStatus::Queued),
        notify_policy: notify_policy.unwrap_or(NotifyPolicy::DoneOnly),
        current_step,
        state_json,
        wait_json,
    }))
}

const NOTIFY_POLICIES: [NotifyPolicy; 3] = [
    NotifyPolicy::DoneOnly,
    NotifyPolicy::StateChanges,
    NotifyPolicy::Silent,
];

fn set_waiting(f: &mut Fields<'_>) -> Option<Action> {
    let flow_id = f.text("flowId");
    let expected_revision = f.revision("expectedRevision");
    let current_step = f.nullable("currentStep");
    let blocked_task_id = f.nullable("blockedTaskId");
    let blocked_summary = f.nullable("blockedSummary");
    let state_json = f.json("stateJson");
    let wait_json = f.json("waitJson");
    Some(Action::SetWaiting(SetWaiting {
        flow_id: flow_id?.into(),
        expected_revision: expected_revision?,
        current_step,
        blocked_task_id,
        blocked_summary,
        state_json,
        wait_json,
    }))
}

fn resume_flow(f: &mut Fields<'_>) -> Option<Action> {
    let flow_id = f.text("flowId");
    let expected_revision = f.revision("expectedRevision");
    let status = f.opt_choice("status", &[FlowStatus::Queued, FlowStatus::Running], |s| {
        s.as_str()
    });
    let current_step = f.nullable("currentStep");
    let state_json = f.json("stateJson");
    Some(Action::ResumeFlow(Resume {
        flow_id: flow_id?.into(),
        expected_revision: expected_revision?,
        status: status.unwrap_or(FlowStatus::Queued),
        current_step,
        state_json,
    }))
}

fn finish_flow(f: &mut Fields<'_>) -> Option<Action> {
    let flow_id = f.text("flowId");
    let expected_revision = f.revision("expectedRevision");
    let state_json = f.json("stateJson");
    Some(Action::FinishFlow(Finish {
        flow_id: flow_id?.into(),
        expected_revision: expected_revision?,
        state_json,
    }))
}

fn fail_flow(f: &mut Fields<'_>) -> Option<Action> {
    let flow_id = f.text("flowId");
    let expected_revision = f.revision("expectedRevision");
    let state_json = f.json("stateJson");
    let blocked_task_id = f.nullable("blockedTaskId");
    let blocked_summary = f.nullable("blockedSummary");
    Some(Action::FailFlow(Fail {
        flow_id: flow_id?.into(),
        expected_revision: expected_revision?,
        state_json,
        blocked_task_id,
        blocked_summary,
    }))
}

fn request_cancel(f: &mut Fields<'_>) -> Option<Action> {
    let flow_id = f.text("flowId");
    let expected_revision = f.revision("expectedRevision");
    Some(Action::RequestCancel(RequestCancel {
        flow_id: flow_id?.into(),
        expected_revision: expected_revision?,
    }))
}

fn run_task(f: &mut Fields<'_>) -> Option<Action> {
    let flow_id = f.text("flowId");
    let runtime = f.choice("runtime", &[TaskRuntime::Subagent, TaskRuntime::Acp], |r| {
        r.as_str()
    });
    let task = f.text("task");
    let source_id = f.opt_text("sourceId");
    let child_session_key = f.opt_text("childSessionKey");
    let parent_task_id = f.opt_text("parentTaskId");
    let agent_id = f.opt_text("agentId");
    let run_id = f.opt_text("runId");
    let label = f.opt_text("label");
    let prefer_metadata = f.opt_bool("preferMetadata");
    let notify_policy = f.opt_choice("notifyPolicy", &NOTIFY_POLICIES, |p| p.as_str());
    let status = f.opt_choice("status", &[TaskStatus::Queued, TaskStatus::Running], |s| {
        s.as_str()
    });
    let started_at = f.opt_timestamp("startedAt");
    let last_event_at = f.opt_timestamp("lastEventAt");
    let running_only = ["startedAt", "lastEventAt", "progressSummary"]
        .iter()
        .any(|k| f.has(k));
    let progress_summary = f.nullable("progressSummary");
    if running_only && status != Some(TaskStatus::Running) {
        f.cross_field_issue("status", RUNNING_ONLY_MESSAGE);
    }
    let opt = |s: Option<String>| s.map(RString::from).into();
    Some(Action::RunTask(RunTask {
        flow_id: flow_id?.into(),
        runtime: runtime?,
        task: task?.into(),
        source_id: opt(source_id),
        child_session_key: opt(child_session_key),
        parent_task_id: opt(parent_task_id),
        agent_id: opt(agent_id),
        run_id: opt(run_id),
        label: opt(label),
        prefer_metadata: prefer_metadata.unwrap_or(false),
        notify_policy: notify_policy.into(),
        status: status.unwrap_or(TaskStatus::Queued),
        started_at: started_at.into(),
        last_event_at: last_event_at.into(),
        progress_summary: match progress_summary {
            TextPatch::Set(s) => ROption::RSome(s),
            _ => ROption::RNone,
        },
    }))
}

#[cfg(test)]
mod tests;
