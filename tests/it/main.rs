//! Integration tests: the real `openclaw-gateway` binary loading the real
//! `libopenclaw_webhooks.so`, spoken to over HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access;
mod actions;
mod auth_and_guards;
mod callbacks;
mod cluster;
mod cluster_faults;
mod cluster_tls;
mod config_errors;
mod connection;
mod durability;
mod idempotency;
mod lifecycle;
mod limits;
mod load;
mod ops;
mod ops_paths;
mod secrets;
mod signing;
mod transcript;
mod waiting;
