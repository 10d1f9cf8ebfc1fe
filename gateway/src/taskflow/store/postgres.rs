//! Opening the store in PostgreSQL (`Store::open_postgres`): the same
//! handle as the embedded store's, with the PostgreSQL writer, reader
//! threads on pooled connections and the listener thread (see `pg`).

use std::sync::mpsc;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use super::{millis, spawn_thread, Inner, Store};
use crate::taskflow::cache::FlowCache;
use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::runtime::{DueEvents, Settlement};

use crate::taskflow::error::{persist_failed, StoreError};
use crate::taskflow::metrics::{FlowCounts, StoreMetrics};
use crate::taskflow::options::StoreOptions;
use crate::taskflow::outbox::Subscriptions;
use crate::taskflow::pg::writer::PgWriter;
use crate::taskflow::pg::{self as pgstore, Pg, PgOptions};
use crate::taskflow::read_pool::ReadPool;
use crate::taskflow::readers::Readers;
use crate::taskflow::watch::Watchers;
use crate::taskflow::writer::Request;

impl Store {
    /// `due_events` on PostgreSQL, in a transaction of its own on this
    /// thread (the delivery worker's).
    pub(crate) fn pg_claim(
        &self,
        scope: &str,
        now: u64,
        limit: u32,
        lease_until: u64,
    ) -> Result<DueEvents, TaskFlowError> {
        let pg = self.pg().ok_or_else(persist_failed)?;
        pg.with(|db| pgstore::outbox::claim(db, pg.label(), scope, now, limit, lease_until))
            .map_err(|err| outbox_failed(&err))
    }

    /// `settle_events` on PostgreSQL (see [`Store::pg_claim`]).
    pub(crate) fn pg_settle(
        &self,
        scope: &str,
        settlements: &[Settlement],
    ) -> Result<(), TaskFlowError> {
        let pg = self.pg().ok_or_else(persist_failed)?;
        let now = self.inner.clock.now();
        pg.with(|db| pgstore::outbox::settle(db, pg.label(), scope, settlements, now))
            .map_err(|err| outbox_failed(&err))
    }

    /// Prunes settled events older than the retention, a chunk at a time.
    pub(super) fn pg_prune_events(&self, pg: &Pg, chunk: usize) -> usize {
        let cutoff = self
            .inner
            .clock
            .now()
            .saturating_sub(self.inner.retention_ms);
        let mut total = 0;
        loop {
            match pg.with(|db| pgstore::outbox::prune(db, pg.label(), cutoff, chunk)) {
                Ok(n) => {
                    total += n;
                    if n < chunk {
                        return total;
                    }
                }
                Err(err) => {
                    log::warn!("taskflow store: pruning outbox events failed: {err}");
                    return total;
                }
            }
        }
    }

    /// Opens the store in PostgreSQL (whose schema is already migrated),
    /// counts its flows by status, and starts the writer, the reader
    /// threads and the sweeper. Of `options`, the path is unused; the
    /// cache is not used either (see [`Inner::pg`]). At most
    /// `pg.pool_size` connections are open (at least three): one for the
    /// writer, one for the listener (`pg::listen`), the rest for the reader
    /// threads.
    pub fn open_postgres(options: StoreOptions, pg: &PgOptions) -> Result<Store, StoreError> {
        let pool = Arc::new(Pg::new(pg)?);
        let path = pool.label().to_path_buf();
        let mut client = pool.connect()?;
        let mut stmts = pgstore::Stmts::new();
        let counts = pgstore::reads::status_counts(
            &mut pgstore::Db {
                c: &mut client,
                stmts: &mut stmts,
            },
            &path,
        )?;
        bump_sequence(&mut client, &pool)?;
        let counts = Arc::new(FlowCounts::new(counts));
        let (tx, rx) = mpsc::channel::<Request>();
        let watchers = Arc::new(Watchers::default());
        let metrics = StoreMetrics::default();
        let subscriptions = Arc::new(Subscriptions::default());
        let writer = PgWriter {
            subscriptions: Arc::clone(&subscriptions),
            pg: Arc::clone(&pool),
            client: Some(client),
            stmts,
            seqs: (0, 0),
            counts: Arc::clone(&counts),
            clock: options.clock.clone(),
            retention_ms: millis(options.retention),
            watchers: Arc::clone(&watchers),
            metrics: metrics.clone(),
            down: false,
        };
        let writer = spawn_thread(&path, "taskflow-writer", move || writer.run(rx))?;
        let readers = usize::try_from(pg.pool_size.saturating_sub(2).max(1)).unwrap_or(1);
        let read_pool = ReadPool::start(&path, readers)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let listener = {
            let (pool, watchers, stop) =
                (Arc::clone(&pool), Arc::clone(&watchers), Arc::clone(&stop));
            let subscriptions = Arc::clone(&subscriptions);
            spawn_thread(&path, "taskflow-listener", move || {
                pgstore::listen::run(&pool, &watchers, &subscriptions, &stop);
            })?
        };
        let counter = {
            let (pool, counts, stop) = (Arc::clone(&pool), Arc::clone(&counts), Arc::clone(&stop));
            spawn_thread(&path, "taskflow-counter", move || {
                pgstore::count::run(&pool, &counts, &stop);
            })?
        };
        let store = Store {
            inner: Arc::new(Inner {
                path: path.clone(),
                retention_ms: millis(options.retention),
                clock: options.clock,
                cache: Arc::new(FlowCache::new(1)),
                counts,
                readers: Readers::new(path.clone()),
                read_pool,
                lock: Mutex::new(None),
                subscriptions,
                tx: RwLock::new(Some(tx)),
                writer: Mutex::new(Some(writer)),
                sweeper: Mutex::new(None),
                stop,
                watchers,
                metrics,
                pg: Some(pool),
                listener: Mutex::new(vec![listener, counter]),
            }),
        };
        store.start_sweeper(options.sweep_interval)?;
        log::info!(
            "taskflow store {}: opened on PostgreSQL with {} flows",
            path.display(),
            store.flow_count()
        );
        Ok(store)
    }
}

/// Moves the block sequence past every stored sequence number when rows
/// were copied in (`migrate --from-state-dir`, whose rows PostgreSQL
/// numbers itself); a no-op otherwise, since every block drawn lies above
/// the numbers handed out before it. Copying into a schema that Gateways
/// already serve is not covered: run `migrate` before they start.
fn bump_sequence(client: &mut postgres::Client, pool: &Pg) -> Result<(), StoreError> {
    client
        .execute(
            "SELECT setval('taskflow_seq_blocks', m) FROM \
             (SELECT GREATEST((SELECT COALESCE(MAX(seq), 0) FROM flows), \
                              (SELECT COALESCE(MAX(seq), 0) FROM tasks)) + 1 AS m) AS x, \
             taskflow_seq_blocks AS s \
             WHERE x.m > s.last_value + CASE WHEN s.is_called THEN 1024 ELSE 0 END",
            &[],
        )
        .map_err(pool.err("cannot read the sequence"))?;
    Ok(())
}

/// An outbox call that failed: logged, answered `PERSIST_FAILED` (the
/// delivery worker tries again later).
fn outbox_failed(err: &StoreError) -> TaskFlowError {
    log::warn!("taskflow store: an outbox call failed: {err}");
    persist_failed()
}
