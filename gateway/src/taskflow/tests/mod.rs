//! Tests of the TaskFlow store, grouped by concern.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cache;
mod children;
mod concurrency;
mod crash;
mod flows;
mod keys;
mod mutations;
mod opening;
mod outbox;
mod persistence;
mod reads;
mod submit;
mod sweep;
mod watch;
mod writer;
