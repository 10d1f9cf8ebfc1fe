//! Read connections: each read of the disk takes an idle connection of
//! its own (opened on demand, query-only) and gives it back, so readers
//! run beside the writer and beside each other (WAL).

use std::path::PathBuf;

use parking_lot::Mutex;
use rusqlite::Connection;

use super::error::StoreError;
use super::schema;

/// Most idle connections kept for reuse.
const MAX_IDLE: usize = 8;

pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Set by `close`: connections are no longer kept.
    closed: Mutex<bool>,
}

impl Readers {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            closed: Mutex::new(false),
        }
    }

    /// Runs `f` on a read connection.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let taken = self.idle.lock().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => schema::open_reader(&self.path)?,
        };
        let result = f(&conn);
        let closed = self.closed.lock();
        let mut idle = self.idle.lock();
        if !*closed && idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        result
    }

    /// Closes the idle connections; later reads open one each and close it.
    pub fn close(&self) {
        *self.closed.lock() = true;
        self.idle.lock().clear();
    }
}
