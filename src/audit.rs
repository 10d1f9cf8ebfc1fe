//! The audit log: one structured line (target `audit`) per write and per
//! rejection, forwarded to the Gateway's logger with its fields.
//!
//! A line names the route, never its session key; it carries a digest of
//! the idempotency key, never the key, and no secret and no body. Rejection
//! lines go through a [`LineCap`] per route and code, so a flood writes at
//! most [`REJECTION_LINES`] lines per [`REJECTION_WINDOW`] for each, then one
//! summary line saying how many were left out.

use std::time::{Duration, Instant};

use log::Level;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::actions::{Answer, Reply};
use crate::client_ip::ClientKey;
use crate::error::Code;
use crate::log_cap::{Admit, LineCap};
use crate::logging;
use crate::metrics::{code_slot, ActionLabel, Outcome, CODE_COUNT};
use crate::request::Action;

/// Rejection lines written per route and code in one window.
pub const REJECTION_LINES: u32 = 10;
/// The window of [`REJECTION_LINES`].
pub const REJECTION_WINDOW: Duration = Duration::from_secs(60);

const TARGET: &str = "audit";

/// The caps of one route's rejection lines, one per code.
#[derive(Debug)]
pub struct RejectionCaps {
    caps: Box<[LineCap]>,
}

impl RejectionCaps {
    pub fn new(epoch: Instant) -> Self {
        Self {
            caps: (0..CODE_COUNT)
                .map(|_| LineCap::new(REJECTION_LINES, REJECTION_WINDOW, epoch))
                .collect(),
        }
    }

    fn cap(&self, code: Code) -> &LineCap {
        &self.caps[code_slot(code)]
    }

    /// Writes the summary of every code with dropped lines not yet
    /// summarised (`route` is `None` for requests that matched no route).
    pub fn flush(&self, route: Option<&str>, codes: impl Iterator<Item = Code>) {
        for code in codes {
            summarise(route, code, self.cap(code).take_suppressed());
        }
    }
}

/// What the pipeline learned about a request, for its metrics and audit
/// line. Filled as the checks pass.
#[derive(Debug, Default)]
pub struct Facts {
    pub client: Option<ClientKey>,
    /// The 0-based slot of the secret that authenticated the request.
    pub secret_slot: Option<usize>,
    pub action: Option<ActionLabel>,
    pub writes: bool,
    /// The flow a write names, and the revision it expects.
    pub flow_id: Option<String>,
    pub expected_revision: Option<u64>,
    /// Digest of the idempotency key the request presented.
    pub key_digest: Option<String>,
}

impl Facts {
    /// Records what the action says about the request.
    pub fn action(&mut self, action: &Action, writes: bool) {
        self.action = Some(ActionLabel::of(action));
        self.writes = writes;
        let (flow_id, expected) = match action {
            Action::SetWaiting(i) => (Some(i.flow_id.as_str()), Some(i.expected_revision)),
            Action::ResumeFlow(i) => (Some(i.flow_id.as_str()), Some(i.expected_revision)),
            Action::FinishFlow(i) => (Some(i.flow_id.as_str()), Some(i.expected_revision)),
            Action::FailFlow(i) => (Some(i.flow_id.as_str()), Some(i.expected_revision)),
            Action::RequestCancel(i) => (Some(i.flow_id.as_str()), Some(i.expected_revision)),
            Action::RunTask(i) => (Some(i.flow_id.as_str()), None),
            Action::CancelFlow { flow_id } => (Some(flow_id.as_str()), None),
            _ => (None, None),
        };
        self.flow_id = flow_id.map(str::to_owned);
        self.expected_revision = expected;
    }

    /// Records the idempotency key a write presented, as a digest.
    pub fn key(&mut self, key: &str) {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.key_digest = Some(format!("sha256:{hex}"));
    }
}

/// The outcome an answer states.
pub fn outcome(answer: &Answer) -> Outcome {
    match answer {
        Answer::Result(Ok(Reply::Done(_))) => Outcome::Ok,
        Answer::Result(Ok(Reply::CancelPending(_))) => Outcome::CancelPending,
        Answer::Result(Err(err)) => Outcome::Error(err.code),
        Answer::Stored { reply, .. } => Outcome::of_envelope(&reply.body),
    }
}

/// One answered request on a route.
pub struct Served<'a> {
    pub route: &'a str,
    pub facts: &'a Facts,
    pub answer: &'a Answer,
    pub outcome: Outcome,
    pub status: u16,
    pub elapsed: Duration,
}

/// Writes the audit line of a request, if it gets one: every rejection
/// (under the route's cap) and every write that was admitted.
pub fn record(served: &Served<'_>, caps: &RejectionCaps, now: Instant) {
    if !enabled() {
        return;
    }
    let Outcome::Error(code) = served.outcome else {
        if served.facts.writes {
            write_line(served);
        }
        return;
    };
    if crate::metrics::is_rejection(code) {
        rejection(
            Some(served.route),
            served.facts,
            code,
            served.elapsed,
            caps,
            now,
        );
    } else if served.facts.writes {
        write_line(served);
    }
}

/// Whether audit lines reach the log at all (its level lets `info` pass):
/// when not, no line is built.
fn enabled() -> bool {
    log::log_enabled!(target: TARGET, Level::Info)
}

/// The rejection line of a request refused before its action ran.
pub fn rejection(
    route: Option<&str>,
    facts: &Facts,
    code: Code,
    elapsed: Duration,
    caps: &RejectionCaps,
    now: Instant,
) {
    if !enabled() {
        return;
    }
    match caps.cap(code).admit(now) {
        Admit::Suppress => {}
        Admit::Write { suppressed } => {
            summarise(route, code, suppressed);
            let mut f = Map::new();
            f.insert("route".into(), route.map_or(Value::Null, |r| r.into()));
            f.insert(
                "action".into(),
                facts.action.unwrap_or(ActionLabel::NONE).name().into(),
            );
            f.insert("code".into(), code.as_str().into());
            f.insert("status".into(), code.status().into());
            f.insert("client".into(), client(facts.client).into());
            f.insert("latencyMs".into(), millis(elapsed));
            logging::structured(Level::Info, TARGET, "rejected", f);
        }
    }
}

fn summarise(route: Option<&str>, code: Code, suppressed: u64) {
    if suppressed == 0 {
        return;
    }
    let mut f = Map::new();
    f.insert("route".into(), route.map_or(Value::Null, |r| r.into()));
    f.insert("code".into(), code.as_str().into());
    f.insert("suppressed".into(), suppressed.into());
    f.insert("limit".into(), REJECTION_LINES.into());
    f.insert("windowSeconds".into(), REJECTION_WINDOW.as_secs().into());
    logging::structured(Level::Warn, TARGET, "rejection lines suppressed", f);
}

fn write_line(served: &Served<'_>) {
    let facts = served.facts;
    let (flow_id, after) = result_flow(served.answer);
    let flow_id = after_flow_id(flow_id, facts);
    let before = revision_before(facts, served.outcome, after);
    let mut f = Map::new();
    f.insert("route".into(), served.route.into());
    f.insert(
        "action".into(),
        facts.action.unwrap_or(ActionLabel::NONE).name().into(),
    );
    f.insert("flowId".into(), flow_id.map_or(Value::Null, Value::from));
    f.insert(
        "revisionBefore".into(),
        before.map_or(Value::Null, Value::from),
    );
    f.insert(
        "revisionAfter".into(),
        after.map_or(Value::Null, Value::from),
    );
    f.insert(
        "idempotencyKey".into(),
        facts.key_digest.clone().map_or(Value::Null, Value::from),
    );
    f.insert(
        "replayed".into(),
        matches!(served.answer, Answer::Stored { replayed: true, .. }).into(),
    );
    f.insert(
        "secretSlot".into(),
        facts.secret_slot.map_or(Value::Null, Value::from),
    );
    f.insert("client".into(), client(facts.client).into());
    f.insert("code".into(), served.outcome.name().into());
    f.insert("status".into(), served.status.into());
    f.insert("latencyMs".into(), millis(served.elapsed));
    logging::structured(Level::Info, TARGET, "write", f);
}

fn after_flow_id(from_result: Option<String>, facts: &Facts) -> Option<String> {
    from_result.or_else(|| facts.flow_id.clone())
}

/// The revision a write started from: the one it expected; for a write
/// that names none, the revision it left minus one when it applied (a
/// cancel), or the revision it left (a task record leaves the flow's
/// revision as it is; a refused write changes nothing).
fn revision_before(facts: &Facts, outcome: Outcome, after: Option<u64>) -> Option<u64> {
    if let Some(expected) = facts.expected_revision {
        return Some(expected);
    }
    let action = facts.action?.name();
    match (action, outcome) {
        ("create_flow", _) => None,
        ("cancel_flow", Outcome::Ok) => after.map(|r| r.saturating_sub(1)),
        _ => after,
    }
}

#[derive(Deserialize)]
struct FlowHead {
    #[serde(rename = "flowId")]
    flow_id: String,
    revision: u64,
}

#[derive(Deserialize)]
struct ResultHead {
    flow: Option<FlowHead>,
    current: Option<FlowHead>,
}

#[derive(Deserialize)]
struct EnvelopeHead {
    result: Option<ResultHead>,
}

/// The flow id and revision the answer's `result` shows (its `flow`, or
/// the `current` flow of a refused mutation).
fn result_flow(answer: &Answer) -> (Option<String>, Option<u64>) {
    let head = match answer {
        Answer::Result(Ok(reply)) => serde_json::from_str::<ResultHead>(reply.result().get()).ok(),
        Answer::Result(Err(err)) => err
            .result
            .as_ref()
            .and_then(|r| serde_json::from_str::<ResultHead>(r.get()).ok()),
        Answer::Stored { reply, .. } => serde_json::from_slice::<EnvelopeHead>(&reply.body)
            .ok()
            .and_then(|e| e.result),
    };
    match head.and_then(|h| h.flow.or(h.current)) {
        Some(flow) => (Some(flow.flow_id), Some(flow.revision)),
        None => (None, None),
    }
}

fn client(key: Option<ClientKey>) -> String {
    match key {
        Some(ClientKey::Ip(ip)) => ip.to_string(),
        Some(ClientKey::UnknownBehindProxy) => "unknown-behind-proxy".into(),
        Some(ClientKey::Unknown) | None => "unknown".into(),
    }
}

fn millis(elapsed: Duration) -> Value {
    let ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    Value::from(ms)
}
