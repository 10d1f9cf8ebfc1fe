//! Reading committed state: a flow by id from the cache of hot flows or,
//! on a miss, from SQLite (kept in the cache unless a commit raced the
//! load; see `cache`); a session's lists, its latest flows and a flow's
//! task counts from indexed queries; and the registration of waiting
//! reads, which subscribe before they read.

use std::sync::Arc;

use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::records::TaskSummary;
use openclaw_ffi::runtime::FlowWakerBox;
use rusqlite::Connection;

use std::path::Path;

use super::error::{pg_read_failed, read_failed, StoreError};
use super::model::FlowEntry;
use super::pg::reads as pg_reads;
use super::pg::{Db, Pg};
use super::read_pool::Job;
use super::rows;
use super::store::Store;
use super::watch::settles;

/// What the cache alone knows of an owner's flow.
pub(crate) enum Cached {
    /// The owner's flow, as last committed.
    Owned(Arc<FlowEntry>),
    /// The flow exists but another session owns it: reads as missing.
    NotOwned,
    /// Not in the cache: only the disk can answer.
    Unknown,
}

impl Store {
    /// Runs a query on a read connection.
    fn query<T>(
        &self,
        f: impl FnOnce(&Connection, &std::path::Path) -> Result<T, StoreError>,
    ) -> Result<T, TaskFlowError> {
        let inner = self.inner();
        inner
            .readers
            .with(|conn| f(conn, &inner.path))
            .map_err(|err| read_failed(&err))
    }

    /// Runs a query on a pooled PostgreSQL connection.
    fn pg_query<T>(
        &self,
        pg: &Pg,
        f: impl FnOnce(&mut Db<'_, postgres::Client>, &Path) -> Result<T, StoreError>,
    ) -> Result<T, TaskFlowError> {
        pg.with(|client| f(client, pg.label()))
            .map_err(|err| pg_read_failed(&err))
    }

    /// The owner's flow as far as the cache knows it, without touching
    /// the disk. The PostgreSQL store caches nothing (other nodes write).
    pub(crate) fn cached_flow(&self, owner: &str, flow_id: &str) -> Cached {
        if self.pg().is_some() {
            return Cached::Unknown;
        }
        match self.inner().cache.get(flow_id) {
            Some(f) if &*f.owner == owner => Cached::Owned(f),
            Some(_) => Cached::NotOwned,
            None => Cached::Unknown,
        }
    }

    /// The owner's flow: from the cache, else from disk.
    pub(crate) fn flow(
        &self,
        owner: &str,
        flow_id: &str,
    ) -> Result<Option<Arc<FlowEntry>>, TaskFlowError> {
        if let Some(pg) = self.pg() {
            let found = self.pg_query(pg, |c, path| pg_reads::flow(c, path, flow_id, false))?;
            return Ok(found.filter(|f| &*f.owner == owner).map(Arc::new));
        }
        match self.cached_flow(owner, flow_id) {
            Cached::Owned(f) => return Ok(Some(f)),
            Cached::NotOwned => return Ok(None),
            Cached::Unknown => {}
        }
        let cache = &self.inner().cache;
        // Taken before the read: a commit published after it keeps this
        // load out of the cache.
        let generation = cache.generation();
        let found = self.query(|conn, path| rows::flow(conn, path, flow_id))?;
        Ok(found.map(Arc::new).and_then(|f| {
            cache.offer(generation, &f);
            Some(f).filter(|f| &*f.owner == owner)
        }))
    }

    /// The owner's flows, newest first.
    pub(crate) fn owner_flows(&self, owner: &str) -> Result<Vec<FlowEntry>, TaskFlowError> {
        if let Some(pg) = self.pg() {
            return self.pg_query(pg, |c, path| {
                pg_reads::owner_flows(c, path, owner, false, None)
            });
        }
        self.query(|conn, path| rows::owner_flows(conn, path, owner))
    }

    /// The owner's newest flow.
    pub(crate) fn latest_flow(&self, owner: &str) -> Result<Option<FlowEntry>, TaskFlowError> {
        if let Some(pg) = self.pg() {
            let found = self.pg_query(pg, |c, p| {
                pg_reads::owner_flows(c, p, owner, false, Some(1))
            })?;
            return Ok(found.into_iter().next());
        }
        self.query(|conn, path| rows::latest_flow(conn, path, owner))
    }

    /// The owner's newest flow that is not terminal.
    pub(crate) fn latest_live_flow(&self, owner: &str) -> Result<Option<FlowEntry>, TaskFlowError> {
        if let Some(pg) = self.pg() {
            let found =
                self.pg_query(pg, |c, p| pg_reads::owner_flows(c, p, owner, true, Some(1)))?;
            return Ok(found.into_iter().next());
        }
        self.query(|conn, path| rows::latest_live_flow(conn, path, owner))
    }

    /// The task counts of the owner's flow; `None` when the owner has no
    /// such flow.
    pub(crate) fn task_summary(
        &self,
        owner: &str,
        flow_id: &str,
    ) -> Result<Option<TaskSummary>, TaskFlowError> {
        if self.flow(owner, flow_id)?.is_none() {
            return Ok(None);
        }
        if let Some(pg) = self.pg() {
            return self
                .pg_query(pg, |c, path| pg_reads::task_summary(c, path, flow_id))
                .map(Some);
        }
        self.query(|conn, path| rows::task_summary(conn, path, flow_id))
            .map(Some)
    }

    /// Registers `waker` to be woken once `owner`'s flow `flow_id` is
    /// settled for a reader that has seen `above` (a later revision, a
    /// terminal flow, or no such flow): at once when it already is, else by
    /// the commit that settles it. Returns the ticket for
    /// [`Store::unwatch`].
    pub(crate) fn watch(&self, owner: &str, flow_id: &str, above: u64, waker: FlowWakerBox) -> u64 {
        let watchers = &self.inner().watchers;
        let ticket = watchers.add(flow_id, above, waker);
        if self.pg().is_some() {
            // The check reads PostgreSQL: on a reader thread, never the
            // caller's.
            let (store, owner, id) = (self.clone(), owner.to_owned(), flow_id.to_owned());
            let job: Job = Box::new(move || store.check_watch(&owner, &id, above, ticket));
            if let Some(job) = self.read_pool().queue(job) {
                job();
            }
            return ticket;
        }
        self.check_watch(owner, flow_id, above, ticket);
        ticket
    }

    /// Wakes the watch `ticket` when the flow is settled for it already.
    fn check_watch(&self, owner: &str, flow_id: &str, above: u64, ticket: u64) {
        let watchers = &self.inner().watchers;
        // Registered first, read second: a commit published (to the cache,
        // after reaching the disk) before this read is seen here; one
        // published after it finds the waker. A failed read wakes the
        // waiter, whose own read then reports the failure.
        let settled = self
            .flow(owner, flow_id)
            .map_or(true, |f| f.is_none_or(|f| settles(&f.record, above)));
        if settled {
            watchers.fire(ticket);
        }
    }

    /// Drops the registration of `ticket` if it was not woken yet.
    pub(crate) fn unwatch(&self, ticket: u64) {
        drop(self.inner().watchers.remove(ticket));
    }

    /// How many reads wait for a flow to change.
    pub fn waiting(&self) -> usize {
        self.inner().watchers.len()
    }
}
