//! The outbox's SQL side: evaluating outbox operations in the writer's
//! transaction, writing row changes, and the stored flow JSON.

use crate::taskflow::error::persist_failed;
use crate::taskflow::ops::{Answer, Change, Ctx, Evaluation, SweepReport};
use abi_stable::std_types::{ROption, RString, RVec};
use openclaw_ffi::records::{FlowRecord, FlowStatus, NotifyPolicy, SyncMode};
use openclaw_ffi::runtime::{DueEvents, EventOutcome, OutboxEvent, Settlement};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::taskflow::rows::int;

pub(crate) fn evaluate(conn: &Connection, ctx: &Ctx, op: &OutboxOp) -> Evaluation {
    let result = match op {
        OutboxOp::Claim {
            scope,
            now,
            limit,
            lease_until,
            subscriptions,
        } => claim(
            conn,
            &mut subscriptions.leases.lock(),
            scope,
            *now,
            *limit,
            *lease_until,
        ),
        OutboxOp::Settle {
            scope,
            settlements,
            subscriptions,
        } => {
            let mut leases = subscriptions.leases.lock();
            for s in settlements {
                leases.remove(&int(s.id));
            }
            Ok(Evaluation::writes(
                Answer::Settled,
                settlements
                    .iter()
                    .map(|s| {
                        Change::Outbox(Row::Settle {
                            scope: Arc::clone(scope),
                            settlement: s.clone(),
                            now: ctx.now,
                        })
                    })
                    .collect(),
            ))
        }
        OutboxOp::Prune { limit } => {
            settled_before(conn, ctx.now.saturating_sub(ctx.retention_ms), *limit).map(|ids| {
                let report = SweepReport {
                    pruned_events: ids.len(),
                    ..SweepReport::default()
                };
                Evaluation::writes(
                    Answer::Sweep(report),
                    ids.into_iter()
                        .map(|id| Change::Outbox(Row::Delete { id }))
                        .collect(),
                )
            })
        }
    };
    result.unwrap_or_else(|err| {
        log::error!("taskflow store: outbox query failed: {err}");
        Evaluation {
            answer: Err(persist_failed()),
            changes: Vec::new(),
        }
    })
}

fn uint(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn claim(
    conn: &Connection,
    leases: &mut HashMap<i64, Lease>,
    scope: &Arc<str>,
    now: u64,
    limit: u32,
    lease_until: u64,
) -> rusqlite::Result<Evaluation> {
    let limit = limit.min(MAX_CLAIM);
    leases.retain(|_, l| l.until > now);
    let held: HashMap<i64, u64> = leases
        .iter()
        .filter(|(_, l)| l.scope == *scope)
        .map(|(id, l)| (*id, l.until))
        .collect();
    let mut stmt = conn.prepare_cached(
        "SELECT id, created, flow, occurred_at, attempts FROM outbox
         WHERE scope = ?1 AND settled_at IS NULL AND next_attempt_at <= ?2
         ORDER BY next_attempt_at, id LIMIT ?3",
    )?;
    let fetch = i64::from(limit) + 1 + i64::try_from(held.len()).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![&**scope, int(now), fetch], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, bool>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
        ))
    })?;
    let mut events = Vec::new();
    let mut changes = Vec::new();
    let mut more_due = false;
    for row in rows {
        let (id, created, flow, occurred_at, attempts) = row?;
        if held.contains_key(&id) {
            continue;
        }
        if events.len() == limit as usize {
            more_due = true;
            break;
        }
        let Some(flow) = flow_from_json(&flow) else {
            // A row this build cannot read is never deliverable: settle it
            // dead rather than claim it forever.
            log::error!("taskflow store: outbox event {id} holds an unreadable flow; marked dead");
            changes.push(Change::Outbox(Row::Settle {
                scope: Arc::clone(scope),
                settlement: Settlement {
                    id: uint(id),
                    outcome: EventOutcome::Dead,
                    error: ROption::RSome(RString::from("unreadable event row")),
                },
                now,
            }));
            continue;
        };
        leases.insert(
            id,
            Lease {
                scope: Arc::clone(scope),
                until: lease_until,
            },
        );
        events.push(OutboxEvent {
            id: uint(id),
            created,
            flow,
            occurred_at: uint(occurred_at),
            attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        });
    }
    let next_due_at = if more_due {
        Some(now)
    } else {
        let later: Option<i64> = conn
            .prepare_cached(
                "SELECT next_attempt_at FROM outbox
                 WHERE scope = ?1 AND settled_at IS NULL AND next_attempt_at > ?2
                 ORDER BY next_attempt_at LIMIT 1",
            )?
            .query_row(params![&**scope, int(now)], |row| row.get(0))
            .optional()?;
        let leased = held
            .values()
            .copied()
            .chain((!events.is_empty()).then_some(lease_until))
            .min();
        match (later.map(uint), leased) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    };
    Ok(Evaluation::writes(
        Answer::Events(DueEvents {
            events: RVec::from(events),
            next_due_at: next_due_at.into(),
        }),
        changes,
    ))
}

fn settled_before(conn: &Connection, cutoff: u64, limit: usize) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM outbox WHERE settled_at IS NOT NULL AND settled_at <= ?1
         ORDER BY settled_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![int(cutoff), i64::try_from(limit).unwrap_or(i64::MAX)],
        |row| row.get(0),
    )?;
    rows.collect()
}

/// Writes one outbox row change.
pub(crate) fn write(conn: &Connection, row: &Row) -> rusqlite::Result<()> {
    match row {
        Row::Put(e) => {
            conn.prepare_cached(
                "INSERT INTO outbox
                   (scope, flow_id, revision, created, flow, occurred_at, state, next_attempt_at,
                    flow_seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending',
                   CASE WHEN EXISTS (SELECT 1 FROM outbox
                                     WHERE scope = ?1 AND flow_seq = ?7 AND settled_at IS NULL)
                        THEN NULL ELSE ?6 END,
                   ?7)",
            )?
            .execute(params![
                &*e.scope,
                e.flow.flow_id.as_str(),
                int(e.flow.revision),
                e.created,
                flow_json(&e.flow),
                int(e.occurred_at),
                int(e.flow_seq),
            ])?;
        }
        Row::Settle {
            scope,
            settlement,
            now,
        } => settle(conn, scope, settlement, *now)?,
        Row::Delete { id } => {
            conn.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute(params![id])?;
        }
    }
    Ok(())
}

fn settle(conn: &Connection, scope: &str, s: &Settlement, now: u64) -> rusqlite::Result<()> {
    let id = int(s.id);
    let error: Option<String> = s.error.as_ref().into_option().map(|e| clip(e.as_str()));
    if let EventOutcome::Retry { at } = s.outcome {
        conn.prepare_cached(
            "UPDATE outbox SET state = 'pending', attempts = attempts + 1,
               next_attempt_at = ?3, last_error = ?4
             WHERE id = ?1 AND scope = ?2 AND settled_at IS NULL",
        )?
        .execute(params![id, scope, int(at), error])?;
        return Ok(());
    }
    let state = match s.outcome {
        EventOutcome::Delivered => DELIVERED,
        EventOutcome::Gone => GONE,
        EventOutcome::Dead | EventOutcome::Retry { .. } => DEAD,
    };
    let settled = conn
        .prepare_cached(
            "UPDATE outbox SET state = ?3, attempts = attempts + 1, next_attempt_at = NULL,
               settled_at = ?4, last_error = ?5
             WHERE id = ?1 AND scope = ?2 AND settled_at IS NULL",
        )?
        .execute(params![id, scope, state, int(now), error])?;
    if settled == 1 {
        // The flow's next event (if any) is due now.
        conn.prepare_cached(
            "UPDATE outbox SET next_attempt_at = ?2
             WHERE id = (SELECT n.id FROM outbox AS n JOIN outbox AS s
                           ON n.scope = s.scope AND n.flow_seq = s.flow_seq
                         WHERE s.id = ?1 AND n.settled_at IS NULL
                         ORDER BY n.revision LIMIT 1)
               AND next_attempt_at IS NULL",
        )?
        .execute(params![id, int(now)])?;
    }
    Ok(())
}

/// Counts of the outbox's events by state, for the opening log line.
pub(crate) fn open_counts(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT COUNT(*) FILTER (WHERE state = ?1), COUNT(*) FILTER (WHERE state = ?2) FROM outbox",
        params![PENDING, DEAD],
        |row| Ok((uint(row.get(0)?), uint(row.get(1)?))),
    )
}

/// The flow record as stored in an event row.
pub(crate) fn flow_json(f: &FlowRecord) -> String {
    let text = |v: &ROption<RString>| match v {
        ROption::RSome(s) => Value::String(s.to_string()),
        ROption::RNone => Value::Null,
    };
    let num = |v: &ROption<u64>| match v {
        ROption::RSome(n) => json!(n),
        ROption::RNone => Value::Null,
    };
    json!({
        "flowId": f.flow_id.as_str(),
        "syncMode": f.sync_mode.as_str(),
        "controllerId": text(&f.controller_id),
        "revision": f.revision,
        "status": f.status.as_str(),
        "notifyPolicy": f.notify_policy.as_str(),
        "goal": f.goal.as_str(),
        "currentStep": text(&f.current_step),
        "blockedTaskId": text(&f.blocked_task_id),
        "blockedSummary": text(&f.blocked_summary),
        "stateJson": text(&f.state_json),
        "waitJson": text(&f.wait_json),
        "cancelRequestedAt": num(&f.cancel_requested_at),
        "createdAt": f.created_at,
        "updatedAt": f.updated_at,
        "endedAt": num(&f.ended_at),
    })
    .to_string()
}

/// Reads [`flow_json`] back; `None` for anything it did not write.
pub(crate) fn flow_from_json(raw: &str) -> Option<FlowRecord> {
    let v: Map<String, Value> = serde_json::from_str(raw).ok()?;
    let s = |k: &str| v.get(k)?.as_str().map(RString::from);
    let text = |k: &str| -> Option<ROption<RString>> {
        match v.get(k)? {
            Value::Null => Some(ROption::RNone),
            Value::String(t) => Some(ROption::RSome(RString::from(t.as_str()))),
            _ => None,
        }
    };
    let n = |k: &str| v.get(k)?.as_u64();
    let num = |k: &str| -> Option<ROption<u64>> {
        match v.get(k)? {
            Value::Null => Some(ROption::RNone),
            other => other.as_u64().map(ROption::RSome),
        }
    };
    Some(FlowRecord {
        flow_id: s("flowId")?,
        sync_mode: SyncMode::parse(v.get("syncMode")?.as_str()?)?,
        controller_id: text("controllerId")?,
        revision: n("revision")?,
        status: FlowStatus::parse(v.get("status")?.as_str()?)?,
        notify_policy: NotifyPolicy::parse(v.get("notifyPolicy")?.as_str()?)?,
        goal: s("goal")?,
        current_step: text("currentStep")?,
        blocked_task_id: text("blockedTaskId")?,
        blocked_summary: text("blockedSummary")?,
        state_json: text("stateJson")?,
        wait_json: text("waitJson")?,
        cancel_requested_at: num("cancelRequestedAt")?,
        created_at: n("createdAt")?,
        updated_at: n("updatedAt")?,
        ended_at: num("endedAt")?,
    })
}
