//! What the host gives a plugin: the runtime handle and bound TaskFlows.
//!
//! Every method must not panic: a panic that reaches the boundary exits the
//! whole process. Methods of [`BoundTaskFlow`] that write may wait on disk,
//! so a plugin calls them from a thread that may block, or uses
//! [`BoundTaskFlow::submit`], which completes through a callback. A read
//! that waits for a flow to change registers a [`FlowWaker`] with
//! [`BoundTaskFlow::watch`]; no thread waits for it either. Reads may
//! wait on disk too: [`BoundTaskFlow::read`] answers through a
//! [`ReadCompletion`], at once when the host has the answer in memory.

use abi_stable::{
    sabi_trait,
    std_types::{RBox, ROption, RResult, RStr, RString, RVec},
    StableAbi,
};

use crate::outcome::{CancelOutcome, ErrorCode, MutationOutcome, RunTaskOutcome, TaskFlowError};
use crate::records::{
    CreateFlow, Fail, Finish, FlowRecord, RequestCancel, Resume, RunTask, SetWaiting, TaskSummary,
};

/// A write submitted with [`BoundTaskFlow::submit`]: the input of one of the
/// writing methods.
#[allow(clippy::large_enum_variant)]
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum WriteRequest {
    Create(CreateFlow),
    SetWaiting(SetWaiting),
    Resume(Resume),
    Finish(Finish),
    Fail(Fail),
    RequestCancel(RequestCancel),
    Cancel(RString),
    RunTask(RunTask),
}

/// Makes a submitted write retry-safe: the first write under `key` in
/// `scope` runs and its reply is stored in the same commit as its effect;
/// a later write under the same key gets that reply instead of running.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct IdempotencyClaim {
    /// Whose keys these are (the webhooks plugin uses its route id): keys
    /// of different scopes never meet.
    pub scope: RString,
    pub key: RString,
    /// Identifies what the request asked (hex SHA-256 of its canonical
    /// form). The same key with another fingerprint is `KeyMismatch`.
    pub fingerprint: RString,
    /// How long the stored reply is kept after the commit.
    pub ttl_ms: u64,
}

/// A reply stored with a keyed write, replayed byte for byte.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct StoredReply {
    pub status: u16,
    pub body: RVec<u8>,
}

/// The outcome of a [`WriteRequest`], of the matching method's type.
// Passed by value once per write; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    Created(FlowRecord),
    Mutation(MutationOutcome),
    Cancel(CancelOutcome),
    RunTask(RunTaskOutcome),
    /// The claim's key already has a live reply for the same fingerprint:
    /// that reply. Nothing was written.
    Replayed(StoredReply),
    /// The claim's key already has a live reply for another fingerprint.
    /// Nothing was written.
    KeyMismatch,
}

/// Receives the outcome of a submitted write. Implemented by the caller.
/// For a write submitted with a claim, the host first calls `render` (at
/// most once, before the commit, on its writer thread) to get the reply it
/// stores with the write. The host then calls `complete` exactly once,
/// possibly from another thread, after the write is durable (or has
/// failed). If the host drops the object without calling `complete`, the
/// write's outcome is unknown.
#[sabi_trait]
pub trait WriteCompletion: Send + Sync {
    /// The reply a keyed write's outcome gets. `RNone` stores nothing, and
    /// a retry of the key runs anew.
    fn render(&self, outcome: &WriteOutcome) -> ROption<StoredReply>;
    #[sabi(last_prefix_field)]
    fn complete(&self, outcome: RResult<WriteOutcome, TaskFlowError>);
}

pub type WriteCompletionBox = WriteCompletion_TO<'static, RBox<()>>;

/// A read, as [`BoundTaskFlow::read`] takes it: the input of one of the
/// reading methods.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum ReadRequest {
    Get(RString),
    List,
    FindLatest,
    Resolve(RString),
    TaskSummary(RString),
}

/// The answer to a [`ReadRequest`], of the matching method's type:
/// `Flow` for `Get`, `FindLatest` and `Resolve`, `Flows` for `List`,
/// `Summary` for `TaskSummary`.
// Passed by value once per read; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub enum ReadOutcome {
    Flow(ROption<FlowRecord>),
    Flows(RVec<FlowRecord>),
    Summary(ROption<TaskSummary>),
}

/// Receives the answer to a [`BoundTaskFlow::read`]. Implemented by the
/// caller. The host calls `complete` exactly once: on the calling thread
/// before `read` returns when it has the answer in memory, otherwise later
/// from one of its own threads. It must return at once: no blocking, no
/// calls back into the host.
#[sabi_trait]
pub trait ReadCompletion: Send + Sync {
    #[sabi(last_prefix_field)]
    fn complete(&self, outcome: RResult<ReadOutcome, TaskFlowError>);
}

pub type ReadCompletionBox = ReadCompletion_TO<'static, RBox<()>>;

/// Wakes a read that waits for a flow to change (see
/// [`BoundTaskFlow::watch`]). Implemented by the caller.
///
/// The host calls `wake` at most once, from any thread (usually its writer
/// thread, right after a commit, with other waiters still to wake), so it
/// must return at once: no blocking, no I/O, no calls back into the host.
#[sabi_trait]
pub trait FlowWaker: Send + Sync {
    #[sabi(last_prefix_field)]
    fn wake(&self);
}

pub type FlowWakerBox = FlowWaker_TO<'static, RBox<()>>;

/// Names one registration made with [`BoundTaskFlow::watch`], for
/// [`BoundTaskFlow::unwatch`].
#[repr(C)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WatchTicket {
    pub id: u64,
}

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

/// Starts a [`Runtime::log`] message that carries structured fields. A
/// control character, so no plain message starts with it by accident; a
/// host that predates the convention logs the text as it is.
pub const STRUCTURED_LOG_MARK: char = '\u{1e}';

/// Where a cluster of Gateways counts its limits together (see
/// [`Runtime::shared_limits`]).
#[repr(C)]
#[derive(StableAbi, Clone, PartialEq)]
pub struct SharedLimits {
    /// The Redis URL, resolved; it may hold a password: never log it.
    pub redis_url: RString,
    /// Prefixed to every key, so clusters sharing one Redis stay apart.
    pub key_prefix: RString,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("redis_url", &"<redacted>")
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
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

/// Wakes a subscriber's delivery worker. Implemented by the plugin.
#[sabi_trait]
pub trait EventWaker: Send + Sync {
    /// New events were committed for the subscription. Called on the host's
    /// writer thread after the commit: it must return at once (set a flag,
    /// notify a task) and never call back into the store.
    #[sabi(last_prefix_field)]
    fn wake(&self);
}

pub type EventWakerBox = EventWaker_TO<'static, RBox<()>>;

/// One committed flow change waiting in the host's outbox for one
/// subscription scope.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// The host's id of the event; settle it by this id.
    pub id: u64,
    /// The change created the flow; otherwise it changed its status.
    pub created: bool,
    /// The flow as that change left it (its `revision` is the event's).
    pub flow: FlowRecord,
    /// When the change was committed, in ms since the Unix epoch.
    pub occurred_at: u64,
    /// Delivery attempts already settled for this event.
    pub attempts: u32,
}

/// What [`BoundTaskFlow::due_events`] claimed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct DueEvents {
    pub events: RVec<OutboxEvent>,
    /// The earliest time another event of the scope becomes due (a retry,
    /// or a lease running out), if any is waiting.
    pub next_due_at: ROption<u64>,
}

/// How a delivery attempt ended.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// The receiver accepted it: never sent again.
    Delivered,
    /// Try again at this time (ms since the Unix epoch).
    Retry { at: u64 },
    /// No attempts left: kept for operators, never sent again.
    Dead,
    /// The receiver said the event is not wanted (HTTP 410): dropped.
    Gone,
}

/// The end of one delivery attempt, reported to the host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct Settlement {
    pub id: u64,
    pub outcome: EventOutcome,
    /// What the attempt got, for operators (`HTTP 503`, `timed out`). Never
    /// a secret, a URL or a response body.
    pub error: ROption<RString>,
}

fn unsupported(method: &str) -> TaskFlowError {
    TaskFlowError::new(
        ErrorCode::UNSUPPORTED,
        format!("the Gateway does not support {method}"),
    )
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
    fn run_task(&self, input: RunTask) -> RResult<RunTaskOutcome, TaskFlowError>;
    /// Submits a write without blocking: `done` is completed once the write
    /// is durable or has failed. Callers on an event loop use this instead of
    /// the blocking methods, so no thread waits on disk. With a `claim`, the
    /// write is retry-safe (see [`IdempotencyClaim`]).
    #[sabi(last_prefix_field)]
    fn submit(
        &self,
        request: WriteRequest,
        claim: ROption<IdempotencyClaim>,
        done: WriteCompletionBox,
    );

    // Methods below were appended after `submit`; a host built before them
    // lacks them, and the default bodies answer for it.

    /// Registers `waker` to be woken once the flow `flow_id` is settled for
    /// a reader that has seen `above_revision`: its revision is above it,
    /// it is terminal, or it is missing (or another session's). When that
    /// already holds, `waker` is woken before `watch` returns; otherwise it
    /// is woken right after the commit that makes it hold, once that commit
    /// is visible to reads. Register first and read the flow after the wake
    /// (or the wait's end): no commit falls between the two.
    ///
    /// Every ticket must be released with [`BoundTaskFlow::unwatch`] when
    /// the wait ends, woken or not. A host without waiting reads answers
    /// `ErrorCode::UNSUPPORTED`.
    fn watch(
        &self,
        flow_id: RStr<'_>,
        above_revision: u64,
        waker: FlowWakerBox,
    ) -> RResult<WatchTicket, TaskFlowError> {
        let _ = (flow_id, above_revision, waker);
        RResult::RErr(TaskFlowError::new(
            ErrorCode::UNSUPPORTED,
            "This Gateway does not support waiting reads.",
        ))
    }

    /// Drops the registration of `ticket` (and its waker) if it was not
    /// woken yet. A waker being woken while this runs may still be called
    /// once; later it never is. Unknown tickets are ignored.
    fn unwatch(&self, ticket: WatchTicket) {
        let _ = ticket;
    }

    // Outbox events. The host owns the outbox: it stages one event per
    // subscribed scope in the same commit as each change of this session's
    // flows that the flow's `notifyPolicy` lets through (`done_only`: the
    // change that makes it terminal; `state_changes`: its creation and
    // every change of status; `silent`: none). The subscriber claims due
    // events, delivers them, and settles each attempt. Events of one flow
    // become due one at a time, in revision order: the next only once the
    // one before it is settled for good. These methods wait for the
    // store's writer; call them from a thread that may block. Each has a
    // default body, so a plugin built with them still loads in a host
    // without them (and gets `UNSUPPORTED`).

    /// From now on, stages events for `scope` (1 to 128 characters; the
    /// webhooks plugin uses its route id) and calls `waker` after each
    /// commit that stages one. Subscribing a scope again replaces its
    /// waker. A scope belongs to the session that subscribed it first.
    fn subscribe_events(
        &self,
        scope: RStr<'_>,
        waker: EventWakerBox,
    ) -> RResult<(), TaskFlowError> {
        let _ = (scope, waker);
        RResult::RErr(unsupported("subscribe_events"))
    }

    /// Claims at most `limit` of the scope's events that are due at `now`,
    /// oldest due first: each is leased until `lease_until` (not due again
    /// before then, unless settled with a retry). An event left unsettled
    /// by a process that stopped is due again when the store reopens.
    fn due_events(
        &self,
        scope: RStr<'_>,
        now: u64,
        limit: u32,
        lease_until: u64,
    ) -> RResult<DueEvents, TaskFlowError> {
        let _ = (scope, now, limit, lease_until);
        RResult::RErr(unsupported("due_events"))
    }

    /// Records how attempts on the scope's events ended, in one commit.
    /// Unknown ids and events already settled for good are ignored.
    fn settle_events(
        &self,
        scope: RStr<'_>,
        settlements: RVec<Settlement>,
    ) -> RResult<(), TaskFlowError> {
        let _ = (scope, settlements);
        RResult::RErr(unsupported("settle_events"))
    }

    /// Answers `request` through `done` without making the caller wait on
    /// disk: inline when the answer is in the host's memory (a hot flow),
    /// otherwise from a host thread once it has read it. Callers on an
    /// event loop use this instead of the reading methods. A host without
    /// it completes `done` with `ErrorCode::UNSUPPORTED` (the caller then
    /// uses the reading methods).
    fn read(&self, request: ReadRequest, done: ReadCompletionBox) {
        let _ = request;
        done.complete(RResult::RErr(unsupported("read")));
    }
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
    /// Logs one record. A `message` that starts with
    /// [`STRUCTURED_LOG_MARK`] carries fields: the rest is a JSON object
    /// `{"message": "<text>", "fields": {"<name>": <value>, ...}}`, which the
    /// host logs as that message with those fields.
    fn log(&self, level: LogLevel, target: RStr<'_>, message: RStr<'_>);
    /// Records above this level would be dropped by the host.
    #[sabi(last_prefix_field)]
    fn max_log_level(&self) -> LogLevel;

    // Appended after the 0.2.0 interface: a default body, so a plugin
    // built with it still loads in a host without it.

    /// Where rate windows and in-flight slots are counted across the
    /// cluster when the Gateway runs as one of several (`cluster`); `RNone`
    /// for a single Gateway, whose plugins keep their limits in process.
    fn shared_limits(&self) -> ROption<SharedLimits> {
        ROption::RNone
    }
}

pub type RuntimeBox = Runtime_TO<'static, RBox<()>>;
