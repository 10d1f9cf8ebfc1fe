//! Outbox events: one row per subscribed scope for each committed flow
//! change that the flow's `notifyPolicy` lets through, written in the same
//! commit as the change, so that after a crash either both exist or
//! neither does. Rows live only in SQLite (never in the in-memory index);
//! the writer reads and updates them inside its transactions.
//!
//! Rules:
//! - `done_only`: the change that makes the flow terminal; `state_changes`:
//!   its creation and every change of its status; `silent`: nothing.
//! - Events of one flow and scope are due one at a time, in revision
//!   order: an event is inserted without a due time while an earlier one of
//!   its flow is still open, and gets one when that one is settled for good
//!   (delivered, dead or gone).
//! - A claimed event is leased until the claim's `lease_until`: not due
//!   again before then unless settled. Leases live in memory only (a claim
//!   writes nothing), so an event whose attempt was cut off by a stop or a
//!   crash is due again as soon as the store opens: delivery is at least
//!   once.
//! - Settled events are pruned once they are older than the retention.

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::records::{FlowRecord, NotifyPolicy};
use openclaw_ffi::runtime::{EventWakerBox, Settlement};
use parking_lot::{Mutex, RwLock};

use super::batch::BatchView;
use super::error::invalid_input;
use super::model::is_terminal;
use super::ops::{Change, Ctx};

/// Longest subscription scope, in characters.
pub(crate) const MAX_SCOPE_CHARS: usize = 128;
/// Most events one claim returns.
pub(crate) const MAX_CLAIM: u32 = 1024;

const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const DEAD: &str = "dead";
const GONE: &str = "gone";

/// Longest `last_error` kept, in bytes.
const MAX_ERROR_BYTES: usize = 200;

/// An outbox operation, evaluated by the writer.
#[derive(Debug)]
pub(crate) enum OutboxOp {
    Claim {
        scope: Arc<str>,
        now: u64,
        limit: u32,
        lease_until: u64,
        subscriptions: Arc<Subscriptions>,
    },
    Settle {
        scope: Arc<str>,
        settlements: Vec<Settlement>,
        subscriptions: Arc<Subscriptions>,
    },
    /// Maintenance: deletes at most `limit` events settled longer ago than
    /// the retention.
    Prune { limit: usize },
}

/// A row change of the outbox.
#[derive(Debug, Clone)]
pub(crate) enum Row {
    Put(Arc<NewEvent>),
    Settle {
        scope: Arc<str>,
        settlement: Settlement,
        now: u64,
    },
    Delete {
        id: i64,
    },
}

/// An event staged with the change that caused it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewEvent {
    pub scope: Arc<str>,
    /// The flow's creation sequence: the embedded store finds a flow's
    /// open events by it.
    pub flow_seq: u64,
    pub created: bool,
    pub flow: FlowRecord,
    pub occurred_at: u64,
}

struct Subscriber {
    owner: Arc<str>,
    waker: Arc<EventWakerBox>,
}

/// Who subscribed which scope (read by the writer once per batch, changed
/// rarely: copy on write), and the leases of claimed events (used by the
/// writer thread only).
#[derive(Default)]
pub(crate) struct Subscriptions {
    table: RwLock<Arc<Table>>,
    leases: Mutex<HashMap<i64, Lease>>,
}

/// A claimed event's lease.
struct Lease {
    scope: Arc<str>,
    until: u64,
}

impl fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subscriptions")
    }
}

#[derive(Default, Clone)]
pub(crate) struct Table {
    by_scope: HashMap<Arc<str>, Arc<Subscriber>>,
    /// Owner session -> its scopes, in subscription order.
    by_owner: HashMap<Arc<str>, Vec<Arc<str>>>,
}

impl Subscriptions {
    pub fn snapshot(&self) -> Arc<Table> {
        Arc::clone(&self.table.read())
    }

    /// Subscribes `scope` for `owner`'s flows, or replaces its waker.
    pub fn subscribe(
        &self,
        owner: &Arc<str>,
        scope: &str,
        waker: EventWakerBox,
    ) -> Result<(), TaskFlowError> {
        check_scope(scope)?;
        let mut guard = self.table.write();
        let mut table = Table::clone(&guard);
        let scope: Arc<str> = Arc::from(scope);
        if let Some(existing) = table.by_scope.get(&scope) {
            if existing.owner != *owner {
                return Err(invalid_input(
                    "The event scope is subscribed by another session.",
                ));
            }
        } else {
            table
                .by_owner
                .entry(Arc::clone(owner))
                .or_default()
                .push(Arc::clone(&scope));
        }
        table.by_scope.insert(
            scope,
            Arc::new(Subscriber {
                owner: Arc::clone(owner),
                waker: Arc::new(waker),
            }),
        );
        *guard = Arc::new(table);
        Ok(())
    }

    /// Refuses a scope that `owner` did not subscribe.
    pub fn check(&self, owner: &str, scope: &str) -> Result<Arc<str>, TaskFlowError> {
        check_scope(scope)?;
        let table = self.snapshot();
        match table.by_scope.get_key_value(scope) {
            Some((scope, s)) if &*s.owner == owner => Ok(Arc::clone(scope)),
            _ => Err(invalid_input(
                "The event scope is not subscribed by this session.",
            )),
        }
    }
}

fn check_scope(scope: &str) -> Result<(), TaskFlowError> {
    let n = scope.chars().count();
    if n == 0 || n > MAX_SCOPE_CHARS || scope.trim() != scope {
        return Err(invalid_input(
            "An event scope must be 1 to 128 characters without surrounding whitespace.",
        ));
    }
    Ok(())
}

impl Table {
    fn scopes(&self, owner: &str) -> &[Arc<str>] {
        self.by_owner.get(owner).map_or(&[], Vec::as_slice)
    }

    /// Calls every subscriber's waker (events may have been added where
    /// this process could not see it: another node).
    pub fn wake_all(&self) {
        for s in self.by_scope.values() {
            if catch_unwind(AssertUnwindSafe(|| s.waker.wake())).is_err() {
                log::error!("taskflow store: an event waker panicked");
            }
        }
    }

    /// Calls the waker of every scope that `committed` added events for.
    pub fn wake(&self, committed: &[Change]) {
        let mut woken: Vec<&Arc<str>> = Vec::new();
        for change in committed {
            let Change::Outbox(Row::Put(event)) = change else {
                continue;
            };
            if woken.contains(&&event.scope) {
                continue;
            }
            woken.push(&event.scope);
            if let Some(s) = self.by_scope.get(&event.scope) {
                // The waker is the subscriber's code; a fault in it must not
                // take the writer down.
                if catch_unwind(AssertUnwindSafe(|| s.waker.wake())).is_err() {
                    log::error!("taskflow store: an event waker panicked");
                }
            }
        }
    }
}

/// Appends to `changes` the events their flow changes emit, judged against
/// `view` as it was before them.
pub(crate) fn add_events(
    table: &Table,
    view: &BatchView<'_>,
    ctx: &Ctx,
    changes: &mut Vec<Change>,
) {
    if table.by_scope.is_empty() {
        return;
    }
    let mut events = Vec::new();
    for change in changes.iter() {
        let Change::PutFlow(next) = change else {
            continue;
        };
        let scopes = table.scopes(&next.owner);
        if scopes.is_empty() {
            continue;
        }
        let prior = view.flow(next.id());
        let prior = prior.as_ref().map(|p| &p.record);
        if !emits(prior, &next.record) {
            continue;
        }
        for scope in scopes {
            events.push(Change::Outbox(Row::Put(Arc::new(NewEvent {
                scope: Arc::clone(scope),
                flow_seq: next.seq,
                created: prior.is_none(),
                flow: next.record.clone(),
                occurred_at: ctx.now,
            }))));
        }
    }
    changes.extend(events);
}

/// Whether the change from `prior` (absent: a creation) to `next` emits an
/// event under `next`'s notify policy.
pub(crate) fn emits(prior: Option<&FlowRecord>, next: &FlowRecord) -> bool {
    match next.notify_policy {
        NotifyPolicy::Silent => false,
        NotifyPolicy::DoneOnly => is_terminal(next) && !prior.is_some_and(is_terminal),
        NotifyPolicy::StateChanges => prior.is_none_or(|p| p.status != next.status),
    }
}

/// At most [`MAX_ERROR_BYTES`], cut at a character boundary.
pub(crate) fn clip(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

mod sql;

pub(crate) use sql::{evaluate, flow_from_json, flow_json, open_counts, write};
