//! The callback outbox on PostgreSQL: events are staged with the changes
//! that emit them (by the writer, `put`); claims, settlements and pruning
//! run in transactions of their own on a pooled connection, on the
//! delivery worker's thread (which may wait; no request waits on them).
//!
//! Rules (the embedded outbox's, across nodes):
//! - A claim takes due, unleased events `FOR UPDATE SKIP LOCKED` and
//!   writes their lease (`lease_until`): each is delivered by one node at a
//!   time. A killed node's leases expire and the events are due again, so
//!   delivery is at least once. `next_due_at` counts other nodes' leases
//!   too, so an idle worker wakes when one expires.
//! - A settlement first locks the event's flow row, as the writer does
//!   before staging an event: the flow's next event is either seen (and
//!   made due) by the settlement, or inserted after it as due at once.

use std::path::Path;

use abi_stable::std_types::{ROption, RString, RVec};
use openclaw_ffi::runtime::{DueEvents, EventOutcome, OutboxEvent, Settlement};
use postgres::Client;

use super::{Db, Sql};
use crate::taskflow::error::{pg_err as failed, StoreError};
use crate::taskflow::outbox::{clip, flow_from_json, flow_json, NewEvent, MAX_CLAIM};
use crate::taskflow::rows::int;

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Runs `f` in a transaction of its own.
fn in_transaction<T>(
    db: &mut Db<'_, Client>,
    path: &Path,
    f: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let Db { c, stmts } = db;
    let mut tx = c.transaction().map_err(failed(path, "cannot begin"))?;
    let out = f(&mut Db { c: &mut tx, stmts })?;
    tx.commit().map_err(failed(path, "cannot commit"))?;
    Ok(out)
}

/// Stages one event (in the writer's transaction): due at once unless an
/// earlier event of its flow and scope is still open.
pub(crate) fn put(db: &mut impl Sql, e: &NewEvent) -> Result<(), postgres::Error> {
    db.execute(
        "INSERT INTO outbox
           (scope, flow_id, revision, created, flow, occurred_at, state, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending',
           CASE WHEN EXISTS (SELECT 1 FROM outbox
                             WHERE scope = $1 AND flow_id = $2 AND settled_at IS NULL)
                THEN NULL ELSE $6::BIGINT END)",
        &[
            &&*e.scope,
            &e.flow.flow_id.as_str(),
            &int(e.flow.revision),
            &e.created,
            &flow_json(&e.flow),
            &int(e.occurred_at),
        ],
    )
    .map(drop)
}

/// Claims up to `limit` due events of `scope`, leased until `lease_until`.
pub(crate) fn claim(
    db: &mut Db<'_, Client>,
    path: &Path,
    scope: &str,
    now: u64,
    limit: u32,
    lease_until: u64,
) -> Result<DueEvents, StoreError> {
    let limit = limit.min(MAX_CLAIM) as usize;
    in_transaction(db, path, |tx| {
        let rows = tx
            .query(
                "SELECT id, created, flow, occurred_at, attempts FROM outbox
                 WHERE scope = $1 AND settled_at IS NULL AND next_attempt_at <= $2
                   AND (lease_until IS NULL OR lease_until <= $2)
                 ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED",
                &[&scope, &int(now), &(limit as i64 + 1)],
            )
            .map_err(failed(path, "cannot claim events"))?;
        let more_due = rows.len() > limit;
        let (mut events, mut leased, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
        for row in rows.iter().take(limit) {
            let id: i64 = row.get(0);
            let Some(flow) = flow_from_json(&row.get::<_, String>(2)) else {
                log::error!(
                    "taskflow store: outbox event {id} holds an unreadable flow; marked dead"
                );
                unreadable.push(id);
                continue;
            };
            leased.push(id);
            events.push(OutboxEvent {
                id: uint(id),
                created: row.get(1),
                flow,
                occurred_at: uint(row.get(3)),
                attempts: u32::try_from(row.get::<_, i64>(4)).unwrap_or(u32::MAX),
            });
        }
        let fail = failed(path, "cannot lease events");
        tx.execute(
            "UPDATE outbox SET lease_until = $2 WHERE id = ANY($1)",
            &[&leased, &int(lease_until)],
        )
        .map_err(&fail)?;
        for id in unreadable {
            let dead = Settlement {
                id: uint(id),
                outcome: EventOutcome::Dead,
                error: ROption::RSome(RString::from("unreadable event row")),
            };
            settle_one(tx, scope, &dead, now).map_err(&fail)?;
        }
        let next_due_at = if more_due {
            Some(now)
        } else {
            let row = tx
                .query(
                    "SELECT MIN(CASE WHEN lease_until > $2
                                     THEN GREATEST(lease_until, next_attempt_at)
                                     ELSE next_attempt_at END)
                     FROM outbox WHERE scope = $1 AND settled_at IS NULL
                       AND next_attempt_at IS NOT NULL
                       AND (next_attempt_at > $2 OR lease_until > $2)",
                    &[&scope, &int(now)],
                )
                .map_err(&fail)?;
            row.first()
                .and_then(|r| r.get::<_, Option<i64>>(0))
                .map(uint)
        };
        Ok(DueEvents {
            events: RVec::from(events),
            next_due_at: next_due_at.into(),
        })
    })
}

/// Records delivery attempts.
pub(crate) fn settle(
    db: &mut Db<'_, Client>,
    path: &Path,
    scope: &str,
    settlements: &[Settlement],
    now: u64,
) -> Result<(), StoreError> {
    in_transaction(db, path, |tx| {
        for s in settlements {
            settle_one(tx, scope, s, now).map_err(failed(path, "cannot settle events"))?;
        }
        Ok(())
    })
}

fn settle_one(
    tx: &mut impl Sql,
    scope: &str,
    s: &Settlement,
    now: u64,
) -> Result<(), postgres::Error> {
    let id = int(s.id);
    // Serialised with the writer's staging of this flow's next event.
    tx.query(
        "SELECT 1 FROM flows WHERE flow_id = (SELECT flow_id FROM outbox WHERE id = $1)
         FOR UPDATE",
        &[&id],
    )?;
    let error: Option<String> = s.error.as_ref().into_option().map(|e| clip(e.as_str()));
    if let EventOutcome::Retry { at } = s.outcome {
        tx.execute(
            "UPDATE outbox SET state = 'pending', attempts = attempts + 1,
               next_attempt_at = $3, last_error = $4, lease_until = NULL
             WHERE id = $1 AND scope = $2 AND settled_at IS NULL",
            &[&id, &scope, &int(at), &error],
        )?;
        return Ok(());
    }
    let state = match s.outcome {
        EventOutcome::Delivered => "delivered",
        EventOutcome::Gone => "gone",
        EventOutcome::Dead | EventOutcome::Retry { .. } => "dead",
    };
    let settled = tx.execute(
        "UPDATE outbox SET state = $3, attempts = attempts + 1, next_attempt_at = NULL,
           settled_at = $4, last_error = $5, lease_until = NULL
         WHERE id = $1 AND scope = $2 AND settled_at IS NULL",
        &[&id, &scope, &state, &int(now), &error],
    )?;
    if settled == 1 {
        // The flow's next event (if any) is due now.
        tx.execute(
            "UPDATE outbox SET next_attempt_at = $2
             WHERE id = (SELECT n.id FROM outbox AS n JOIN outbox AS s
                           ON n.scope = s.scope AND n.flow_id = s.flow_id
                         WHERE s.id = $1 AND n.settled_at IS NULL
                         ORDER BY n.revision LIMIT 1)
               AND next_attempt_at IS NULL",
            &[&id, &int(now)],
        )?;
    }
    Ok(())
}

/// Deletes at most `limit` events settled at or before `cutoff`.
pub(crate) fn prune(
    db: &mut Db<'_, Client>,
    path: &Path,
    cutoff: u64,
    limit: usize,
) -> Result<usize, StoreError> {
    db.execute(
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
           WHERE settled_at IS NOT NULL AND settled_at <= $1 ORDER BY settled_at LIMIT $2)",
        &[&int(cutoff), &i64::try_from(limit).unwrap_or(i64::MAX)],
    )
    .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    .map_err(failed(path, "cannot prune events"))
}
