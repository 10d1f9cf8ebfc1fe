//! Support shared by the integration tests (`tests/it`, `gateway/tests`),
//! the benchmarks and the unit tests that need the test services: temp dirs, the standard configs, a real
//! `openclaw-gateway` process loading the real plugin library, one small
//! HTTP/1.1 client over loopback TCP, and a callback receiver that checks
//! every signature with an independent Standard Webhooks implementation;
//! the cluster tests' PostgreSQL schema and Redis key prefix (`cluster`),
//! and proxies in front of their servers (`TcpProxy`, `TlsProxy`).
//!
//! Nothing here sleeps to synchronise: every wait is for an event (a line
//! the Gateway writes, a response, the process's exit) and has a deadline.

// A broken expectation in test support is a failed test: panicking with a
// message is the intended outcome.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cluster;
mod config;
mod dirs;
mod gateway;
mod http;
mod process;
mod proxy;
mod receiver;
mod tls_proxy;

pub use cluster::{postgres_url, redis_addr, redis_prefix, redis_url, PgSchema};
pub use config::{
    default_config, gateway_config, limited, merge, route, ROUTE_PATH, SECRET, SESSION,
};
pub use dirs::{gateway_bin, plugin_dirs, target_dir, TempDir};
pub use gateway::{Exited, Gateway};
pub use http::{
    authed, begin_request, begin_request_expecting_continue, begin_request_until_continue, hdrs,
    http, parse_response, post_json, read_response, request_bytes, Client, Outcome, Response,
};
pub use proxy::TcpProxy;
pub use receiver::{Delivery, Receiver, Reply};
pub use tls_proxy::{CaBundle, TlsProxy};
