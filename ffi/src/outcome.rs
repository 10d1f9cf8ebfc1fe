//! Typed outcomes of the managed-flow methods.
//!
//! Expected refusals (a stale revision, a terminal flow) are outcome codes in
//! an `ROk`; `RErr(TaskFlowError)` is reserved for failures of the host itself
//! (the store could not persist, an internal fault). Codes are integers behind
//! named constants so that a later minor version can add codes without
//! changing the layout; a side that sees an unknown code treats it as a
//! generic refusal.

use abi_stable::{
    std_types::{ROption, RString, RVec},
    StableAbi,
};

use crate::records::{FlowRecord, TaskRecord};

/// Outcome of `set_waiting`, `resume`, `finish`, `fail` and `request_cancel`.
#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MutationCode(pub u8);

impl MutationCode {
    pub const APPLIED: Self = Self(0);
    /// Missing, or owned by another session (indistinguishable on purpose).
    pub const NOT_FOUND: Self = Self(1);
    pub const NOT_MANAGED: Self = Self(2);
    /// The stored revision differs from the expected one, or the flow is
    /// terminal; `current` carries the stored flow.
    pub const REVISION_CONFLICT: Self = Self(3);
    /// `resume`/`set_waiting` after `request_cancel`.
    pub const CANCEL_REQUESTED: Self = Self(4);
}

/// `flow` is the new flow when applied, the stored flow on a conflict, and
/// `RNone` when not found.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct MutationOutcome {
    pub code: MutationCode,
    pub flow: ROption<FlowRecord>,
}

#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CancelCode(pub u8);

impl CancelCode {
    pub const CANCELLED: Self = Self(0);
    pub const NOT_FOUND: Self = Self(1);
    /// Already terminal: "Flow is already <status>."
    pub const TERMINAL: Self = Self(2);
    /// Child tasks are still active; the intent is recorded.
    pub const PENDING: Self = Self(3);
    /// "Flow changed while cancellation was in progress."
    pub const REVISION_CONFLICT: Self = Self(4);
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct CancelOutcome {
    pub code: CancelCode,
    pub flow: ROption<FlowRecord>,
    /// Every task linked to the flow, newest first.
    pub tasks: RVec<TaskRecord>,
}

#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTaskCode(pub u8);

impl RunTaskCode {
    pub const CREATED: Self = Self(0);
    /// A task with the same run scope existed and was returned instead.
    pub const REUSED: Self = Self(1);
    pub const NOT_FOUND: Self = Self(2);
    /// "Flow does not accept managed child tasks."
    pub const NOT_MANAGED: Self = Self(3);
    /// "Flow cancellation has already been requested."
    pub const CANCEL_REQUESTED: Self = Self(4);
    /// "Flow is already <status>."
    pub const TERMINAL: Self = Self(5);
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct RunTaskOutcome {
    pub code: RunTaskCode,
    pub flow: ROption<FlowRecord>,
    pub task: ROption<TaskRecord>,
}

#[repr(transparent)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u8);

impl ErrorCode {
    /// A fault inside the host; the message is for the log, not the client.
    pub const INTERNAL: Self = Self(0);
    /// The store could not make the write durable; nothing was applied.
    pub const PERSIST_FAILED: Self = Self(1);
    /// The input broke a rule of the runtime (for example an empty session key).
    pub const INVALID_INPUT: Self = Self(2);
    /// The host does not implement the method (it was built before the
    /// method was appended to the interface).
    pub const UNSUPPORTED: Self = Self(3);
    /// The store cannot be reached now (a shared database is down); the
    /// read may be retried.
    pub const UNAVAILABLE: Self = Self(4);
}

/// A failure of the host, as opposed to a refusal of the request.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct TaskFlowError {
    pub code: ErrorCode,
    /// Never contains secrets or other sessions' data.
    pub message: RString,
}

impl TaskFlowError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: RString::from(message.into()),
        }
    }
}
