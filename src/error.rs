//! Every code a response can carry, and the one place that maps each to its
//! HTTP status and default message.

use std::borrow::Cow;
use std::time::Duration;

use jsoncfg::Issue;
use serde_json::value::RawValue;

use crate::texts;

/// A response code of the wire contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    NotFound,
    MethodNotAllowed,
    RateLimited,
    UnsupportedMediaType,
    InFlightLimited,
    TooManyWaiters,
    Unauthorized,
    /// A signed route's signature is missing, malformed or wrong.
    InvalidSignature,
    /// A correctly signed request whose timestamp is outside the tolerance.
    StaleSignature,
    /// The client address is outside the route's `allowFrom`.
    Forbidden,
    /// The action is outside the route's `actions`.
    ActionForbidden,
    PayloadTooLarge,
    RequestTimeout,
    InvalidBody,
    InvalidRequest,
    NotManaged,
    RevisionConflict,
    CancelRequested,
    Terminal,
    TaskNotCreated,
    CancelRejected,
    MutationRejected,
    ChildSessionForbidden,
    InvalidIdempotencyKey,
    IdempotencyKeyRequired,
    IdempotencyInProgress,
    IdempotencyKeyMismatch,
    PersistFailed,
    StoreUnavailable,
    InternalError,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited => "rate_limited",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InFlightLimited => "in_flight_limited",
            Self::TooManyWaiters => "too_many_waiters",
            Self::Unauthorized => "unauthorized",
            Self::InvalidSignature => "invalid_signature",
            Self::StaleSignature => "stale_signature",
            Self::Forbidden => "forbidden",
            Self::ActionForbidden => "action_forbidden",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::InvalidBody => "invalid_body",
            Self::InvalidRequest => "invalid_request",
            Self::NotManaged => "not_managed",
            Self::RevisionConflict => "revision_conflict",
            Self::CancelRequested => "cancel_requested",
            Self::Terminal => "terminal",
            Self::TaskNotCreated => "task_not_created",
            Self::CancelRejected => "cancel_rejected",
            Self::MutationRejected => "mutation_rejected",
            Self::ChildSessionForbidden => "child_session_forbidden",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyRequired => "idempotency_key_required",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::IdempotencyKeyMismatch => "idempotency_key_mismatch",
            Self::PersistFailed => "persist_failed",
            Self::StoreUnavailable => "store_unavailable",
            Self::InternalError => "internal_error",
        }
    }

    /// The HTTP status of this code. This is the only such mapping.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidBody
            | Self::InvalidRequest
            | Self::InvalidIdempotencyKey
            | Self::IdempotencyKeyRequired => 400,
            Self::Unauthorized | Self::InvalidSignature | Self::StaleSignature => 401,
            Self::Forbidden | Self::ActionForbidden | Self::ChildSessionForbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTimeout => 408,
            Self::NotManaged
            | Self::RevisionConflict
            | Self::CancelRequested
            | Self::Terminal
            | Self::TaskNotCreated
            | Self::CancelRejected
            | Self::MutationRejected
            | Self::IdempotencyInProgress => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::IdempotencyKeyMismatch => 422,
            Self::RateLimited | Self::InFlightLimited | Self::TooManyWaiters => 429,
            Self::InternalError => 500,
            Self::PersistFailed | Self::StoreUnavailable => 503,
        }
    }

    /// The message used when the outcome supplies none.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::NotFound => "Not Found",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::RateLimited | Self::InFlightLimited => "Too Many Requests",
            Self::TooManyWaiters => "too many requests are waiting on this route",
            Self::UnsupportedMediaType => "Unsupported Media Type",
            Self::Unauthorized => "unauthorized",
            Self::InvalidSignature => "invalid signature",
            Self::StaleSignature => "signature timestamp is outside the allowed tolerance",
            Self::Forbidden => "Forbidden",
            Self::ActionForbidden => "action is not allowed on this route",
            Self::PayloadTooLarge => "Payload too large",
            Self::RequestTimeout => "Request body timeout",
            Self::InvalidBody => "invalid request body",
            Self::InvalidRequest => "invalid request",
            Self::NotManaged => texts::NOT_MANAGED,
            Self::RevisionConflict => texts::REVISION_CONFLICT,
            Self::CancelRequested => texts::CANCEL_REQUESTED,
            Self::Terminal => texts::TERMINAL,
            Self::TaskNotCreated => texts::TASK_NOT_CREATED,
            Self::CancelRejected => texts::CANCEL_REJECTED,
            Self::MutationRejected => texts::MUTATION_REJECTED,
            Self::ChildSessionForbidden => texts::CHILD_SESSION_FORBIDDEN,
            Self::InvalidIdempotencyKey => "invalid idempotency key",
            Self::IdempotencyKeyRequired => "this route requires an Idempotency-Key on writes",
            Self::IdempotencyInProgress => "a request with this idempotency key is still running",
            Self::IdempotencyKeyMismatch => "this idempotency key was used for a different request",
            Self::PersistFailed => texts::PERSIST_FAILED,
            Self::StoreUnavailable => texts::STORE_UNAVAILABLE,
            Self::InternalError => "internal error",
        }
    }
}

/// A failure: a rejection before the action ran, or an action outcome
/// with an error code.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub message: Cow<'static, str>,
    /// For 429: seconds until a retry can succeed (at least 1).
    pub retry_after: Option<Duration>,
    /// For `invalid_request`: every schema issue.
    pub issues: Vec<Issue>,
    /// The action's `result`, when it has one.
    pub result: Option<Box<RawValue>>,
}

impl ApiError {
    pub fn new(code: Code) -> Self {
        Self {
            code,
            message: Cow::Borrowed(code.default_message()),
            retry_after: None,
            issues: Vec::new(),
            result: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.message = message.into();
        self
    }

    pub fn with_result(mut self, result: Box<RawValue>) -> Self {
        self.result = Some(result);
        self
    }

    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// A schema failure: `error` is the first issue, `issues` all of them.
    pub fn invalid_request(issues: Vec<Issue>) -> Self {
        let first = issues
            .first()
            .map_or_else(|| "invalid request".to_owned(), Issue::to_string);
        Self {
            issues,
            ..Self::new(Code::InvalidRequest).with_message(first)
        }
    }
}
