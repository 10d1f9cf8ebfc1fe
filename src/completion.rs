//! Waits for a write submitted to the TaskFlow runtime without blocking a
//! thread: the host completes a one-shot channel from its writer thread
//! once the write is durable, and an actix worker awaits the other end.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::ROption;
use abi_stable::std_types::RResult;
use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};
use openclaw_ffi::runtime::{
    BoundTaskFlowBox, IdempotencyClaim, StoredReply, WriteCompletion, WriteCompletion_TO,
    WriteOutcome, WriteRequest,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::idempotency::Marker;

type WriteResult = RResult<WriteOutcome, TaskFlowError>;

/// Renders the reply a keyed write's outcome gets (see [`Keyed`]).
pub type Render = Box<dyn Fn(&WriteOutcome) -> Option<StoredReply> + Send + Sync>;

/// What makes a submitted write retry-safe: the claim the host checks and
/// records, the marker that holds the key as running until the write has
/// completed, and how the reply to store is rendered.
pub struct Keyed {
    pub claim: IdempotencyClaim,
    pub marker: Marker,
    pub render: Render,
}

/// How a submitted write ended.
// Moved once per write; boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Written {
    /// The outcome, to be turned into a reply.
    Outcome(WriteResult),
    /// A keyed write's stored reply: the one rendered for this request's
    /// own write (`replayed: false`), or an earlier request's.
    Stored { reply: StoredReply, replayed: bool },
}

/// The plugin's side of `WriteCompletion`, handed to the host. The first
/// answer is kept; later ones are ignored.
struct Completer {
    tx: Mutex<Option<oneshot::Sender<Written>>>,
    render: Option<Render>,
    /// The reply `render` gave the host to store, sent as the answer.
    rendered: Mutex<Option<StoredReply>>,
    /// Freed when the host answers (after the commit, so a retry finds the
    /// stored reply rather than running again) or drops the completer.
    marker: Mutex<Option<Marker>>,
}

impl Completer {
    fn new(tx: oneshot::Sender<Written>, keyed: Option<(Marker, Render)>) -> Self {
        let (marker, render) = keyed.unzip();
        Self {
            tx: Mutex::new(Some(tx)),
            render,
            rendered: Mutex::new(None),
            marker: Mutex::new(marker),
        }
    }

    fn answer(&self, outcome: WriteResult) {
        let Some(tx) = self.tx.lock().take() else {
            return;
        };
        let written = match outcome {
            RResult::ROk(WriteOutcome::Replayed(reply)) => Written::Stored {
                reply,
                replayed: true,
            },
            RResult::ROk(outcome) => match self.rendered.lock().take() {
                Some(reply) => Written::Stored {
                    reply,
                    replayed: false,
                },
                None => Written::Outcome(RResult::ROk(outcome)),
            },
            failed => Written::Outcome(failed),
        };
        // Before the request can answer its client: a retry sent the moment
        // the answer arrives must find the key free, or its reply
        // remembered.
        if let Some(mut marker) = self.marker.lock().take() {
            if let Written::Stored {
                reply,
                replayed: false,
            } = &written
            {
                marker.finished_with(reply);
            }
        }
        // The request may have gone (client disconnected): nobody is left
        // to tell, and the write stands.
        let _ = tx.send(written);
    }
}

impl WriteCompletion for Completer {
    fn render(&self, outcome: &WriteOutcome) -> ROption<StoredReply> {
        // Runs on the host's writer thread: nothing here may panic across.
        let rendered = catch_unwind(AssertUnwindSafe(|| {
            let reply = self.render.as_ref().and_then(|render| render(outcome))?;
            *self.rendered.lock() = Some(reply.clone());
            Some(reply)
        }));
        rendered.ok().flatten().into()
    }

    fn complete(&self, outcome: WriteResult) {
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

/// Submits `request` to the bound TaskFlow, retry-safe when `keyed`; the
/// returned future resolves when the host has made it durable or refused
/// it.
pub fn submit(
    flows: &BoundTaskFlowBox,
    request: WriteRequest,
    keyed: Option<Keyed>,
) -> impl Future<Output = Written> {
    let (tx, rx) = oneshot::channel();
    let (claim, keyed) = match keyed {
        Some(k) => (ROption::RSome(k.claim), Some((k.marker, k.render))),
        None => (ROption::RNone, None),
    };
    let done = WriteCompletion_TO::from_value(Completer::new(tx, keyed), TD_Opaque);
    flows.submit(request, claim, done);
    async move {
        // The sender is only dropped after sending (see `Drop`), so a
        // closed channel cannot happen; it is still answered, not unwrapped.
        rx.await.unwrap_or_else(|_| {
            Written::Outcome(RResult::RErr(TaskFlowError::new(
                ErrorCode::INTERNAL,
                "the write completion was lost",
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::idempotency::{Claimed, Keys};
    use openclaw_ffi::outcome::{MutationCode, MutationOutcome};

    fn applied() -> WriteOutcome {
        WriteOutcome::Mutation(MutationOutcome {
            code: MutationCode::APPLIED,
            flow: ROption::RNone,
        })
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        actix_web::rt::System::new().block_on(f)
    }

    #[test]
    fn the_first_outcome_wins_and_reaches_the_waiting_request() {
        let (tx, rx) = oneshot::channel();
        let completer = Completer::new(tx, None);
        let done = std::thread::spawn(move || {
            completer.complete(RResult::ROk(applied()));
            completer.complete(RResult::RErr(TaskFlowError::new(
                ErrorCode::INTERNAL,
                "second answer",
            )));
            drop(completer);
        });
        let written = block_on(rx).unwrap();
        done.join().unwrap();
        assert!(matches!(written, Written::Outcome(RResult::ROk(o)) if o == applied()));
    }

    #[test]
    fn a_completion_dropped_unanswered_ends_the_wait_with_an_error() {
        let (tx, rx) = oneshot::channel();
        drop(Completer::new(tx, None));
        match block_on(rx).unwrap() {
            Written::Outcome(RResult::RErr(e)) => assert_eq!(e.code, ErrorCode::INTERNAL),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_keyed_write_answers_with_the_reply_it_rendered_and_frees_its_key_when_answered() {
        let keys = Keys::new(Duration::from_secs(60));
        let Claimed::Run(marker) = keys.claim("k", [7; 32]).unwrap() else {
            panic!("a new key runs")
        };
        let render: Render = Box::new(|_| {
            Some(StoredReply {
                status: 200,
                body: b"{\"ok\":true}".to_vec().into(),
            })
        });
        let (tx, rx) = oneshot::channel();
        let completer = Completer::new(tx, Some((marker, render)));
        let stored = completer.render(&applied());
        assert!(stored.is_some());
        assert_eq!(keys.running(), 1, "held while the write is on its way");
        completer.complete(RResult::ROk(applied()));
        assert_eq!(keys.running(), 0, "freed once the host has answered");
        assert_eq!(keys.remembered(), 1, "its reply remembered");
        match keys.claim("k", [7; 32]).unwrap() {
            Claimed::Replay(reply) => assert_eq!(&reply.body[..], b"{\"ok\":true}"),
            Claimed::Run(_) => panic!("a finished key replays"),
        }
        drop(completer);
        match block_on(rx).unwrap() {
            Written::Stored { reply, replayed } => {
                assert_eq!((reply.status, replayed), (200, false));
                assert_eq!(reply.body.as_slice(), b"{\"ok\":true}");
            }
            other => panic!("expected the rendered reply, got {other:?}"),
        }
    }

    #[test]
    fn a_replay_is_answered_as_stored_and_marked_replayed() {
        let (tx, rx) = oneshot::channel();
        let completer = Completer::new(tx, None);
        completer.complete(RResult::ROk(WriteOutcome::Replayed(StoredReply {
            status: 409,
            body: b"{}".to_vec().into(),
        })));
        match block_on(rx).unwrap() {
            Written::Stored { reply, replayed } => {
                assert_eq!((reply.status, replayed), (409, true))
            }
            other => panic!("expected the stored reply, got {other:?}"),
        }
    }
}
