//! The PostgreSQL backend of the store, for several Gateways sharing one
//! database: connections (`Pg`: timeouts, a small idle pool, reconnecting
//! after a failure), row mapping (`rows`), the reads (`reads`) and the
//! writer thread (`writer`), which evaluates batches with the same
//! semantics as the embedded store and commits each batch in one
//! transaction, the rows it reads locked `FOR UPDATE`.

pub(crate) mod listen;
pub(crate) mod reads;
pub(crate) mod rows;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use postgres::{Client, Config, NoTls};

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
    label: PathBuf,
    idle: Mutex<Vec<Client>>,
    max_idle: usize,
}

impl Pg {
    pub fn new(options: &PgOptions) -> Result<Self, StoreError> {
        let label = PathBuf::from(&options.label);
        let mut config: Config = options.url.parse().map_err(|source| StoreError::Postgres {
            path: label.clone(),
            action: "cannot read the URL",
            source,
        })?;
        config
            .connect_timeout(PG_TIMEOUT)
            .tcp_user_timeout(PG_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5));
        Ok(Self {
            config,
            label,
            idle: Mutex::new(Vec::new()),
            max_idle: options.pool_size.max(1) as usize,
        })
    }

    /// The server's redacted URL, as a path for `StoreError`.
    pub fn label(&self) -> &Path {
        &self.label
    }

    pub fn err(&self, action: &'static str) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |source| StoreError::Postgres {
            path: self.label.clone(),
            action,
            source,
        }
    }

    /// A new connection whose statements and lock waits are bounded.
    pub fn connect(&self) -> Result<Client, StoreError> {
        let mut client = self
            .config
            .connect(NoTls)
            .map_err(self.err("cannot connect"))?;
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
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().pop();
        let mut client = match taken {
            Some(client) => client,
            None => self.connect()?,
        };
        let result = f(&mut client);
        if result.is_ok() && !client.is_closed() {
            let mut idle = self.idle.lock();
            if idle.len() < self.max_idle {
                idle.push(client);
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
