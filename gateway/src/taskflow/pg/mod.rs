//! The PostgreSQL backend of the store, for several Gateways sharing one
//! database: connections (`Pg`: timeouts, a small idle pool, reconnecting
//! after a failure), row mapping (`rows`), the reads (`reads`) and the
//! writer thread (`writer`), which evaluates batches with the same
//! semantics as the embedded store and commits each batch in one
//! transaction, the rows it reads locked `FOR UPDATE`.

pub(crate) mod count;
pub(crate) mod listen;
pub(crate) mod outbox;
pub(crate) mod reads;
pub(crate) mod rows;
pub(crate) mod staging;
pub mod tls;
pub(crate) mod writer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, Row, Statement};

use super::error::StoreError;

/// How long connecting, a statement or a lock wait may take before the
/// server counts as unavailable: requests answer within this, never hang.
pub const PG_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the store's PostgreSQL is and how many connections it may keep.
#[derive(Clone)]
pub struct PgOptions {
    /// The connection URL, password included (never shown).
    pub url: String,
    /// The URL as logs show it (password redacted).
    pub label: String,
    /// Most connections this Gateway keeps (writer + readers).
    pub pool_size: u32,
}

/// Connections to the store's database: each user takes an idle one (or
/// opens one) and gives it back unless it failed.
pub(crate) struct Pg {
    config: Config,
    transport: tls::Transport,
    label: PathBuf,
    idle: Mutex<Vec<(Client, Stmts)>>,
    max_idle: usize,
    /// When the last connection attempt failed: for [`RETRY_AFTER`] after
    /// it, connecting fails at once instead of waiting out another
    /// timeout, so a queue of requests does not wait one timeout each
    /// while the server is away.
    failed_at: Mutex<Option<Instant>>,
}

/// How long after a failed connection attempt the next one is made.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Pg {
    pub fn new(options: &PgOptions) -> Result<Self, StoreError> {
        let label = PathBuf::from(&options.label);
        let mut config = tls::parse_url(&options.url).map_err(|source| StoreError::Postgres {
            path: label.clone(),
            action: "cannot read the URL",
            source,
        })?;
        config
            .connect_timeout(PG_TIMEOUT)
            .tcp_user_timeout(PG_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5));
        let transport = tls::Transport::for_config(&config).map_err(|source| StoreError::Tls {
            path: label.clone(),
            source,
        })?;
        Ok(Self {
            config,
            transport,
            label,
            idle: Mutex::new(Vec::new()),
            max_idle: options.pool_size.max(1) as usize,
            failed_at: Mutex::new(None),
        })
    }

    /// The server's redacted URL, as a path for `StoreError`.
    pub fn label(&self) -> &Path {
        &self.label
    }

    pub fn err(&self, action: &'static str) -> impl Fn(postgres::Error) -> StoreError + '_ {
        super::error::pg_err(&self.label, action)
    }

    /// A new connection whose statements and lock waits are bounded.
    pub fn connect(&self) -> Result<Client, StoreError> {
        if self
            .failed_at
            .lock()
            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
        {
            return Err(StoreError::Unavailable {
                path: self.label.clone(),
            });
        }
        let connected = self.transport.connect(&self.config);
        *self.failed_at.lock() = connected.is_err().then(Instant::now);
        let mut client = connected.map_err(self.err("cannot connect"))?;
        let ms = PG_TIMEOUT.as_millis();
        client
            .batch_execute(&format!(
                "SET statement_timeout = {ms}; SET lock_timeout = {ms}; \
                 SET idle_in_transaction_session_timeout = {}",
                ms * 4
            ))
            .map_err(self.err("cannot configure the connection"))?;
        Ok(client)
    }

    /// Runs `f` on a pooled connection; a connection whose use failed is
    /// closed rather than reused.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&mut Db<'_, Client>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().pop();
        let (mut client, mut stmts) = match taken {
            Some(taken) => taken,
            None => (self.connect()?, Stmts::new()),
        };
        let result = f(&mut Db {
            c: &mut client,
            stmts: &mut stmts,
        });
        if result.is_ok() && !client.is_closed() {
            let mut idle = self.idle.lock();
            if idle.len() < self.max_idle {
                idle.push((client, stmts));
            }
        }
        result
    }

    pub fn close(&self) {
        self.idle.lock().clear();
    }
}

/// Whether a failed transaction may simply be run again: it lost a race
/// with another node (a deadlock, a serialization failure, or the same
/// new row inserted first elsewhere).
pub(crate) fn retryable(err: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    err.code().is_some_and(|c| {
        *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::UNIQUE_VIOLATION
    })
}

/// A connection's prepared statements, by their SQL.
pub(crate) type Stmts = HashMap<String, Statement>;

/// The statements the store runs: each prepared once per connection and
/// reused, so a query costs one round trip.
pub(crate) trait Sql {
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error>;

    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error>;

    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// A client or transaction with its connection's statement cache.
pub(crate) struct Db<'a, C> {
    pub c: &'a mut C,
    pub stmts: &'a mut Stmts,
}

impl<C: GenericClient> Db<'_, C> {
    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(stmt) = self.stmts.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.c.prepare(sql)?;
        self.stmts.insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }
}

impl<C: GenericClient> Sql for Db<'_, C> {
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let stmt = self.prepared(sql)?;
        self.c.query(&stmt, params)
    }

    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let stmt = self.prepared(sql)?;
        self.c.execute(&stmt, params)
    }
}
