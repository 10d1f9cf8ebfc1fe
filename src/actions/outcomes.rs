//! Maps the outcome of a write to the action's reply or error, in the
//! result shapes of the OpenClaw plugin. Each outcome variant carries its
//! own shape; the request's [`Shape`] only matters when the write failed
//! before it had an outcome.

use abi_stable::std_types::RResult;
use openclaw_ffi::outcome::{
    CancelCode, CancelOutcome, ErrorCode, MutationCode, MutationOutcome, RunTaskCode,
    RunTaskOutcome, TaskFlowError,
};
use openclaw_ffi::runtime::{WriteOutcome, WriteRequest};
use serde::Serialize;
use serde_json::json;

use super::{done, internal, raw, ActionResult, Reply};
use crate::error::{ApiError, Code};
use crate::texts;
use crate::views;

/// The result shape of a write that failed without an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Create,
    Mutation,
    Cancel,
    RunTask,
}

impl Shape {
    pub fn of(request: &WriteRequest) -> Self {
        match request {
            WriteRequest::Create(_) => Self::Create,
            WriteRequest::SetWaiting(_)
            | WriteRequest::Resume(_)
            | WriteRequest::Finish(_)
            | WriteRequest::Fail(_)
            | WriteRequest::RequestCancel(_) => Self::Mutation,
            WriteRequest::Cancel(_) => Self::Cancel,
            WriteRequest::RunTask(_) => Self::RunTask,
        }
    }
}

/// Maps the outcome of a submitted write to the action's reply.
pub fn written(shape: Shape, outcome: &RResult<WriteOutcome, TaskFlowError>) -> ActionResult {
    match outcome {
        RResult::ROk(outcome) => reply_to(outcome),
        RResult::RErr(e) => Err(refused(shape, e)),
    }
}

/// The reply an outcome gets.
pub fn reply_to(outcome: &WriteOutcome) -> ActionResult {
    match outcome {
        WriteOutcome::Created(flow) => done(&Created {
            created: true,
            flow: views::flow(flow),
        }),
        WriteOutcome::Mutation(out) => mutation(out),
        WriteOutcome::Cancel(out) => cancel(out),
        WriteOutcome::RunTask(out) => run_task(out),
        WriteOutcome::KeyMismatch => Err(ApiError::new(Code::IdempotencyKeyMismatch)),
        // Stored replies are answered as they were stored, before this.
        WriteOutcome::Replayed(_) => Err(internal(&TaskFlowError::new(
            ErrorCode::INTERNAL,
            "a stored reply reached the outcome mapping",
        ))),
    }
}

/// A write the runtime could not perform: a store that could not persist is
/// `persist_failed` with the action's result shape; anything else is an
/// internal error.
fn refused(shape: Shape, e: &TaskFlowError) -> ApiError {
    if e.code != ErrorCode::PERSIST_FAILED {
        return internal(e);
    }
    let (result, message) = match shape {
        Shape::Create => (
            json!({"created": false, "code": "persist_failed"}),
            texts::PERSIST_FAILED,
        ),
        Shape::Mutation => (
            json!({"applied": false, "code": "persist_failed"}),
            texts::PERSIST_FAILED,
        ),
        Shape::Cancel => (
            json!({"found": true, "cancelled": false, "reason": texts::FLOW_PERSIST_FAILED}),
            texts::FLOW_PERSIST_FAILED,
        ),
        Shape::RunTask => (
            json!({"found": true, "created": false, "reason": texts::TASK_PERSIST_FAILED}),
            texts::TASK_PERSIST_FAILED,
        ),
    };
    let err = ApiError::new(Code::PersistFailed).with_message(message);
    match raw(&result) {
        Ok(result) => err.with_result(result),
        Err(_) => err,
    }
}

#[derive(Serialize)]
struct Created<'a> {
    created: bool,
    flow: views::FlowView<'a>,
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

fn mutation(out: &MutationOutcome) -> ActionResult {
    let flow = out.flow.as_ref().into_option().map(views::flow);
    if out.code == MutationCode::APPLIED {
        return done(&Mutation {
            applied: true,
            code: None,
            flow,
            current: None,
        });
    }
    let (code, message) = match out.code {
        MutationCode::NOT_FOUND => (Code::NotFound, texts::TASKFLOW_NOT_FOUND),
        MutationCode::NOT_MANAGED => (Code::NotManaged, texts::NOT_MANAGED),
        MutationCode::REVISION_CONFLICT => (Code::RevisionConflict, texts::REVISION_CONFLICT),
        MutationCode::CANCEL_REQUESTED => (Code::CancelRequested, texts::CANCEL_REQUESTED),
        _ => (Code::MutationRejected, texts::MUTATION_REJECTED),
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
    /// Present whenever the flow was found, `[]` when it has no tasks.
    #[serde(skip_serializing_if = "Option::is_none")]
    tasks: Option<Vec<views::TaskView<'a>>>,
}

fn cancel(out: &CancelOutcome) -> ActionResult {
    let flow = out.flow.as_ref().into_option();
    let found = out.code != CancelCode::NOT_FOUND;
    let already = flow.map(|f| texts::already(f.status.as_str()));
    let reason = match out.code {
        CancelCode::CANCELLED => None,
        CancelCode::NOT_FOUND => Some(texts::FLOW_NOT_FOUND),
        CancelCode::PENDING => Some(texts::CANCEL_PENDING),
        CancelCode::TERMINAL => Some(already.as_deref().unwrap_or(texts::TERMINAL)),
        CancelCode::REVISION_CONFLICT => Some(texts::CANCEL_RACED),
        _ => Some(texts::CANCEL_REJECTED),
    };
    let result = raw(&Cancel {
        found,
        cancelled: out.code == CancelCode::CANCELLED,
        reason,
        flow: flow.map(views::flow),
        tasks: found.then(|| views::tasks(&out.tasks)),
    })?;
    let code = match out.code {
        CancelCode::CANCELLED => return Ok(Reply::Done(result)),
        CancelCode::PENDING => return Ok(Reply::CancelPending(result)),
        CancelCode::NOT_FOUND => {
            return Err(ApiError::new(Code::NotFound)
                .with_message(texts::TASKFLOW_NOT_FOUND)
                .with_result(result))
        }
        CancelCode::TERMINAL => Code::Terminal,
        CancelCode::REVISION_CONFLICT => Code::RevisionConflict,
        _ => Code::CancelRejected,
    };
    let message = reason.unwrap_or(texts::CANCEL_REJECTED).to_owned();
    Err(ApiError::new(code)
        .with_message(message)
        .with_result(result))
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

fn run_task(out: &RunTaskOutcome) -> ActionResult {
    let flow = out.flow.as_ref().into_option();
    if matches!(out.code, RunTaskCode::CREATED | RunTaskCode::REUSED) {
        return done(&TaskRun {
            found: None,
            created: true,
            reused: out.code == RunTaskCode::REUSED,
            reason: None,
            flow: flow.map(views::flow),
            task: out.task.as_ref().into_option().map(views::task),
        });
    }
    let already = flow.map(|f| texts::already(f.status.as_str()));
    let (code, reason) = match out.code {
        RunTaskCode::NOT_FOUND => (Code::NotFound, texts::FLOW_NOT_FOUND),
        RunTaskCode::TERMINAL => (
            Code::Terminal,
            already.as_deref().unwrap_or(texts::TERMINAL),
        ),
        RunTaskCode::CANCEL_REQUESTED => (Code::CancelRequested, texts::CANCEL_REQUESTED),
        RunTaskCode::NOT_MANAGED => (Code::NotManaged, texts::NO_MANAGED_CHILDREN),
        _ => (Code::TaskNotCreated, texts::TASK_NOT_CREATED_REASON),
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
        texts::TASKFLOW_NOT_FOUND
    } else {
        reason
    };
    Err(ApiError::new(code)
        .with_message(message.to_owned())
        .with_result(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::{ROption, RVec};

    fn persist_failed_as(shape: Shape) -> ApiError {
        let err = TaskFlowError::new(ErrorCode::PERSIST_FAILED, "disk full");
        written(shape, &RResult::RErr(err)).unwrap_err()
    }

    fn result_of(reply: &ActionResult) -> serde_json::Value {
        let raw = match reply {
            Ok(r) => r.result().get().to_owned(),
            Err(e) => e.result.as_ref().unwrap().get().to_owned(),
        };
        serde_json::from_str(&raw).unwrap()
    }

    #[test]
    fn a_write_the_store_could_not_persist_is_503_with_the_actions_result_shape() {
        let cases = [
            (
                Shape::Create,
                "TaskFlow persistence failed.",
                json!({"created": false, "code": "persist_failed"}),
            ),
            (
                Shape::Mutation,
                "TaskFlow persistence failed.",
                json!({"applied": false, "code": "persist_failed"}),
            ),
            (
                Shape::Cancel,
                "Flow persistence failed.",
                json!({"found": true, "cancelled": false, "reason": "Flow persistence failed."}),
            ),
            (
                Shape::RunTask,
                "Task persistence failed.",
                json!({"found": true, "created": false, "reason": "Task persistence failed."}),
            ),
        ];
        for (shape, message, result) in cases {
            let err = persist_failed_as(shape);
            assert_eq!(
                (err.code, err.code.status()),
                (Code::PersistFailed, 503),
                "{shape:?}"
            );
            assert_eq!(err.message, message, "{shape:?}");
            let got: serde_json::Value =
                serde_json::from_str(err.result.as_ref().unwrap().get()).unwrap();
            assert_eq!(got, result, "{shape:?}");
        }
    }

    #[test]
    fn other_runtime_failures_are_a_generic_500_without_the_cause() {
        let err = TaskFlowError::new(
            ErrorCode::INTERNAL,
            "sqlite: disk I/O error at /var/secret/path",
        );
        let api = written(Shape::Create, &RResult::RErr(err)).unwrap_err();
        assert_eq!((api.code, api.code.status()), (Code::InternalError, 500));
        assert_eq!(api.message, "internal error");
        assert!(api.result.is_none());
    }

    #[test]
    fn a_cancel_that_found_no_flow_has_neither_flow_nor_tasks() {
        let out = written(
            Shape::Cancel,
            &RResult::ROk(WriteOutcome::Cancel(CancelOutcome {
                code: CancelCode::NOT_FOUND,
                flow: ROption::RNone,
                tasks: RVec::new(),
            })),
        );
        assert_eq!(
            result_of(&out),
            json!({"found": false, "cancelled": false, "reason": "Flow not found."})
        );
        let err = out.unwrap_err();
        assert_eq!(
            (err.code, &*err.message),
            (Code::NotFound, "TaskFlow not found.")
        );
    }
}
