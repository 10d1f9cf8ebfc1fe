//! Flow and task records, the task summary, and method inputs.
//!
//! Strings are `RString`, optional values `ROption`. JSON payloads
//! (`stateJson`, `waitJson`) travel as their JSON text: `RSome("null")` is a
//! stored JSON `null`, `RNone` is "absent". Timestamps are milliseconds since
//! the Unix epoch.

use abi_stable::{
    std_types::{ROption, RString},
    StableAbi,
};

/// Status of a flow. `succeeded`, `failed`, `cancelled` and `lost` are
/// terminal, and so is `blocked` once it has an `endedAt`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowStatus {
    Queued,
    Running,
    Waiting,
    Blocked,
    Succeeded,
    Failed,
    Cancelled,
    Lost,
}

impl FlowStatus {
    pub const ALL: [FlowStatus; 8] = [
        Self::Queued,
        Self::Running,
        Self::Waiting,
        Self::Blocked,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Lost,
    ];

    /// The wire spelling (`"queued"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Waiting => "waiting",
            Self::Blocked => "blocked",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How a flow is driven. Flows created through the webhooks surface are
/// always `managed`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Managed,
    TaskMirrored,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Managed => "managed",
            Self::TaskMirrored => "task_mirrored",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Managed, Self::TaskMirrored]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyPolicy {
    DoneOnly,
    StateChanges,
    Silent,
}

impl NotifyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DoneOnly => "done_only",
            Self::StateChanges => "state_changes",
            Self::Silent => "silent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::DoneOnly, Self::StateChanges, Self::Silent]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskRuntime {
    Subagent,
    Acp,
    Cli,
    Cron,
}

impl TaskRuntime {
    pub const ALL: [TaskRuntime; 4] = [Self::Subagent, Self::Acp, Self::Cli, Self::Cron];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subagent => "subagent",
            Self::Acp => "acp",
            Self::Cli => "cli",
            Self::Cron => "cron",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Status of a child task. `queued` and `running` are active; the rest are
/// terminal.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Cancelled,
    Lost,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::TimedOut,
        Self::Cancelled,
        Self::Lost,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Lost => "lost",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// A flow as the host stores it, minus the owner: the owner is implied by the
/// binding that returned it.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct FlowRecord {
    pub flow_id: RString,
    pub sync_mode: SyncMode,
    pub controller_id: ROption<RString>,
    pub revision: u64,
    pub status: FlowStatus,
    pub notify_policy: NotifyPolicy,
    pub goal: RString,
    pub current_step: ROption<RString>,
    pub blocked_task_id: ROption<RString>,
    pub blocked_summary: ROption<RString>,
    /// JSON text; `RNone` when absent.
    pub state_json: ROption<RString>,
    /// JSON text; `RNone` when absent.
    pub wait_json: ROption<RString>,
    pub cancel_requested_at: ROption<u64>,
    pub created_at: u64,
    pub updated_at: u64,
    pub ended_at: ROption<u64>,
}

/// A child task linked to a flow.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub task_id: RString,
    pub runtime: TaskRuntime,
    pub source_id: ROption<RString>,
    pub child_session_key: ROption<RString>,
    pub parent_flow_id: ROption<RString>,
    pub parent_task_id: ROption<RString>,
    pub agent_id: ROption<RString>,
    pub run_id: ROption<RString>,
    pub label: ROption<RString>,
    pub error: ROption<RString>,
    pub progress_summary: ROption<RString>,
    pub terminal_summary: ROption<RString>,
    pub terminal_outcome: ROption<RString>,
    /// Always `"session"` for tasks created through `run_task`.
    pub scope_kind: RString,
    pub task: RString,
    pub status: TaskStatus,
    pub delivery_status: RString,
    pub notify_policy: NotifyPolicy,
    pub created_at: u64,
    pub started_at: ROption<u64>,
    pub ended_at: ROption<u64>,
    pub last_event_at: ROption<u64>,
    pub cleanup_after: ROption<u64>,
}

/// Counts over every task linked to one flow, terminal ones included.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskSummary {
    pub total: u64,
    pub active: u64,
    pub terminal: u64,
    /// `failed` + `timed_out` + `lost`.
    pub failures: u64,
    /// Indexed like [`TaskStatus::ALL`].
    pub by_status: [u64; 7],
    /// Indexed like [`TaskRuntime::ALL`].
    pub by_runtime: [u64; 4],
}

/// A change to an optional text field: keep it, clear it, or set it.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq, Eq, Default)]
pub enum TextPatch {
    #[default]
    Keep,
    Clear,
    Set(RString),
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct CreateFlow {
    pub controller_id: RString,
    pub goal: RString,
    pub status: FlowStatus,
    pub notify_policy: NotifyPolicy,
    pub current_step: ROption<RString>,
    pub state_json: ROption<RString>,
    pub wait_json: ROption<RString>,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct SetWaiting {
    pub flow_id: RString,
    pub expected_revision: u64,
    pub current_step: TextPatch,
    pub blocked_task_id: TextPatch,
    pub blocked_summary: TextPatch,
    /// `RNone` keeps the stored value.
    pub state_json: ROption<RString>,
    /// `RNone` keeps the stored value.
    pub wait_json: ROption<RString>,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Resume {
    pub flow_id: RString,
    pub expected_revision: u64,
    /// `Queued` or `Running`.
    pub status: FlowStatus,
    pub current_step: TextPatch,
    pub state_json: ROption<RString>,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Finish {
    pub flow_id: RString,
    pub expected_revision: u64,
    pub state_json: ROption<RString>,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Fail {
    pub flow_id: RString,
    pub expected_revision: u64,
    pub state_json: ROption<RString>,
    pub blocked_task_id: TextPatch,
    pub blocked_summary: TextPatch,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct RequestCancel {
    pub flow_id: RString,
    pub expected_revision: u64,
}

#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct RunTask {
    pub flow_id: RString,
    pub runtime: TaskRuntime,
    pub task: RString,
    pub source_id: ROption<RString>,
    pub child_session_key: ROption<RString>,
    pub parent_task_id: ROption<RString>,
    pub agent_id: ROption<RString>,
    pub run_id: ROption<RString>,
    pub label: ROption<RString>,
    pub prefer_metadata: bool,
    pub notify_policy: ROption<NotifyPolicy>,
    /// `Queued` or `Running`.
    pub status: TaskStatus,
    pub started_at: ROption<u64>,
    pub last_event_at: ROption<u64>,
    pub progress_summary: ROption<RString>,
}
