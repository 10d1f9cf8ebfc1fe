//! What the PostgreSQL writer writes inside a batch's transaction: each
//! change's rows, idempotency records (which never replace a live one),
//! and the commit's notification of the flows it changed.

use std::path::Path;

use super::writer::{classify, Failure, CHANNEL};
use super::{outbox, rows, Sql};
use crate::taskflow::outbox::Row;

/// Added to a notification when its commit staged callback events: each
/// Gateway then wakes its delivery workers (see `listen`). Flow ids never
/// start with `!`.
pub(crate) const EVENTS_MARK: &str = "!events";
use crate::taskflow::keys::Record;
use crate::taskflow::ops::Change;

/// One notification per committed batch, carrying the changed flow ids
/// (space-separated; ids never hold spaces), delivered to every listening
/// Gateway when the batch commits.
pub(super) fn notify(tx: &mut impl Sql, committed: &[Change]) -> Result<(), postgres::Error> {
    let mut ids: Vec<&str> = committed
        .iter()
        .filter_map(|c| match c {
            Change::PutFlow(f) => Some(f.id()),
            Change::DeleteFlow { id, .. } => Some(id.as_str()),
            _ => None,
        })
        .collect();
    if committed.iter().any(|c| matches!(c, Change::Outbox(_))) {
        ids.push(EVENTS_MARK);
    }
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    ids.dedup();
    // A payload is limited to 8,000 bytes: a larger batch is sent in parts.
    let mut part = String::new();
    for id in ids {
        if part.len() + id.len() + 1 > 7_000 {
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &part])?;
            part.clear();
        }
        if !part.is_empty() {
            part.push(' ');
        }
        part.push_str(id);
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &part])?;
    Ok(())
}

/// The key's stored record, if any.
pub(super) fn find_key(
    tx: &mut impl Sql,
    scope: &str,
    key: &str,
) -> Result<Option<Record>, postgres::Error> {
    let row = tx.query_opt(
        "SELECT fingerprint, status, body, expires_at FROM idempotency \
         WHERE scope = $1 AND key = $2",
        &[&scope, &key],
    )?;
    Ok(row.map(|row| Record {
        scope: scope.to_owned(),
        key: key.to_owned(),
        fingerprint: row.get(0),
        status: u16::try_from(row.get::<_, i64>(1)).unwrap_or(500),
        body: row.get(2),
        expires_at: u64::try_from(row.get::<_, i64>(3)).unwrap_or(0),
    }))
}

pub(super) fn stage(
    tx: &mut impl Sql,
    path: &Path,
    change: &Change,
    now: u64,
) -> Result<(), Failure> {
    use crate::taskflow::rows::int;
    let result = match change {
        Change::PutFlow(f) => rows::upsert_flow(tx, f),
        Change::PutTask(t) => rows::upsert_task(tx, t),
        Change::DeleteFlow { id, .. } => tx
            .execute("DELETE FROM flows WHERE flow_id = $1", &[id])
            .map(drop),
        Change::DeleteTask { id, .. } => tx
            .execute("DELETE FROM tasks WHERE task_id = $1", &[id])
            .map(drop),
        Change::PutRecord(r) => {
            // Replaces only an expired record: a live one was written by
            // another node since this batch looked, so the batch runs
            // again and replays it.
            let written = tx.execute(
                "INSERT INTO idempotency (scope, key, fingerprint, status, body, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, key) DO UPDATE SET \
                 fingerprint = EXCLUDED.fingerprint, status = EXCLUDED.status, \
                 body = EXCLUDED.body, expires_at = EXCLUDED.expires_at \
                 WHERE idempotency.expires_at <= $7",
                &[
                    &r.scope,
                    &r.key,
                    &r.fingerprint,
                    &i64::from(r.status),
                    &r.body,
                    &int(r.expires_at),
                    &int(now),
                ],
            );
            match written {
                Ok(0) => return Err(Failure::Retry),
                other => other.map(drop),
            }
        }
        Change::Outbox(Row::Put(event)) => outbox::put(tx, event),
        Change::DeleteRecord { .. } | Change::Outbox(_) => {
            log::error!(
                "taskflow store {}: a change the PostgreSQL store does not stage",
                path.display()
            );
            return Err(Failure::Failed);
        }
    };
    result.map_err(|e| classify(path, "write", &e))
}
