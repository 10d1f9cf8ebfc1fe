//! Writing a batch's row changes inside the writer's transaction: one
//! operation's rows under a savepoint (all or none), and replaying what a
//! batch staged when SQLite rolled the whole transaction back.

use rusqlite::Connection;

use super::ops::Change;
use super::{keys, outbox, rows};

/// Opens a new transaction holding the rows staged before a rollback.
pub(crate) fn replay(conn: &Connection, committed: &[Change]) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = committed.iter().try_for_each(|c| write(conn, c));
    if result.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Writes one operation's rows; several rows go under a savepoint so that a
/// failure leaves none of them.
pub(crate) fn stage(conn: &Connection, changes: &[Change]) -> rusqlite::Result<()> {
    if changes.len() == 1 {
        return write(conn, &changes[0]);
    }
    conn.execute_batch("SAVEPOINT op")?;
    match changes.iter().try_for_each(|c| write(conn, c)) {
        Ok(()) => conn.execute_batch("RELEASE op"),
        Err(err) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK TO op; RELEASE op");
            }
            Err(err)
        }
    }
}

fn write(conn: &Connection, change: &Change) -> rusqlite::Result<()> {
    match change {
        Change::PutFlow(f) => rows::upsert_flow(conn, f),
        Change::PutTask(t) => rows::upsert_task(conn, t),
        Change::DeleteFlow { seq, .. } => rows::delete_flow(conn, *seq),
        Change::DeleteTask { seq, .. } => rows::delete_task(conn, *seq),
        Change::PutRecord(r) => keys::put(conn, r),
        Change::DeleteRecord { rowid } => keys::delete(conn, *rowid),
        Change::Outbox(row) => outbox::write(conn, row),
    }
}
