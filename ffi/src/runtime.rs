//! What the host gives a plugin: the runtime handle and bound TaskFlows.
//!
//! Every method is synchronous and must not panic: a panic that reaches the
//! boundary exits the whole process. Methods of [`BoundTaskFlow`] that write
//! may wait on disk, so a plugin calls them from a thread that may block.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::outcome::{CancelOutcome, MutationOutcome, RunTaskOutcome, TaskFlowError};
use crate::records::{
    CreateFlow, Fail, Finish, FlowRecord, RequestCancel, Resume, RunTask, SetWaiting, TaskSummary,
};

#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Gateway settings a plugin needs to resolve client addresses.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// `gateway.trustedProxies`: IP addresses or CIDR blocks.
    pub trusted_proxies: RVec<RString>,
    /// `gateway.allowRealIpFallback`.
    pub allow_real_ip_fallback: bool,
}

/// The managed flows of one session. Every method is scoped to that session:
/// a flow owned by another session behaves exactly like a missing one.
#[sabi_trait]
pub trait BoundTaskFlow: Send + Sync {
    /// The session key this binding acts as.
    fn session_key(&self) -> RString;
    fn create_managed(&self, input: CreateFlow) -> RResult<FlowRecord, TaskFlowError>;
    fn get(&self, flow_id: RStr<'_>) -> RResult<ROption<FlowRecord>, TaskFlowError>;
    /// Newest first.
    fn list(&self) -> RResult<RVec<FlowRecord>, TaskFlowError>;
    /// The newest flow of any status.
    fn find_latest(&self) -> RResult<ROption<FlowRecord>, TaskFlowError>;
    /// By flow id, or by the bound session key (its newest non-terminal flow).
    fn resolve(&self, token: RStr<'_>) -> RResult<ROption<FlowRecord>, TaskFlowError>;
    fn get_task_summary(&self, flow_id: RStr<'_>) -> RResult<ROption<TaskSummary>, TaskFlowError>;
    fn set_waiting(&self, input: SetWaiting) -> RResult<MutationOutcome, TaskFlowError>;
    fn resume(&self, input: Resume) -> RResult<MutationOutcome, TaskFlowError>;
    fn finish(&self, input: Finish) -> RResult<MutationOutcome, TaskFlowError>;
    fn fail(&self, input: Fail) -> RResult<MutationOutcome, TaskFlowError>;
    fn request_cancel(&self, input: RequestCancel) -> RResult<MutationOutcome, TaskFlowError>;
    /// Cancels the flow's active child task records, then the flow.
    fn cancel(&self, flow_id: RStr<'_>) -> RResult<CancelOutcome, TaskFlowError>;
    /// Records a child task; launches nothing.
    #[sabi(last_prefix_field)]
    fn run_task(&self, input: RunTask) -> RResult<RunTaskOutcome, TaskFlowError>;
}

pub type BoundTaskFlowBox = BoundTaskFlow_TO<'static, RBox<()>>;

/// The host, as seen by a plugin.
#[sabi_trait]
pub trait Runtime: Send + Sync {
    /// Binds the TaskFlow runtime to one session. An empty key is refused.
    fn bind_session(&self, session_key: RStr<'_>) -> RResult<BoundTaskFlowBox, TaskFlowError>;
    /// Resolves a SecretRef through the Gateway's secret providers. The
    /// error names the reference and the reason, never a secret value.
    fn resolve_secret(
        &self,
        source: RStr<'_>,
        provider: RStr<'_>,
        id: RStr<'_>,
    ) -> RResult<RString, RString>;
    /// The listening socket the Gateway bound for this plugin, as a raw file
    /// descriptor. Ownership moves to the caller; later calls return `RNone`.
    fn take_listener(&self) -> ROption<i32>;
    fn settings(&self) -> GatewaySettings;
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);
    /// Records above this level would be dropped by the host.
    #[sabi(last_prefix_field)]
    fn max_log_level(&self) -> LogLevel;
}

pub type RuntimeBox = Runtime_TO<'static, RBox<()>>;
