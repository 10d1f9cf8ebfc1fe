//! The indexed queries of the PostgreSQL store: a flow or task by id
//! (plain for reads, `FOR UPDATE` for the writer, which holds the rows a
//! batch reads until it commits), a session's flows newest first, a flow's
//! tasks and task counts, flow counts by status.

use std::path::Path;

use openclaw_ffi::records::{FlowStatus, TaskSummary};
use postgres::types::ToSql;
use postgres::Row;

use super::rows::{flow_from_row, task_from_row, FLOW_COLUMNS, TASK_COLUMNS};
use super::Sql;
use crate::taskflow::error::{pg_err, StoreError};
use crate::taskflow::metrics::status_slot;
use crate::taskflow::model::{FlowEntry, TaskEntry};

use crate::taskflow::rows::{add_tasks, int, EndedCursor};

/// The terminal predicate of the embedded store's queries.
const TERMINAL: &str = "(status IN ('succeeded', 'failed', 'cancelled', 'lost') \
    OR (status = 'blocked' AND ended_at IS NOT NULL))";

fn failed(path: &Path) -> impl Fn(postgres::Error) -> StoreError + '_ {
    pg_err(path, "cannot read")
}

fn collect<T>(
    client: &mut impl Sql,
    path: &Path,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    decode: fn(&Row, &Path) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let rows = client.query(sql, params).map_err(failed(path))?;
    rows.iter().map(|row| decode(row, path)).collect()
}

fn lock(for_update: bool) -> &'static str {
    if for_update {
        " FOR UPDATE"
    } else {
        ""
    }
}

pub(crate) fn flow(
    client: &mut impl Sql,
    path: &Path,
    flow_id: &str,
    for_update: bool,
) -> Result<Option<FlowEntry>, StoreError> {
    let sql = format!(
        "SELECT {FLOW_COLUMNS} FROM flows WHERE flow_id = $1{}",
        lock(for_update)
    );
    Ok(collect(client, path, &sql, &[&flow_id], flow_from_row)?
        .into_iter()
        .next())
}

pub(crate) fn task(
    client: &mut impl Sql,
    path: &Path,
    task_id: &str,
    for_update: bool,
) -> Result<Option<TaskEntry>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = $1{}",
        lock(for_update)
    );
    Ok(collect(client, path, &sql, &[&task_id], task_from_row)?
        .into_iter()
        .next())
}

/// Tasks linked to the flow, newest first.
pub(crate) fn flow_tasks(
    client: &mut impl Sql,
    path: &Path,
    flow_id: &str,
    for_update: bool,
) -> Result<Vec<TaskEntry>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks WHERE parent_flow_id = $1 \
         ORDER BY created_at DESC, seq DESC{}",
        lock(for_update)
    );
    collect(client, path, &sql, &[&flow_id], task_from_row)
}

/// The owner's flows newest first; `live` keeps only those not terminal,
/// `limit` the first ones.
pub(crate) fn owner_flows(
    client: &mut impl Sql,
    path: &Path,
    owner: &str,
    live: bool,
    limit: Option<i64>,
) -> Result<Vec<FlowEntry>, StoreError> {
    let live = if live {
        format!(" AND NOT {TERMINAL}")
    } else {
        String::new()
    };
    let limit = limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default();
    let sql = format!(
        "SELECT {FLOW_COLUMNS} FROM flows WHERE owner_key = $1{live} \
         ORDER BY created_at DESC, seq DESC{limit}"
    );
    collect(client, path, &sql, &[&owner], flow_from_row)
}

/// The counts of the tasks linked to the flow.
pub(crate) fn task_summary(
    client: &mut impl Sql,
    path: &Path,
    flow_id: &str,
) -> Result<TaskSummary, StoreError> {
    let rows = client
        .query(
            "SELECT status, runtime, count(*) FROM tasks WHERE parent_flow_id = $1 \
             GROUP BY status, runtime",
            &[&flow_id],
        )
        .map_err(failed(path))?;
    let mut s = TaskSummary::default();
    for row in rows {
        let status: String = row.try_get(0).map_err(failed(path))?;
        let runtime: String = row.try_get(1).map_err(failed(path))?;
        let n: i64 = row.try_get(2).map_err(failed(path))?;
        add_tasks(&mut s, path, flow_id, &status, &runtime, n)?;
    }
    Ok(s)
}

/// How many flows are in each status, in the order of `FlowStatus::ALL`.
pub(crate) fn status_counts(
    client: &mut impl Sql,
    path: &Path,
) -> Result<[u64; FlowStatus::ALL.len()], StoreError> {
    let rows = client
        .query("SELECT status, count(*) FROM flows GROUP BY status", &[])
        .map_err(failed(path))?;
    let mut counts = [0u64; FlowStatus::ALL.len()];
    for row in rows {
        let raw: String = row.try_get(0).map_err(failed(path))?;
        let n: i64 = row.try_get(1).map_err(failed(path))?;
        let status = FlowStatus::parse(&raw).ok_or_else(|| StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("a flow row: invalid persisted status {raw:?}"),
        })?;
        counts[status_slot(status)] += u64::try_from(n).unwrap_or(0);
    }
    Ok(counts)
}

/// The flows among `ids` that exist.
pub(crate) fn flows(
    client: &mut impl Sql,
    path: &Path,
    ids: &[String],
) -> Result<Vec<FlowEntry>, StoreError> {
    let sql = format!("SELECT {FLOW_COLUMNS} FROM flows WHERE flow_id = ANY($1)");
    collect(client, path, &sql, &[&ids], flow_from_row)
}

/// Up to `limit` flows whose cancel was requested and that are not
/// terminal yet, after creation sequence `after`, in that order.
pub(crate) fn cancel_requested(
    client: &mut impl Sql,
    path: &Path,
    after: i64,
    limit: usize,
) -> Result<Vec<(i64, String)>, StoreError> {
    let sql = format!(
        "SELECT seq, flow_id FROM flows WHERE cancel_requested_at IS NOT NULL AND NOT {TERMINAL} \
         AND seq > $1 ORDER BY seq LIMIT $2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client
        .query(&sql, &[&after, &limit])
        .map_err(failed(path))?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get(0).map_err(failed(path))?,
                r.try_get(1).map_err(failed(path))?,
            ))
        })
        .collect()
}

/// Up to `limit` terminal flows that ended at or before `cutoff`, after
/// `after` (end time, creation sequence), oldest end first.
pub(crate) fn ended_before(
    client: &mut impl Sql,
    path: &Path,
    cutoff: u64,
    after: EndedCursor,
    limit: usize,
) -> Result<Vec<(EndedCursor, String)>, StoreError> {
    let sql = format!(
        "SELECT coalesce(ended_at, updated_at), seq, flow_id FROM flows WHERE {TERMINAL} \
         AND coalesce(ended_at, updated_at) <= $1 \
         AND (coalesce(ended_at, updated_at), seq) > ($2, $3) \
         ORDER BY coalesce(ended_at, updated_at), seq LIMIT $4"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let cutoff = int(cutoff);
    let rows = client
        .query(&sql, &[&cutoff, &after.0, &after.1, &limit])
        .map_err(failed(path))?;
    rows.iter()
        .map(|r| {
            let end: i64 = r.try_get(0).map_err(failed(path))?;
            let seq: i64 = r.try_get(1).map_err(failed(path))?;
            Ok(((end, seq), r.try_get(2).map_err(failed(path))?))
        })
        .collect()
}
