//! Waits for a write submitted to the TaskFlow runtime without blocking a
//! thread: the host completes a one-shot channel from its writer thread
//! once the write is durable, and an actix worker awaits the other end.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RResult;
use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};
use openclaw_ffi::runtime::{
    BoundTaskFlowBox, WriteCompletion, WriteCompletion_TO, WriteOutcome, WriteRequest,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

type WriteResult = RResult<WriteOutcome, TaskFlowError>;

/// The plugin's side of `WriteCompletion`, handed to the host. The first
/// answer is kept; later ones are ignored.
struct Completer(Mutex<Option<oneshot::Sender<WriteResult>>>);

impl Completer {
    fn answer(&self, outcome: WriteResult) {
        if let Some(tx) = self.0.lock().take() {
            // The request may have gone (client disconnected): nobody
            // is left to tell, and the write stands.
            let _ = tx.send(outcome);
        }
    }
}

impl WriteCompletion for Completer {
    fn complete(&self, outcome: WriteResult) {
        // Runs on the host's writer thread: nothing here may panic across.
        let _ = catch_unwind(AssertUnwindSafe(|| self.answer(outcome)));
    }
}

impl Drop for Completer {
    /// A host that drops the completion unanswered leaves the outcome
    /// unknown; the request must still end, with an error.
    fn drop(&mut self) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            self.answer(RResult::RErr(TaskFlowError::new(
                ErrorCode::INTERNAL,
                "the TaskFlow runtime dropped a write without answering",
            )))
        }));
    }
}

/// Submits `request` to the bound TaskFlow; the returned future resolves
/// when the host has made it durable or refused it.
pub fn submit(
    flows: &BoundTaskFlowBox,
    request: WriteRequest,
) -> impl Future<Output = WriteResult> {
    let (tx, rx) = oneshot::channel();
    let done = WriteCompletion_TO::from_value(Completer(Mutex::new(Some(tx))), TD_Opaque);
    flows.submit(request, done);
    async move {
        // The sender is only dropped after sending (see `Drop`), so a
        // closed channel cannot happen; it is still answered, not unwrapped.
        rx.await.unwrap_or_else(|_| {
            RResult::RErr(TaskFlowError::new(
                ErrorCode::INTERNAL,
                "the write completion was lost",
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openclaw_ffi::outcome::{MutationCode, MutationOutcome};

    fn applied() -> WriteResult {
        RResult::ROk(WriteOutcome::Mutation(MutationOutcome {
            code: MutationCode::APPLIED,
            flow: abi_stable::std_types::ROption::RNone,
        }))
    }

    fn pair() -> (Completer, oneshot::Receiver<WriteResult>) {
        let (tx, rx) = oneshot::channel();
        (Completer(Mutex::new(Some(tx))), rx)
    }

    #[test]
    fn the_first_outcome_wins_and_reaches_the_waiting_request() {
        let (completer, rx) = pair();
        let done = std::thread::spawn(move || {
            completer.complete(applied());
            completer.complete(RResult::RErr(TaskFlowError::new(
                ErrorCode::INTERNAL,
                "second answer",
            )));
            drop(completer);
        });
        let outcome = actix_web::rt::System::new().block_on(rx).unwrap();
        done.join().unwrap();
        assert_eq!(outcome, applied());
    }

    #[test]
    fn a_completion_dropped_unanswered_ends_the_wait_with_an_error() {
        let (completer, rx) = pair();
        drop(completer);
        match actix_web::rt::System::new().block_on(rx).unwrap() {
            RResult::RErr(e) => assert_eq!(e.code, ErrorCode::INTERNAL),
            RResult::ROk(_) => panic!("expected an error"),
        }
    }
}
