//! The single writer thread: drains queued operations into a batch,
//! evaluates them in order, stages their rows, commits one transaction
//! (group commit), publishes the committed flows to the cache and the
//! counts, replies, then wakes the reads waiting on the flows it changed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::runtime::WriteOutcome;
use rusqlite::Connection;

use super::batch::BatchView;
use super::cache::{FlowCache, Published};
use super::committed::SqliteCommitted;
use super::error::{internal, persist_failed};
use super::keys::{self, Claim, Prior, Record, Staged};
use super::metrics::{status_slot, FlowCounts, StatusDeltas, StoreMetrics};
use super::ops::{Answer, Change, Ctx, Evaluation, Op, SweepReport};
use super::options::Clock;
use super::outbox::{self, Subscriptions};
use super::staging::{replay, stage};
use super::watch::{self, FlowChange, Watchers};
use super::{children, flows, schema, sweep};
use openclaw_ffi::runtime::FlowWakerBox;

/// Most operations committed together.
const MAX_BATCH: usize = 1024;

/// Longest a batch waits for more operations before committing, and only
/// while callers are writing concurrently (see [`Writer::run`]).
const LINGER: Duration = Duration::from_micros(300);

pub(crate) type Reply = Result<Answer, TaskFlowError>;

pub(crate) struct Request {
    pub op: Op,
    /// Makes the write retry-safe (see `keys`).
    pub claim: Option<Claim>,
    pub reply: Replier,
}

/// Where an operation's answer goes: a callback run exactly once, on the
/// writer thread once the batch is durable, or on the caller's thread when
/// the operation never reached the writer.
pub(crate) struct Replier(Box<dyn FnOnce(Reply) + Send>);

impl Replier {
    pub fn new(f: impl FnOnce(Reply) + Send + 'static) -> Self {
        Self(Box::new(f))
    }

    pub fn deliver(self, answer: Reply) {
        // The callback belongs to the caller; a fault in it must not take
        // the writer down.
        if catch_unwind(AssertUnwindSafe(|| (self.0)(answer))).is_err() {
            log::error!("taskflow store: a write completion panicked");
        }
    }
}

pub(crate) struct Writer {
    pub conn: Connection,
    pub path: PathBuf,
    /// Hot flows; the writer publishes every committed flow change here.
    pub cache: Arc<FlowCache>,
    /// Flows by status, kept as commits change them.
    pub counts: Arc<FlowCounts>,
    pub clock: Clock,
    pub retention_ms: u64,
    pub next_seq: u64,
    /// Reads waiting for flows to change.
    pub watchers: Arc<Watchers>,
    pub metrics: StoreMetrics,
    /// Whose flow changes get outbox events (see `outbox`).
    pub subscriptions: Arc<Subscriptions>,
}

/// Answers held back until the batch is durable.
type Replies = Vec<(Replier, Reply)>;

impl Writer {
    /// Runs until every sender is gone, then checkpoints the WAL.
    ///
    /// Group commit: everything queued goes into one transaction. When the
    /// previous batch had several operations (callers are writing
    /// concurrently), the batch also waits up to [`LINGER`] for as many to
    /// arrive: callers answered by the last commit are usually about to send
    /// their next write, and one fsync for all of them costs far less than
    /// one each. A lone caller never waits.
    pub fn run(mut self, rx: Receiver<Request>) {
        let mut last_len = 0;
        while let Some(batch) = next_batch(&rx, last_len) {
            last_len = batch.len();
            self.process(batch);
        }
        schema::checkpoint_truncate(&self.conn, &self.path);
    }

    pub(crate) fn process(&mut self, batch: Vec<Request>) {
        let mut replies: Replies = Vec::with_capacity(batch.len());
        let mut settled = Vec::new();
        let (started, operations) = (Instant::now(), batch.len());
        let result = catch_unwind(AssertUnwindSafe(|| {
            self.run_batch(batch, &mut replies, &mut settled)
        }));
        self.metrics.batch(started.elapsed(), operations);
        let failure = match result {
            Ok(true) => None,
            Ok(false) => Some(persist_failed()),
            Err(_) => {
                log::error!("taskflow store {}: writer fault", self.path.display());
                self.rollback();
                Some(internal("TaskFlow store writer fault."))
            }
        };
        for (reply, answer) in replies {
            let answer = match &failure {
                Some(err) => Err(err.clone()),
                None => answer,
            };
            reply.deliver(answer);
        }
        // The reads waiting on what the batch committed (it was published
        // before `run_batch` returned): after the writes' own answers, so
        // no write waits for them.
        watch::wake(settled);
    }

    fn rollback(&self) {
        if !self.conn.is_autocommit() {
            if let Err(err) = self.conn.execute_batch("ROLLBACK") {
                log::error!(
                    "taskflow store {}: rollback failed: {err}",
                    self.path.display()
                );
            }
        }
    }

    /// Returns false when nothing of the batch was committed. `settled`
    /// receives the wakers of the reads the commit settles.
    fn run_batch(
        &mut self,
        batch: Vec<Request>,
        replies: &mut Replies,
        settled: &mut Vec<FlowWakerBox>,
    ) -> bool {
        let Writer {
            conn,
            path,
            cache,
            counts,
            clock,
            retention_ms,
            next_seq,
            watchers,
            subscriptions,
            ..
        } = self;
        let subscribed = subscriptions.snapshot();
        let committed_state = SqliteCommitted { cache, conn, path };
        let mut view = BatchView::new(&committed_state, next_seq);
        let mut deltas: StatusDeltas = Default::default();
        let mut committed: Vec<Change> = Vec::new();
        let mut staged = Staged::default();
        if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
            log::error!("taskflow store {}: begin failed: {err}", path.display());
            replies.extend(batch.into_iter().map(|r| (r.reply, Err(persist_failed()))));
            return false;
        }
        let mut requests = batch.into_iter();
        for req in requests.by_ref() {
            let ctx = Ctx {
                now: clock.now(),
                retention_ms: *retention_ms,
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let mut e = evaluate_claimed(conn, &staged, &mut view, &ctx, &req);
                if e.answer.is_ok() {
                    // Events are staged with the changes that emit them.
                    outbox::add_events(&subscribed, &view, &ctx, &mut e.changes);
                }
                if view.take_failure() {
                    // Evaluated against state it could not read: refused.
                    e = Evaluation {
                        answer: Err(persist_failed()),
                        changes: Vec::new(),
                    };
                }
                e
            }))
            .unwrap_or_else(|_| Evaluation {
                answer: Err(internal("TaskFlow operation fault.")),
                changes: Vec::new(),
            });
            let answer = match outcome.answer {
                Ok(answer) if !outcome.changes.is_empty() => match stage(conn, &outcome.changes) {
                    Ok(()) => {
                        count(&view, &outcome.changes, &mut deltas);
                        view.apply(&outcome.changes);
                        for change in &outcome.changes {
                            if let Change::PutRecord(r) = change {
                                staged.add(Record::clone(r));
                            }
                        }
                        committed.extend(outcome.changes);
                        Ok(answer)
                    }
                    Err(err) => {
                        log::error!("taskflow store {}: write failed: {err}", path.display());
                        // SQLite may roll the whole transaction back (e.g. on
                        // SQLITE_FULL): replay what the batch staged so far.
                        if conn.is_autocommit() && replay(conn, &committed).is_err() {
                            staged.clear();
                            log::error!("taskflow store {}: batch replay failed", path.display());
                            replies.push((req.reply, Err(persist_failed())));
                            replies.extend(requests.map(|r| (r.reply, Err(persist_failed()))));
                            return false;
                        }
                        Err(persist_failed())
                    }
                },
                other => other,
            };
            replies.push((req.reply, answer));
        }
        drop(view);
        if committed.is_empty() {
            if conn.is_autocommit() {
                return true;
            }
            if let Err(err) = conn.execute_batch("ROLLBACK") {
                log::error!("taskflow store {}: rollback failed: {err}", path.display());
            }
            return true;
        }
        if let Err(err) = conn.execute_batch("COMMIT") {
            log::error!("taskflow store {}: commit failed: {err}", path.display());
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return false;
        }
        cache.publish(committed.iter().filter_map(published));
        counts.apply(&deltas);
        // Taken after publishing: a woken read sees the commit.
        *settled = watchers.settled(committed.iter().filter_map(flow_change));
        subscribed.wake(&committed);
        true
    }
}

/// The next batch (see [`Writer::run`]): what is queued, lingering while
/// the previous batch showed concurrent callers; `None` once every sender
/// is gone.
pub(crate) fn next_batch(rx: &Receiver<Request>, last_len: usize) -> Option<Vec<Request>> {
    let first = rx.recv().ok()?;
    let mut batch = Vec::with_capacity(last_len.max(16));
    batch.push(first);
    let deadline = Instant::now() + LINGER;
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(req) => batch.push(req),
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                if last_len < 2 || batch.len() >= last_len || wait.is_zero() {
                    break;
                }
                match rx.recv_timeout(wait) {
                    Ok(req) => batch.push(req),
                    Err(_) => break,
                }
            }
        }
    }
    Some(batch)
}

/// The idempotency record a keyed write that ran stores with its rows.
pub(crate) fn keyed_record(claim: &Claim, evaluation: &mut Evaluation, now: u64) {
    if let Ok(Answer::Write(outcome)) = &evaluation.answer {
        if let Some(reply) = (claim.render)(outcome) {
            let c = &claim.claim;
            evaluation.changes.push(Change::PutRecord(Arc::new(Record {
                scope: c.scope.to_string(),
                key: c.key.to_string(),
                fingerprint: c.fingerprint.to_string(),
                status: reply.status,
                body: reply.body.into_vec(),
                expires_at: now.saturating_add(c.ttl_ms),
            })));
        }
    }
}

/// Evaluates a request. A keyed write whose key already has a live reply
/// is answered with it (or refused, for another request) and not run; a
/// keyed write that runs stages its rendered reply with its own rows.
fn evaluate_claimed(
    conn: &Connection,
    staged: &Staged,
    view: &mut BatchView<'_>,
    ctx: &Ctx,
    req: &Request,
) -> Evaluation {
    let Some(claim) = &req.claim else {
        return evaluate(conn, view, ctx, &req.op);
    };
    match keys::prior(conn, staged, &claim.claim, ctx.now) {
        Ok(Prior::Same(reply)) => {
            return Evaluation::read_only(Answer::Write(WriteOutcome::Replayed(reply)))
        }
        Ok(Prior::Other) => return Evaluation::read_only(Answer::Write(WriteOutcome::KeyMismatch)),
        Ok(Prior::None) => {}
        Err(err) => {
            log::error!("taskflow store: idempotency lookup failed: {err}");
            return Evaluation {
                answer: Err(persist_failed()),
                changes: Vec::new(),
            };
        }
    }
    let mut evaluation = evaluate(conn, view, ctx, &req.op);
    keyed_record(claim, &mut evaluation, ctx.now);
    evaluation
}

fn evaluate(conn: &Connection, view: &mut BatchView<'_>, ctx: &Ctx, op: &Op) -> Evaluation {
    match op {
        Op::Create { owner, input } => flows::create(view, ctx, owner, input),
        Op::Mutate { owner, mutation } => flows::mutate(view, ctx, owner, mutation),
        Op::Cancel { owner, flow_id } => children::cancel(view, ctx, owner, flow_id.as_str()),
        Op::RunTask { owner, input } => children::run_task(view, ctx, owner, input),
        Op::Sweep { finalize, prune } => sweep::apply(view, ctx, finalize, prune),
        Op::Outbox(op) => outbox::evaluate(conn, ctx, op),
        Op::PruneKeys { limit } => match keys::expired(conn, ctx.now, *limit) {
            Ok(rowids) => {
                let report = SweepReport {
                    pruned_keys: rowids.len(),
                    ..SweepReport::default()
                };
                let changes = rowids
                    .into_iter()
                    .map(|rowid| Change::DeleteRecord { rowid })
                    .collect();
                Evaluation::writes(Answer::Sweep(report), changes)
            }
            Err(err) => {
                log::error!("taskflow store: finding expired idempotency records failed: {err}");
                Evaluation {
                    answer: Err(persist_failed()),
                    changes: Vec::new(),
                }
            }
        },
    }
}

/// What the cache learns of a committed change (tasks are not cached).
fn published(change: &Change) -> Option<Published<'_>> {
    match change {
        Change::PutFlow(f) => Some(Published::Put(f)),
        Change::DeleteFlow { id, .. } => Some(Published::Deleted(id)),
        _ => None,
    }
}

/// Adds what `changes` do to the flow counts by status; `view` still
/// holds the state before them.
pub(crate) fn count(view: &BatchView<'_>, changes: &[Change], deltas: &mut StatusDeltas) {
    for change in changes {
        let (id, after) = match change {
            Change::PutFlow(f) => (f.id(), Some(f.record.status)),
            Change::DeleteFlow { id, .. } => (id.as_str(), None),
            _ => continue,
        };
        if let Some(before) = view.flow(id) {
            deltas[status_slot(before.record.status)] -= 1;
        }
        if let Some(after) = after {
            deltas[status_slot(after)] += 1;
        }
    }
}

/// What a committed change did to a flow, if it touched one.
pub(crate) fn flow_change(change: &Change) -> Option<FlowChange<'_>> {
    match change {
        Change::PutFlow(f) => Some(FlowChange::Put(&f.record)),
        Change::DeleteFlow { id, .. } => Some(FlowChange::Deleted(id)),
        _ => None,
    }
}
