//! `openclaw-gateway migrate`: the real binary copies a store made by the
//! real store code (flows, tasks, idempotency records, pending callback
//! events) into a fresh PostgreSQL schema, row for row; a second run
//! copies nothing; a run after a partial copy completes it.

// Test support: a broken expectation is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RString};
use openclaw_ffi::outcome::TaskFlowError;
use openclaw_ffi::records::{
    CreateFlow, Finish, FlowStatus, NotifyPolicy, RunTask, TaskRuntime, TaskStatus,
};
use openclaw_ffi::runtime::{
    BoundTaskFlow, EventWaker, EventWaker_TO, IdempotencyClaim, StoredReply, WriteCompletion,
    WriteCompletion_TO, WriteOutcome, WriteRequest,
};
use openclaw_gateway::migrate::store_path;
use openclaw_gateway::taskflow::{Store, StoreOptions};
use parking_lot::Mutex;
use testkit::{PgSchema, TempDir};

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_openclaw-gateway"))
}

fn ok<T>(r: RResult<T, TaskFlowError>) -> T {
    match r {
        RResult::ROk(v) => v,
        RResult::RErr(e) => panic!("store error {:?}: {}", e.code, e.message),
    }
}

fn create_input(goal: &str, notify: NotifyPolicy) -> CreateFlow {
    CreateFlow {
        controller_id: "webhooks/test".into(),
        goal: goal.into(),
        status: FlowStatus::Queued,
        notify_policy: notify,
        current_step: ROption::RSome("step one".into()),
        state_json: ROption::RSome(r#"{"b":1,"a":[true,null]}"#.into()),
        wait_json: None.into(),
    }
}

fn task_input(flow_id: &RString, runtime: TaskRuntime) -> RunTask {
    RunTask {
        flow_id: flow_id.clone(),
        runtime,
        task: "do the thing".into(),
        source_id: None.into(),
        child_session_key: None.into(),
        parent_task_id: None.into(),
        agent_id: ROption::RSome("agent-7".into()),
        run_id: None.into(),
        label: ROption::RSome("label".into()),
        prefer_metadata: false,
        notify_policy: None.into(),
        status: TaskStatus::Running,
        started_at: ROption::RSome(1_700_000_000_000),
        last_event_at: None.into(),
        progress_summary: None.into(),
    }
}

struct Completion(Mutex<mpsc::Sender<Result<WriteOutcome, TaskFlowError>>>);

impl WriteCompletion for Completion {
    fn render(&self, _: &WriteOutcome) -> ROption<StoredReply> {
        ROption::RSome(StoredReply {
            status: 201,
            body: b"{\"ok\":true,\"bytes\":\"\x00\xff\"}".to_vec().into(),
        })
    }

    fn complete(&self, outcome: RResult<WriteOutcome, TaskFlowError>) {
        let _ = self.0.lock().send(outcome.into_result());
    }
}

struct NoWake;

impl EventWaker for NoWake {
    fn wake(&self) {}
}

/// What the store holds after `fill`, per table.
const FLOWS: usize = 7;
const TASKS: usize = 4;
const KEYS: usize = 2;

/// A store, made by the store itself, with flows of two sessions, child
/// tasks, keyed writes and callback events nobody delivered.
fn fill(state_dir: &Path) {
    let store = Store::open(StoreOptions::new(store_path(state_dir))).unwrap();
    let a = store.bind("agent:main:a").unwrap();
    let b = store.bind("agent:main:b").unwrap();
    ok(a.subscribe_events(
        "route-a".into(),
        EventWaker_TO::from_value(NoWake, TD_Opaque),
    ));
    let mut flows = Vec::new();
    for i in 0..4 {
        flows.push(ok(a.create_managed(create_input(
            &format!("flow {i}"),
            NotifyPolicy::StateChanges,
        ))));
    }
    ok(b.create_managed(create_input("theirs", NotifyPolicy::Silent)));
    for i in 0..TASKS {
        let runtime = TaskRuntime::ALL[i % TaskRuntime::ALL.len()];
        ok(a.run_task(task_input(&flows[i % 2].flow_id, runtime)));
    }
    let finished = &flows[3];
    ok(a.finish(Finish {
        flow_id: finished.flow_id.clone(),
        expected_revision: finished.revision,
        state_json: ROption::RSome(r#"{"done":true}"#.into()),
    }));
    for i in 0..KEYS {
        let (tx, rx) = mpsc::channel();
        a.submit(
            WriteRequest::Create(create_input(&format!("keyed {i}"), NotifyPolicy::DoneOnly)),
            ROption::RSome(IdempotencyClaim {
                scope: "route-a".into(),
                key: format!("key-{i}").into(),
                fingerprint: format!("fp-{i}").into(),
                ttl_ms: 86_400_000,
            }),
            WriteCompletion_TO::from_value(Completion(Mutex::new(tx)), TD_Opaque),
        );
        rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    }
    store.close();
}

/// The config `migrate` reads: only the cluster section matters.
fn config(dir: &TempDir, schema: &PgSchema) -> PathBuf {
    let cfg = serde_json::json!({
        "cluster": {
            "postgres": { "url": schema.url() },
            "redis": { "url": testkit::redis_url() },
        }
    });
    dir.write("gateway.json5", &cfg.to_string())
}

fn migrate(state_dir: &Path, config: &Path) -> Output {
    gateway()
        .arg("migrate")
        .arg("--from-state-dir")
        .arg(state_dir)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "migrate failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The columns compared, per table, in creation order on both sides.
const COMPARED: &[(&str, &str, &str)] = &[
    (
        "flows",
        "flow_id, owner_key, sync_mode, controller_id, revision, status, notify_policy, goal, \
         current_step, blocked_task_id, blocked_summary, state_json, wait_json, \
         cancel_requested_at, created_at, updated_at, ended_at",
        "seq",
    ),
    (
        "tasks",
        "task_id, owner_key, runtime, source_id, child_session_key, parent_flow_id, \
         parent_task_id, agent_id, run_id, label, error, progress_summary, terminal_summary, \
         terminal_outcome, scope_kind, task, status, delivery_status, notify_policy, created_at, \
         started_at, ended_at, last_event_at, cleanup_after",
        "seq",
    ),
    (
        "idempotency",
        "scope, key, fingerprint, status, encode(body,'hex'), expires_at",
        "scope, key",
    ),
    (
        "outbox",
        "scope, flow_id, revision, created::int, flow, occurred_at, state, attempts, \
         next_attempt_at, settled_at, last_error",
        "id",
    ),
];

/// Every row of `table` in SQLite, as text (NULL as `None`).
fn sqlite_rows(
    state_dir: &Path,
    table: &str,
    columns: &str,
    order: &str,
) -> Vec<Vec<Option<String>>> {
    let conn = rusqlite::Connection::open(store_path(state_dir)).unwrap();
    let columns = columns
        .replace("encode(body,'hex')", "lower(hex(body))")
        .replace("created::int", "created");
    let order = if order == "scope, key" {
        order
    } else {
        "rowid"
    };
    let sql = format!("SELECT {columns} FROM {table} ORDER BY {order}");
    let mut stmt = conn.prepare(&sql).unwrap();
    let n = stmt.column_count();
    stmt.query_map([], |row| {
        (0..n)
            .map(|i| {
                row.get::<_, rusqlite::types::Value>(i).map(|v| match v {
                    rusqlite::types::Value::Null => None,
                    rusqlite::types::Value::Integer(i) => Some(i.to_string()),
                    rusqlite::types::Value::Text(t) => Some(t),
                    other => Some(format!("{other:?}")),
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn postgres_rows(
    schema: &PgSchema,
    table: &str,
    columns: &str,
    order: &str,
) -> Vec<Vec<Option<String>>> {
    let cast: Vec<String> = columns
        .split(", ")
        .map(|c| format!("({c})::text"))
        .collect();
    let sql = format!("SELECT {} FROM {table} ORDER BY {order}", cast.join(", "));
    schema
        .client()
        .query(&sql, &[])
        .unwrap()
        .iter()
        .map(|row| (0..row.len()).map(|i| row.get(i)).collect())
        .collect()
}

fn assert_same_rows(state_dir: &Path, schema: &PgSchema) {
    for (table, columns, order) in COMPARED {
        let expected = sqlite_rows(state_dir, table, columns, order);
        assert!(!expected.is_empty(), "the store made no {table} rows");
        assert_eq!(
            postgres_rows(schema, table, columns, order),
            expected,
            "table {table}"
        );
    }
}

#[test]
fn migrate_copies_every_row_and_a_second_run_copies_nothing() {
    let dir = TempDir::new("migrate");
    let state = dir.path().join("state");
    fill(&state);
    let schema = PgSchema::new("migrate_cli");
    let cfg = config(&dir, &schema);
    let events = sqlite_rows(&state, "outbox", "scope", "rowid").len();
    assert!(
        events >= 4,
        "the store should hold pending events, has {events}"
    );

    let first = stdout(&migrate(&state, &cfg));
    assert!(first.contains("(schema version 2)"), "{first}");
    for (table, n) in [
        ("flows", FLOWS),
        ("tasks", TASKS),
        ("idempotency", KEYS),
        ("outbox", events),
    ] {
        assert!(
            first.contains(&format!("  {table}: {n} copied, 0 already present")),
            "{table}: {first}"
        );
    }
    assert_same_rows(&state, &schema);

    let second = stdout(&migrate(&state, &cfg));
    for (table, n) in [
        ("flows", FLOWS),
        ("tasks", TASKS),
        ("idempotency", KEYS),
        ("outbox", events),
    ] {
        assert!(
            second.contains(&format!("  {table}: 0 copied, {n} already present")),
            "{table}: {second}"
        );
    }
    assert_same_rows(&state, &schema);
}

#[test]
fn a_run_after_a_partial_copy_copies_only_what_is_missing() {
    let dir = TempDir::new("migrate-resume");
    let state = dir.path().join("state");
    fill(&state);
    let schema = PgSchema::new("migrate_resume");
    let cfg = config(&dir, &schema);
    stdout(&migrate(&state, &cfg));
    // As if the first run had stopped part-way through each table.
    let mut pg = schema.client();
    pg.batch_execute(
        "DELETE FROM flows WHERE seq > 3; DELETE FROM tasks WHERE seq > 1;
         DELETE FROM idempotency WHERE key = 'key-1'; DELETE FROM outbox WHERE id > 2;",
    )
    .unwrap();
    let events = sqlite_rows(&state, "outbox", "scope", "rowid").len();
    let out = stdout(&migrate(&state, &cfg));
    for (table, copied, present) in [
        ("flows", FLOWS - 3, 3),
        ("tasks", TASKS - 1, 1),
        ("idempotency", 1, 1),
        ("outbox", events - 2, 2),
    ] {
        assert!(
            out.contains(&format!(
                "  {table}: {copied} copied, {present} already present"
            )),
            "{table}: {out}"
        );
    }
    // Re-copied rows come after the kept ones; compare as sets per table.
    for (table, columns, _) in COMPARED {
        let mut expected = sqlite_rows(&state, table, columns, "rowid");
        let mut got = postgres_rows(&schema, table, columns, "1");
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "table {table}");
    }
}

#[test]
fn migrate_explains_what_it_cannot_do() {
    let dir = TempDir::new("migrate-errors");
    let schema = PgSchema::new("migrate_errors");
    let cfg = config(&dir, &schema);

    let missing = migrate(&dir.path().join("nowhere"), &cfg);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("no TaskFlow store here"), "{stderr}");

    let no_cluster = dir.write("plain.json5", "{}");
    let out = migrate(dir.path(), &no_cluster);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no `cluster` section"));

    let state = dir.path().join("state");
    fill(&state);
    let unreachable = dir.write(
        "down.json5",
        r#"{ cluster: { postgres: { url: "postgres://gw:hunter2@127.0.0.1:1/test" },
                        redis: { url: "redis://127.0.0.1:1/" } } }"#,
    );
    let out = migrate(&state, &unreachable);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach PostgreSQL at postgres://gw:***@127.0.0.1:1/test"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // A Gateway serving on the store holds it exclusively.
    let open = Store::open(StoreOptions::new(store_path(&state))).unwrap();
    let out = migrate(&state, &cfg);
    open.close();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use: stop the Gateway"), "{stderr}");

    let args = gateway()
        .args(["migrate", "--config", "x"])
        .output()
        .unwrap();
    assert_eq!(args.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&args.stderr).contains("migrate needs --from-state-dir"));
}
