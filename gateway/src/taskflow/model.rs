//! Stored entries (a record plus its owner and creation sequence) and the
//! field rules shared by every operation: terminality, trimming, patches, JSON.

use std::cmp::Reverse;
use std::sync::Arc;

use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::records::{FlowRecord, FlowStatus, SyncMode, TaskRecord, TextPatch};

use super::error::invalid_input;

/// JSON `null` as stored text: what "cleared" `waitJson` becomes.
pub(crate) const JSON_NULL: &str = "null";

/// Sort key: newest `createdAt` first, then most recently created first.
pub(crate) type OrderKey = (Reverse<u64>, Reverse<u64>);

pub(crate) fn order_key(created_at: u64, seq: u64) -> OrderKey {
    (Reverse(created_at), Reverse(seq))
}

/// A flow as kept in memory and on disk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FlowEntry {
    pub owner: Arc<str>,
    /// Creation order, persisted; breaks `createdAt` ties.
    pub seq: u64,
    pub record: FlowRecord,
}

impl FlowEntry {
    pub fn id(&self) -> &str {
        self.record.flow_id.as_str()
    }
}

/// A child task as kept in memory and on disk.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TaskEntry {
    pub owner: Arc<str>,
    pub seq: u64,
    pub record: TaskRecord,
}

impl TaskEntry {
    pub fn id(&self) -> &str {
        self.record.task_id.as_str()
    }

    pub fn flow_id(&self) -> Option<&str> {
        self.record
            .parent_flow_id
            .as_ref()
            .map(|s| s.as_str())
            .into()
    }

    pub fn order_key(&self) -> OrderKey {
        order_key(self.record.created_at, self.seq)
    }

    pub fn is_active(&self) -> bool {
        self.record.status.is_active()
    }
}

/// The one terminal predicate: a final status, or `blocked` with `endedAt`.
pub(crate) fn is_terminal(flow: &FlowRecord) -> bool {
    match flow.status {
        FlowStatus::Succeeded | FlowStatus::Failed | FlowStatus::Cancelled | FlowStatus::Lost => {
            true
        }
        FlowStatus::Blocked => flow.ended_at.is_some(),
        FlowStatus::Queued | FlowStatus::Running | FlowStatus::Waiting => false,
    }
}

/// Managed = `syncMode: managed` with a non-empty controller id.
pub(crate) fn is_managed(flow: &FlowRecord) -> bool {
    flow.sync_mode == SyncMode::Managed
        && matches!(&flow.controller_id, ROption::RSome(c) if !c.trim().is_empty())
}

/// Trimmed text; empty becomes absent.
pub(crate) fn trimmed(text: &str) -> ROption<RString> {
    let t = text.trim();
    if t.is_empty() {
        ROption::RNone
    } else {
        ROption::RSome(RString::from(t))
    }
}

pub(crate) fn trimmed_opt(text: &ROption<RString>) -> ROption<RString> {
    match text {
        ROption::RSome(s) => trimmed(s.as_str()),
        ROption::RNone => ROption::RNone,
    }
}

/// Whitespace runs collapsed to one space, trimmed; empty becomes absent.
pub(crate) fn collapsed_opt(text: &ROption<RString>) -> ROption<RString> {
    match text {
        ROption::RSome(s) => {
            let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
            trimmed(&joined)
        }
        ROption::RNone => ROption::RNone,
    }
}

/// Applies a text patch: keep, clear, or set (trimmed; empty clears).
pub(crate) fn apply_patch(current: &ROption<RString>, patch: &TextPatch) -> ROption<RString> {
    match patch {
        TextPatch::Keep => current.clone(),
        TextPatch::Clear => ROption::RNone,
        TextPatch::Set(s) => trimmed(s.as_str()),
    }
}

/// Whether a patch carries a non-empty value after trimming.
pub(crate) fn patch_sets_value(patch: &TextPatch) -> bool {
    matches!(patch, TextPatch::Set(s) if !s.trim().is_empty())
}

/// Whether applying `patch` to `current` would leave it unchanged.
pub(crate) fn patch_matches(current: &ROption<RString>, patch: &TextPatch) -> bool {
    apply_patch(current, patch) == *current
}

/// Whether `text` is one JSON value. Validated without building it (as a
/// borrowed raw value): every stored flow is checked when read.
pub(crate) fn is_json(text: &str) -> bool {
    serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok()
}

/// Checks that a JSON payload parses; the text is stored as given.
pub(crate) fn check_json(field: &str, value: &ROption<RString>) -> Result<(), TaskFlowError> {
    if let ROption::RSome(text) = value {
        if !is_json(text.as_str()) {
            return Err(invalid_input(&format!("{field} must be valid JSON.")));
        }
    }
    Ok(())
}

/// Deep equality of two JSON texts (absent equals only absent).
pub(crate) fn json_equal(a: &ROption<RString>, b: &ROption<RString>) -> bool {
    match (a, b) {
        (ROption::RNone, ROption::RNone) => true,
        (ROption::RSome(a), ROption::RSome(b)) => {
            if a == b {
                return true;
            }
            let pa = serde_json::from_str::<serde_json::Value>(a.as_str());
            let pb = serde_json::from_str::<serde_json::Value>(b.as_str());
            matches!((pa, pb), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// The agent id named by a session key of the form `agent:<id>:...`.
pub(crate) fn agent_id_from_session_key(key: &str) -> Option<&str> {
    let mut parts = key.trim().split(':');
    let head = parts.next()?;
    if !head.eq_ignore_ascii_case("agent") {
        return None;
    }
    let id = parts.next()?.trim();
    if id.is_empty() {
        None
    } else {
        Some(id)
    }
}

pub(crate) fn new_id() -> RString {
    RString::from(uuid::Uuid::new_v4().to_string())
}
