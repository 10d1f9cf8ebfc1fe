//! Rows of the PostgreSQL tables ↔ flow and task entries: decoding (an
//! invalid row is refused naming it, as the embedded store does) and the
//! upserts and deletes the writer stages.

use std::path::Path;
use std::sync::{Arc, LazyLock};

use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::records::{
    FlowRecord, FlowStatus, NotifyPolicy, SyncMode, TaskRecord, TaskRuntime, TaskStatus,
};
use postgres::types::ToSql;
use postgres::Row;

use super::Sql;
use crate::taskflow::error::StoreError;
use crate::taskflow::model::{FlowEntry, TaskEntry};
use crate::taskflow::rows::{check_json, enum_value, int, LEGACY_CONTROLLER};

pub(crate) const FLOW_COLUMNS: &str = "flow_id, seq, owner_key, sync_mode, controller_id, \
    revision, status, notify_policy, goal, current_step, blocked_task_id, blocked_summary, \
    state_json, wait_json, cancel_requested_at, created_at, updated_at, ended_at";

pub(crate) const TASK_COLUMNS: &str = "task_id, seq, owner_key, runtime, source_id, \
    child_session_key, parent_flow_id, parent_task_id, agent_id, run_id, label, error, \
    progress_summary, terminal_summary, terminal_outcome, scope_kind, task, status, \
    delivery_status, notify_policy, created_at, started_at, ended_at, last_event_at, \
    cleanup_after";

/// Typed access to one row, every failure naming the row.
struct Cols<'a> {
    row: &'a Row,
    path: &'a Path,
    kind: &'static str,
}

impl Cols<'_> {
    fn bad(&self, i: usize, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.to_path_buf(),
            detail: format!("{} row: column {i}: {e}", self.kind),
        }
    }

    fn text(&self, i: usize) -> Result<RString, StoreError> {
        self.row
            .try_get::<_, String>(i)
            .map(RString::from)
            .map_err(|e| self.bad(i, e))
    }

    fn maybe_text(&self, i: usize) -> Result<ROption<RString>, StoreError> {
        let v: Option<String> = self.row.try_get(i).map_err(|e| self.bad(i, e))?;
        Ok(v.map(RString::from).into())
    }

    fn uint(&self, i: usize) -> Result<u64, StoreError> {
        let v: i64 = self.row.try_get(i).map_err(|e| self.bad(i, e))?;
        u64::try_from(v).map_err(|e| self.bad(i, e))
    }

    fn maybe_int(&self, i: usize) -> Result<ROption<u64>, StoreError> {
        let v: Option<i64> = self.row.try_get(i).map_err(|e| self.bad(i, e))?;
        match v {
            Some(v) => Ok(ROption::RSome(
                u64::try_from(v).map_err(|e| self.bad(i, e))?,
            )),
            None => Ok(ROption::RNone),
        }
    }
}

/// Decodes a row selected with [`FLOW_COLUMNS`].
pub(crate) fn flow_from_row(row: &Row, path: &Path) -> Result<FlowEntry, StoreError> {
    let c = Cols {
        row,
        path,
        kind: "flow",
    };
    let id = c.text(0)?;
    let raw = |i| c.text(i);
    let sync_mode = enum_value(path, "flow", &id, "syncMode", &raw(3)?, SyncMode::parse)?;
    let status = enum_value(path, "flow", &id, "status", &raw(6)?, FlowStatus::parse)?;
    let notify_policy = enum_value(
        path,
        "flow",
        &id,
        "notifyPolicy",
        &raw(7)?,
        NotifyPolicy::parse,
    )?;
    let mut controller_id = c.maybe_text(4)?;
    let has_controller = matches!(&controller_id, ROption::RSome(c) if !c.trim().is_empty());
    if sync_mode == SyncMode::Managed && !has_controller {
        controller_id = ROption::RSome(RString::from(LEGACY_CONTROLLER));
    }
    let record = FlowRecord {
        flow_id: id.clone(),
        sync_mode,
        controller_id,
        revision: c.uint(5)?,
        status,
        notify_policy,
        goal: c.text(8)?,
        current_step: c.maybe_text(9)?,
        blocked_task_id: c.maybe_text(10)?,
        blocked_summary: c.maybe_text(11)?,
        state_json: c.maybe_text(12)?,
        wait_json: c.maybe_text(13)?,
        cancel_requested_at: c.maybe_int(14)?,
        created_at: c.uint(15)?,
        updated_at: c.uint(16)?,
        ended_at: c.maybe_int(17)?,
    };
    check_json(path, "flow", &id, "stateJson", &record.state_json)?;
    check_json(path, "flow", &id, "waitJson", &record.wait_json)?;
    Ok(FlowEntry {
        owner: Arc::from(c.text(2)?.as_str()),
        seq: c.uint(1)?,
        record,
    })
}

/// Decodes a row selected with [`TASK_COLUMNS`].
pub(crate) fn task_from_row(row: &Row, path: &Path) -> Result<TaskEntry, StoreError> {
    let c = Cols {
        row,
        path,
        kind: "task",
    };
    let id = c.text(0)?;
    let record = TaskRecord {
        task_id: id.clone(),
        runtime: enum_value(
            path,
            "task",
            &id,
            "runtime",
            &c.text(3)?,
            TaskRuntime::parse,
        )?,
        source_id: c.maybe_text(4)?,
        child_session_key: c.maybe_text(5)?,
        parent_flow_id: c.maybe_text(6)?,
        parent_task_id: c.maybe_text(7)?,
        agent_id: c.maybe_text(8)?,
        run_id: c.maybe_text(9)?,
        label: c.maybe_text(10)?,
        error: c.maybe_text(11)?,
        progress_summary: c.maybe_text(12)?,
        terminal_summary: c.maybe_text(13)?,
        terminal_outcome: c.maybe_text(14)?,
        scope_kind: c.text(15)?,
        task: c.text(16)?,
        status: enum_value(path, "task", &id, "status", &c.text(17)?, TaskStatus::parse)?,
        delivery_status: c.text(18)?,
        notify_policy: enum_value(
            path,
            "task",
            &id,
            "notifyPolicy",
            &c.text(19)?,
            NotifyPolicy::parse,
        )?,
        created_at: c.uint(20)?,
        started_at: c.maybe_int(21)?,
        ended_at: c.maybe_int(22)?,
        last_event_at: c.maybe_int(23)?,
        cleanup_after: c.maybe_int(24)?,
    };
    Ok(TaskEntry {
        owner: Arc::from(c.text(2)?.as_str()),
        seq: c.uint(1)?,
        record,
    })
}

fn opt_text(v: &ROption<RString>) -> Option<&str> {
    v.as_ref().map(|s| s.as_str()).into()
}

fn opt_int(v: &ROption<u64>) -> Option<i64> {
    v.as_ref().map(|v| int(*v)).into()
}

/// `INSERT … ON CONFLICT (id) DO UPDATE` of every column but the id.
fn upsert_sql(table: &str, columns: &str, key: &str) -> String {
    let names: Vec<&str> = columns.split(',').map(str::trim).collect();
    let params: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let sets: Vec<String> = names
        .iter()
        .filter(|n| **n != key)
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    format!(
        "INSERT INTO {table} ({columns}) VALUES ({}) ON CONFLICT ({key}) DO UPDATE SET {}",
        params.join(", "),
        sets.join(", ")
    )
}

pub(crate) fn upsert_flow(client: &mut impl Sql, e: &FlowEntry) -> Result<(), postgres::Error> {
    let r = &e.record;
    static SQL: LazyLock<String> = LazyLock::new(|| upsert_sql("flows", FLOW_COLUMNS, "flow_id"));
    let params: [&(dyn ToSql + Sync); 18] = [
        &r.flow_id.as_str(),
        &int(e.seq),
        &&*e.owner,
        &r.sync_mode.as_str(),
        &opt_text(&r.controller_id),
        &int(r.revision),
        &r.status.as_str(),
        &r.notify_policy.as_str(),
        &r.goal.as_str(),
        &opt_text(&r.current_step),
        &opt_text(&r.blocked_task_id),
        &opt_text(&r.blocked_summary),
        &opt_text(&r.state_json),
        &opt_text(&r.wait_json),
        &opt_int(&r.cancel_requested_at),
        &int(r.created_at),
        &int(r.updated_at),
        &opt_int(&r.ended_at),
    ];
    client.execute(&SQL, &params)?;
    Ok(())
}

pub(crate) fn upsert_task(client: &mut impl Sql, e: &TaskEntry) -> Result<(), postgres::Error> {
    let r = &e.record;
    static SQL: LazyLock<String> = LazyLock::new(|| upsert_sql("tasks", TASK_COLUMNS, "task_id"));
    let params: [&(dyn ToSql + Sync); 25] = [
        &r.task_id.as_str(),
        &int(e.seq),
        &&*e.owner,
        &r.runtime.as_str(),
        &opt_text(&r.source_id),
        &opt_text(&r.child_session_key),
        &opt_text(&r.parent_flow_id),
        &opt_text(&r.parent_task_id),
        &opt_text(&r.agent_id),
        &opt_text(&r.run_id),
        &opt_text(&r.label),
        &opt_text(&r.error),
        &opt_text(&r.progress_summary),
        &opt_text(&r.terminal_summary),
        &opt_text(&r.terminal_outcome),
        &r.scope_kind.as_str(),
        &r.task.as_str(),
        &r.status.as_str(),
        &r.delivery_status.as_str(),
        &r.notify_policy.as_str(),
        &int(r.created_at),
        &opt_int(&r.started_at),
        &opt_int(&r.ended_at),
        &opt_int(&r.last_event_at),
        &opt_int(&r.cleanup_after),
    ];
    client.execute(&SQL, &params)?;
    Ok(())
}
