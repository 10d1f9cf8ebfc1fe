//! Durability across restart, file modes, corrupt rows, schema versions,
//! the size quota and closing.

use std::os::unix::fs::PermissionsExt;

use abi_stable::std_types::{ROption, RStr};
use openclaw_ffi::outcome::{ErrorCode, MutationCode};
use openclaw_ffi::records::{FlowStatus, NotifyPolicy, TaskRuntime, TaskStatus, TextPatch};
use openclaw_ffi::runtime::BoundTaskFlow;

use super::support::*;
use crate::taskflow::{Store, StoreError};

#[test]
fn every_field_survives_a_restart_including_null_versus_absent_json() {
    let mut h = Harness::new();
    let bound = h.bind("agent:main:hooks");
    let mut input = create_input("goal");
    input.notify_policy = NotifyPolicy::Silent;
    input.state_json = ROption::RSome(s("null"));
    let a = ok(bound.create_managed(input));
    let mut w = waiting(&a.flow_id, 0);
    w.current_step = TextPatch::Set(s("step"));
    w.blocked_task_id = TextPatch::Set(s("t-1"));
    w.blocked_summary = TextPatch::Set(s("blocked on t-1"));
    w.wait_json = ROption::RSome(s(r#"{"kind":"timer","at":5}"#));
    applied(ok(bound.set_waiting(w)));
    h.advance(3);
    let a = applied(ok(bound.request_cancel(request_cancel(&a.flow_id, 1))));
    let b = create(&bound, "absent json");
    let c = create(&bound, "ended");
    let c = applied(ok(bound.finish(finish(&c.flow_id, 0))));
    let mut run = task_input(&a.flow_id, TaskRuntime::Acp);
    run.status = TaskStatus::Running;
    run.started_at = ROption::RSome(T0 - 1);
    run.run_id = ROption::RSome(s("run"));
    run.label = ROption::RSome(s("lbl"));
    run.source_id = ROption::RSome(s("src"));
    run.parent_task_id = ROption::RSome(s("parent"));
    run.child_session_key = ROption::RSome(s("agent:main:hooks:c"));
    run.progress_summary = ROption::RSome(s("p"));
    let flows_before = ok(bound.list());
    drop(bound);
    // run_task is refused after request_cancel, so link the task to b.
    let bound = h.bind("agent:main:hooks");
    run.flow_id = b.flow_id.clone();
    let task = ok(bound.run_task(run)).task.unwrap();
    drop(bound);

    h.reopen();
    let bound = h.bind("agent:main:hooks");
    assert_eq!(ok(bound.list()), flows_before);
    let a2 = ok(bound.get(RStr::from(a.flow_id.as_str()))).unwrap();
    assert_eq!(a2, a);
    assert_eq!(a2.state_json, ROption::RSome(s("null")));
    assert_eq!(a2.cancel_requested_at, ROption::RSome(T0 + 3));
    assert_eq!(a2.revision, 2);
    let b2 = ok(bound.get(RStr::from(b.flow_id.as_str()))).unwrap();
    assert_eq!(
        (b2.state_json, b2.wait_json),
        (ROption::RNone, ROption::RNone)
    );
    assert_eq!(ok(bound.get(RStr::from(c.flow_id.as_str()))).unwrap(), c);
    let cancel = ok(bound.cancel(RStr::from(b.flow_id.as_str())));
    let mut expected = task.clone();
    expected.status = TaskStatus::Cancelled;
    let t2 = cancel.tasks[0].clone();
    assert_eq!(t2.task_id, expected.task_id);
    assert_eq!(
        (
            t2.run_id,
            t2.label,
            t2.source_id,
            t2.parent_task_id,
            t2.child_session_key,
            t2.progress_summary
        ),
        (
            task.run_id,
            task.label,
            task.source_id,
            task.parent_task_id,
            task.child_session_key,
            task.progress_summary
        )
    );
    assert_eq!(
        (t2.created_at, t2.started_at),
        (task.created_at, task.started_at)
    );
    // A mutation after restart continues from the stored revision.
    assert_eq!(
        ok(bound.finish(finish(&a.flow_id, 2))).code,
        MutationCode::APPLIED
    );
}

#[test]
fn list_order_including_ties_survives_a_restart() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    for i in 0..5 {
        create(&bound, &format!("f{i}"));
    }
    let before = ok(bound.list());
    drop(bound);
    h.reopen();
    assert_eq!(ok(h.bind("s").list()), before);
}

#[test]
fn the_store_directory_is_0700_and_the_file_0600() {
    let h = Harness::new();
    create(&h.bind("s"), "g");
    let path = h.path();
    let dir_mode = std::fs::metadata(path.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    let file_mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(file_mode & 0o777, 0o600);
    h.store.close();
    let wal = format!("{}-wal", path.display());
    if let Ok(meta) = std::fs::metadata(wal) {
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
}

fn reopen_err(h: &mut Harness, sql: &str) -> StoreError {
    h.store.close();
    let conn = rusqlite::Connection::open(h.path()).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    let options = options_for(&h.dir, &h.now, |_| {});
    Store::open(options).err().unwrap()
}

#[test]
fn an_invalid_persisted_flow_status_fails_open_naming_the_row() {
    let mut h = Harness::new();
    let id = create(&h.bind("s"), "g").flow_id;
    let e = reopen_err(
        &mut h,
        &format!("UPDATE flows SET status = 'done' WHERE flow_id = '{id}'"),
    );
    let text = e.to_string();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{text}");
    assert!(
        text.contains(id.as_str()) && text.contains("status") && text.contains("done"),
        "{text}"
    );
    assert_eq!(text.matches("registry.sqlite").count(), 1, "{text}");
    assert!(!text.contains("another process"), "{text}");
}

#[test]
fn an_invalid_persisted_task_fails_the_reads_and_writes_that_need_it_and_no_other() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let other = create(&bound, "other").flow_id;
    ok(bound.run_task(task_input(&id, TaskRuntime::Acp)));
    drop(bound);
    with_raw_sql(&mut h, "UPDATE tasks SET runtime = 'shell'");
    let bound = h.bind("s");
    // Rows are read when asked for, not at open: the damaged one fails
    // only what reads it.
    let e = err(bound.get_task_summary(RStr::from(id.as_str())));
    assert_eq!(e.code, ErrorCode::INTERNAL);
    // Cancelling reads the flow's tasks: refused, nothing changed.
    let e = err(bound.cancel(RStr::from(id.as_str())));
    assert_eq!(e.code, ErrorCode::PERSIST_FAILED);
    let flow = ok(bound.get(RStr::from(id.as_str()))).unwrap();
    assert_eq!((flow.status, flow.revision), (FlowStatus::Queued, 0));
    assert!(ok(bound.get(RStr::from(other.as_str()))).is_some());
    assert_eq!(
        ok(bound.get_task_summary(RStr::from(other.as_str())))
            .unwrap()
            .total,
        0
    );
}

#[test]
fn corrupt_json_in_a_flow_row_fails_its_reads_and_no_other() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    let id = create(&bound, "g").flow_id;
    let other = create(&bound, "other").flow_id;
    drop(bound);
    with_raw_sql(
        &mut h,
        &format!("UPDATE flows SET wait_json = '{{' WHERE flow_id = '{id}'"),
    );
    let bound = h.bind("s");
    let e = err(bound.get(RStr::from(id.as_str())));
    assert_eq!(e.code, ErrorCode::INTERNAL);
    assert_eq!(e.message.as_str(), "TaskFlow store read failed.");
    assert_eq!(err(bound.list()).code, ErrorCode::INTERNAL);
    assert!(ok(bound.get(RStr::from(other.as_str()))).is_some());
}

#[test]
fn a_schema_newer_than_this_build_is_refused() {
    let mut h = Harness::new();
    let e = reopen_err(&mut h, "PRAGMA user_version = 99");
    assert!(e.to_string().contains("schema version 99"), "{e}");
}

#[test]
fn restored_managed_flows_without_a_controller_get_the_legacy_one() {
    let mut h = Harness::new();
    let id = create(&h.bind("s"), "g").flow_id;
    with_raw_sql(
        &mut h,
        &format!("UPDATE flows SET controller_id = NULL WHERE flow_id = '{id}'"),
    );
    let flow = ok(h.bind("s").get(RStr::from(id.as_str()))).unwrap();
    assert_eq!(
        flow.controller_id,
        ROption::RSome(s("core/legacy-restored"))
    );
}

#[test]
fn a_write_beyond_the_quota_fails_with_persist_failed_and_changes_nothing() {
    let mut h = Harness::with(|o| o.max_store_bytes = Some(96 * 1024));
    let bound = h.bind("s");
    let big = format!("\"{}\"", "x".repeat(20 * 1024));
    let mut created = Vec::new();
    let failure = loop {
        let mut input = create_input("g");
        input.state_json = ROption::RSome(s(&big));
        match bound.create_managed(input) {
            abi_stable::std_types::RResult::ROk(f) => created.push(f),
            abi_stable::std_types::RResult::RErr(e) => break e,
        }
        assert!(created.len() < 100, "the quota never applied");
    };
    assert_eq!(failure.code, ErrorCode::PERSIST_FAILED);
    assert_eq!(failure.message.as_str(), "TaskFlow persistence failed.");
    assert_eq!(h.store.flow_count(), created.len());
    assert_eq!(ok(bound.list()).len(), created.len());
    // A mutation that does not fit fails the same way and leaves the flow as it was.
    let mut w = waiting(&created[0].flow_id, 0);
    w.wait_json = ROption::RSome(s(&big.repeat(3).replace("\"\"", "")));
    assert_eq!(err(bound.set_waiting(w)).code, ErrorCode::PERSIST_FAILED);
    assert_eq!(
        ok(bound.get(RStr::from(created[0].flow_id.as_str()))).unwrap(),
        created[0]
    );
    drop(bound);
    h.reopen();
    assert_eq!(h.store.flow_count(), created.len());
}

#[test]
fn close_is_idempotent_and_later_writes_fail_with_persist_failed() {
    let h = Harness::new();
    let bound = h.bind("s");
    let flow = create(&bound, "g");
    h.store.close();
    h.store.close();
    let e = err(bound.create_managed(create_input("late")));
    assert_eq!(e.code, ErrorCode::PERSIST_FAILED);
    let e = err(bound.finish(finish(&flow.flow_id, 0)));
    assert_eq!(e.code, ErrorCode::PERSIST_FAILED);
    // Reads keep answering from memory.
    assert_eq!(
        ok(bound.get(RStr::from(flow.flow_id.as_str()))).unwrap(),
        flow
    );
    assert_eq!(h.store.sweep_now(), Default::default());
}

#[test]
fn close_truncates_the_write_ahead_log() {
    let h = Harness::new();
    let bound = h.bind("s");
    for _ in 0..20 {
        create(&bound, "g");
    }
    h.store.close();
    let wal = format!("{}-wal", h.path().display());
    let len = std::fs::metadata(wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(len, 0);
}

#[test]
fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
    let h = Harness::new();
    create(&h.bind("s"), "g");
    let mut options = options_for(&h.dir, &h.now, |_| {});
    options.sweep_interval = std::time::Duration::from_secs(3600);
    let started = std::time::Instant::now();
    let Err(e) = Store::open(options) else {
        panic!("a second store opened the same file");
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert!(matches!(e, StoreError::InUse { .. }), "{e}");
    assert!(
        e.to_string()
            .ends_with("registry.sqlite: the file is in use by another process (is another Gateway running with the same state directory?)"),
        "{e}"
    );
    assert_eq!(ok(h.bind("s").list()).len(), 1);
}

#[test]
fn the_status_of_a_created_flow_is_kept_as_given() {
    let mut h = Harness::new();
    let mut input = create_input("g");
    input.status = FlowStatus::Running;
    let flow = ok(h.bind("s").create_managed(input));
    h.reopen();
    assert_eq!(
        ok(h.bind("s").get(RStr::from(flow.flow_id.as_str())))
            .unwrap()
            .status,
        FlowStatus::Running
    );
}

#[test]
fn a_store_of_an_older_schema_with_a_duplicated_flow_id_fails_open_naming_the_row() {
    let mut h = Harness::new();
    let id = create(&h.bind("s"), "g").flow_id;
    // Schema version 3 did not make ids unique.
    let e = reopen_err(
        &mut h,
        "DROP INDEX flows_id; PRAGMA user_version = 3; INSERT INTO flows SELECT seq + 1000, flow_id, owner_key, sync_mode, controller_id, \
         revision, status, notify_policy, goal, current_step, blocked_task_id, blocked_summary, \
         state_json, wait_json, cancel_requested_at, created_at, updated_at, ended_at FROM flows",
    );
    assert!(
        e.to_string().contains(id.as_str()) && e.to_string().contains("duplicate"),
        "{e}"
    );
}

#[test]
fn a_store_of_schema_version_3_is_migrated_at_open_and_reads_by_its_new_indexes() {
    let mut h = Harness::new();
    let bound = h.bind("s");
    let older = create(&bound, "older");
    let newer = create(&bound, "newer");
    applied(ok(bound.finish(finish(&newer.flow_id, 0))));
    drop(bound);
    with_raw_sql(
        &mut h,
        "DROP INDEX flows_id; DROP INDEX tasks_id; DROP INDEX flows_status; \
         DROP INDEX flows_live; DROP INDEX flows_cancel; DROP INDEX flows_ended; \
         DROP INDEX outbox_open; ALTER TABLE outbox DROP COLUMN flow_seq; \
         CREATE INDEX outbox_open ON outbox(scope, flow_id, revision) WHERE settled_at IS NULL; \
         PRAGMA user_version = 3",
    );
    let conn = rusqlite::Connection::open(h.path()).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, crate::taskflow::schema::SCHEMA_VERSION);
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN \
             ('flows_id', 'tasks_id', 'flows_status', 'flows_live', 'flows_cancel', 'flows_ended')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 6);
    drop(conn);
    let bound = h.bind("s");
    assert_eq!(ok(bound.list()).len(), 2);
    assert_eq!(
        ok(bound.resolve(RStr::from("s"))).unwrap().flow_id,
        older.flow_id
    );
    assert_eq!(h.store.flow_count(), 2);
}
