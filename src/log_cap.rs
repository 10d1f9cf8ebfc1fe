//! Caps how many lines of one kind reach the log, so that a flood of bad
//! requests cannot fill the disk: at most `limit` lines per window; the
//! rest are counted and reported later as one summary line.
//!
//! Lock-free: a line costs one or two atomic operations. A [`LineCap`] is
//! one kind of line (for the audit log: one route and one response code).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write it. `suppressed` lines of earlier windows are still to be
    /// summarised: write that summary first.
    Write { suppressed: u64 },
    /// Drop it: it was counted for the summary.
    Suppress,
}

/// At most `limit` lines per `window` of one kind.
#[derive(Debug)]
pub struct LineCap {
    limit: u32,
    window: Duration,
    epoch: Instant,
    /// The current window's number (high 32 bits) and lines written in it
    /// (low 32 bits), changed together.
    state: AtomicU64,
    /// Lines dropped and not yet summarised.
    suppressed: AtomicU64,
}

impl LineCap {
    pub fn new(limit: u32, window: Duration, epoch: Instant) -> Self {
        Self {
            limit,
            window,
            epoch,
            state: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    fn window_number(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.epoch).as_millis();
        let window = self.window.as_millis().max(1);
        // Window numbers wrap after 2^32 windows; a wrap only resets a count.
        u64::try_from(elapsed / window).unwrap_or(u64::MAX) & 0xffff_ffff
    }

    /// Decides about one line at `now`.
    pub fn admit(&self, now: Instant) -> Admit {
        let current = self.window_number(now);
        let mut state = self.state.load(Relaxed);
        loop {
            let (window, written) = (state >> 32, state & 0xffff_ffff);
            let next = if window != current {
                current << 32 | 1
            } else if written < u64::from(self.limit) {
                state + 1
            } else {
                self.suppressed.fetch_add(1, Relaxed);
                return Admit::Suppress;
            };
            match self
                .state
                .compare_exchange_weak(state, next, Relaxed, Relaxed)
            {
                Ok(_) if window != current => {
                    return Admit::Write {
                        suppressed: self.suppressed.swap(0, Relaxed),
                    }
                }
                Ok(_) => return Admit::Write { suppressed: 0 },
                Err(seen) => state = seen,
            }
        }
    }

    /// Lines dropped since the last summary; the count starts again at 0.
    /// Called when a summary is written without a new line (periodically,
    /// and when the server stops).
    pub fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_writes_its_limit_then_counts_the_rest() {
        let epoch = Instant::now();
        let cap = LineCap::new(3, Duration::from_secs(60), epoch);
        for _ in 0..3 {
            assert_eq!(cap.admit(epoch), Admit::Write { suppressed: 0 });
        }
        for _ in 0..5 {
            assert_eq!(cap.admit(epoch), Admit::Suppress);
        }
        // The next window writes again, summarising the dropped lines once.
        let later = epoch + Duration::from_secs(61);
        assert_eq!(cap.admit(later), Admit::Write { suppressed: 5 });
        assert_eq!(cap.admit(later), Admit::Write { suppressed: 0 });
        assert_eq!(cap.take_suppressed(), 0);
    }

    #[test]
    fn dropped_lines_can_be_summarised_without_a_new_line() {
        let epoch = Instant::now();
        let cap = LineCap::new(1, Duration::from_secs(60), epoch);
        assert_eq!(cap.admit(epoch), Admit::Write { suppressed: 0 });
        assert_eq!(cap.admit(epoch), Admit::Suppress);
        assert_eq!(cap.take_suppressed(), 1);
        assert_eq!(cap.take_suppressed(), 0);
    }

    #[test]
    fn concurrent_lines_never_exceed_the_limit() {
        let epoch = Instant::now();
        let cap = LineCap::new(10, Duration::from_secs(3600), epoch);
        let written = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        if let Admit::Write { .. } = cap.admit(epoch) {
                            written.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(written.load(Relaxed), 10);
        assert_eq!(cap.take_suppressed(), 3990);
    }
}
