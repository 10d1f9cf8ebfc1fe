//! Test harness: the shared `testkit` crate (temp dirs, the standard
//! configs, a real Gateway process with the real plugin library, and the
//! HTTP/1.1 client over loopback TCP), which the HTTP benchmark uses too.

pub use testkit::*;
