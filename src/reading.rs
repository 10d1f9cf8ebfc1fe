//! Reads from the TaskFlow runtime without blocking a worker thread: the
//! host answers a read it has in memory before `read` returns, and one it
//! must fetch from disk later from its own thread, through a one-shot
//! channel an actix worker awaits. A host that predates `read` answers
//! `UNSUPPORTED`, and the read is made with the blocking methods instead.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::RResult;
use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};
use openclaw_ffi::runtime::{
    BoundTaskFlowBox, ReadCompletion, ReadCompletion_TO, ReadOutcome, ReadRequest,
};
use parking_lot::Mutex;
use tokio::sync::oneshot;

type ReadResult = RResult<ReadOutcome, TaskFlowError>;

/// The plugin's side of `ReadCompletion`: the first answer is kept.
struct Completer {
    tx: Mutex<Option<oneshot::Sender<ReadResult>>>,
}

impl Completer {
    fn answer(&self, outcome: ReadResult) {
        if let Some(tx) = self.tx.lock().take() {
            // The request may have gone (client disconnected).
            let _ = tx.send(outcome);
        }
    }
}

impl ReadCompletion for Completer {
    fn complete(&self, outcome: ReadResult) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.answer(outcome)));
    }
}

impl Drop for Completer {
    /// A host that drops the completion unanswered still ends the read.
    fn drop(&mut self) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            self.answer(RResult::RErr(TaskFlowError::new(
                ErrorCode::INTERNAL,
                "the TaskFlow runtime dropped a read without answering",
            )))
        }));
    }
}

/// Reads `request` from the bound TaskFlow.
pub async fn read(flows: &BoundTaskFlowBox, request: ReadRequest) -> ReadResult {
    let (tx, rx) = oneshot::channel();
    let done = ReadCompletion_TO::from_value(
        Completer {
            tx: Mutex::new(Some(tx)),
        },
        TD_Opaque,
    );
    flows.read(request.clone(), done);
    // Answered inline (a hot read), this resolves at the first poll.
    let answer = rx.await.unwrap_or_else(|_| {
        RResult::RErr(TaskFlowError::new(
            ErrorCode::INTERNAL,
            "the read completion was lost",
        ))
    });
    match answer {
        RResult::RErr(e) if e.code == ErrorCode::UNSUPPORTED => blocking(flows, &request),
        answer => answer,
    }
}

/// The same read with the blocking methods (a host without `read`).
fn blocking(flows: &BoundTaskFlowBox, request: &ReadRequest) -> ReadResult {
    let flow = |r: RResult<_, TaskFlowError>| r.map(ReadOutcome::Flow);
    match request {
        ReadRequest::Get(id) => flow(flows.get(id.as_rstr())),
        ReadRequest::List => flows.list().map(ReadOutcome::Flows),
        ReadRequest::FindLatest => flow(flows.find_latest()),
        ReadRequest::Resolve(token) => flow(flows.resolve(token.as_rstr())),
        ReadRequest::TaskSummary(id) => flows
            .get_task_summary(id.as_rstr())
            .map(ReadOutcome::Summary),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi_stable::std_types::{ROption, RStr, RString, RVec};
    use openclaw_ffi::outcome::{CancelOutcome, MutationOutcome, RunTaskOutcome};
    use openclaw_ffi::records::{
        CreateFlow, Fail, Finish, FlowRecord, RequestCancel, Resume, RunTask, SetWaiting,
        TaskSummary,
    };
    use openclaw_ffi::runtime::{
        BoundTaskFlow, BoundTaskFlow_TO, IdempotencyClaim, ReadCompletionBox, WriteCompletionBox,
        WriteRequest,
    };

    /// How the fake host answers `read`.
    #[derive(Clone, Copy)]
    enum Host {
        /// Before `read` returns (a hot read).
        Inline,
        /// From another thread.
        Later,
        /// Not at all: a host built before `read` (the default body).
        Old,
        /// Drops the completion unanswered.
        Drops,
    }

    struct Fake(Host);

    type Res<T> = RResult<T, TaskFlowError>;

    fn blocking_only<T>() -> Res<T> {
        RResult::RErr(TaskFlowError::new(
            ErrorCode::INVALID_INPUT,
            "blocking path",
        ))
    }

    impl BoundTaskFlow for Fake {
        fn session_key(&self) -> RString {
            "s".into()
        }
        fn create_managed(&self, _: CreateFlow) -> Res<FlowRecord> {
            blocking_only()
        }
        fn get(&self, _: RStr<'_>) -> Res<ROption<FlowRecord>> {
            blocking_only()
        }
        fn list(&self) -> Res<RVec<FlowRecord>> {
            blocking_only()
        }
        fn find_latest(&self) -> Res<ROption<FlowRecord>> {
            blocking_only()
        }
        fn resolve(&self, _: RStr<'_>) -> Res<ROption<FlowRecord>> {
            blocking_only()
        }
        fn get_task_summary(&self, _: RStr<'_>) -> Res<ROption<TaskSummary>> {
            blocking_only()
        }
        fn set_waiting(&self, _: SetWaiting) -> Res<MutationOutcome> {
            blocking_only()
        }
        fn resume(&self, _: Resume) -> Res<MutationOutcome> {
            blocking_only()
        }
        fn finish(&self, _: Finish) -> Res<MutationOutcome> {
            blocking_only()
        }
        fn fail(&self, _: Fail) -> Res<MutationOutcome> {
            blocking_only()
        }
        fn request_cancel(&self, _: RequestCancel) -> Res<MutationOutcome> {
            blocking_only()
        }
        fn cancel(&self, _: RStr<'_>) -> Res<CancelOutcome> {
            blocking_only()
        }
        fn run_task(&self, _: RunTask) -> Res<RunTaskOutcome> {
            blocking_only()
        }
        fn submit(&self, _: WriteRequest, _: ROption<IdempotencyClaim>, done: WriteCompletionBox) {
            done.complete(blocking_only());
        }
        fn read(&self, request: ReadRequest, done: ReadCompletionBox) {
            let answer = RResult::ROk(ReadOutcome::Flow(ROption::RNone));
            match self.0 {
                Host::Inline => done.complete(answer),
                Host::Later => {
                    std::thread::spawn(move || done.complete(answer));
                }
                Host::Old => done.complete(RResult::RErr(TaskFlowError::new(
                    ErrorCode::UNSUPPORTED,
                    "old host",
                ))),
                Host::Drops => drop((request, done)),
            }
        }
    }

    fn read_with(host: Host) -> ReadResult {
        let flows = BoundTaskFlow_TO::from_value(Fake(host), TD_Opaque);
        let get = ReadRequest::Get("f".into());
        actix_web::rt::System::new().block_on(read(&flows, get))
    }

    #[test]
    fn a_read_answered_inline_or_later_resolves_with_the_hosts_answer() {
        for host in [Host::Inline, Host::Later] {
            assert_eq!(
                read_with(host),
                RResult::ROk(ReadOutcome::Flow(ROption::RNone))
            );
        }
    }

    #[test]
    fn a_host_without_read_is_asked_through_the_blocking_methods() {
        let e = read_with(Host::Old).unwrap_err();
        assert_eq!(e.message.as_str(), "blocking path");
    }

    #[test]
    fn a_read_dropped_unanswered_ends_with_an_internal_error() {
        assert_eq!(
            read_with(Host::Drops).unwrap_err().code,
            ErrorCode::INTERNAL
        );
    }
}
