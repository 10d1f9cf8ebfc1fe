//! Binding a session (`Store::bind`) and `Bound`, one session's view of the
//! store, implementing the stable-ABI `BoundTaskFlow` trait. Reads come from
//! the cache or indexed queries (`reads`); writes go to the writer. No
//! panic leaves a method.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use openclaw_ffi::outcome::{CancelOutcome, MutationOutcome, RunTaskOutcome, TaskFlowError};
use openclaw_ffi::records::{
    CreateFlow, Fail, Finish, FlowRecord, FlowStatus, RequestCancel, Resume, RunTask, SetWaiting,
    TaskStatus, TaskSummary,
};
use openclaw_ffi::runtime::{
    BoundTaskFlow, DueEvents, EventWakerBox, FlowWakerBox, IdempotencyClaim, ReadCompletionBox,
    ReadOutcome, ReadRequest, Settlement, WatchTicket, WriteCompletionBox, WriteOutcome,
    WriteRequest,
};

use super::error::{internal, invalid_input};
use super::keys::Claim;
use super::model::check_json;
use super::ops::{Answer, Mutation, Op};
use super::outbox::OutboxOp;
use super::store::Store;
use super::writer::Replier;

/// The TaskFlow runtime bound to one session key.
#[derive(Clone)]
pub struct Bound {
    store: Store,
    owner: Arc<str>,
}

/// Runs `f`, turning a panic into an `INTERNAL` error.
pub(crate) fn guarded<T>(
    f: impl FnOnce() -> Result<T, TaskFlowError>,
) -> RResult<T, TaskFlowError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.into(),
        Err(_) => RResult::RErr(internal("TaskFlow runtime fault.")),
    }
}

fn unexpected() -> TaskFlowError {
    internal("TaskFlow store returned an unexpected answer.")
}

impl Store {
    /// Binds the TaskFlow runtime to one session (the key is trimmed).
    pub fn bind(&self, session_key: &str) -> Result<Bound, TaskFlowError> {
        let key = session_key.trim();
        if key.is_empty() {
            return Err(invalid_input(
                "TaskFlow runtime requires a bound sessionKey.",
            ));
        }
        Ok(Bound {
            store: self.clone(),
            owner: Arc::from(key),
        })
    }
}

impl Bound {
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    /// Answers a read on this thread (it may wait on disk).
    pub(crate) fn read_now(&self, request: &ReadRequest) -> Result<ReadOutcome, TaskFlowError> {
        let flow =
            |r: RResult<ROption<FlowRecord>, TaskFlowError>| r.into_result().map(ReadOutcome::Flow);
        match request {
            ReadRequest::Get(id) => flow(self.get(id.as_rstr())),
            ReadRequest::List => self.list().into_result().map(ReadOutcome::Flows),
            ReadRequest::FindLatest => flow(self.find_latest()),
            ReadRequest::Resolve(token) => flow(self.resolve(token.as_rstr())),
            ReadRequest::TaskSummary(id) => self
                .get_task_summary(id.as_rstr())
                .into_result()
                .map(ReadOutcome::Summary),
        }
    }

    /// Validates a write and turns it into the writer's operation.
    fn write_op(&self, request: WriteRequest) -> Result<Op, TaskFlowError> {
        let owner = Arc::clone(&self.owner);
        let mutate = |mutation| Op::Mutate {
            owner: Arc::clone(&self.owner),
            mutation,
        };
        Ok(match request {
            WriteRequest::Create(input) => {
                check_json("stateJson", &input.state_json)?;
                check_json("waitJson", &input.wait_json)?;
                Op::Create { owner, input }
            }
            WriteRequest::SetWaiting(input) => {
                check_json("stateJson", &input.state_json)?;
                check_json("waitJson", &input.wait_json)?;
                mutate(Mutation::SetWaiting(input))
            }
            WriteRequest::Resume(input) => {
                if !matches!(input.status, FlowStatus::Queued | FlowStatus::Running) {
                    return Err(invalid_input("Resume status must be queued or running."));
                }
                check_json("stateJson", &input.state_json)?;
                mutate(Mutation::Resume(input))
            }
            WriteRequest::Finish(input) => {
                check_json("stateJson", &input.state_json)?;
                mutate(Mutation::Finish(input))
            }
            WriteRequest::Fail(input) => {
                check_json("stateJson", &input.state_json)?;
                mutate(Mutation::Fail(input))
            }
            WriteRequest::RequestCancel(input) => mutate(Mutation::RequestCancel {
                flow_id: input.flow_id,
                expected: input.expected_revision,
            }),
            WriteRequest::Cancel(flow_id) => Op::Cancel { owner, flow_id },
            WriteRequest::RunTask(input) => {
                if !matches!(input.status, TaskStatus::Queued | TaskStatus::Running) {
                    return Err(invalid_input("Task status must be queued or running."));
                }
                if input.task.trim().is_empty() {
                    return Err(invalid_input("Task text is required."));
                }
                Op::RunTask { owner, input }
            }
        })
    }

    /// Performs a write, waiting for it to be durable.
    fn write(&self, request: WriteRequest) -> Result<WriteOutcome, TaskFlowError> {
        let op = self.write_op(request)?;
        write_outcome(self.store.perform(op)?)
    }

    fn mutate(&self, request: WriteRequest) -> Result<MutationOutcome, TaskFlowError> {
        match self.write(request)? {
            WriteOutcome::Mutation(outcome) => Ok(outcome),
            _ => Err(unexpected()),
        }
    }
}

/// The outcome a write's answer carries.
fn write_outcome(answer: Answer) -> Result<WriteOutcome, TaskFlowError> {
    match answer {
        Answer::Write(outcome) => Ok(outcome),
        _ => Err(unexpected()),
    }
}

impl BoundTaskFlow for Bound {
    fn session_key(&self) -> RString {
        RString::from(&*self.owner)
    }

    fn create_managed(&self, input: CreateFlow) -> RResult<FlowRecord, TaskFlowError> {
        guarded(|| match self.write(WriteRequest::Create(input))? {
            WriteOutcome::Created(flow) => Ok(flow),
            _ => Err(unexpected()),
        })
    }

    fn get(&self, flow_id: RStr<'_>) -> RResult<ROption<FlowRecord>, TaskFlowError> {
        guarded(|| {
            let flow = self.store.flow(&self.owner, flow_id.as_str())?;
            Ok(flow.map(|f| f.record.clone()).into())
        })
    }

    fn list(&self) -> RResult<RVec<FlowRecord>, TaskFlowError> {
        guarded(|| {
            let flows = self.store.owner_flows(&self.owner)?;
            Ok(flows.into_iter().map(|f| f.record).collect())
        })
    }

    fn find_latest(&self) -> RResult<ROption<FlowRecord>, TaskFlowError> {
        guarded(|| {
            let latest = self.store.latest_flow(&self.owner)?;
            Ok(latest.map(|f| f.record).into())
        })
    }

    fn resolve(&self, token: RStr<'_>) -> RResult<ROption<FlowRecord>, TaskFlowError> {
        guarded(|| {
            if let Some(flow) = self.store.flow(&self.owner, token.as_str())? {
                return Ok(ROption::RSome(flow.record.clone()));
            }
            if token.as_str().trim() != &*self.owner {
                return Ok(ROption::RNone);
            }
            let live = self.store.latest_live_flow(&self.owner)?;
            Ok(live.map(|f| f.record).into())
        })
    }

    fn get_task_summary(&self, flow_id: RStr<'_>) -> RResult<ROption<TaskSummary>, TaskFlowError> {
        guarded(|| {
            Ok(self
                .store
                .task_summary(&self.owner, flow_id.as_str())?
                .into())
        })
    }

    fn set_waiting(&self, input: SetWaiting) -> RResult<MutationOutcome, TaskFlowError> {
        guarded(|| self.mutate(WriteRequest::SetWaiting(input)))
    }

    fn resume(&self, input: Resume) -> RResult<MutationOutcome, TaskFlowError> {
        guarded(|| self.mutate(WriteRequest::Resume(input)))
    }

    fn finish(&self, input: Finish) -> RResult<MutationOutcome, TaskFlowError> {
        guarded(|| self.mutate(WriteRequest::Finish(input)))
    }

    fn fail(&self, input: Fail) -> RResult<MutationOutcome, TaskFlowError> {
        guarded(|| self.mutate(WriteRequest::Fail(input)))
    }

    fn request_cancel(&self, input: RequestCancel) -> RResult<MutationOutcome, TaskFlowError> {
        guarded(|| self.mutate(WriteRequest::RequestCancel(input)))
    }

    fn cancel(&self, flow_id: RStr<'_>) -> RResult<CancelOutcome, TaskFlowError> {
        let request = WriteRequest::Cancel(RString::from(flow_id.as_str()));
        guarded(|| match self.write(request)? {
            WriteOutcome::Cancel(outcome) => Ok(outcome),
            _ => Err(unexpected()),
        })
    }

    fn run_task(&self, input: RunTask) -> RResult<RunTaskOutcome, TaskFlowError> {
        guarded(|| match self.write(WriteRequest::RunTask(input))? {
            WriteOutcome::RunTask(outcome) => Ok(outcome),
            _ => Err(unexpected()),
        })
    }

    fn submit(
        &self,
        request: WriteRequest,
        claim: ROption<IdempotencyClaim>,
        done: WriteCompletionBox,
    ) {
        // `done` is completed exactly once: with the refusal here, or with
        // the writer's answer on the writer thread after the commit.
        let op = match catch_unwind(AssertUnwindSafe(|| self.write_op(request))) {
            Ok(Ok(op)) => op,
            Ok(Err(e)) => return done.complete(RResult::RErr(e)),
            Err(_) => return done.complete(RResult::RErr(internal("TaskFlow runtime fault."))),
        };
        // The writer renders a keyed write's reply through `done` before
        // the commit, and completes it after.
        let done = Arc::new(done);
        let claim = claim.into_option().map(|claim| {
            let done = Arc::clone(&done);
            Claim {
                claim,
                render: Box::new(move |outcome| done.render(outcome).into_option()),
            }
        });
        self.store.submit_claimed(
            op,
            claim,
            Replier::new(move |reply| {
                let outcome = reply.and_then(write_outcome);
                done.complete(outcome.into());
            }),
        );
    }

    fn watch(
        &self,
        flow_id: RStr<'_>,
        above_revision: u64,
        waker: FlowWakerBox,
    ) -> RResult<WatchTicket, TaskFlowError> {
        guarded(|| {
            let id = self
                .store
                .watch(&self.owner, flow_id.as_str(), above_revision, waker);
            Ok(WatchTicket { id })
        })
    }

    fn unwatch(&self, ticket: WatchTicket) {
        if catch_unwind(AssertUnwindSafe(|| self.store.unwatch(ticket.id))).is_err() {
            log::error!("taskflow store: unwatch fault");
        }
    }

    fn subscribe_events(
        &self,
        scope: RStr<'_>,
        waker: EventWakerBox,
    ) -> RResult<(), TaskFlowError> {
        guarded(|| {
            self.store
                .subscriptions()
                .subscribe(&self.owner, scope.as_str(), waker)
        })
    }

    fn due_events(
        &self,
        scope: RStr<'_>,
        now: u64,
        limit: u32,
        lease_until: u64,
    ) -> RResult<DueEvents, TaskFlowError> {
        guarded(|| {
            let scope = self
                .store
                .subscriptions()
                .check(&self.owner, scope.as_str())?;
            if self.store.is_postgres() {
                return self.store.pg_claim(&scope, now, limit, lease_until);
            }
            let op = Op::Outbox(OutboxOp::Claim {
                scope,
                now,
                limit,
                lease_until,
                subscriptions: Arc::clone(self.store.subscriptions()),
            });
            match self.store.perform(op)? {
                Answer::Events(due) => Ok(due),
                _ => Err(unexpected()),
            }
        })
    }

    fn settle_events(
        &self,
        scope: RStr<'_>,
        settlements: RVec<Settlement>,
    ) -> RResult<(), TaskFlowError> {
        guarded(|| {
            let scope = self
                .store
                .subscriptions()
                .check(&self.owner, scope.as_str())?;
            if settlements.is_empty() {
                return Ok(());
            }
            if self.store.is_postgres() {
                return self.store.pg_settle(&scope, &settlements);
            }
            let op = Op::Outbox(OutboxOp::Settle {
                scope,
                settlements: settlements.into_vec(),
                subscriptions: Arc::clone(self.store.subscriptions()),
            });
            match self.store.perform(op)? {
                Answer::Settled => Ok(()),
                _ => Err(unexpected()),
            }
        })
    }

    fn read(&self, request: ReadRequest, done: ReadCompletionBox) {
        // `done` is completed exactly once, inline or by a reader thread; a
        // fault drops it unanswered, which its owner reports as an error.
        if catch_unwind(AssertUnwindSafe(|| self.read_async(request, done))).is_err() {
            log::error!("taskflow store: read fault");
        }
    }
}
