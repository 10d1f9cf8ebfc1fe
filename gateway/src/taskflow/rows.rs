//! Mapping between rows and records: decoding a row (an invalid one is
//! refused naming it), and the upsert/delete statements the writer stages.
//! The indexed queries every read runs are in `rows/reads.rs`.

use std::path::Path;
use std::sync::Arc;

use abi_stable::std_types::{ROption, RString};
use openclaw_ffi::records::{
    FlowRecord, FlowStatus, NotifyPolicy, SyncMode, TaskRecord, TaskRuntime, TaskStatus,
};
use rusqlite::{params, Connection, Row};

use super::error::{sqlite_err, StoreError};
use super::model::{is_json, FlowEntry, TaskEntry};

macro_rules! flow_columns {
    () => {
        "flow_id, seq, owner_key, sync_mode, controller_id, revision, status, \
    notify_policy, goal, current_step, blocked_task_id, blocked_summary, state_json, wait_json, \
    cancel_requested_at, created_at, updated_at, ended_at"
    };
}

macro_rules! task_columns {
    () => {
        "task_id, seq, owner_key, runtime, source_id, child_session_key, \
    parent_flow_id, parent_task_id, agent_id, run_id, label, error, progress_summary, \
    terminal_summary, terminal_outcome, scope_kind, task, status, delivery_status, notify_policy, \
    created_at, started_at, ended_at, last_event_at, cleanup_after"
    };
}

mod reads;
pub(crate) use reads::*;

/// Controller id given to restored managed rows that lack one.
pub(crate) const LEGACY_CONTROLLER: &str = "core/legacy-restored";

pub(crate) fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn opt_int(v: &ROption<u64>) -> Option<i64> {
    v.as_ref().map(|v| int(*v)).into()
}

fn opt_text(v: &ROption<RString>) -> Option<&str> {
    v.as_ref().map(|s| s.as_str()).into()
}

fn text(row: &Row<'_>, i: usize) -> rusqlite::Result<RString> {
    row.get::<_, String>(i).map(RString::from)
}

fn maybe_text(row: &Row<'_>, i: usize) -> rusqlite::Result<ROption<RString>> {
    Ok(row.get::<_, Option<String>>(i)?.map(RString::from).into())
}

fn to_u64(i: usize, v: i64) -> rusqlite::Result<u64> {
    u64::try_from(v).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(i, v))
}

fn uint(row: &Row<'_>, i: usize) -> rusqlite::Result<u64> {
    to_u64(i, row.get::<_, i64>(i)?)
}

fn maybe_int(row: &Row<'_>, i: usize) -> rusqlite::Result<ROption<u64>> {
    Ok(match row.get::<_, Option<i64>>(i)? {
        Some(v) => ROption::RSome(to_u64(i, v)?),
        None => ROption::RNone,
    })
}

pub(crate) fn enum_value<T>(
    path: &Path,
    kind: &str,
    id: &str,
    field: &str,
    raw: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(raw).ok_or_else(|| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("{kind} row {id}: invalid persisted {field} {raw:?}"),
    })
}

pub(crate) fn check_json(
    path: &Path,
    kind: &str,
    id: &str,
    field: &str,
    v: &ROption<RString>,
) -> Result<(), StoreError> {
    if let ROption::RSome(t) = v {
        if !is_json(t.as_str()) {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("{kind} row {id}: {field} is not valid JSON"),
            });
        }
    }
    Ok(())
}

/// Decodes a row selected with `flow_columns!()`.
pub(crate) fn flow_from_row(row: &Row<'_>, path: &Path) -> Result<FlowEntry, StoreError> {
    let bad = sqlite_err(path, "cannot decode flow row");
    let id: String = row.get(0).map_err(&bad)?;
    let sync_raw: String = row.get(3).map_err(&bad)?;
    let status_raw: String = row.get(6).map_err(&bad)?;
    let notify_raw: String = row.get(7).map_err(&bad)?;
    let sync_mode = enum_value(path, "flow", &id, "syncMode", &sync_raw, SyncMode::parse)?;
    let status = enum_value(path, "flow", &id, "status", &status_raw, FlowStatus::parse)?;
    let notify_policy = enum_value(
        path,
        "flow",
        &id,
        "notifyPolicy",
        &notify_raw,
        NotifyPolicy::parse,
    )?;
    let mut controller_id = maybe_text(row, 4).map_err(&bad)?;
    let has_controller = matches!(&controller_id, ROption::RSome(c) if !c.trim().is_empty());
    if sync_mode == SyncMode::Managed && !has_controller {
        controller_id = ROption::RSome(RString::from(LEGACY_CONTROLLER));
    }
    let owner: String = row.get(2).map_err(&bad)?;
    let record = FlowRecord {
        flow_id: RString::from(id.as_str()),
        sync_mode,
        controller_id,
        revision: uint(row, 5).map_err(&bad)?,
        status,
        notify_policy,
        goal: text(row, 8).map_err(&bad)?,
        current_step: maybe_text(row, 9).map_err(&bad)?,
        blocked_task_id: maybe_text(row, 10).map_err(&bad)?,
        blocked_summary: maybe_text(row, 11).map_err(&bad)?,
        state_json: maybe_text(row, 12).map_err(&bad)?,
        wait_json: maybe_text(row, 13).map_err(&bad)?,
        cancel_requested_at: maybe_int(row, 14).map_err(&bad)?,
        created_at: uint(row, 15).map_err(&bad)?,
        updated_at: uint(row, 16).map_err(&bad)?,
        ended_at: maybe_int(row, 17).map_err(&bad)?,
    };
    check_json(path, "flow", &id, "stateJson", &record.state_json)?;
    check_json(path, "flow", &id, "waitJson", &record.wait_json)?;
    Ok(FlowEntry {
        owner: Arc::from(owner),
        seq: uint(row, 1).map_err(&bad)?,
        record,
    })
}

/// Decodes a row selected with `task_columns!()`.
pub(crate) fn task_from_row(row: &Row<'_>, path: &Path) -> Result<TaskEntry, StoreError> {
    let bad = sqlite_err(path, "cannot decode task row");
    let id: String = row.get(0).map_err(&bad)?;
    let runtime_raw: String = row.get(3).map_err(&bad)?;
    let status_raw: String = row.get(17).map_err(&bad)?;
    let notify_raw: String = row.get(19).map_err(&bad)?;
    let owner: String = row.get(2).map_err(&bad)?;
    let record = TaskRecord {
        task_id: RString::from(id.as_str()),
        runtime: enum_value(
            path,
            "task",
            &id,
            "runtime",
            &runtime_raw,
            TaskRuntime::parse,
        )?,
        source_id: maybe_text(row, 4).map_err(&bad)?,
        child_session_key: maybe_text(row, 5).map_err(&bad)?,
        parent_flow_id: maybe_text(row, 6).map_err(&bad)?,
        parent_task_id: maybe_text(row, 7).map_err(&bad)?,
        agent_id: maybe_text(row, 8).map_err(&bad)?,
        run_id: maybe_text(row, 9).map_err(&bad)?,
        label: maybe_text(row, 10).map_err(&bad)?,
        error: maybe_text(row, 11).map_err(&bad)?,
        progress_summary: maybe_text(row, 12).map_err(&bad)?,
        terminal_summary: maybe_text(row, 13).map_err(&bad)?,
        terminal_outcome: maybe_text(row, 14).map_err(&bad)?,
        scope_kind: text(row, 15).map_err(&bad)?,
        task: text(row, 16).map_err(&bad)?,
        status: enum_value(path, "task", &id, "status", &status_raw, TaskStatus::parse)?,
        delivery_status: text(row, 18).map_err(&bad)?,
        notify_policy: enum_value(
            path,
            "task",
            &id,
            "notifyPolicy",
            &notify_raw,
            NotifyPolicy::parse,
        )?,
        created_at: uint(row, 20).map_err(&bad)?,
        started_at: maybe_int(row, 21).map_err(&bad)?,
        ended_at: maybe_int(row, 22).map_err(&bad)?,
        last_event_at: maybe_int(row, 23).map_err(&bad)?,
        cleanup_after: maybe_int(row, 24).map_err(&bad)?,
    };
    Ok(TaskEntry {
        owner: Arc::from(owner),
        seq: uint(row, 1).map_err(&bad)?,
        record,
    })
}

pub(crate) fn upsert_flow(conn: &Connection, e: &FlowEntry) -> rusqlite::Result<()> {
    let r = &e.record;
    let sql = concat!(
        "INSERT OR REPLACE INTO flows (",
        flow_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
    );
    conn.prepare_cached(sql)?.execute(params![
        r.flow_id.as_str(),
        int(e.seq),
        &*e.owner,
        r.sync_mode.as_str(),
        opt_text(&r.controller_id),
        int(r.revision),
        r.status.as_str(),
        r.notify_policy.as_str(),
        r.goal.as_str(),
        opt_text(&r.current_step),
        opt_text(&r.blocked_task_id),
        opt_text(&r.blocked_summary),
        opt_text(&r.state_json),
        opt_text(&r.wait_json),
        opt_int(&r.cancel_requested_at),
        int(r.created_at),
        int(r.updated_at),
        opt_int(&r.ended_at),
    ])?;
    Ok(())
}

pub(crate) fn upsert_task(conn: &Connection, e: &TaskEntry) -> rusqlite::Result<()> {
    let r = &e.record;
    let sql = concat!(
        "INSERT OR REPLACE INTO tasks (",
        task_columns!(),
        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ",
        "?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)"
    );
    conn.prepare_cached(sql)?.execute(params![
        r.task_id.as_str(),
        int(e.seq),
        &*e.owner,
        r.runtime.as_str(),
        opt_text(&r.source_id),
        opt_text(&r.child_session_key),
        opt_text(&r.parent_flow_id),
        opt_text(&r.parent_task_id),
        opt_text(&r.agent_id),
        opt_text(&r.run_id),
        opt_text(&r.label),
        opt_text(&r.error),
        opt_text(&r.progress_summary),
        opt_text(&r.terminal_summary),
        opt_text(&r.terminal_outcome),
        r.scope_kind.as_str(),
        r.task.as_str(),
        r.status.as_str(),
        r.delivery_status.as_str(),
        r.notify_policy.as_str(),
        int(r.created_at),
        opt_int(&r.started_at),
        opt_int(&r.ended_at),
        opt_int(&r.last_event_at),
        opt_int(&r.cleanup_after),
    ])?;
    Ok(())
}

pub(crate) fn delete_flow(conn: &Connection, seq: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM flows WHERE seq = ?1")?
        .execute([int(seq)])?;
    Ok(())
}

pub(crate) fn delete_task(conn: &Connection, seq: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM tasks WHERE seq = ?1")?
        .execute([int(seq)])?;
    Ok(())
}
