//! Idempotency records: a keyed write's reply is stored in the write's own
//! commit, replayed for the same request, refused for another, forgotten
//! after its time to live, and pruned in bounded chunks.

use std::sync::mpsc;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult};
use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};
use openclaw_ffi::runtime::{
    BoundTaskFlow, IdempotencyClaim, StoredReply, WriteCompletion, WriteCompletion_TO,
    WriteOutcome, WriteRequest,
};
use parking_lot::Mutex;

use super::support::*;
use crate::taskflow::Bound;

const WAIT: Duration = Duration::from_secs(10);

/// Renders the goal of a created flow as the stored body, so a test can
/// tell which write a reply belongs to.
struct Keyed(Mutex<mpsc::Sender<Result<WriteOutcome, TaskFlowError>>>);

impl WriteCompletion for Keyed {
    fn render(&self, outcome: &WriteOutcome) -> ROption<StoredReply> {
        let body = match outcome {
            WriteOutcome::Created(flow) => flow.goal.to_string(),
            other => format!("{other:?}"),
        };
        ROption::RSome(StoredReply {
            status: 200,
            body: body.into_bytes().into(),
        })
    }

    fn complete(&self, outcome: RResult<WriteOutcome, TaskFlowError>) {
        let _ = self.0.lock().send(outcome.into_result());
    }
}

fn claim(key: &str, fingerprint: &str, ttl_ms: u64) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: "route-a".into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
        ttl_ms,
    }
}

fn submit(
    bound: &Bound,
    goal: &str,
    claim: IdempotencyClaim,
) -> Result<WriteOutcome, TaskFlowError> {
    let (tx, rx) = mpsc::channel();
    let done = WriteCompletion_TO::from_value(Keyed(Mutex::new(tx)), TD_Opaque);
    bound.submit(
        WriteRequest::Create(create_input(goal)),
        ROption::RSome(claim),
        done,
    );
    rx.recv_timeout(WAIT).expect("the write was never answered")
}

fn replayed_body(outcome: Result<WriteOutcome, TaskFlowError>) -> String {
    match outcome {
        Ok(WriteOutcome::Replayed(reply)) => String::from_utf8(reply.body.into_vec()).unwrap(),
        other => panic!("expected a replay, got {other:?}"),
    }
}

#[test]
fn the_first_write_runs_and_a_retry_gets_its_stored_reply_without_running() {
    let h = Harness::new();
    let bound = h.bind("s");
    let first = submit(&bound, "first", claim("k", "fp", 60_000)).unwrap();
    assert!(matches!(first, WriteOutcome::Created(_)));
    assert_eq!(
        replayed_body(submit(&bound, "first", claim("k", "fp", 60_000))),
        "first"
    );
    assert_eq!(h.store.flow_count(), 1, "the retry created nothing");
    // Another scope is another key.
    let mut other_scope = claim("k", "fp", 60_000);
    other_scope.scope = "route-b".into();
    assert!(matches!(
        submit(&bound, "b", other_scope),
        Ok(WriteOutcome::Created(_))
    ));
}

#[test]
fn a_key_used_for_another_request_is_refused_and_runs_nothing() {
    let h = Harness::new();
    let bound = h.bind("s");
    submit(&bound, "first", claim("k", "fp-1", 60_000)).unwrap();
    let other = submit(&bound, "second", claim("k", "fp-2", 60_000));
    assert!(matches!(other, Ok(WriteOutcome::KeyMismatch)), "{other:?}");
    assert_eq!(h.store.flow_count(), 1);
}

#[test]
fn records_survive_a_reopen_with_their_writes() {
    let mut h = Harness::new();
    submit(&h.bind("s"), "durable", claim("k", "fp", 60_000)).unwrap();
    h.reopen();
    assert_eq!(
        replayed_body(submit(&h.bind("s"), "durable", claim("k", "fp", 60_000))),
        "durable"
    );
    assert_eq!(h.store.flow_count(), 1);
}

#[test]
fn an_expired_key_runs_anew_and_the_sweep_prunes_records_in_chunks() {
    let h = Harness::new();
    h.set_now(1_000_000);
    let bound = h.bind("s");
    let n = crate::taskflow::sweep::SWEEP_CHUNK + 10;
    for i in 0..n {
        submit(
            &bound,
            &format!("g{i}"),
            claim(&format!("k{i}"), "fp", 60_000),
        )
        .unwrap();
    }
    h.advance(59_999);
    assert_eq!(
        replayed_body(submit(&bound, "g0", claim("k0", "fp", 60_000))),
        "g0"
    );
    assert_eq!(
        h.store.sweep_now().pruned_keys,
        0,
        "nothing has expired yet"
    );
    h.advance(1);
    let again = submit(&bound, "g0 again", claim("k0", "fp", 60_000)).unwrap();
    assert!(
        matches!(again, WriteOutcome::Created(_)),
        "expired: it ran anew"
    );
    // k0 was replaced with a fresh record; the other keys are all expired.
    assert_eq!(h.store.sweep_now().pruned_keys, n - 1);
    assert_eq!(h.store.sweep_now().pruned_keys, 0);
    assert_eq!(
        replayed_body(submit(&bound, "x", claim("k0", "fp", 60_000))),
        "g0 again"
    );
}

#[test]
fn a_write_that_could_not_persist_leaves_no_record() {
    let h = Harness::with(|o| o.max_store_bytes = Some(64 * 1024));
    let bound = h.bind("s");
    let big = "x".repeat(16_000);
    let failed = (0..64)
        .map(|i| {
            (
                i,
                submit(&bound, &big, claim(&format!("k{i}"), "fp", 60_000)),
            )
        })
        .find_map(|(i, r)| r.err().map(|e| (i, e)))
        .expect("the store fills up");
    assert_eq!(failed.1.code, ErrorCode::PERSIST_FAILED);
    // Its retry runs (and fails) anew rather than replaying anything.
    let retry = submit(&bound, &big, claim(&format!("k{}", failed.0), "fp", 60_000));
    assert_eq!(retry.unwrap_err().code, ErrorCode::PERSIST_FAILED);
}
