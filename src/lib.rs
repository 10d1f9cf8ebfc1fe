//! The OpenClaw webhooks plugin: authenticated HTTP routes through which
//! trusted automation creates and drives TaskFlows.
//!
//! # Layout
//!
//! - `export`: the FFI edge: the exported root module and the running
//!   instance. Converts R-types, catches panics, calls one function each.
//! - [`config`]: the plugin's `config` parsed into routes and limits.
//! - [`routes`]: config plus the Gateway runtime become live routes.
//! - [`server`]: the actix server and its lifecycle; [`pipeline`]: the
//!   request pipeline; [`connection`]: how a response closes its connection.
//! - [`auth`], [`client_ip`], [`limits`], [`body`]: the guards of the
//!   pipeline, in that order of concern; [`signing`]: Standard Webhooks
//!   signatures; [`access`]: a route's `allowFrom` and `actions`.
//! - [`request`]: the action schemas. [`actions`]: runs an action against
//!   the bound TaskFlow; [`completion`] awaits its writes without blocking a
//!   thread; [`wait`] holds a waiting `get_flow` until its flow changes.
//!   [`views`]: what clients see of flows and tasks.
//! - [`error`]: every response code and its HTTP status, in one place;
//!   [`response`]: renders the envelope and common headers.
//! - [`logging`]: forwards log records and panics to the Gateway.
//! - [`metrics`]: per-route counters and histograms, handed to the Gateway
//!   as Prometheus text; [`audit`]: a line per write and per rejection,
//!   rejections capped through [`log_cap`].

pub mod access;
pub mod actions;
pub mod audit;
pub mod auth;
pub mod body;
pub mod callbacks;
pub mod client_ip;
pub mod completion;
pub mod config;
pub mod connection;
pub mod credentials;
pub mod error;
mod export;
pub mod idempotency;
pub mod limits;
pub mod log_cap;
pub mod logging;
pub mod metrics;
pub mod paths;
pub mod pipeline;
pub mod reading;
pub mod request;
pub mod response;
pub mod routes;
pub mod server;
pub mod shared_limits;
pub mod signing;
pub mod texts;
pub mod views;
pub mod wait;

/// The id this plugin has under `plugins.entries`.
pub const PLUGIN_ID: &str = "webhooks";
