//! The PostgreSQL store's writer thread: the embedded store's batches and
//! semantics over a shared database. Each batch is one transaction; every
//! flow and task it reads is read `FOR UPDATE`, so another node's batch
//! touching the same rows waits for this commit and then evaluates against
//! it: revision checks and idempotency keys are exact across nodes. A batch
//! that loses a race (a deadlock, or a key another node recorded first) is
//! rolled back and evaluated again from scratch; any other failure answers
//! every operation of the batch `PERSIST_FAILED`, and the next batch
//! reconnects.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use openclaw_ffi::runtime::WriteOutcome;
use postgres::{Client, Transaction};

use super::staging::{find_key, notify, stage};
use super::{reads, retryable, Db, Pg, Sql, Stmts};
use crate::taskflow::batch::BatchView;
use crate::taskflow::committed::Committed;
use crate::taskflow::error::{internal, persist_failed, StoreError};
use crate::taskflow::keys::{self, Prior, Record, Staged};
use crate::taskflow::metrics::{FlowCounts, StatusDeltas, StoreMetrics};
use crate::taskflow::model::{FlowEntry, TaskEntry};
use crate::taskflow::ops::{Answer, Change, Ctx, Evaluation, Op, SweepReport};
use crate::taskflow::options::Clock;
use crate::taskflow::outbox::{self, Subscriptions, Table};
use crate::taskflow::watch::{self, Watchers};
use crate::taskflow::writer::{count, flow_change, keyed_record, next_batch, Reply, Request};
use crate::taskflow::{children, flows, sweep};

/// Creation sequence numbers per block drawn (the sequence's increment;
/// at least the largest batch).
const SEQ_BLOCK: u64 = 1024;

/// How many times a batch that lost a race is evaluated again.
const ATTEMPTS: usize = 5;

/// The channel each commit announces its changed flow ids on.
pub(crate) const CHANNEL: &str = "openclaw_taskflow";

pub(crate) struct PgWriter {
    pub pg: Arc<Pg>,
    /// Whose flow changes get callback events (see `outbox`).
    pub subscriptions: Arc<Subscriptions>,
    pub client: Option<Client>,
    /// The writer connection's prepared statements.
    pub stmts: Stmts,
    /// The block of creation sequence numbers being handed out: the next
    /// one, and the end of the block (see `evaluate_batch`).
    pub seqs: (u64, u64),
    pub counts: Arc<FlowCounts>,
    pub clock: Clock,
    pub retention_ms: u64,
    pub watchers: Arc<Watchers>,
    pub metrics: StoreMetrics,
    /// Whether the last batch found the server unreachable (logged once
    /// per outage).
    pub down: bool,
}

/// Why a batch did not commit.
pub(super) enum Failure {
    /// It lost a race with another node: evaluate it again.
    Retry,
    /// The server failed or could not be reached.
    Failed,
}

/// What a committed batch answers and changed.
struct Outcome {
    answers: Vec<Reply>,
    committed: Vec<Change>,
    deltas: StatusDeltas,
}

impl PgWriter {
    pub fn run(mut self, rx: Receiver<Request>) {
        let mut last_len = 0;
        while let Some(batch) = next_batch(&rx, last_len) {
            last_len = batch.len();
            self.process(batch);
        }
        self.pg.close();
    }

    fn process(&mut self, batch: Vec<Request>) {
        let (started, n) = (Instant::now(), batch.len());
        let result = catch_unwind(AssertUnwindSafe(|| self.attempts(&batch)));
        self.metrics.batch(started.elapsed(), n);
        let (answers, settled) = match result {
            Ok(Some(out)) => {
                self.counts.apply(&out.deltas);
                let settled = self
                    .watchers
                    .settled(out.committed.iter().filter_map(flow_change));
                (out.answers, settled)
            }
            Ok(None) => ((0..n).map(|_| Err(persist_failed())).collect(), Vec::new()),
            Err(_) => {
                log::error!("taskflow store {}: writer fault", self.pg.label().display());
                // Whatever the fault left open on the connection goes with it.
                self.client = None;
                let fault = internal("TaskFlow store writer fault.");
                ((0..n).map(|_| Err(fault.clone())).collect(), Vec::new())
            }
        };
        for (req, answer) in batch.into_iter().zip(answers) {
            req.reply.deliver(answer);
        }
        watch::wake(settled);
    }

    fn attempts(&mut self, batch: &[Request]) -> Option<Outcome> {
        for attempt in 1..=ATTEMPTS {
            match self.attempt(batch) {
                Ok(out) => {
                    if self.down {
                        self.down = false;
                        log::info!(
                            "taskflow store {}: PostgreSQL answers again",
                            self.pg.label().display()
                        );
                    }
                    return Some(out);
                }
                Err(Failure::Retry) if attempt < ATTEMPTS => {}
                Err(_) => return None,
            }
        }
        None
    }

    fn attempt(&mut self, batch: &[Request]) -> Result<Outcome, Failure> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = None;
            self.stmts.clear();
            match self.pg.connect() {
                Ok(client) => self.client = Some(client),
                Err(err) => {
                    self.outage(&err.to_string());
                    return Err(Failure::Failed);
                }
            }
        }
        let Some(client) = self.client.as_mut() else {
            return Err(Failure::Failed);
        };
        let batch_ctx = BatchCtx {
            subscribed: self.subscriptions.snapshot(),
            path: self.pg.label(),
            clock: &self.clock,
            retention_ms: self.retention_ms,
        };
        let result = run_batch(client, &mut self.stmts, &mut self.seqs, &batch_ctx, batch);
        if let Err(Failure::Failed) = &result {
            if client.is_closed() {
                self.client = None;
            }
            self.outage("the batch failed");
        }
        result
    }

    fn outage(&mut self, detail: &str) {
        if !self.down {
            self.down = true;
            log::warn!(
                "taskflow store {}: PostgreSQL is unavailable ({detail}); writes answer \
                 persist_failed until it answers again",
                self.pg.label().display()
            );
        }
    }
}

struct BatchCtx<'a> {
    subscribed: Arc<Table>,
    path: &'a Path,
    clock: &'a Clock,
    retention_ms: u64,
}

/// Committed state as one batch's transaction sees it, every row locked
/// until the commit. A failed lookup is remembered: PostgreSQL has aborted
/// the transaction, so nothing more of the batch can commit.
struct PgCommitted<'a, 'b, 't> {
    db: &'a RefCell<TxDb<'b, 't>>,
    path: &'a Path,
    /// `Some(retryable)` once a lookup failed.
    failed: Cell<Option<bool>>,
}

impl PgCommitted<'_, '_, '_> {
    fn note<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(err) = &result {
            let again = matches!(err, StoreError::Postgres { source, .. } if retryable(source));
            self.failed.set(Some(again));
        }
        result
    }
}

/// The batch's transaction with the writer connection's statements.
type TxDb<'b, 't> = Db<'b, Transaction<'t>>;

impl Committed for PgCommitted<'_, '_, '_> {
    fn flow(&self, flow_id: &str) -> Result<Option<Arc<FlowEntry>>, StoreError> {
        let found = reads::flow(&mut *self.db.borrow_mut(), self.path, flow_id, true);
        self.note(found).map(|f| f.map(Arc::new))
    }

    fn task(&self, task_id: &str) -> Result<Option<Arc<TaskEntry>>, StoreError> {
        let found = reads::task(&mut *self.db.borrow_mut(), self.path, task_id, true);
        self.note(found).map(|t| t.map(Arc::new))
    }

    /// The primary keys refuse a duplicate id; the batch then runs again.
    fn checks_fresh_ids(&self) -> bool {
        false
    }

    fn flow_tasks(&self, flow_id: &str) -> Result<Vec<Arc<TaskEntry>>, StoreError> {
        let found = reads::flow_tasks(&mut *self.db.borrow_mut(), self.path, flow_id, true);
        self.note(found)
            .map(|tasks| tasks.into_iter().map(Arc::new).collect())
    }
}

pub(super) fn classify(path: &Path, what: &str, err: &postgres::Error) -> Failure {
    if retryable(err) {
        log::debug!(
            "taskflow store {}: {what} lost a race: {err}",
            path.display()
        );
        Failure::Retry
    } else {
        let detail = err.as_db_error().map(|e| e.message()).unwrap_or_default();
        log::warn!(
            "taskflow store {}: {what} failed: {err} {detail}",
            path.display()
        );
        Failure::Failed
    }
}

fn run_batch(
    client: &mut Client,
    stmts: &mut Stmts,
    seqs: &mut (u64, u64),
    ctx: &BatchCtx<'_>,
    batch: &[Request],
) -> Result<Outcome, Failure> {
    let path = ctx.path;
    let mut tx = client
        .transaction()
        .map_err(|e| classify(path, "begin", &e))?;
    // Returning early drops `tx`, which rolls the batch back.
    let out = evaluate_batch(&RefCell::new(Db { c: &mut tx, stmts }), seqs, ctx, batch)?;
    // Committed even when no change was staged: a prune deletes directly.
    tx.commit().map_err(|e| classify(path, "commit", &e))?;
    ctx.subscribed.wake(&out.committed);
    Ok(out)
}

/// Evaluates and stages the batch inside its transaction (the commit is
/// the caller's).
///
/// Creation sequence numbers come from blocks of [`SEQ_BLOCK`] drawn from
/// the shared sequence: a new block when what is left of the current one
/// might not cover the batch (each operation creates at most one row), so
/// no two nodes ever hand out the same number.
fn evaluate_batch(
    db: &RefCell<TxDb<'_, '_>>,
    seqs: &mut (u64, u64),
    ctx: &BatchCtx<'_>,
    batch: &[Request],
) -> Result<Outcome, Failure> {
    let path = ctx.path;
    let creating = batch
        .iter()
        .filter(|r| matches!(r.op, Op::Create { .. } | Op::RunTask { .. }))
        .count() as u64;
    if creating > seqs.1.saturating_sub(seqs.0) {
        let rows = db
            .borrow_mut()
            .query("SELECT nextval('taskflow_seq_blocks')", &[])
            .map_err(|e| classify(path, "drawing sequence numbers", &e))?;
        let first = rows.first().map(|row| row.get::<_, i64>(0));
        let start = first.and_then(|v| u64::try_from(v).ok()).unwrap_or(0);
        *seqs = (start, start + SEQ_BLOCK);
    }
    let next_seq = &mut seqs.0;
    let committed_state = PgCommitted {
        db,
        path,
        failed: Cell::new(None),
    };
    let mut view = BatchView::new(&committed_state, next_seq);
    let mut staged = Staged::default();
    let mut out = Outcome {
        answers: Vec::with_capacity(batch.len()),
        committed: Vec::new(),
        deltas: StatusDeltas::default(),
    };
    for req in batch {
        let op_ctx = Ctx {
            now: ctx.clock.now(),
            retention_ms: ctx.retention_ms,
        };
        let evaluation = catch_unwind(AssertUnwindSafe(|| {
            evaluate_claimed(db, path, &staged, &mut view, &op_ctx, req)
        }))
        .unwrap_or_else(|_| {
            Ok(Evaluation {
                answer: Err(internal("TaskFlow operation fault.")),
                changes: Vec::new(),
            })
        })?;
        let mut evaluation = evaluation;
        if evaluation.answer.is_ok() {
            // Events are staged with the changes that emit them.
            outbox::add_events(&ctx.subscribed, &view, &op_ctx, &mut evaluation.changes);
        }
        view.take_failure();
        if let Some(again) = committed_state.failed.get() {
            return Err(if again {
                Failure::Retry
            } else {
                Failure::Failed
            });
        }
        if evaluation.answer.is_ok() && !evaluation.changes.is_empty() {
            for change in &evaluation.changes {
                stage(&mut *db.borrow_mut(), path, change, op_ctx.now)?;
            }
            count(&view, &evaluation.changes, &mut out.deltas);
            view.apply(&evaluation.changes);
            for change in &evaluation.changes {
                if let Change::PutRecord(r) = change {
                    staged.add(Record::clone(r));
                }
            }
            out.committed.extend(evaluation.changes);
        }
        out.answers.push(evaluation.answer);
    }
    drop(view);
    notify(&mut *db.borrow_mut(), &out.committed).map_err(|e| classify(path, "notify", &e))?;
    Ok(out)
}

/// Evaluates a request; a keyed write is answered from its key's live
/// record when there is one (see `keys`), and otherwise stages its reply.
fn evaluate_claimed(
    tx: &RefCell<TxDb<'_, '_>>,
    path: &Path,
    staged: &Staged,
    view: &mut BatchView<'_>,
    ctx: &Ctx,
    req: &Request,
) -> Result<Evaluation, Failure> {
    let Some(claim) = &req.claim else {
        return evaluate(tx, path, view, ctx, &req.op);
    };
    let (scope, key) = (claim.claim.scope.as_str(), claim.claim.key.as_str());
    let found = match staged.get(scope, key) {
        Some(r) => Some(r.clone()),
        None => find_key(&mut *tx.borrow_mut(), scope, key)
            .map_err(|e| classify(path, "idempotency lookup", &e))?,
    };
    match keys::judge(found, &claim.claim, ctx.now) {
        Prior::Same(reply) => Ok(Evaluation::read_only(Answer::Write(
            WriteOutcome::Replayed(reply),
        ))),
        Prior::Other => Ok(Evaluation::read_only(Answer::Write(
            WriteOutcome::KeyMismatch,
        ))),
        Prior::None => {
            let mut evaluation = evaluate(tx, path, view, ctx, &req.op)?;
            keyed_record(claim, &mut evaluation, ctx.now);
            Ok(evaluation)
        }
    }
}

fn evaluate(
    tx: &RefCell<TxDb<'_, '_>>,
    path: &Path,
    view: &mut BatchView<'_>,
    ctx: &Ctx,
    op: &Op,
) -> Result<Evaluation, Failure> {
    Ok(match op {
        Op::Create { owner, input } => flows::create(view, ctx, owner, input),
        Op::Mutate { owner, mutation } => flows::mutate(view, ctx, owner, mutation),
        Op::Cancel { owner, flow_id } => children::cancel(view, ctx, owner, flow_id.as_str()),
        Op::RunTask { owner, input } => children::run_task(view, ctx, owner, input),
        Op::Sweep { finalize, prune } => sweep::apply(view, ctx, finalize, prune),
        Op::Outbox(_) => Evaluation {
            answer: Err(internal(
                "Outbox calls on PostgreSQL run outside the writer (see `pg::outbox`).",
            )),
            changes: Vec::new(),
        },
        Op::PruneKeys { limit } => {
            let limit = i64::try_from(*limit).unwrap_or(i64::MAX);
            let pruned = tx
                .borrow_mut()
                .execute(
                    "DELETE FROM idempotency WHERE ctid IN (SELECT ctid FROM idempotency \
                     WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2)",
                    &[&crate::taskflow::rows::int(ctx.now), &limit],
                )
                .map_err(|e| classify(path, "pruning idempotency records", &e))?;
            Evaluation::read_only(Answer::Sweep(SweepReport {
                pruned_keys: usize::try_from(pruned).unwrap_or(usize::MAX),
                ..SweepReport::default()
            }))
        }
    })
}
