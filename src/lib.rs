//! The OpenClaw webhooks plugin: authenticated HTTP routes through which
//! trusted automation creates and drives TaskFlows.
//!
//! # Layout
//!
//! - `export`: the FFI edge: the exported root module and the running
//!   instance. Converts R-types, catches panics, calls one function each.
//! - [`config`]: the plugin's `config` parsed into routes and limits.
//! - [`routes`]: config plus the Gateway runtime become live routes.
//! - [`server`]: the actix server, its lifecycle and the request pipeline.
//! - [`auth`], [`client_ip`], [`limits`], [`body`]: the guards of the
//!   pipeline, in that order of concern.
//! - [`request`]: the action schemas. [`actions`]: runs an action against
//!   the bound TaskFlow; [`completion`] awaits its writes without blocking a
//!   thread. [`views`]: what clients see of flows and tasks.
//! - [`error`]: every response code and its HTTP status, in one place;
//!   [`response`]: renders the envelope and common headers.
//! - [`logging`]: forwards log records and panics to the Gateway.

pub mod actions;
pub mod auth;
pub mod body;
pub mod callbacks;
pub mod client_ip;
pub mod completion;
pub mod config;
pub mod error;
mod export;
pub mod idempotency;
pub mod limits;
pub mod logging;
pub mod paths;
pub mod pipeline;
pub mod request;
pub mod response;
pub mod routes;
pub mod server;
pub mod texts;
pub mod views;

/// The id this plugin has under `plugins.entries`.
pub const PLUGIN_ID: &str = "webhooks";
