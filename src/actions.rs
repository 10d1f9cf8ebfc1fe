//! Runs a validated [`Action`] against a route's bound TaskFlow and maps the
//! runtime's typed outcome to a result (success) or an [`ApiError`] that
//! carries the OpenClaw result shape. No HTTP here.

use abi_stable::std_types::{RResult, RString};
use openclaw_ffi::outcome::{
    CancelCode, CancelOutcome, ErrorCode, MutationCode, MutationOutcome, RunTaskCode,
    RunTaskOutcome, TaskFlowError,
};
use openclaw_ffi::records::FlowRecord;
use openclaw_ffi::runtime::{BoundTaskFlowBox, WriteOutcome, WriteRequest};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{ApiError, Code};
use crate::request::Action;
use crate::views;

/// Success carries the action's `result`; failure carries the response.
pub type ActionResult = Result<Box<RawValue>, ApiError>;

const FLOW_NOT_FOUND: &str = "TaskFlow not found.";

/// What an action does: a read answered at once from memory, or a write
/// that is submitted to the runtime and completes once durable.
// Lives on the stack for one request; boxing the write would only allocate.
#[allow(clippy::large_enum_variant)]
pub enum Plan {
    Read(Read),
    Write(WriteKind, WriteRequest),
}

/// The five reads.
pub enum Read {
    GetFlow(String),
    ListFlows,
    FindLatestFlow,
    ResolveFlow(String),
    GetTaskSummary(String),
}

/// Which result shape a write's outcome takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Mutation,
    Cancel,
    RunTask,
}

/// Splits an action into a read or a write. `default_controller` is the
/// route's `controllerId`, used when `create_flow` names none.
pub fn plan(action: Action, default_controller: &str) -> Plan {
    let write = |kind, request| Plan::Write(kind, request);
    match action {
        Action::CreateFlow(mut input) => {
            if input.controller_id.is_empty() {
                input.controller_id = RString::from(default_controller);
            }
            write(WriteKind::Create, WriteRequest::Create(input))
        }
        Action::GetFlow { flow_id } => Plan::Read(Read::GetFlow(flow_id)),
        Action::ListFlows => Plan::Read(Read::ListFlows),
        Action::FindLatestFlow => Plan::Read(Read::FindLatestFlow),
        Action::ResolveFlow { token } => Plan::Read(Read::ResolveFlow(token)),
        Action::GetTaskSummary { flow_id } => Plan::Read(Read::GetTaskSummary(flow_id)),
        Action::SetWaiting(i) => write(WriteKind::Mutation, WriteRequest::SetWaiting(i)),
        Action::ResumeFlow(i) => write(WriteKind::Mutation, WriteRequest::Resume(i)),
        Action::FinishFlow(i) => write(WriteKind::Mutation, WriteRequest::Finish(i)),
        Action::FailFlow(i) => write(WriteKind::Mutation, WriteRequest::Fail(i)),
        Action::RequestCancel(i) => write(WriteKind::Mutation, WriteRequest::RequestCancel(i)),
        Action::CancelFlow { flow_id } => {
            write(WriteKind::Cancel, WriteRequest::Cancel(flow_id.into()))
        }
        Action::RunTask(i) => write(WriteKind::RunTask, WriteRequest::RunTask(i)),
    }
}

/// Answers a read from the bound TaskFlow.
pub fn read(flows: &BoundTaskFlowBox, read: Read) -> ActionResult {
    match read {
        Read::GetFlow(flow_id) => read_flow(flows.get(flow_id.as_str().into())),
        Read::ListFlows => match flows.list() {
            RResult::ROk(list) => raw(&FlowList {
                flows: views::flows(&list),
            }),
            RResult::RErr(e) => Err(internal(&e)),
        },
        Read::FindLatestFlow => read_flow(flows.find_latest()),
        Read::ResolveFlow(token) => read_flow(flows.resolve(token.as_str().into())),
        Read::GetTaskSummary(flow_id) => match flows.get_task_summary(flow_id.as_str().into()) {
            RResult::ROk(summary) => raw(&Summary {
                summary: summary.as_ref().into_option().map(views::SummaryView),
            }),
            RResult::RErr(e) => Err(internal(&e)),
        },
    }
}

/// Maps the outcome of a submitted write to the action's result.
pub fn written(kind: WriteKind, outcome: RResult<WriteOutcome, TaskFlowError>) -> ActionResult {
    let outcome = match outcome {
        RResult::ROk(o) => o,
        RResult::RErr(e) => return refused_write(kind, e),
    };
    match (kind, outcome) {
        (WriteKind::Create, WriteOutcome::Created(flow)) => raw(&Created {
            created: true,
            flow: views::flow(&flow),
        }),
        (WriteKind::Mutation, WriteOutcome::Mutation(out)) => mutation(out),
        (WriteKind::Cancel, WriteOutcome::Cancel(out)) => cancel(out),
        (WriteKind::RunTask, WriteOutcome::RunTask(out)) => run_task(out),
        _ => Err(internal(&TaskFlowError::new(
            ErrorCode::INTERNAL,
            "the runtime answered a write with the wrong outcome",
        ))),
    }
}

/// A write the runtime could not perform: a store that could not persist is
/// `persist_failed` with the action's result shape; anything else is an
/// internal error.
fn refused_write(kind: WriteKind, e: TaskFlowError) -> ActionResult {
    if e.code != ErrorCode::PERSIST_FAILED {
        return Err(internal(&e));
    }
    let (result, message) = match kind {
        WriteKind::Create => (
            serde_json::json!({"created": false, "code": "persist_failed"}),
            Code::PersistFailed.default_message(),
        ),
        WriteKind::Mutation => (
            serde_json::json!({"applied": false, "code": "persist_failed"}),
            Code::PersistFailed.default_message(),
        ),
        WriteKind::Cancel => (
            serde_json::json!({"found": true, "cancelled": false, "reason": "Flow persistence failed."}),
            "Flow persistence failed.",
        ),
        WriteKind::RunTask => (
            serde_json::json!({"found": true, "created": false, "reason": "Task persistence failed."}),
            "Task persistence failed.",
        ),
    };
    Err(persist_failed(&result).with_message(message))
}

// Results are typed structs, serialised straight to JSON text: building a
// `serde_json::Value` first costs a map per flow.
#[derive(Serialize)]
struct FlowList<'a> {
    flows: Vec<views::FlowView<'a>>,
}

#[derive(Serialize)]
struct OneFlow<'a> {
    flow: Option<views::FlowView<'a>>,
}

#[derive(Serialize)]
struct Summary<'a> {
    summary: Option<views::SummaryView<'a>>,
}

#[derive(Serialize)]
struct Created<'a> {
    created: bool,
    flow: views::FlowView<'a>,
}

fn read_flow(
    res: RResult<abi_stable::std_types::ROption<FlowRecord>, TaskFlowError>,
) -> ActionResult {
    match res {
        RResult::ROk(flow) => raw(&OneFlow {
            flow: flow.as_ref().into_option().map(views::flow),
        }),
        RResult::RErr(e) => Err(internal(&e)),
    }
}

#[derive(Serialize)]
struct Mutation<'a> {
    applied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<views::FlowView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current: Option<views::FlowView<'a>>,
}

fn mutation(out: MutationOutcome) -> ActionResult {
    let flow = out.flow.as_ref().into_option().map(views::flow);
    if out.code == MutationCode::APPLIED {
        return raw(&Mutation {
            applied: true,
            code: None,
            flow,
            current: None,
        });
    }
    let (code, message) = match out.code {
        MutationCode::NOT_FOUND => (Code::NotFound, FLOW_NOT_FOUND),
        MutationCode::NOT_MANAGED => (Code::NotManaged, Code::NotManaged.default_message()),
        MutationCode::REVISION_CONFLICT => (
            Code::RevisionConflict,
            Code::RevisionConflict.default_message(),
        ),
        MutationCode::CANCEL_REQUESTED => (
            Code::CancelRequested,
            Code::CancelRequested.default_message(),
        ),
        _ => (
            Code::MutationRejected,
            Code::MutationRejected.default_message(),
        ),
    };
    let result = raw(&Mutation {
        applied: false,
        code: Some(code.as_str()),
        flow: None,
        current: flow,
    })?;
    Err(ApiError::new(code)
        .with_message(message)
        .with_result(result))
}

#[derive(Serialize)]
struct Cancel<'a> {
    found: bool,
    cancelled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<views::FlowView<'a>>,
    /// Present whenever the flow was found, `[]` when there are none, as the
    /// OpenClaw plugin answers; absent only when the flow was not found.
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<views::TaskView<'a>>>,
}

fn cancel(out: CancelOutcome) -> ActionResult {
    let flow = out.flow.as_ref().into_option();
    let already = flow.map(|f| format!("Flow is already {}.", f.status.as_str()));
    let (code, reason) = match out.code {
        CancelCode::CANCELLED => (None, None),
        CancelCode::NOT_FOUND => (Some(Code::NotFound), Some("Flow not found.")),
        CancelCode::TERMINAL => (Some(Code::Terminal), already.as_deref()),
        CancelCode::PENDING => (
            Some(Code::CancelPending),
            Some(Code::CancelPending.default_message()),
        ),
        CancelCode::REVISION_CONFLICT => (
            Some(Code::RevisionConflict),
            Some("Flow changed while cancellation was in progress."),
        ),
        _ => (
            Some(Code::CancelRejected),
            Some(Code::CancelRejected.default_message()),
        ),
    };
    let found = out.code != CancelCode::NOT_FOUND;
    let result = raw(&Cancel {
        found,
        cancelled: out.code == CancelCode::CANCELLED,
        reason,
        flow: flow.map(views::flow),
        tasks: found.then(|| views::tasks(&out.tasks)),
    })?;
    match code {
        None => Ok(result),
        Some(Code::NotFound) => Err(ApiError::new(Code::NotFound)
            .with_message(FLOW_NOT_FOUND)
            .with_result(result)),
        Some(code) => Err(ApiError::new(code)
            .with_message(reason.unwrap_or(code.default_message()).to_owned())
            .with_result(result)),
    }
}

#[derive(Serialize)]
struct TaskRun<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    found: Option<bool>,
    created: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reused: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flow: Option<views::FlowView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    task: Option<views::TaskView<'a>>,
}

fn run_task(out: RunTaskOutcome) -> ActionResult {
    let flow = out.flow.as_ref().into_option();
    let created = matches!(out.code, RunTaskCode::CREATED | RunTaskCode::REUSED);
    if created {
        return raw(&TaskRun {
            found: None,
            created: true,
            reused: out.code == RunTaskCode::REUSED,
            reason: None,
            flow: flow.map(views::flow),
            task: out.task.as_ref().into_option().map(views::task),
        });
    }
    let already = flow.map(|f| format!("Flow is already {}.", f.status.as_str()));
    let (code, reason) = match out.code {
        RunTaskCode::NOT_FOUND => (Code::NotFound, "Flow not found."),
        RunTaskCode::TERMINAL => (
            Code::Terminal,
            already.as_deref().unwrap_or("Flow is already terminal."),
        ),
        RunTaskCode::CANCEL_REQUESTED => (
            Code::CancelRequested,
            "Flow cancellation has already been requested.",
        ),
        RunTaskCode::NOT_MANAGED => (
            Code::NotManaged,
            "Flow does not accept managed child tasks.",
        ),
        _ => (Code::TaskNotCreated, "Task was not created."),
    };
    let result = raw(&TaskRun {
        found: Some(out.code != RunTaskCode::NOT_FOUND),
        created: false,
        reused: false,
        reason: Some(reason),
        flow: flow.map(views::flow),
        task: None,
    })?;
    let message = if code == Code::NotFound {
        FLOW_NOT_FOUND
    } else {
        reason
    };
    Err(ApiError::new(code)
        .with_message(message.to_owned())
        .with_result(result))
}

/// Refuses a `childSessionKey` outside the route's session tree: it must
/// start with `<sessionKey>:` (ASCII case-insensitive), as in OpenClaw.
pub fn check_child_session(session_key: &str, action: &Action) -> Result<(), ApiError> {
    let Action::RunTask(input) = action else {
        return Ok(());
    };
    let Some(child) = input.child_session_key.as_ref().into_option() else {
        return Ok(());
    };
    let prefix_len = session_key.len() + 1;
    let inside = child.len() > prefix_len
        && child.as_bytes()[..session_key.len()].eq_ignore_ascii_case(session_key.as_bytes())
        && child.as_bytes()[session_key.len()] == b':';
    if inside {
        return Ok(());
    }
    let reason = Code::ChildSessionForbidden.default_message();
    // No `found`: the guard runs before any lookup.
    let result = raw(&TaskRun {
        found: None,
        created: false,
        reused: false,
        reason: Some(reason),
        flow: None,
        task: None,
    })?;
    Err(ApiError::new(Code::ChildSessionForbidden).with_result(result))
}

fn raw<T: Serialize>(value: &T) -> ActionResult {
    serde_json::value::to_raw_value(value).map_err(|e| {
        log::error!(target: "webhooks", "could not serialise a result: {e}");
        ApiError::new(Code::InternalError)
    })
}

fn persist_failed(result: &serde_json::Value) -> ApiError {
    let err = ApiError::new(Code::PersistFailed);
    match serde_json::value::to_raw_value(result) {
        Ok(r) => err.with_result(r),
        Err(_) => err,
    }
}

/// A fault of the host: logged once here with its cause, answered with a
/// generic message.
fn internal(e: &TaskFlowError) -> ApiError {
    log::error!(target: "webhooks", "TaskFlow runtime failed: {}", e.message);
    ApiError::new(Code::InternalError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request;
    use serde_json::json;

    fn run_task_action(child: &str) -> Action {
        request::parse(&json!({"action":"run_task","flowId":"f","runtime":"acp","task":"t","childSessionKey":child}))
            .unwrap()
    }

    fn persist_failed_as(kind: WriteKind) -> ApiError {
        let err = TaskFlowError::new(ErrorCode::PERSIST_FAILED, "disk full");
        written(kind, RResult::RErr(err)).unwrap_err()
    }

    #[test]
    fn a_write_the_store_could_not_persist_is_503_with_the_actions_result_shape() {
        let cases = [
            (
                WriteKind::Create,
                "TaskFlow persistence failed.",
                json!({"created": false, "code": "persist_failed"}),
            ),
            (
                WriteKind::Mutation,
                "TaskFlow persistence failed.",
                json!({"applied": false, "code": "persist_failed"}),
            ),
            (
                WriteKind::Cancel,
                "Flow persistence failed.",
                json!({"found": true, "cancelled": false, "reason": "Flow persistence failed."}),
            ),
            (
                WriteKind::RunTask,
                "Task persistence failed.",
                json!({"found": true, "created": false, "reason": "Task persistence failed."}),
            ),
        ];
        for (kind, message, result) in cases {
            let err = persist_failed_as(kind);
            assert_eq!(
                (err.code, err.code.status()),
                (Code::PersistFailed, 503),
                "{kind:?}"
            );
            assert_eq!(err.message, message, "{kind:?}");
            let got: serde_json::Value =
                serde_json::from_str(err.result.as_ref().unwrap().get()).unwrap();
            assert_eq!(got, result, "{kind:?}");
        }
    }

    #[test]
    fn other_runtime_failures_are_a_generic_500_without_the_cause() {
        let err = TaskFlowError::new(
            ErrorCode::INTERNAL,
            "sqlite: disk I/O error at /var/secret/path",
        );
        let api = written(WriteKind::Create, RResult::RErr(err)).unwrap_err();
        assert_eq!((api.code, api.code.status()), (Code::InternalError, 500));
        assert_eq!(api.message, "internal error");
        assert!(api.result.is_none());
        let wrong = written(
            WriteKind::Cancel,
            RResult::ROk(WriteOutcome::Mutation(
                openclaw_ffi::outcome::MutationOutcome {
                    code: MutationCode::APPLIED,
                    flow: abi_stable::std_types::ROption::RNone,
                },
            )),
        )
        .unwrap_err();
        assert_eq!(wrong.code, Code::InternalError);
    }

    #[test]
    fn child_sessions_must_be_strict_descendants_of_the_route_session() {
        let s = "agent:main:main";
        assert!(check_child_session(s, &run_task_action("agent:main:main:acp:child")).is_ok());
        assert!(check_child_session(s, &run_task_action("AGENT:MAIN:MAIN:acp:child")).is_ok());
        for bad in [
            "agent:main:main",
            "agent:main:main:",
            "agent:victim:acp:child",
            "agent:main:mainx:y",
        ] {
            let err = check_child_session(s, &run_task_action(bad)).unwrap_err();
            assert_eq!(err.code, Code::ChildSessionForbidden, "{bad}");
        }
    }
}
