//! The indexed queries behind every read: a flow or task by id, a
//! session's flows newest first, a flow's tasks, task counts, flow counts
//! by status, and the sweep's candidates. Each reads only the rows it
//! answers with (see the indexes of schema version 4). The queries name
//! their index (`INDEXED BY`): the planner has no statistics, and a query
//! that could no longer use its index fails instead of scanning.

use std::path::Path;

use openclaw_ffi::records::{FlowStatus, TaskRuntime, TaskStatus, TaskSummary};
use rusqlite::{params, Connection, OptionalExtension};

use super::{flow_from_row, int, task_from_row};
use crate::taskflow::error::{sqlite_err, StoreError};
use crate::taskflow::metrics::status_slot;
use crate::taskflow::model::{FlowEntry, TaskEntry};

/// The terminal predicate, exactly as the partial indexes write it.
macro_rules! terminal {
    () => {
        "(status IN ('succeeded', 'failed', 'cancelled', 'lost') \
            OR (status = 'blocked' AND ended_at IS NOT NULL))"
    };
}

/// Runs a query and decodes every row with `decode`.
fn collect<T>(
    conn: &Connection,
    path: &Path,
    sql: &str,
    params: impl rusqlite::Params,
    decode: fn(&rusqlite::Row<'_>, &Path) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let failed = sqlite_err(path, "cannot read");
    let mut stmt = conn.prepare_cached(sql).map_err(&failed)?;
    let mut rows = stmt.query(params).map_err(&failed)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(&failed)? {
        out.push(decode(row, path)?);
    }
    Ok(out)
}

fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

pub(crate) fn flow(
    conn: &Connection,
    path: &Path,
    flow_id: &str,
) -> Result<Option<FlowEntry>, StoreError> {
    let sql = concat!("SELECT ", flow_columns!(), " FROM flows WHERE flow_id = ?1");
    collect(conn, path, sql, [flow_id], flow_from_row).map(first)
}

pub(crate) fn task(
    conn: &Connection,
    path: &Path,
    task_id: &str,
) -> Result<Option<TaskEntry>, StoreError> {
    let sql = concat!("SELECT ", task_columns!(), " FROM tasks WHERE task_id = ?1");
    collect(conn, path, sql, [task_id], task_from_row).map(first)
}

/// The owner's flows, newest first (`createdAt`, then creation order).
pub(crate) fn owner_flows(
    conn: &Connection,
    path: &Path,
    owner: &str,
) -> Result<Vec<FlowEntry>, StoreError> {
    let sql = concat!(
        "SELECT ",
        flow_columns!(),
        " FROM flows INDEXED BY flows_owner WHERE owner_key = ?1",
        " ORDER BY created_at DESC, seq DESC"
    );
    collect(conn, path, sql, [owner], flow_from_row)
}

/// The owner's newest flow.
pub(crate) fn latest_flow(
    conn: &Connection,
    path: &Path,
    owner: &str,
) -> Result<Option<FlowEntry>, StoreError> {
    let sql = concat!(
        "SELECT ",
        flow_columns!(),
        " FROM flows INDEXED BY flows_owner WHERE owner_key = ?1",
        " ORDER BY created_at DESC, seq DESC LIMIT 1"
    );
    collect(conn, path, sql, [owner], flow_from_row).map(first)
}

/// The owner's newest flow that is not terminal.
pub(crate) fn latest_live_flow(
    conn: &Connection,
    path: &Path,
    owner: &str,
) -> Result<Option<FlowEntry>, StoreError> {
    let sql = concat!(
        "SELECT ",
        flow_columns!(),
        " FROM flows INDEXED BY flows_live WHERE owner_key = ?1 AND NOT ",
        terminal!(),
        " ORDER BY created_at DESC, seq DESC LIMIT 1"
    );
    collect(conn, path, sql, [owner], flow_from_row).map(first)
}

/// Tasks linked to the flow, newest first.
pub(crate) fn flow_tasks(
    conn: &Connection,
    path: &Path,
    flow_id: &str,
) -> Result<Vec<TaskEntry>, StoreError> {
    let sql = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE parent_flow_id = ?1 ORDER BY created_at DESC, seq DESC"
    );
    collect(conn, path, sql, [flow_id], task_from_row)
}

/// The counts of the tasks linked to the flow.
pub(crate) fn task_summary(
    conn: &Connection,
    path: &Path,
    flow_id: &str,
) -> Result<TaskSummary, StoreError> {
    let failed = sqlite_err(path, "cannot count tasks");
    let mut stmt = conn
        .prepare_cached(
            "SELECT status, runtime, count(*) FROM tasks WHERE parent_flow_id = ?1 \
             GROUP BY status, runtime",
        )
        .map_err(&failed)?;
    let mut rows = stmt.query([flow_id]).map_err(&failed)?;
    let mut s = TaskSummary::default();
    while let Some(row) = rows.next().map_err(&failed)? {
        let status: String = row.get(0).map_err(&failed)?;
        let runtime: String = row.get(1).map_err(&failed)?;
        let n: i64 = row.get(2).map_err(&failed)?;
        add_tasks(&mut s, path, flow_id, &status, &runtime, n)?;
    }
    Ok(s)
}

/// Adds `n` tasks of a flow in `status` with `runtime` (as stored) to
/// `s`; shared by both backends' summaries.
pub(crate) fn add_tasks(
    s: &mut TaskSummary,
    path: &Path,
    flow_id: &str,
    status: &str,
    runtime: &str,
    n: i64,
) -> Result<(), StoreError> {
    let corrupt = |field: &str, raw: &str| StoreError::Corrupt {
        path: path.to_path_buf(),
        detail: format!("a task of flow {flow_id}: invalid persisted {field} {raw:?}"),
    };
    let status = TaskStatus::parse(status).ok_or_else(|| corrupt("status", status))?;
    let runtime = TaskRuntime::parse(runtime).ok_or_else(|| corrupt("runtime", runtime))?;
    let n = u64::try_from(n).unwrap_or(0);
    s.total += n;
    if status.is_active() {
        s.active += n;
    } else {
        s.terminal += n;
    }
    if matches!(
        status,
        TaskStatus::Failed | TaskStatus::TimedOut | TaskStatus::Lost
    ) {
        s.failures += n;
    }
    if let Some(i) = TaskStatus::ALL.iter().position(|v| *v == status) {
        s.by_status[i] += n;
    }
    if let Some(i) = TaskRuntime::ALL.iter().position(|v| *v == runtime) {
        s.by_runtime[i] += n;
    }
    Ok(())
}

/// How many flows are in each status, in the order of `FlowStatus::ALL`
/// (a scan of the status index, not of the rows).
pub(crate) fn status_counts(
    conn: &Connection,
    path: &Path,
) -> Result<[u64; FlowStatus::ALL.len()], StoreError> {
    let failed = sqlite_err(path, "cannot count flows");
    let mut stmt = conn
        .prepare("SELECT status, count(*) FROM flows GROUP BY status")
        .map_err(&failed)?;
    let mut rows = stmt.query([]).map_err(&failed)?;
    let mut counts = [0u64; FlowStatus::ALL.len()];
    while let Some(row) = rows.next().map_err(&failed)? {
        let raw: String = row.get(0).map_err(&failed)?;
        let n: i64 = row.get(1).map_err(&failed)?;
        let Some(status) = FlowStatus::parse(&raw) else {
            let id: String = conn
                .query_row(
                    "SELECT flow_id FROM flows WHERE status = ?1 LIMIT 1",
                    [&raw],
                    |row| row.get(0),
                )
                .map_err(&failed)?;
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("flow row {id}: invalid persisted status {raw:?}"),
            });
        };
        counts[status_slot(status)] += u64::try_from(n).unwrap_or(0);
    }
    Ok(counts)
}

/// The next creation sequence number (shared by flows and tasks).
pub(crate) fn next_seq(conn: &Connection, path: &Path) -> Result<u64, StoreError> {
    let max: Option<i64> = conn
        .query_row(
            "SELECT max((SELECT max(seq) FROM flows), (SELECT max(seq) FROM tasks))",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(sqlite_err(path, "cannot read sequence"))?
        .flatten();
    Ok(max.map_or(0, |m| u64::try_from(m).unwrap_or(0).saturating_add(1)))
}

/// Up to `limit` ids of flows whose cancel was requested and that are not
/// terminal yet, after creation sequence `after`, in that order.
pub(crate) fn cancel_requested(
    conn: &Connection,
    path: &Path,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, String)>, StoreError> {
    let sql = concat!(
        "SELECT seq, flow_id FROM flows INDEXED BY flows_cancel",
        " WHERE cancel_requested_at IS NOT NULL AND NOT ",
        terminal!(),
        " AND seq > ?1 ORDER BY seq LIMIT ?2"
    );
    collect(
        conn,
        path,
        sql,
        params![after, int(limit as u64)],
        |row, path| {
            let bad = sqlite_err(path, "cannot read sweep candidates");
            Ok((row.get(0).map_err(&bad)?, row.get(1).map_err(&bad)?))
        },
    )
}

/// Where a scan of ended flows resumes: (end time, creation sequence).
pub(crate) type EndedCursor = (i64, i64);

/// Up to `limit` ids of terminal flows that ended at or before `cutoff`,
/// after `after`, oldest end first.
pub(crate) fn ended_before(
    conn: &Connection,
    path: &Path,
    cutoff: u64,
    after: EndedCursor,
    limit: usize,
) -> Result<Vec<(EndedCursor, String)>, StoreError> {
    let sql = concat!(
        "SELECT coalesce(ended_at, updated_at), seq, flow_id FROM flows INDEXED BY flows_ended",
        " WHERE ",
        terminal!(),
        " AND coalesce(ended_at, updated_at) <= ?1 AND coalesce(ended_at, updated_at) >= ?2",
        " AND (coalesce(ended_at, updated_at), seq) > (?2, ?3)",
        " ORDER BY coalesce(ended_at, updated_at), seq LIMIT ?4"
    );
    collect(
        conn,
        path,
        sql,
        params![int(cutoff), after.0, after.1, int(limit as u64)],
        |row, path| {
            let bad = sqlite_err(path, "cannot read sweep candidates");
            let end: i64 = row.get(0).map_err(&bad)?;
            let seq: i64 = row.get(1).map_err(&bad)?;
            Ok(((end, seq), row.get(2).map_err(&bad)?))
        },
    )
}
