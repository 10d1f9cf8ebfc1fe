//! The stable ABI between the OpenClaw Gateway and its native plugins.
//!
//! Everything that crosses the dynamic-library boundary is defined here and
//! nowhere else. The crate depends on `abi_stable` only: no actix, no tokio,
//! no serde, so that the host and every plugin agree on these layouts and
//! nothing else.
//!
//! # Layout
//!
//! - [`records`]: flow and task records, the task summary, and the inputs of
//!   the managed-flow methods.
//! - [`outcome`]: typed outcome and failure codes of those methods.
//! - [`runtime`]: the host side: [`runtime::Runtime`] (handed to the plugin at
//!   start) and [`runtime::BoundTaskFlow`] (one session's flows).
//! - [`module`]: the plugin side: the root module [`module::PluginMod`] that a
//!   plugin library exports, and the running [`module::PluginInstance`].
//!
//! # Versioning
//!
//! The layout checker compares this crate's version: for `0.x` the minor
//! version must match. Within a compatible series only appending is allowed:
//! fields after `last_prefix_field` in the root module, methods at the end of
//! the traits. Changing any struct below is a breaking change and bumps the
//! minor version.
//!
//! Appending is compatible in one direction only. The checker accepts a
//! plugin whose view of every type has at least the host's fields: a plugin
//! built against a later release of the series loads into an earlier host
//! (a method the host lacks runs its default body, which answers
//! `ErrorCode::UNSUPPORTED`), but a plugin built before methods were
//! appended is refused by a host that has them, even on a trait the host
//! implements. Since 0.2.1, `BoundTaskFlow` has `watch` and `unwatch`; since
//! 0.2.2, `read` (with `ReadRequest`, `ReadOutcome`, `ReadCompletion`).

// The abi_stable derive and trait macros expand to code that trips these lints.
#![allow(non_local_definitions, non_camel_case_types, unsafe_code)]

pub mod module;
pub mod outcome;
pub mod records;
pub mod runtime;

pub use abi_stable;
