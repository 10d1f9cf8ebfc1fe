//! Runs a validated [`Action`] for a route: the child-session guard, then a
//! read submitted to the bound TaskFlow and awaited (answered at once when
//! the host has it in memory), or a write submitted to it and awaited until
//! durable. No HTTP here; [`run`] is the one entry point.

mod outcomes;

use abi_stable::std_types::{ROption, RResult, RString};
use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::runtime::{
    BoundTaskFlowBox, IdempotencyClaim, ReadOutcome, ReadRequest, StoredReply, WriteRequest,
};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::completion::{self, Keyed, Render, Written};
use crate::error::{ApiError, Code};
use crate::idempotency::{self, Marker};
use crate::reading;
use crate::request::Action;
use crate::response;
use crate::routes::Route;
use crate::texts;
use crate::views;
use crate::wait::{self, WaitFor};

pub use outcomes::written;

/// What an action answers when it did what was asked: a 200 with its
/// `result`, or a 202 `cancel_pending` (the cancel was recorded, and the
/// flow ends once its children do). Everything else is an [`ApiError`].
#[derive(Debug)]
pub enum Reply {
    Done(Box<RawValue>),
    CancelPending(Box<RawValue>),
}

impl Reply {
    pub fn result(&self) -> &RawValue {
        match self {
            Self::Done(r) | Self::CancelPending(r) => r,
        }
    }
}

pub type ActionResult = Result<Reply, ApiError>;

/// What a request is answered with.
#[derive(Debug)]
pub enum Answer {
    /// The action's reply or error (or a refusal before it ran).
    Result(ActionResult),
    /// A keyed write's stored reply, sent byte for byte: the one stored for
    /// this request's own write, or, when `replayed`, an earlier one's.
    Stored { reply: StoredReply, replayed: bool },
}

impl From<ApiError> for Answer {
    fn from(err: ApiError) -> Self {
        Self::Result(Err(err))
    }
}

/// Whether an action is a read that waits for its flow to change (and so
/// must not hold an in-flight slot while it runs).
pub fn waits(action: &Action) -> bool {
    matches!(action, Action::GetFlow { wait: Some(_), .. })
}

/// Whether an action writes (and so may carry an idempotency key).
pub fn writes(action: &Action) -> bool {
    !matches!(
        action,
        Action::GetFlow { .. }
            | Action::ListFlows
            | Action::FindLatestFlow
            | Action::ResolveFlow { .. }
            | Action::GetTaskSummary { .. }
    )
}

/// An idempotency key claimed for a write (see [`crate::idempotency`]).
pub struct Key {
    pub key: String,
    pub fingerprint: [u8; 32],
    pub marker: Marker,
}

/// Runs `action` as `route`, retry-safe when a `key` is given (writes
/// only). Writes may wait on disk: they are submitted to the runtime and
/// awaited, so no worker thread blocks and concurrent writes share one
/// commit.
pub async fn run(route: &Route, action: Action, key: Option<Key>) -> Answer {
    #[cfg(test)]
    tests::panic_on_request(&action);
    if let Err(e) = check_child_session(&route.session_key, &action) {
        return e.into();
    }
    let request = match plan(action, &route.controller_id) {
        Plan::Read(read) => return Answer::Result(self::read(&route.flows, read).await),
        Plan::WaitThenRead { flow_id, wait } => {
            let _waiting = route.metrics.waiter();
            // However the wait ends, the answer is the flow as it is then.
            if let Err(e) = wait::until_settled(route, &flow_id, wait).await {
                return e.into();
            }
            return Answer::Result(read_waited_flow(&route.flows, flow_id).await);
        }
        Plan::Write(request) => request,
    };
    let shape = outcomes::Shape::of(&request);
    let keyed = key.map(|k| keyed(route, k));
    match completion::submit(&route.flows, request, keyed).await {
        Written::Outcome(outcome) => Answer::Result(written(shape, &outcome)),
        Written::Stored { reply, replayed } => Answer::Stored { reply, replayed },
    }
}

/// The claim for a keyed write, and how its reply is rendered for storage:
/// exactly as it would be answered, and never a 5xx (a retry of a failure
/// runs anew).
fn keyed(route: &Route, key: Key) -> Keyed {
    let route_id = route.id.clone();
    let render: Render = Box::new(move |outcome| {
        let (status, body) =
            response::render(Some(&route_id), outcomes::reply_to(outcome).as_ref());
        (status < 500).then(|| StoredReply {
            status,
            body: body.into(),
        })
    });
    Keyed {
        claim: IdempotencyClaim {
            scope: route.id.as_str().into(),
            key: key.key.into(),
            fingerprint: idempotency::hex(&key.fingerprint).into(),
            ttl_ms: u64::try_from(route.idempotency.ttl.as_millis()).unwrap_or(u64::MAX),
        },
        marker: key.marker,
        render,
    }
}

/// What an action does: a read, a read that first waits for its flow to
/// change, or a write.
// Lives on the stack for one request; boxing the write would only allocate.
#[allow(clippy::large_enum_variant)]
enum Plan {
    Read(Read),
    WaitThenRead { flow_id: String, wait: WaitFor },
    Write(WriteRequest),
}

/// The five reads.
enum Read {
    GetFlow(String),
    ListFlows,
    FindLatestFlow,
    ResolveFlow(String),
    GetTaskSummary(String),
}

/// Splits an action into a read or a write. `default_controller` is the
/// route's `controllerId`, used when `create_flow` names none.
fn plan(action: Action, default_controller: &str) -> Plan {
    let request = match action {
        Action::CreateFlow(mut input) => {
            if input.controller_id.is_empty() {
                input.controller_id = RString::from(default_controller);
            }
            WriteRequest::Create(input)
        }
        Action::GetFlow {
            flow_id,
            wait: Some(wait),
        } => return Plan::WaitThenRead { flow_id, wait },
        Action::GetFlow {
            flow_id,
            wait: None,
        } => return Plan::Read(Read::GetFlow(flow_id)),
        Action::ListFlows => return Plan::Read(Read::ListFlows),
        Action::FindLatestFlow => return Plan::Read(Read::FindLatestFlow),
        Action::ResolveFlow { token } => return Plan::Read(Read::ResolveFlow(token)),
        Action::GetTaskSummary { flow_id } => return Plan::Read(Read::GetTaskSummary(flow_id)),
        Action::SetWaiting(i) => WriteRequest::SetWaiting(i),
        Action::ResumeFlow(i) => WriteRequest::Resume(i),
        Action::FinishFlow(i) => WriteRequest::Finish(i),
        Action::FailFlow(i) => WriteRequest::Fail(i),
        Action::RequestCancel(i) => WriteRequest::RequestCancel(i),
        Action::CancelFlow { flow_id } => WriteRequest::Cancel(flow_id.into()),
        Action::RunTask(i) => WriteRequest::RunTask(i),
    };
    Plan::Write(request)
}

async fn read(flows: &BoundTaskFlowBox, read: Read) -> ActionResult {
    let request = match read {
        Read::GetFlow(flow_id) => ReadRequest::Get(flow_id.into()),
        Read::ListFlows => ReadRequest::List,
        Read::FindLatestFlow => ReadRequest::FindLatest,
        Read::ResolveFlow(token) => ReadRequest::Resolve(token.into()),
        Read::GetTaskSummary(flow_id) => ReadRequest::TaskSummary(flow_id.into()),
    };
    let is_summary = matches!(request, ReadRequest::TaskSummary(_));
    match reading::read(flows, request).await {
        RResult::ROk(ReadOutcome::Flow(flow)) if !is_summary => done(&OneFlow {
            flow: flow.as_ref().into_option().map(views::flow),
        }),
        RResult::ROk(ReadOutcome::Flows(list)) => done(&FlowList {
            flows: views::flows(&list),
        }),
        RResult::ROk(ReadOutcome::Summary(summary)) if is_summary => done(&Summary {
            summary: summary.as_ref().into_option().map(views::SummaryView),
        }),
        RResult::ROk(other) => {
            let _ = other;
            log::error!(target: "webhooks", "TaskFlow runtime answered a read with another kind of answer");
            Err(ApiError::new(Code::InternalError))
        }
        RResult::RErr(e) => Err(internal(&e)),
    }
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

/// A waiting read's answer: the flow as it is now, or 404 `not_found`
/// when there is none (an ordinary `get_flow` answers `flow: null`
/// instead, as OpenClaw does; a waiting client must not mistake a typo for
/// a flow that has not changed yet).
async fn read_waited_flow(flows: &BoundTaskFlowBox, flow_id: String) -> ActionResult {
    match reading::read(flows, ReadRequest::Get(flow_id.into())).await {
        RResult::ROk(ReadOutcome::Flow(ROption::RSome(flow))) => done(&OneFlow {
            flow: Some(views::flow(&flow)),
        }),
        RResult::ROk(ReadOutcome::Flow(ROption::RNone)) => Err(ApiError::new(Code::NotFound)
            .with_message(texts::TASKFLOW_NOT_FOUND)
            .with_result(raw(&OneFlow { flow: None })?)),
        RResult::ROk(_) => {
            log::error!(target: "webhooks", "TaskFlow runtime answered a read with another kind of answer");
            Err(ApiError::new(Code::InternalError))
        }
        RResult::RErr(e) => Err(internal(&e)),
    }
}

/// Refuses a `childSessionKey` outside the route's session tree: it must
/// start with `<sessionKey>:` (ASCII case-insensitive), as in OpenClaw.
fn check_child_session(session_key: &str, action: &Action) -> Result<(), ApiError> {
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
    // No `found`: the guard runs before any lookup.
    let result = raw(&serde_json::json!({
        "created": false,
        "reason": texts::CHILD_SESSION_FORBIDDEN,
    }))?;
    Err(ApiError::new(Code::ChildSessionForbidden).with_result(result))
}

fn done<T: Serialize>(value: &T) -> ActionResult {
    raw(value).map(Reply::Done)
}

fn raw<T: Serialize>(value: &T) -> Result<Box<RawValue>, ApiError> {
    serde_json::value::to_raw_value(value).map_err(|e| {
        log::error!(target: "webhooks", "could not serialise a result: {e}");
        ApiError::new(Code::InternalError)
    })
}

/// A fault of the host: logged once here with its cause, answered with a
/// generic message.
fn internal(e: &TaskFlowError) -> ApiError {
    if e.code == openclaw_ffi::outcome::ErrorCode::UNAVAILABLE {
        log::warn!(target: "webhooks", "TaskFlow store unavailable: {}", e.message);
        return ApiError::new(Code::StoreUnavailable);
    }
    log::error!(target: "webhooks", "TaskFlow runtime failed: {}", e.message);
    ApiError::new(Code::InternalError)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::request;
    use serde_json::json;

    /// The flow id that makes a unit-test build panic inside an action, so
    /// the handler's panic path runs for real. Never compiled into the
    /// library.
    pub const PANIC_FLOW_ID: &str = "panic-in-unit-test";

    pub fn panic_on_request(action: &Action) {
        if matches!(action, Action::GetFlow { flow_id, .. } if flow_id == PANIC_FLOW_ID) {
            panic!("a bug inside an action");
        }
    }

    fn run_task_action(child: &str) -> Action {
        request::parse(&json!({"action":"run_task","flowId":"f","runtime":"acp","task":"t","childSessionKey":child}))
            .unwrap()
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
            let result: serde_json::Value =
                serde_json::from_str(err.result.as_ref().unwrap().get()).unwrap();
            assert_eq!(
                result,
                json!({"created": false, "reason": texts::CHILD_SESSION_FORBIDDEN})
            );
        }
    }
}
