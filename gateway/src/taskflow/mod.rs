//! The durable TaskFlow store: managed flows and their child task records
//! in SQLite, read through a bounded cache of hot flows and indexed
//! queries, and written through one writer thread with group commit; or,
//! under `cluster`, in PostgreSQL shared by several Gateways (`pg`, opened
//! by `Store::open_postgres`), with the same semantics and no cache.
//!
//! - [`Store`] opens the file (loading no flow), runs the writer and the
//!   maintenance sweeper, and hands out [`Bound`] session views
//!   ([`Store::bind`]).
//! - [`Bound`] implements `openclaw_ffi::runtime::BoundTaskFlow`.
//!
//! Files: `options` (configuration), `error`, `model` (entries and field
//! rules), `cache` (hot flows), `committed` (the writer's lookup of
//! committed state), `readers` (read connections), `read_pool` (reader threads of
//! `BoundTaskFlow::read`), `reads` (reading
//! committed state), `file` (the file on disk: modes,
//! creating a store, refusing a file that holds none), `schema` (pragmas,
//! schema version, migrations),
//! `rows` (row mapping), `keys` (idempotency records), `outbox` (events
//! for subscribers, written with the changes that emit them), `ops` (operations,
//! answers, row changes), `batch`
//! (the batch overlay), `flows` (create and mutations), `children`
//! (run_task, cancel), `sweep` (maintenance), `watch` (the wakers of
//! waiting reads), `writer` (group commit), `staging` (a batch's rows
//! under savepoints),
//! `store` (the handle), `bound` (binding and the session view),
//! `metrics` (commit histograms, flows by status), `pg` (the PostgreSQL
//! backend: connections, rows, reads, writer, listener, outbox).

mod batch;
mod bound;
mod cache;
mod children;
mod committed;
mod error;
mod file;
mod flows;
mod keys;
mod metrics;
mod model;
mod ops;
mod options;
mod outbox;
mod pg;
mod read_pool;
mod readers;
mod reads;
mod rows;
mod schema;
mod staging;
mod store;
mod sweep;
mod watch;
mod writer;

#[cfg(test)]
mod tests;

pub use bound::Bound;
pub use cache::DEFAULT_CACHE_FLOWS;
pub use error::StoreError;
pub use file::lock;
pub use metrics::StoreMetrics;
pub use ops::SweepReport;
pub use options::{Clock, StoreOptions};
pub use pg::tls::{parse_url as parse_pg_url, Transport as PgTransport};
pub use pg::{PgOptions, PG_TIMEOUT};
pub use store::Store;
