//! Waiting reads: a `get_flow` with `waitForRevisionAbove` is answered once
//! the flow's revision is above it (or the flow is terminal or missing),
//! when its `waitMs` runs out, or when the plugin stops, whichever comes
//! first, with the flow as it is then.
//!
//! Rules:
//! - A waiter subscribes before it reads: it registers a waker with the
//!   Gateway ([`BoundTaskFlow::watch`]), which wakes it at once when the
//!   flow is already settled and otherwise from the commit that settles
//!   it; the flow is read only after the wait ends. No commit is missed.
//! - A waiter holds no in-flight slot (the pipeline releases it first) and
//!   no thread: it is a future parked on a [`Notify`], a timer and the stop
//!   signal.
//! - At most `limits.maxWaiters` requests wait per route; one more is 429
//!   `too_many_waiters`.
//! - Every registration is released when the wait ends, however it ends
//!   (the request's future dropped included), so the Gateway keeps no
//!   abandoned waker.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr};
use openclaw_ffi::outcome::ErrorCode;
use openclaw_ffi::runtime::{BoundTaskFlowBox, FlowWaker, FlowWaker_TO, WatchTicket};
use tokio::sync::{watch, Notify};

use crate::error::{ApiError, Code};
use crate::routes::Route;

/// `waitMs` when a request gives none, and the most it may give.
pub const MAX_WAIT: Duration = Duration::from_millis(25_000);

/// What a waiting `get_flow` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitFor {
    /// Answer once the flow's revision is above this.
    pub above_revision: u64,
    /// Answer with the flow as it is after this long at the latest.
    pub timeout: Duration,
}

/// The waiting reads of one route: how many there are, and the stop
/// signal that ends them.
pub struct Waiters {
    max: usize,
    count: AtomicUsize,
    /// Becomes `true` once, when the plugin stops.
    stopped: watch::Sender<bool>,
}

impl Waiters {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            count: AtomicUsize::new(0),
            stopped: watch::Sender::new(false),
        })
    }

    /// Ends every wait of the route at once, and every later one as soon
    /// as it starts: each is answered with the flow as it is.
    pub fn stop(&self) {
        self.stopped.send_replace(true);
    }

    /// How many requests wait now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// A place among the waiters, or `None` when all `max` are taken. A
    /// refused request never counts, even for a moment.
    fn enter(&self) -> Option<Slot<'_>> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self))
    }
}

/// One waiter's place; given back when dropped.
struct Slot<'a>(&'a Waiters);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits until the route's flow `flow_id` has something new for a reader
/// that saw `wait.above_revision`, `wait.timeout` runs out, or the plugin
/// stops. The caller reads the flow afterwards.
///
/// # Errors
///
/// 429 `too_many_waiters` when the route has `maxWaiters` waiting already;
/// 500 when the Gateway cannot register the wait.
pub async fn until_settled(route: &Route, flow_id: &str, wait: WaitFor) -> Result<(), ApiError> {
    let Some(_slot) = route.waiters.enter() else {
        return Err(ApiError::new(Code::TooManyWaiters).retry_after(Duration::from_secs(1)));
    };
    let mut stopped = route.waiters.stopped.subscribe();
    if *stopped.borrow_and_update() {
        return Ok(());
    }
    let woken = Arc::new(Notify::new());
    let waker = FlowWaker_TO::from_value(Wake(Arc::clone(&woken)), TD_Opaque);
    let ticket = match route
        .flows
        .watch(RStr::from_str(flow_id), wait.above_revision, waker)
    {
        RResult::ROk(ticket) => Registered {
            flows: &route.flows,
            ticket,
        },
        RResult::RErr(e) => {
            if e.code == ErrorCode::UNSUPPORTED {
                log::error!(target: "webhooks", "cannot serve a waiting get_flow: {}", e.message);
            } else {
                log::error!(target: "webhooks", "TaskFlow runtime failed: {}", e.message);
            }
            return Err(ApiError::new(Code::InternalError));
        }
    };
    // A wake that came inside `watch` left a permit: `notified` takes it.
    any_of3(
        woken.notified(),
        tokio::time::sleep(wait.timeout),
        stopped.wait_for(|stopped| *stopped),
    )
    .await;
    drop(ticket);
    Ok(())
}

/// A registration with the Gateway, released when dropped.
struct Registered<'a> {
    flows: &'a BoundTaskFlowBox,
    ticket: WatchTicket,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.flows.unwatch(self.ticket);
    }
}

/// The waker handed to the Gateway: called at most once, from the
/// Gateway's writer thread or inside `watch`.
struct Wake(Arc<Notify>);

impl FlowWaker for Wake {
    fn wake(&self) {
        // Runs on the Gateway's thread: nothing may unwind into it.
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.notify_one()));
    }
}

/// Completes when any of three futures does.
async fn any_of3(a: impl Future, b: impl Future, c: impl Future) {
    let (mut a, mut b, mut c) = (pin!(a), pin!(b), pin!(c));
    std::future::poll_fn(|cx| {
        if a.as_mut().poll(cx).is_ready()
            || b.as_mut().poll(cx).is_ready()
            || c.as_mut().poll(cx).is_ready()
        {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_waiter_count_never_passes_max_and_slots_are_given_back() {
        let waiters = Waiters::new(2);
        let a = waiters.enter().unwrap();
        let b = waiters.enter().unwrap();
        assert!(waiters.enter().is_none());
        assert_eq!(waiters.count(), 2, "a refusal does not count");
        drop(a);
        let c = waiters.enter().unwrap();
        assert_eq!(waiters.count(), 2);
        drop((b, c));
        assert_eq!(waiters.count(), 0);
    }

    #[test]
    fn a_stop_ends_current_and_later_waits_at_once() {
        let waiters = Waiters::new(1);
        let mut before = waiters.stopped.subscribe();
        waiters.stop();
        let mut after = waiters.stopped.subscribe();
        actix_web::rt::System::new().block_on(async {
            before.wait_for(|s| *s).await.unwrap();
            after.wait_for(|s| *s).await.unwrap();
        });
    }
}
