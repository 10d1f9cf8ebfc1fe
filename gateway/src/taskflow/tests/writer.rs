//! The writer on its own: operations of one batch see each other, a failing
//! operation fails alone, a failed transaction fails the whole batch.

use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use super::support::*;
use crate::taskflow::cache::FlowCache;
use crate::taskflow::metrics::FlowCounts;
use crate::taskflow::ops::{Answer, Mutation, Op};
use crate::taskflow::writer::{Replier, Reply, Request, Writer};
use crate::taskflow::{file, Clock};
use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::outcome::{ErrorCode, MutationCode};
use openclaw_ffi::records::{FlowRecord, FlowStatus};
use openclaw_ffi::runtime::WriteOutcome;

struct Rig {
    _dir: TempDir,
    writer: Writer,
    cache: Arc<FlowCache>,
    counts: Arc<FlowCounts>,
}

impl Rig {
    /// The flow as the writer published it.
    fn published(&self, id: &str) -> FlowRecord {
        self.cache.get(id).unwrap().record.clone()
    }

    /// How many flows the writer counts.
    fn flow_count(&self) -> usize {
        self.counts.snapshot().iter().map(|(_, n)| n).sum()
    }
}

fn rig(max_store_bytes: Option<u64>) -> Rig {
    let dir = TempDir::new();
    let path = dir.path().join("writer.sqlite");
    let conn = file::open(&path, max_store_bytes).unwrap();
    let cache = Arc::new(FlowCache::new(100));
    let counts = Arc::new(FlowCounts::default());
    let writer = Writer {
        conn,
        path,
        cache: Arc::clone(&cache),
        counts: Arc::clone(&counts),
        clock: Clock::new(|| T0),
        retention_ms: 7 * DAY,
        next_seq: 0,
        watchers: Arc::default(),
        metrics: Default::default(),
        subscriptions: Arc::default(),
    };
    Rig {
        _dir: dir,
        writer,
        cache,
        counts,
    }
}

fn request(op: Op) -> (Request, Receiver<Reply>) {
    let (tx, rx) = mpsc::sync_channel(1);
    let reply = Replier::new(move |answer| tx.send(answer).unwrap());
    (
        Request {
            op,
            claim: None,
            reply,
        },
        rx,
    )
}

fn run(rig: &mut Rig, ops: Vec<Op>) -> Vec<Reply> {
    let (reqs, rxs): (Vec<_>, Vec<_>) = ops.into_iter().map(request).unzip();
    rig.writer.process(reqs);
    rxs.into_iter().map(|rx| rx.try_recv().unwrap()).collect()
}

fn create_op(state: Option<String>) -> Op {
    let mut input = create_input("g");
    input.state_json = state.map(RString::from).into();
    Op::Create {
        owner: Arc::from("s"),
        input,
    }
}

fn mutate_op(m: Mutation) -> Op {
    Op::Mutate {
        owner: Arc::from("s"),
        mutation: m,
    }
}

fn flow_of(reply: &Reply) -> FlowRecord {
    match reply {
        Ok(Answer::Write(WriteOutcome::Created(f))) => f.clone(),
        Ok(Answer::Write(WriteOutcome::Mutation(m))) => m.flow.clone().unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

fn stored_revision(rig: &Rig, id: &str) -> Option<u64> {
    rig.writer
        .conn
        .query_row("SELECT revision FROM flows WHERE flow_id = ?1", [id], |r| {
            r.get::<_, i64>(0)
        })
        .ok()
        .map(|v| v as u64)
}

#[test]
fn operations_in_one_batch_see_each_others_writes() {
    let mut rig = rig(None);
    let id = flow_of(&run(&mut rig, vec![create_op(None)])[0]).flow_id;
    let replies = run(
        &mut rig,
        vec![
            mutate_op(Mutation::SetWaiting(waiting(&id, 0))),
            mutate_op(Mutation::Resume(resume(&id, 1, FlowStatus::Running))),
            mutate_op(Mutation::SetWaiting(waiting(&id, 0))),
            mutate_op(Mutation::Finish(finish(&id, 2))),
        ],
    );
    let codes: Vec<_> = replies
        .iter()
        .map(|r| match r {
            Ok(Answer::Write(WriteOutcome::Mutation(m))) => {
                (m.code, m.flow.as_ref().unwrap().revision)
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (MutationCode::APPLIED, 1),
            (MutationCode::APPLIED, 2),
            (MutationCode::REVISION_CONFLICT, 2),
            (MutationCode::APPLIED, 3),
        ]
    );
    assert_eq!(rig.published(id.as_str()).revision, 3);
    assert_eq!(stored_revision(&rig, id.as_str()), Some(3));
}

#[test]
fn an_operation_that_does_not_fit_fails_alone_in_its_batch() {
    let mut rig = rig(Some(64 * 1024));
    let big = format!("\"{}\"", "x".repeat(200 * 1024));
    let replies = run(
        &mut rig,
        vec![create_op(None), create_op(Some(big)), create_op(None)],
    );
    assert!(replies[0].is_ok() && replies[2].is_ok(), "{replies:?}");
    let e = replies[1].as_ref().unwrap_err();
    assert_eq!(e.code, ErrorCode::PERSIST_FAILED);
    assert_eq!(rig.flow_count(), 2);
    for r in [&replies[0], &replies[2]] {
        assert_eq!(stored_revision(&rig, flow_of(r).flow_id.as_str()), Some(0));
    }
}

#[test]
fn a_transaction_that_cannot_start_fails_every_operation_and_changes_nothing() {
    let mut rig = rig(None);
    let id = flow_of(&run(&mut rig, vec![create_op(None)])[0]).flow_id;
    rig.writer.conn.execute_batch("BEGIN").unwrap();
    let replies = run(
        &mut rig,
        vec![
            create_op(None),
            mutate_op(Mutation::SetWaiting(waiting(&id, 0))),
        ],
    );
    for r in &replies {
        assert_eq!(r.as_ref().unwrap_err().code, ErrorCode::PERSIST_FAILED);
    }
    rig.writer.conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(rig.flow_count(), 1);
    assert_eq!(rig.published(id.as_str()).revision, 0);
    assert_eq!(rig.published(id.as_str()).wait_json, ROption::RNone);
    assert_eq!(stored_revision(&rig, id.as_str()), Some(0));
}
