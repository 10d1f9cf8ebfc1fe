//! Integration tests: the real `openclaw-gateway` binary loading the real
//! `libopenclaw_webhooks.so`, spoken to over HTTP on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod actions;
mod auth_and_guards;
mod callbacks;
mod config_errors;
mod durability;
mod idempotency;
mod lifecycle;
mod limits;
mod load;
mod secrets;
mod transcript;
