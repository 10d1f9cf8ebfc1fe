//! Callbacks: each committed change of a route's flows that the flow's
//! `notifyPolicy` lets through is POSTed, signed (Standard Webhooks), to
//! the route's configured URL, at least once and in revision order per
//! flow.
//!
//! Who owns what: the Gateway owns the outbox (events are written in the
//! same commit as the change, claimed, leased, settled and pruned through
//! `BoundTaskFlow`); the plugin owns delivery (HTTP, signing, retry policy,
//! logging) on its own threads.
//!
//! - [`config`]: `routes.<id>.callbacks`, every issue with its path.
//! - [`sign`]: the `webhook-signature` value of a callback, made with the
//!   shared signer ([`sign::signature_header`]).
//! - [`event`]: the webhook id and the JSON body of an event.
//! - [`retry`]: an attempt's result → delivered, gone, retry or dead.
//! - [`worker`]: one delivery worker per route.

pub mod config;
pub mod event;
pub mod retry;
pub mod sign;
pub mod worker;

pub use config::{CallbackConfig, CallbackUrl};
pub use worker::{Dispatcher, Target};
