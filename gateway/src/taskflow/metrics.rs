//! What the store reports to the Gateway's metrics: how long each group
//! commit took and how many operations it held (recorded by the writer
//! thread, once per batch), and how many flows it holds by status (counted
//! by the writer as its commits change them, read at scrape time).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use openclaw_ffi::records::FlowStatus;

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

/// How many flows the store holds in each status (in the order of
/// `FlowStatus::ALL`): counted from the status index at open, then kept by
/// the writer as its commits change them, read at scrape time. On
/// PostgreSQL they are also counted again periodically, so that each node
/// reports the whole cluster's flows, not only the changes it made.
#[derive(Debug, Default)]
pub(crate) struct FlowCounts {
    by_status: [AtomicI64; FlowStatus::ALL.len()],
}

/// Per-status changes of one batch, applied after its commit.
pub(crate) type StatusDeltas = [i64; FlowStatus::ALL.len()];

pub(crate) fn status_slot(status: FlowStatus) -> usize {
    FlowStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or_default()
}

impl FlowCounts {
    pub fn new(counts: [u64; FlowStatus::ALL.len()]) -> Self {
        Self {
            by_status: counts.map(|n| AtomicI64::new(i64::try_from(n).unwrap_or(i64::MAX))),
        }
    }

    pub fn apply(&self, deltas: &StatusDeltas) {
        for (count, delta) in self.by_status.iter().zip(deltas) {
            if *delta != 0 {
                count.fetch_add(*delta, Ordering::Relaxed);
            }
        }
    }

    /// Replaces every count with a fresh one.
    pub fn set(&self, counts: [u64; FlowStatus::ALL.len()]) {
        for (count, n) in self.by_status.iter().zip(counts) {
            count.store(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> [(FlowStatus, usize); FlowStatus::ALL.len()] {
        std::array::from_fn(|i| {
            let n = self.by_status[i].load(Ordering::Relaxed);
            (FlowStatus::ALL[i], usize::try_from(n).unwrap_or(0))
        })
    }
}
