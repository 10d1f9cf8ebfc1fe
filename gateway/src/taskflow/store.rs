//! The store handle: opening (files, schema, counts; no flow is loaded),
//! the writer and sweeper threads, submitting operations, and closing.
//! Reads are in `reads`.

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Weak};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use openclaw_ffi::records::FlowStatus;
use parking_lot::{Condvar, Mutex, RwLock};

use super::cache::FlowCache;
use super::error::sqlite_err;
use super::error::{internal, persist_failed, StoreError};
use super::keys::Claim;
use super::metrics::{FlowCounts, StoreMetrics};
use super::ops::{Answer, Op, SweepReport};
use super::options::{Clock, StoreOptions};
use super::outbox::{self, OutboxOp, Subscriptions};
use super::pg::{self as pgstore, Pg};
use super::read_pool::{ReadPool, READ_THREADS};
use super::readers::Readers;
use super::sweep::{self, SWEEP_CHUNK};
use super::watch::Watchers;
use super::writer::{Replier, Reply, Request, Writer};
use super::{file, rows};

/// A cheap, cloneable handle to one open TaskFlow store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

mod postgres;

pub(super) struct Inner {
    pub(super) path: PathBuf,
    retention_ms: u64,
    clock: Clock,
    pub(super) cache: Arc<FlowCache>,
    counts: Arc<FlowCounts>,
    pub(super) readers: Readers,
    read_pool: ReadPool,
    /// The store's lock (see `file::lock`), released by `close`.
    lock: Mutex<Option<File>>,
    subscriptions: Arc<Subscriptions>,
    tx: RwLock<Option<Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    sweeper: Mutex<Option<(ThreadId, JoinHandle<()>)>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    pub(super) watchers: Arc<Watchers>,
    metrics: StoreMetrics,
    /// Set when the store lives in PostgreSQL: reads go there (the cache
    /// stays empty, since other nodes write too) and the writer thread is
    /// a [`PgWriter`].
    pub(super) pg: Option<Arc<Pg>>,
    /// The PostgreSQL store's listener and counter threads (see
    /// `pg::listen`, `pg::count`).
    listener: Mutex<Vec<JoinHandle<()>>>,
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Store {
    /// Opens the store (creating it where no file exists, migrating an
    /// older schema, refusing a file that holds no store or is in use),
    /// counts its flows by status from an index, and starts the writer and
    /// sweeper threads. No flow is loaded: reads go to the cache of
    /// `cache_max_flows` hot flows, then to SQLite.
    pub fn open(options: StoreOptions) -> Result<Store, StoreError> {
        let path = options.path.clone();
        let lock = file::lock(&path)?;
        let conn = file::open(&path, options.max_store_bytes)?;
        let counts = Arc::new(FlowCounts::new(rows::status_counts(&conn, &path)?));
        let next_seq = rows::next_seq(&conn, &path)?;
        let (pending, dead) =
            outbox::open_counts(&conn).map_err(sqlite_err(&path, "cannot count outbox events"))?;
        file::harden_modes(&path)?;
        let cache = Arc::new(FlowCache::new(options.cache_max_flows));
        let subscriptions = Arc::new(Subscriptions::default());
        let (tx, rx) = mpsc::channel::<Request>();
        let watchers = Arc::new(Watchers::default());
        let metrics = StoreMetrics::default();
        let writer = Writer {
            conn,
            path: path.clone(),
            cache: Arc::clone(&cache),
            counts: Arc::clone(&counts),
            clock: options.clock.clone(),
            retention_ms: millis(options.retention),
            next_seq,
            watchers: Arc::clone(&watchers),
            metrics: metrics.clone(),
            subscriptions: Arc::clone(&subscriptions),
        };
        let writer = spawn_thread(&path, "taskflow-writer", move || writer.run(rx))?;
        let read_pool = ReadPool::start(&path, READ_THREADS)?;
        let store = Store {
            inner: Arc::new(Inner {
                path: path.clone(),
                retention_ms: millis(options.retention),
                clock: options.clock,
                cache,
                counts,
                readers: Readers::new(path.clone()),
                read_pool,
                lock: Mutex::new(Some(lock)),
                subscriptions,
                tx: RwLock::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                sweeper: Mutex::new(None),
                stop: Arc::new((Mutex::new(false), Condvar::new())),
                watchers,
                metrics,
                pg: None,
                listener: Mutex::new(Vec::new()),
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

    /// Whether the store lives in PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.inner.pg.is_some()
    }

    pub(super) fn pg(&self) -> Option<&Arc<Pg>> {
        self.inner.pg.as_ref()
    }

    fn start_sweeper(&self, interval: Duration) -> Result<(), StoreError> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let stop = Arc::clone(&self.inner.stop);
        let handle = spawn_thread(&self.inner.path, "taskflow-sweeper", move || {
            sweeper_loop(weak, stop, interval);
        })?;
        *self.inner.sweeper.lock() = Some((handle.thread().id(), handle));
        Ok(())
    }

    /// Runs one maintenance pass now and reports what it changed.
    pub fn sweep_now(&self) -> SweepReport {
        let now = self.inner.clock.now();
        let mut report = SweepReport::default();
        // Candidates come from indexed queries, a chunk at a time; the
        // writer re-checks each one before it changes anything.
        let mut finalize = sweep::Candidates::new(now, self.inner.retention_ms);
        loop {
            let chunk = match &self.inner.pg {
                Some(pg) => pg.with(|client| {
                    let client = std::cell::RefCell::new(client);
                    finalize.next_chunk_from(
                        SWEEP_CHUNK,
                        |after| {
                            let c = &mut **client.borrow_mut();
                            pgstore::reads::cancel_requested(c, pg.label(), after, SWEEP_CHUNK)
                        },
                        |cutoff, after| {
                            let c = &mut **client.borrow_mut();
                            pgstore::reads::ended_before(c, pg.label(), cutoff, after, SWEEP_CHUNK)
                        },
                    )
                }),
                None => self
                    .inner
                    .readers
                    .with(|conn| finalize.next_chunk(conn, &self.inner.path, SWEEP_CHUNK)),
            };
            let (finalize_ids, prune_ids) = match chunk {
                Ok(chunk) => chunk,
                Err(err) => {
                    super::error::read_failed(&err);
                    break;
                }
            };
            if finalize_ids.is_empty() && prune_ids.is_empty() {
                break;
            }
            let op = Op::Sweep {
                finalize: finalize_ids,
                prune: prune_ids,
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
        if let Some(pg) = &self.inner.pg {
            report.pruned_events += self.pg_prune_events(pg, SWEEP_CHUNK);
            return report;
        }
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
        self.inner.counts.snapshot()
    }

    /// How many flows the store holds, of every owner.
    pub fn flow_count(&self) -> usize {
        self.flows_by_status().iter().map(|(_, n)| n).sum()
    }

    /// How many flows the cache holds now.
    pub fn cached_flows(&self) -> usize {
        self.inner.cache.len()
    }

    pub(super) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(super) fn read_pool(&self) -> &ReadPool {
        &self.inner.read_pool
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
        // Queued reads are answered first.
        self.read_pool.stop();
        for handle in std::mem::take(&mut *self.listener.lock()) {
            if handle.join().is_err() {
                log::error!(
                    "taskflow store {}: a PostgreSQL thread panicked",
                    self.path.display()
                );
            }
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
        self.readers.close();
        if let Some(pg) = &self.pg {
            pg.close();
        }
        drop(self.lock.lock().take());
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.close();
    }
}

/// Starts one of the store's threads, named `name`.
pub(super) fn spawn_thread(
    path: &std::path::Path,
    name: &str,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, StoreError> {
    thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|source| StoreError::Thread {
            path: path.to_path_buf(),
            source,
        })
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
