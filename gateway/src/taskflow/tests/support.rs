//! Test helpers: temporary directories, a fake clock, a store harness and
//! input builders.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use abi_stable::std_types::{RResult, RString};
use openclaw_ffi::outcome::{MutationCode, MutationOutcome, TaskFlowError};
use openclaw_ffi::records::{
    CreateFlow, Fail, Finish, FlowRecord, FlowStatus, NotifyPolicy, RequestCancel, Resume, RunTask,
    SetWaiting, TaskRuntime, TaskStatus, TextPatch,
};
use openclaw_ffi::runtime::BoundTaskFlow;

use crate::taskflow::{Bound, Clock, Store, StoreOptions};

pub const T0: u64 = 1_700_000_000_000;
pub const DAY: u64 = 24 * 60 * 60 * 1000;

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("taskflow-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A store on a temporary file with a fake clock.
pub struct Harness {
    pub dir: TempDir,
    pub now: Arc<AtomicU64>,
    pub store: Store,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(configure: impl Fn(&mut StoreOptions)) -> Self {
        let dir = TempDir::new();
        let now = Arc::new(AtomicU64::new(T0));
        let options = options_for(&dir, &now, configure);
        let store = Store::open(options).unwrap();
        Self { dir, now, store }
    }

    pub fn path(&self) -> PathBuf {
        db_path(&self.dir)
    }

    pub fn set_now(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }

    pub fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn bind(&self, key: &str) -> Bound {
        self.store.bind(key).unwrap()
    }

    /// Closes the store and opens the same file again.
    pub fn reopen(&mut self) {
        self.store.close();
        let options = options_for(&self.dir, &self.now, |_| {});
        self.store = Store::open(options).unwrap();
    }
}

pub fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("flows").join("registry.sqlite")
}

pub fn options_for(
    dir: &TempDir,
    now: &Arc<AtomicU64>,
    configure: impl Fn(&mut StoreOptions),
) -> StoreOptions {
    let mut options = StoreOptions::new(db_path(dir));
    let clock = Arc::clone(now);
    options.clock = Clock::new(move || clock.load(Ordering::SeqCst));
    options.sweep_interval = Duration::from_secs(3600);
    configure(&mut options);
    options
}

pub fn ok<T>(r: RResult<T, TaskFlowError>) -> T {
    match r {
        RResult::ROk(v) => v,
        RResult::RErr(e) => panic!("unexpected error {:?}: {}", e.code, e.message),
    }
}

pub fn err<T: std::fmt::Debug>(r: RResult<T, TaskFlowError>) -> TaskFlowError {
    match r {
        RResult::ROk(v) => panic!("expected an error, got {v:?}"),
        RResult::RErr(e) => e,
    }
}

pub fn s(text: &str) -> RString {
    RString::from(text)
}

pub fn create_input(goal: &str) -> CreateFlow {
    CreateFlow {
        controller_id: s("webhooks/test"),
        goal: s(goal),
        status: FlowStatus::Queued,
        notify_policy: NotifyPolicy::DoneOnly,
        current_step: None.into(),
        state_json: None.into(),
        wait_json: None.into(),
    }
}

pub fn create(bound: &Bound, goal: &str) -> FlowRecord {
    ok(bound.create_managed(create_input(goal)))
}

pub fn waiting(flow_id: &RString, rev: u64) -> SetWaiting {
    SetWaiting {
        flow_id: flow_id.clone(),
        expected_revision: rev,
        current_step: TextPatch::Keep,
        blocked_task_id: TextPatch::Keep,
        blocked_summary: TextPatch::Keep,
        state_json: None.into(),
        wait_json: None.into(),
    }
}

pub fn resume(flow_id: &RString, rev: u64, status: FlowStatus) -> Resume {
    Resume {
        flow_id: flow_id.clone(),
        expected_revision: rev,
        status,
        current_step: TextPatch::Keep,
        state_json: None.into(),
    }
}

pub fn finish(flow_id: &RString, rev: u64) -> Finish {
    Finish {
        flow_id: flow_id.clone(),
        expected_revision: rev,
        state_json: None.into(),
    }
}

pub fn fail(flow_id: &RString, rev: u64) -> Fail {
    Fail {
        flow_id: flow_id.clone(),
        expected_revision: rev,
        state_json: None.into(),
        blocked_task_id: TextPatch::Keep,
        blocked_summary: TextPatch::Keep,
    }
}

pub fn request_cancel(flow_id: &RString, rev: u64) -> RequestCancel {
    RequestCancel {
        flow_id: flow_id.clone(),
        expected_revision: rev,
    }
}

pub fn task_input(flow_id: &RString, runtime: TaskRuntime) -> RunTask {
    RunTask {
        flow_id: flow_id.clone(),
        runtime,
        task: s("do the thing"),
        source_id: None.into(),
        child_session_key: None.into(),
        parent_task_id: None.into(),
        agent_id: None.into(),
        run_id: None.into(),
        label: None.into(),
        prefer_metadata: false,
        notify_policy: None.into(),
        status: TaskStatus::Queued,
        started_at: None.into(),
        last_event_at: None.into(),
        progress_summary: None.into(),
    }
}

/// The flow of an applied mutation (panics otherwise).
pub fn applied(outcome: MutationOutcome) -> FlowRecord {
    assert_eq!(outcome.code, MutationCode::APPLIED, "outcome {outcome:?}");
    outcome.flow.into_option().unwrap()
}

pub fn is_uuid_v4(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4)
        && id.len() == 36
        && id == id.to_lowercase()
}

/// Runs SQL against the closed store's file, then reopens the store.
pub fn with_raw_sql(h: &mut Harness, sql: &str) {
    h.store.close();
    let conn = rusqlite::Connection::open(h.path()).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    h.reopen();
}

/// A mirrored (not managed) flow row owned by `owner`.
pub fn mirrored_flow_sql(flow_id: &str, owner: &str) -> String {
    format!(
        "INSERT INTO flows (flow_id, seq, owner_key, sync_mode, controller_id, revision, status, \
         notify_policy, goal, created_at, updated_at) VALUES ('{flow_id}', 1000, '{owner}', \
         'task_mirrored', NULL, 4, 'running', 'done_only', 'mirrored', {T0}, {T0})"
    )
}
