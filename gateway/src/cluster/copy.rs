//! Copying an embedded store into the cluster's PostgreSQL (`migrate`).
//!
//! The SQLite file is opened without creating it and with `query_only`
//! set, so nothing is written to it. Each table is copied in creation order
//! in chunks, one transaction per chunk, every row inserted with
//! `ON CONFLICT DO NOTHING` on its identity (flow id, task id, scope and
//! key, scope and flow and revision for an event): a second run copies
//! nothing, and a run cut off part-way resumes where it stopped. Positions
//! (`seq`, event ids) are given anew by PostgreSQL in the same order;
//! nothing refers to them across tables.

use std::path::Path;

use postgres::types::ToSql;
use rusqlite::{Connection, OpenFlags};

use super::error::ClusterError;
use crate::taskflow::StoreError;

/// Rows per PostgreSQL transaction.
pub const CHUNK_ROWS: usize = 500;

/// How a column is read from SQLite and bound for PostgreSQL.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Int,
    /// SQLite stores 0/1 in an INTEGER column; PostgreSQL has BOOLEAN.
    Bool,
    Bytes,
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    /// The row's identity, the target of `ON CONFLICT`.
    identity: &'static str,
}

use Kind::{Bool, Bytes, Int, Text};

const TABLES: &[Table] = &[
    Table {
        name: "flows",
        identity: "flow_id",
        columns: &[
            ("flow_id", Text),
            ("owner_key", Text),
            ("sync_mode", Text),
            ("controller_id", Text),
            ("revision", Int),
            ("status", Text),
            ("notify_policy", Text),
            ("goal", Text),
            ("current_step", Text),
            ("blocked_task_id", Text),
            ("blocked_summary", Text),
            ("state_json", Text),
            ("wait_json", Text),
            ("cancel_requested_at", Int),
            ("created_at", Int),
            ("updated_at", Int),
            ("ended_at", Int),
        ],
    },
    Table {
        name: "tasks",
        identity: "task_id",
        columns: &[
            ("task_id", Text),
            ("owner_key", Text),
            ("runtime", Text),
            ("source_id", Text),
            ("child_session_key", Text),
            ("parent_flow_id", Text),
            ("parent_task_id", Text),
            ("agent_id", Text),
            ("run_id", Text),
            ("label", Text),
            ("error", Text),
            ("progress_summary", Text),
            ("terminal_summary", Text),
            ("terminal_outcome", Text),
            ("scope_kind", Text),
            ("task", Text),
            ("status", Text),
            ("delivery_status", Text),
            ("notify_policy", Text),
            ("created_at", Int),
            ("started_at", Int),
            ("ended_at", Int),
            ("last_event_at", Int),
            ("cleanup_after", Int),
        ],
    },
    Table {
        name: "idempotency",
        identity: "scope, key",
        columns: &[
            ("scope", Text),
            ("key", Text),
            ("fingerprint", Text),
            ("status", Int),
            ("body", Bytes),
            ("expires_at", Int),
        ],
    },
    Table {
        name: "outbox",
        identity: "scope, flow_id, revision",
        columns: &[
            ("scope", Text),
            ("flow_id", Text),
            ("revision", Int),
            ("created", Bool),
            ("flow", Text),
            ("occurred_at", Int),
            ("state", Text),
            ("attempts", Int),
            ("next_attempt_at", Int),
            ("settled_at", Int),
            ("last_error", Text),
        ],
    },
];

/// What one table's copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub copied: u64,
    /// Rows whose identity PostgreSQL already held (left as they were).
    pub present: u64,
}

/// One value on its way from SQLite to PostgreSQL.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(bool),
    Bytes(Vec<u8>),
}

impl Cell {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Cell::Text(v) => v,
            Cell::Int(v) => v,
            Cell::Bool(v) => v,
            Cell::Bytes(v) => v,
        }
    }
}

/// The embedded store at `path`, opened for reading only, with the
/// store's lock held so that no Gateway opens it while it is copied.
pub struct Source {
    pub conn: Connection,
    _lock: std::fs::File,
}

/// Opens the embedded store at `path` for reading only.
pub fn open_source(path: &Path) -> Result<Source, ClusterError> {
    let fail = |detail: String| ClusterError::Source {
        path: path.display().to_string(),
        detail,
    };
    if !path.is_file() {
        return Err(fail("no TaskFlow store here (no such file)".into()));
    }
    // A Gateway serving on the store holds its lock: say so at once.
    let lock = crate::taskflow::lock(path).map_err(|e| match e {
        StoreError::InUse { .. } => fail(IN_USE.to_owned()),
        other => fail(format!("cannot lock: {other}")),
    })?;
    // Read-write without create: SQLite may have to recover the write-ahead
    // log left by a killed Gateway, which a read-only handle cannot do;
    // `query_only` keeps every statement from changing the file.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail(format!("cannot open: {e}")))?;
    // A Gateway serving on the file holds it exclusively: say so at once
    // rather than wait for it.
    conn.busy_timeout(std::time::Duration::from_millis(200))
        .map_err(|e| fail(format!("cannot open: {e}")))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| fail(format!("cannot open read-only: {e}")))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| fail(in_use_or(e, "cannot read the schema version")))?;
    if version < 3 {
        return Err(fail(format!(
            "schema version {version}: not a TaskFlow store this build can copy \
             (open it once with this Gateway to bring it up to date)"
        )));
    }
    Ok(Source { conn, _lock: lock })
}

const IN_USE: &str = "is in use: stop the Gateway serving on this state directory first";

/// A Gateway serving on the store holds it exclusively.
fn in_use_or(e: rusqlite::Error, action: &str) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            IN_USE.to_owned()
        }
        _ => format!("{action}: {e}"),
    }
}

/// Copies every table of `source` into `target` (already migrated).
pub fn copy_all(
    source: &Connection,
    source_path: &Path,
    target: &mut postgres::Client,
) -> Result<Vec<TableReport>, ClusterError> {
    TABLES
        .iter()
        .map(|table| copy_table(source, source_path, target, table))
        .collect()
}

fn copy_table(
    source: &Connection,
    source_path: &Path,
    target: &mut postgres::Client,
    table: &Table,
) -> Result<TableReport, ClusterError> {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    let select = format!(
        "SELECT rowid, {} FROM {} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
        names.join(", "),
        table.name
    );
    let placeholders: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO NOTHING",
        table.name,
        names.join(", "),
        placeholders.join(", "),
        table.identity
    );
    let source_err = |e: rusqlite::Error| ClusterError::Source {
        path: source_path.display().to_string(),
        detail: in_use_or(e, &format!("cannot read {}", table.name)),
    };
    let mut stmt = source.prepare(&select).map_err(source_err)?;
    let mut report = TableReport {
        table: table.name,
        copied: 0,
        present: 0,
    };
    // Positions may start at 0 (the store numbers flows itself).
    let mut after = i64::MIN;
    loop {
        let chunk = read_chunk(&mut stmt, table, after).map_err(source_err)?;
        let Some((last, _)) = chunk.last() else {
            return Ok(report);
        };
        after = *last;
        let action = format!("copy {}", table.name);
        let mut tx = target
            .transaction()
            .map_err(ClusterError::postgres(&action))?;
        let prepared = tx
            .prepare(&insert)
            .map_err(ClusterError::postgres(&action))?;
        for (_, cells) in &chunk {
            let params: Vec<&(dyn ToSql + Sync)> = cells.iter().map(Cell::as_sql).collect();
            match tx
                .execute(&prepared, &params)
                .map_err(ClusterError::postgres(&action))?
            {
                0 => report.present += 1,
                _ => report.copied += 1,
            }
        }
        tx.commit().map_err(ClusterError::postgres(&action))?;
    }
}

fn read_chunk(
    stmt: &mut rusqlite::Statement<'_>,
    table: &Table,
    after: i64,
) -> rusqlite::Result<Vec<(i64, Vec<Cell>)>> {
    let mut rows = stmt.query(rusqlite::params![after, CHUNK_ROWS as i64])?;
    let mut out = Vec::with_capacity(CHUNK_ROWS);
    while let Some(row) = rows.next()? {
        let rowid: i64 = row.get(0)?;
        let mut cells = Vec::with_capacity(table.columns.len());
        for (i, (_, kind)) in table.columns.iter().enumerate() {
            let at = i + 1;
            cells.push(match kind {
                Text => Cell::Text(row.get(at)?),
                Int => Cell::Int(row.get(at)?),
                Bool => Cell::Bool(row.get::<_, i64>(at)? != 0),
                Bytes => Cell::Bytes(row.get(at)?),
            });
        }
        out.push((rowid, cells));
    }
    Ok(out)
}
