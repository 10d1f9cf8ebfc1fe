//! The OpenClaw Gateway host: loads native plugins at startup and gives
//! them a runtime backed by the durable TaskFlow store.
//!
//! # Layout
//!
//! - [`config`]: the JSON5 config file parsed into domain types, every
//!   problem reported at once.
//! - [`secrets`]: SecretRef resolution through the `env`, `file` and `exec`
//!   providers.
//! - [`taskflow`]: the managed-flow store: in-memory index for reads, one
//!   SQLite writer thread with group commit for writes.
//! - [`loader`]: finds plugin libraries and loads them with layout checks.
//! - [`host`]: the `Runtime` a plugin receives.
//! - [`app`]: startup, `--check`, signals and shutdown.
//! - [`logger`]: one line per event on stderr, as text or JSON.
//! - [`admin`]: the admin listener (`/metrics`, `/healthz`, `/readyz`);
//!   [`metrics`]: what `/metrics` encodes, plugins' expositions included.

pub mod admin;
pub mod app;
mod check;
pub mod cluster;
pub mod config;
pub mod host;
pub mod loader;
pub mod logger;
pub mod metrics;
pub mod migrate;
pub mod secrets;
pub mod taskflow;
