//! What the store reports to the Gateway's metrics: how long each group
//! commit took and how many operations it held (recorded by the writer
//! thread, once per batch), and how many flows it holds by status (counted
//! by the index as flows change, read at scrape time).

use std::time::Duration;

use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// The writer's histograms. Only the writer thread records, once per
/// batch; a scrape reads them.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// Seconds from a batch's first statement to its answers: evaluation,
    /// staging and the commit (fsync) of one transaction.
    pub commit_seconds: Histogram,
    /// Operations per batch.
    pub batch_size: Histogram,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            // 0.5 ms to about 1 s.
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 12)),
            // 1 to 1024, the largest batch.
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
        }
    }
}

impl StoreMetrics {
    pub(crate) fn batch(&self, elapsed: Duration, operations: usize) {
        self.commit_seconds.observe(elapsed.as_secs_f64());
        self.batch_size.observe(operations as f64);
    }
}
