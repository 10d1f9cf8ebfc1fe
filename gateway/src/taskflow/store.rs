//! The store handle: opening (files, schema, load), the writer and sweeper
//! threads, reading the index, submitting operations, and closing.

use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use openclaw_ffi::records::FlowStatus;
use parking_lot::{Condvar, Mutex, RwLock};

use super::error::sqlite_err;
use super::error::{internal, persist_failed, StoreError};
use super::index::Index;
use super::keys::Claim;
use super::metrics::StoreMetrics;
use super::ops::{Answer, Op, SweepReport};
use super::options::{Clock, StoreOptions};
use super::outbox::{self, OutboxOp, Subscriptions};
use super::sweep::{self, SWEEP_CHUNK};
use super::watch::{settles, Watchers};
use super::writer::{Replier, Reply, Request, Writer};
use super::{file, rows};

/// A cheap, cloneable handle to one open TaskFlow store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    retention_ms: u64,
    clock: Clock,
    index: Arc<RwLock<Index>>,
    subscriptions: Arc<Subscriptions>,
    tx: RwLock<Option<Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    sweeper: Mutex<Option<(ThreadId, JoinHandle<()>)>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    watchers: Arc<Watchers>,
    metrics: StoreMetrics,
}

fn duplicate(path: &std::path::Path, kind: &str, id: &str) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("{kind} row {id}: duplicate id"),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Store {
    /// Opens the store (creating it where no file exists, migrating an
    /// older schema, refusing a file that holds no store), loads every flow
    /// and task into memory, and starts the writer and sweeper threads.
    pub fn open(options: StoreOptions) -> Result<Store, StoreError> {
        let path = options.path.clone();
        let conn = file::open(&path, options.max_store_bytes)?;
        let mut index = Index::default();
        let mut next_seq = 0u64;
        for flow in rows::load_flows(&conn, &path)? {
            if index.flow(flow.id()).is_some() {
                return Err(duplicate(&path, "flow", flow.id()));
            }
            next_seq = next_seq.max(flow.seq.saturating_add(1));
            index.put_flow(Arc::new(flow));
        }
        for task in rows::load_tasks(&conn, &path)? {
            if index.task(task.id()).is_some() {
                return Err(duplicate(&path, "task", task.id()));
            }
            next_seq = next_seq.max(task.seq.saturating_add(1));
            index.put_task(Arc::new(task));
        }
        let (pending, dead) =
            outbox::open_counts(&conn).map_err(sqlite_err(&path, "cannot count outbox events"))?;
        file::harden_modes(&path)?;
        let index = Arc::new(RwLock::new(index));
        let subscriptions = Arc::new(Subscriptions::default());
        let (tx, rx) = mpsc::channel::<Request>();
        let watchers = Arc::new(Watchers::default());
        let metrics = StoreMetrics::default();
        let writer = Writer {
            conn,
            path: path.clone(),
            index: Arc::clone(&index),
            clock: options.clock.clone(),
            retention_ms: millis(options.retention),
            next_seq,
            watchers: Arc::clone(&watchers),
            metrics: metrics.clone(),
            subscriptions: Arc::clone(&subscriptions),
        };
        let writer = thread::Builder::new()
            .name("taskflow-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| StoreError::Thread {
                path: path.clone(),
                source,
            })?;
        let store = Store {
            inner: Arc::new(Inner {
                path: path.clone(),
                retention_ms: millis(options.retention),
                clock: options.clock,
                index,
                subscriptions,
                tx: RwLock::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                sweeper: Mutex::new(None),
                stop: Arc::new((Mutex::new(false), Condvar::new())),
                watchers,
                metrics,
            }),
        };
        store.start_sweeper(options.sweep_interval)?;
        log::info!(
            "taskflow store {}: opened with {} flows",
            path.display(),
            store.flow_count()
        );
        if pending > 0 || dead > 0 {
            log::info!(
                "taskflow store {}: outbox holds {pending} undelivered events and {dead} dead ones",
                path.display()
            );
        }
        Ok(store)
    }

    fn start_sweeper(&self, interval: Duration) -> Result<(), StoreError> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let stop = Arc::clone(&self.inner.stop);
        let handle = thread::Builder::new()
            .name("taskflow-sweeper".into())
            .spawn(move || sweeper_loop(weak, stop, interval))
            .map_err(|source| StoreError::Thread {
                path: self.inner.path.clone(),
                source,
            })?;
        *self.inner.sweeper.lock() = Some((handle.thread().id(), handle));
        Ok(())
    }

    /// Runs one maintenance pass now and reports what it changed.
    pub fn sweep_now(&self) -> SweepReport {
        let now = self.inner.clock.now();
        let (finalize, prune) = sweep::scan(&self.inner.index.read(), now, self.inner.retention_ms);
        let mut report = SweepReport::default();
        let chunks = finalize.len().max(prune.len()).div_ceil(SWEEP_CHUNK);
        for i in 0..chunks {
            let range = |v: &Vec<String>| {
                let start = (i * SWEEP_CHUNK).min(v.len());
                let end = ((i + 1) * SWEEP_CHUNK).min(v.len());
                v[start..end].to_vec()
            };
            let op = Op::Sweep {
                finalize: range(&finalize),
                prune: range(&prune),
            };
            match self.perform(op) {
                Ok(Answer::Sweep(r)) => report.add(r),
                Ok(_) => log::error!("taskflow store: unexpected sweep answer"),
                Err(err) => {
                    log::warn!(
                        "taskflow store {}: sweep failed: {}",
                        self.inner.path.display(),
                        err.message
                    );
                    break;
                }
            }
        }
        // Expired idempotency records and old settled outbox events, a
        // bounded chunk per writer operation so that requests interleave
        // with a large prune.
        report.add(self.prune_chunks(
            "idempotency records",
            || Op::PruneKeys { limit: SWEEP_CHUNK },
            |r| r.pruned_keys,
        ));
        report.add(self.prune_chunks(
            "outbox events",
            || Op::Outbox(OutboxOp::Prune { limit: SWEEP_CHUNK }),
            |r| r.pruned_events,
        ));
        report
    }

    /// Runs prune operations until one prunes less than a full chunk.
    fn prune_chunks(
        &self,
        what: &str,
        op: impl Fn() -> Op,
        pruned: impl Fn(&SweepReport) -> usize,
    ) -> SweepReport {
        let mut report = SweepReport::default();
        loop {
            match self.perform(op()) {
                Ok(Answer::Sweep(r)) => {
                    report.add(r);
                    if pruned(&r) < SWEEP_CHUNK {
                        break;
                    }
                }
                Ok(_) => {
                    log::error!("taskflow store: unexpected prune answer");
                    break;
                }
                Err(err) => {
                    log::warn!(
                        "taskflow store {}: pruning {what} failed: {}",
                        self.inner.path.display(),
                        err.message
                    );
                    break;
                }
            }
        }
        report
    }

    /// Who gets outbox events, and the leases of claimed ones.
    pub(crate) fn subscriptions(&self) -> &Arc<Subscriptions> {
        &self.inner.subscriptions
    }

    /// Stops the sweeper, drains and stops the writer, checkpoints the WAL.
    /// Idempotent; later writes fail with `PERSIST_FAILED`.
    pub fn close(&self) {
        self.inner.close();
    }

    /// The writer's commit histograms.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// How many flows the store holds in each status, of every owner.
    pub fn flows_by_status(&self) -> [(FlowStatus, usize); 8] {
        self.read(|index| index.status_counts())
    }

    /// How many flows the store holds, of every owner.
    pub fn flow_count(&self) -> usize {
        self.read(Index::flow_count)
    }

    /// Runs `f` on the committed state. Reads never touch disk; `f` runs
    /// under the index's read lock, so it should copy out what it needs.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Index) -> T) -> T {
        f(&self.inner.index.read())
    }

    /// Registers `waker` to be woken once `owner`'s flow `flow_id` is
    /// settled for a reader that has seen `above` (a later revision, a
    /// terminal flow, or no such flow): at once when it already is, else by
    /// the commit that settles it. Returns the ticket for
    /// [`Store::unwatch`].
    pub(crate) fn watch(
        &self,
        owner: &str,
        flow_id: &str,
        above: u64,
        waker: openclaw_ffi::runtime::FlowWakerBox,
    ) -> u64 {
        let watchers = &self.inner.watchers;
        let ticket = watchers.add(flow_id, above, waker);
        // Registered first, read second: a commit published before this
        // read is seen here; one published after it finds the waker.
        let settled = self.read(|index| {
            index
                .owned_flow(owner, flow_id)
                .is_none_or(|f| settles(&f.record, above))
        });
        if settled {
            watchers.fire(ticket);
        }
        ticket
    }

    /// Drops the registration of `ticket` if it was not woken yet.
    pub(crate) fn unwatch(&self, ticket: u64) {
        drop(self.inner.watchers.remove(ticket));
    }

    /// How many reads wait for a flow to change.
    pub fn waiting(&self) -> usize {
        self.inner.watchers.len()
    }

    /// Sends one operation to the writer and waits for its answer.
    pub(crate) fn perform(&self, op: Op) -> Reply {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(
            op,
            Replier::new(move |answer| {
                // A caller that gave up waiting is not an error.
                let _ = reply.send(answer);
            }),
        );
        answer
            .recv()
            .map_err(|_| internal("TaskFlow store writer stopped."))?
    }

    /// Queues `op` and returns at once; `done` runs on the writer thread
    /// with the answer once the batch is durable (or at once, here, when the
    /// store is closed).
    pub(crate) fn submit(&self, op: Op, done: Replier) {
        self.submit_claimed(op, None, done);
    }

    /// [`Store::submit`] for a write made retry-safe by `claim`.
    pub(crate) fn submit_claimed(&self, op: Op, claim: Option<Claim>, done: Replier) {
        let request = Request {
            op,
            claim,
            reply: done,
        };
        if let Some(request) = self.enqueue(request) {
            request.reply.deliver(Err(persist_failed()));
        }
    }

    /// Hands a request to the writer; gives it back when the store is
    /// closed.
    fn enqueue(&self, request: Request) -> Option<Request> {
        let tx = self.inner.tx.read();
        match tx.as_ref() {
            Some(tx) => tx.send(request).err().map(|e| e.0),
            None => Some(request),
        }
    }
}

impl Inner {
    fn close(&self) {
        {
            let (flag, cv) = &*self.stop;
            *flag.lock() = true;
            cv.notify_all();
        }
        if let Some((id, handle)) = self.sweeper.lock().take() {
            // The sweeper may itself drop the last handle; never join oneself.
            if id != thread::current().id() && handle.join().is_err() {
                log::error!("taskflow store {}: sweeper panicked", self.path.display());
            }
        }
        // Dropping the only sender lets the writer drain its queue and stop.
        drop(self.tx.write().take());
        if let Some(handle) = self.writer.lock().take() {
            if handle.join().is_err() {
                log::error!("taskflow store {}: writer panicked", self.path.display());
            }
        }
        // Nothing commits any more: nobody waits for a commit.
        self.watchers.wake_all();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

fn sweeper_loop(store: Weak<Inner>, stop: Arc<(Mutex<bool>, Condvar)>, interval: Duration) {
    let (flag, cv) = &*stop;
    loop {
        {
            let mut stopped = flag.lock();
            if !*stopped {
                cv.wait_for(&mut stopped, interval);
            }
            if *stopped {
                return;
            }
        }
        let Some(inner) = store.upgrade() else { return };
        let handle = Store { inner };
        let report = handle.sweep_now();
        if report != SweepReport::default() {
            log::info!(
                "taskflow store {}: sweep finalized {} and pruned {} flows, {} tasks, {} outbox events",
                handle.inner.path.display(),
                report.finalized,
                report.pruned_flows,
                report.pruned_tasks,
                report.pruned_events
            );
        }
    }
}
