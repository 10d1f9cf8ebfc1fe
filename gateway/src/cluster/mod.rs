//! Several Gateways on shared engines: the `cluster` config section, its
//! connection URLs (redacted wherever they are shown), reaching the
//! services (`--check`), the PostgreSQL schema and its migrations, and
//! copying an embedded store into PostgreSQL (`migrate`), and opening the
//! TaskFlow store there (`store`).

pub mod config;
pub mod copy;
pub mod error;
pub mod probe;
pub mod schema;
pub mod store;
pub mod url;
