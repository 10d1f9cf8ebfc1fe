//! Store configuration: the file, retention, sweep period, quota, cache
//! size and clock.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. Tests inject a fake one.
#[derive(Clone)]
pub struct Clock(pub Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Self(Arc::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        }))
    }

    /// A clock backed by any function (for tests and simulations).
    pub fn new(now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    pub fn now(&self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// How to open a [`super::Store`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The SQLite file. A parent directory that does not exist is created
    /// with mode 0700; the file, only where none exists, with mode 0600. An
    /// existing file that holds no store is refused.
    pub path: PathBuf,
    /// Terminal flows (and their tasks) are pruned this long after they ended.
    pub retention: Duration,
    /// Period of the background maintenance sweep.
    pub sweep_interval: Duration,
    /// Optional size quota; a write that would grow the file beyond it fails
    /// with `PERSIST_FAILED`.
    pub max_store_bytes: Option<u64>,
    /// Most flows kept in memory (the cache of hot flows); the others are
    /// read from disk when asked for.
    pub cache_max_flows: usize,
    pub clock: Clock,
}

impl StoreOptions {
    pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            retention: Self::DEFAULT_RETENTION,
            sweep_interval: Self::DEFAULT_SWEEP_INTERVAL,
            max_store_bytes: None,
            cache_max_flows: super::DEFAULT_CACHE_FLOWS,
            clock: Clock::system(),
        }
    }
}
