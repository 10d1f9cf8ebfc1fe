//! Load and fault tests: bounded in count and time, loopback only.
