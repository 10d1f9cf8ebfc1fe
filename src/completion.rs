//! Waits for a write submitted to the TaskFlow runtime without blocking a
//! thread: a one-shot slot that the host completes from its writer thread
//! once the write is durable, and the future an actix worker awaits on it.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RResult;
use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};
use openclaw_ffi::runtime::{
    BoundTaskFlowBox, WriteCompletion, WriteCompletion_TO, WriteOutcome, WriteRequest,
};
use parking_lot::Mutex;

type Outcome = RResult<WriteOutcome, TaskFlowError>;

#[derive(Default)]
struct Slot {
    outcome: Option<Outcome>,
    completed: bool,
    waker: Option<Waker>,
}

impl Slot {
    /// Stores the first outcome only and wakes the waiting request.
    fn fill(slot: &Mutex<Slot>, outcome: Outcome) {
        let waker = {
            let mut s = slot.lock();
            if s.completed {
                return;
            }
            s.completed = true;
            s.outcome = Some(outcome);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// The plugin's side of `WriteCompletion`, handed to the host.
struct Completer(Arc<Mutex<Slot>>);

impl WriteCompletion for Completer {
    fn complete(&self, outcome: Outcome) {
        // Runs on the host's writer thread: nothing here may panic across.
        let _ = catch_unwind(AssertUnwindSafe(|| Slot::fill(&self.0, outcome)));
    }
}

impl Drop for Completer {
    /// A host that drops the completion unanswered leaves the outcome
    /// unknown; the request must still end, with an error.
    fn drop(&mut self) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            Slot::fill(
                &self.0,
                RResult::RErr(TaskFlowError::new(
                    ErrorCode::INTERNAL,
                    "the TaskFlow runtime dropped a write without answering",
                )),
            )
        }));
    }
}

/// The outcome of a submitted write, once it is known.
pub struct Pending(Arc<Mutex<Slot>>);

impl Future for Pending {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut s = self.0.lock();
        match s.outcome.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Submits `request` to the bound TaskFlow; the returned future resolves
/// when the host has made it durable or refused it.
pub fn submit(flows: &BoundTaskFlowBox, request: WriteRequest) -> Pending {
    let slot = Arc::new(Mutex::new(Slot::default()));
    let done = WriteCompletion_TO::from_value(Completer(Arc::clone(&slot)), TD_Opaque);
    flows.submit(request, done);
    Pending(slot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclaw_ffi::outcome::{MutationCode, MutationOutcome};

    fn applied() -> Outcome {
        RResult::ROk(WriteOutcome::Mutation(MutationOutcome {
            code: MutationCode::APPLIED,
            flow: abi_stable::std_types::ROption::RNone,
        }))
    }

    #[test]
    fn the_first_outcome_wins_and_reaches_the_waiting_future() {
        let slot = Arc::new(Mutex::new(Slot::default()));
        let completer = Completer(Arc::clone(&slot));
        let pending = Pending(Arc::clone(&slot));
        let done = std::thread::spawn(move || {
            completer.complete(applied());
            drop(completer);
        });
        let system = actix_web::rt::System::new();
        let outcome = system.block_on(pending);
        done.join().unwrap();
        assert_eq!(outcome, applied());
    }

    #[test]
    fn a_completion_dropped_unanswered_ends_the_wait_with_an_error() {
        let slot = Arc::new(Mutex::new(Slot::default()));
        drop(Completer(Arc::clone(&slot)));
        let outcome = actix_web::rt::System::new().block_on(Pending(slot));
        match outcome {
            RResult::RErr(e) => assert_eq!(e.code, ErrorCode::INTERNAL),
            RResult::ROk(_) => panic!("expected an error"),
        }
    }
}
