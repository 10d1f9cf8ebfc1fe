//! The human-readable texts of the wire contract, in one place. Clients
//! of the OpenClaw plugin may match on them, so they are copied exactly:
//! an envelope's `error` and a result's `reason` differ in places
//! (`TaskFlow not found.` against `Flow not found.`).

/// `error` of every not-found action outcome.
pub const TASKFLOW_NOT_FOUND: &str = "TaskFlow not found.";
/// `reason` of a not-found `cancel_flow` or `run_task` result.
pub const FLOW_NOT_FOUND: &str = "Flow not found.";
pub const NOT_MANAGED: &str = "TaskFlow is not managed by this webhook surface.";
pub const REVISION_CONFLICT: &str = "TaskFlow changed since the caller's expected revision.";
pub const CANCEL_REQUESTED: &str = "Flow cancellation has already been requested.";
pub const TERMINAL: &str = "TaskFlow is already terminal.";
pub const TASK_NOT_CREATED: &str = "TaskFlow task was not created.";
pub const CANCEL_REJECTED: &str = "TaskFlow cancellation was rejected.";
pub const MUTATION_REJECTED: &str = "TaskFlow mutation was rejected.";
pub const CANCEL_PENDING: &str = "One or more child tasks are still active.";
/// `reason` of a cancel that lost a race with another write.
pub const CANCEL_RACED: &str = "Flow changed while cancellation was in progress.";
/// `reason` of a `run_task` refused by a flow without managed children.
pub const NO_MANAGED_CHILDREN: &str = "Flow does not accept managed child tasks.";
/// `reason` of a `run_task` the runtime declined for another reason.
pub const TASK_NOT_CREATED_REASON: &str = "Task was not created.";
pub const CHILD_SESSION_FORBIDDEN: &str =
    "childSessionKey must be a descendant of the route's session tree.";
pub const PERSIST_FAILED: &str = "TaskFlow persistence failed.";
/// A read the store could not answer because its database is unreachable.
pub const STORE_UNAVAILABLE: &str = "TaskFlow store unavailable.";
/// `reason` of a `cancel_flow` whose write could not be persisted.
pub const FLOW_PERSIST_FAILED: &str = "Flow persistence failed.";
/// `reason` of a `run_task` whose write could not be persisted.
pub const TASK_PERSIST_FAILED: &str = "Task persistence failed.";

/// `reason` (and `error`) of an action on a flow that has already ended.
pub fn already(status: &str) -> String {
    format!("Flow is already {status}.")
}
