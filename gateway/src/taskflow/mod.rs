//! The durable TaskFlow store: managed flows and their child task records,
//! kept in memory for reads and written through one SQLite writer thread
//! with group commit.
//!
//! - [`Store`] opens the file, loads everything, runs the writer and the
//!   maintenance sweeper, and hands out [`Bound`] session views.
//! - [`Bound`] implements `openclaw_ffi::runtime::BoundTaskFlow`.
//!
//! Files: `options` (configuration), `error`, `model` (entries and field
//! rules), `index` (in-memory state), `schema` (file, pragmas, migrations),
//! `rows` (row mapping), `ops` (operations and the batch view), `flows`
//! (create and mutations), `children` (run_task, cancel), `sweep`
//! (maintenance), `writer` (group commit), `store`, `bound`.

mod batch;
pub(crate) mod bound;
mod children;
mod error;
mod flows;
pub(crate) mod index;
mod model;
pub(crate) mod ops;
mod options;
mod rows;
pub(crate) mod schema;
mod store;
mod sweep;
pub(crate) mod writer;

#[cfg(test)]
mod tests;

pub use bound::Bound;
pub use error::StoreError;
pub use ops::SweepReport;
pub use options::{Clock, StoreOptions};
pub use store::Store;
