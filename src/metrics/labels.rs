//! The bounded label values of the metrics: actions, outcomes (codes),
//! idempotency-key uses and callback deliveries.

use crate::error::Code;
use crate::request::Action;

/// The `action` label values: the thirteen actions, then `none` for a
/// request answered before its action was known.
pub const ACTIONS: [&str; 14] = [
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
    "none",
];

/// The `action` label of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionLabel(pub(super) usize);

impl ActionLabel {
    /// A request answered before its action was known.
    pub const NONE: Self = Self(13);

    pub fn of(action: &Action) -> Self {
        Self(match action {
            Action::CreateFlow(_) => 0,
            Action::GetFlow { .. } => 1,
            Action::ListFlows => 2,
            Action::FindLatestFlow => 3,
            Action::ResolveFlow { .. } => 4,
            Action::GetTaskSummary { .. } => 5,
            Action::SetWaiting(_) => 6,
            Action::ResumeFlow(_) => 7,
            Action::FinishFlow(_) => 8,
            Action::FailFlow(_) => 9,
            Action::RequestCancel(_) => 10,
            Action::CancelFlow { .. } => 11,
            Action::RunTask(_) => 12,
        })
    }

    pub fn name(self) -> &'static str {
        ACTIONS[self.0]
    }

    pub(super) fn is_write(self) -> bool {
        self.0 == 0 || (6..=12).contains(&self.0)
    }
}

/// Every error code, in the order of their label index after `ok` and
/// `cancel_pending`. [`code_index`] is the inverse; a unit test keeps the
/// two in step.
pub(super) const CODES: [Code; 30] = [
    Code::NotFound,
    Code::MethodNotAllowed,
    Code::RateLimited,
    Code::UnsupportedMediaType,
    Code::InFlightLimited,
    Code::Unauthorized,
    Code::PayloadTooLarge,
    Code::RequestTimeout,
    Code::InvalidBody,
    Code::InvalidRequest,
    Code::NotManaged,
    Code::RevisionConflict,
    Code::CancelRequested,
    Code::Terminal,
    Code::TaskNotCreated,
    Code::CancelRejected,
    Code::MutationRejected,
    Code::ChildSessionForbidden,
    Code::InvalidIdempotencyKey,
    Code::IdempotencyKeyRequired,
    Code::IdempotencyInProgress,
    Code::IdempotencyKeyMismatch,
    Code::PersistFailed,
    Code::InternalError,
    Code::TooManyWaiters,
    Code::InvalidSignature,
    Code::StaleSignature,
    Code::Forbidden,
    Code::ActionForbidden,
    Code::StoreUnavailable,
];

pub(super) const OUTCOMES: usize = 2 + CODES.len();

/// How many error codes there are; [`code_slot`] numbers them densely.
pub const CODE_COUNT: usize = CODES.len();

/// Every error code.
pub fn codes() -> impl Iterator<Item = Code> {
    CODES.into_iter()
}

/// A dense index of `code`, below [`CODE_COUNT`], for tables kept per code.
pub fn code_slot(code: Code) -> usize {
    code_index(code)
}

/// The index of a code in [`CODES`]. Exhaustive, so that a new code cannot
/// be added without a label.
pub(super) fn code_index(code: Code) -> usize {
    match code {
        Code::NotFound => 0,
        Code::MethodNotAllowed => 1,
        Code::RateLimited => 2,
        Code::UnsupportedMediaType => 3,
        Code::InFlightLimited => 4,
        Code::Unauthorized => 5,
        Code::PayloadTooLarge => 6,
        Code::RequestTimeout => 7,
        Code::InvalidBody => 8,
        Code::InvalidRequest => 9,
        Code::NotManaged => 10,
        Code::RevisionConflict => 11,
        Code::CancelRequested => 12,
        Code::Terminal => 13,
        Code::TaskNotCreated => 14,
        Code::CancelRejected => 15,
        Code::MutationRejected => 16,
        Code::ChildSessionForbidden => 17,
        Code::InvalidIdempotencyKey => 18,
        Code::IdempotencyKeyRequired => 19,
        Code::IdempotencyInProgress => 20,
        Code::IdempotencyKeyMismatch => 21,
        Code::PersistFailed => 22,
        Code::InternalError => 23,
        Code::TooManyWaiters => 24,
        Code::InvalidSignature => 25,
        Code::StaleSignature => 26,
        Code::Forbidden => 27,
        Code::ActionForbidden => 28,
        Code::StoreUnavailable => 29,
    }
}

/// Whether a code refuses a request before its action ran: such answers
/// are rejections (counted by reason, and audited under a cap).
pub fn is_rejection(code: Code) -> bool {
    match code {
        Code::MethodNotAllowed
        | Code::RateLimited
        | Code::UnsupportedMediaType
        | Code::InFlightLimited
        | Code::Unauthorized
        | Code::PayloadTooLarge
        | Code::RequestTimeout
        | Code::InvalidBody
        | Code::InvalidRequest
        | Code::ChildSessionForbidden
        | Code::InvalidIdempotencyKey
        | Code::IdempotencyKeyRequired
        | Code::IdempotencyInProgress
        | Code::IdempotencyKeyMismatch
        | Code::TooManyWaiters
        | Code::InvalidSignature
        | Code::StaleSignature
        | Code::Forbidden
        | Code::ActionForbidden => true,
        Code::NotFound
        | Code::NotManaged
        | Code::RevisionConflict
        | Code::CancelRequested
        | Code::Terminal
        | Code::TaskNotCreated
        | Code::CancelRejected
        | Code::MutationRejected
        | Code::PersistFailed
        | Code::StoreUnavailable
        | Code::InternalError => false,
    }
}

/// Codes that only a request refused before its action was parsed gets.
pub(super) fn before_action(code: Code) -> bool {
    is_rejection(code)
        && !matches!(
            code,
            Code::ChildSessionForbidden
                | Code::InvalidIdempotencyKey
                | Code::IdempotencyKeyRequired
                | Code::IdempotencyInProgress
                | Code::IdempotencyKeyMismatch
        )
}

/// The `code` label of an answer: `ok`, `cancel_pending` or an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    CancelPending,
    Error(Code),
}

impl Outcome {
    pub(super) fn index(self) -> usize {
        match self {
            Self::Ok => 0,
            Self::CancelPending => 1,
            Self::Error(code) => 2 + code_index(code),
        }
    }

    pub(super) fn from_index(i: usize) -> Self {
        match i {
            0 => Self::Ok,
            1 => Self::CancelPending,
            _ => Self::Error(CODES[i - 2]),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::CancelPending => "cancel_pending",
            Self::Error(code) => code.as_str(),
        }
    }

    /// The outcome a rendered envelope states: its `code`, else `ok`.
    pub fn of_envelope(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(borrow)]
            code: Option<&'a str>,
        }
        let code = serde_json::from_slice::<Head<'_>>(body)
            .ok()
            .and_then(|h| h.code);
        match code {
            None => Self::Ok,
            Some(name) => (0..OUTCOMES)
                .map(Self::from_index)
                .find(|o| o.name() == name)
                .unwrap_or(Self::Error(Code::InternalError)),
        }
    }

    /// Whether `action` can end with this outcome; such series exist from
    /// the start.
    pub(super) fn expected(action: ActionLabel, outcome: Self) -> bool {
        let Self::Error(code) = outcome else {
            return match outcome {
                Self::CancelPending => action.name() == "cancel_flow",
                _ => action != ActionLabel::NONE,
            };
        };
        if action == ActionLabel::NONE {
            return before_action(code) || code == Code::InternalError;
        }
        if !action.is_write() {
            return code == Code::InternalError;
        }
        match code {
            Code::ChildSessionForbidden | Code::TaskNotCreated => action.name() == "run_task",
            Code::CancelRejected => action.name() == "cancel_flow",
            code => !before_action(code),
        }
    }
}

/// What became of a request's idempotency key (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The key's first use: the write ran.
    First,
    /// An earlier reply was sent again.
    Replayed,
    /// The key's first request was still running: 409.
    InProgress,
    /// The key was used for another request: 422.
    Mismatch,
}

pub(super) const KEY_USES: [&str; 4] = ["first", "replayed", "in_progress", "mismatch"];

/// How one callback delivery attempt ended (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// A 2xx answer.
    Delivered,
    /// Another status, a timeout or a connection error: retried later.
    Failed,
    /// 410: the event was dropped.
    Dropped,
    /// The last attempt failed: the event is dead.
    Dead,
}

pub(super) const DELIVERIES: [&str; 4] = ["delivered", "failed", "dropped", "dead"];
