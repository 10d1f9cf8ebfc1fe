//! The writer's narrow view of committed state: the flows and tasks a
//! batch touches, looked up one by one (cache first, then the writer's own
//! connection), never a full copy in memory. Another backend implements
//! [`Committed`] over its own storage to reuse the semantics unchanged.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

use super::cache::FlowCache;
use super::error::StoreError;
use super::model::{FlowEntry, TaskEntry};
use super::rows;

/// Committed flows and tasks, as the semantics (`flows`, `children`,
/// `sweep`) see them through the batch overlay.
pub(crate) trait Committed {
    fn flow(&self, flow_id: &str) -> Result<Option<Arc<FlowEntry>>, StoreError>;
    fn task(&self, task_id: &str) -> Result<Option<Arc<TaskEntry>>, StoreError>;
    /// Tasks linked to the flow, newest first.
    fn flow_tasks(&self, flow_id: &str) -> Result<Vec<Arc<TaskEntry>>, StoreError>;

    /// Whether a new random id is looked up before use. A backend whose
    /// database refuses a duplicate id (and then runs the batch again)
    /// answers false and saves the lookups.
    fn checks_fresh_ids(&self) -> bool {
        true
    }
}

/// The embedded store's committed state: the flow cache, then SQLite.
///
/// The writer reads through its own connection inside its open
/// transaction, so rows staged earlier in the batch are visible there too;
/// the batch overlay holds every one of them and answers first, so what
/// reaches this lookup is committed state.
pub(crate) struct SqliteCommitted<'a> {
    pub cache: &'a FlowCache,
    pub conn: &'a Connection,
    pub path: &'a Path,
}

impl Committed for SqliteCommitted<'_> {
    fn flow(&self, flow_id: &str) -> Result<Option<Arc<FlowEntry>>, StoreError> {
        if let Some(flow) = self.cache.get(flow_id) {
            return Ok(Some(flow));
        }
        Ok(rows::flow(self.conn, self.path, flow_id)?.map(Arc::new))
    }

    fn task(&self, task_id: &str) -> Result<Option<Arc<TaskEntry>>, StoreError> {
        Ok(rows::task(self.conn, self.path, task_id)?.map(Arc::new))
    }

    fn flow_tasks(&self, flow_id: &str) -> Result<Vec<Arc<TaskEntry>>, StoreError> {
        Ok(rows::flow_tasks(self.conn, self.path, flow_id)?
            .into_iter()
            .map(Arc::new)
            .collect())
    }
}
