//! Waiting reads across nodes: one thread per Gateway `LISTEN`s on the
//! channel every commit notifies (with the ids of the flows it changed),
//! reads those flows that local reads wait on, and wakes the waits they
//! settle. Every second, and after each reconnection, it also re-reads
//! every watched flow, so a notification lost while the connection was
//! down delays a wake by at most that long. A commit that staged callback
//! events (marked in its notification), and every reconnection, wake this
//! Gateway's delivery workers, which then claim what is due.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::staging::EVENTS_MARK;
use super::writer::CHANNEL;
use super::{reads, Db, Pg, Stmts};
use crate::taskflow::outbox::Subscriptions;
use crate::taskflow::watch::{self, FlowChange, Watchers};

/// How often every watched flow is read again, and how long a stop waits.
pub(crate) const RECHECK: Duration = Duration::from_secs(1);

pub(crate) type Stop = Arc<(Mutex<bool>, Condvar)>;

/// Runs until `stop` is set.
pub(crate) fn run(pg: &Pg, watchers: &Watchers, subscriptions: &Subscriptions, stop: &Stop) {
    while !stopped(stop) {
        let client = pg.connect().and_then(|mut c| {
            c.batch_execute(&format!("LISTEN {CHANNEL}"))
                .map_err(pg.err("cannot listen"))?;
            Ok(c)
        });
        match client {
            Ok(mut client) => listen(&mut client, pg, watchers, subscriptions, stop),
            Err(err) => log::debug!("taskflow store: listener cannot connect: {err}"),
        }
        // Reconnect after a pause, unless stopping.
        let (flag, cv) = &**stop;
        let mut stopped = flag.lock();
        if !*stopped {
            cv.wait_for(&mut stopped, RECHECK);
        }
    }
}

fn stopped(stop: &Stop) -> bool {
    *stop.0.lock()
}

/// Serves one connection until it fails or the store stops.
fn listen(
    client: &mut Client,
    pg: &Pg,
    watchers: &Watchers,
    subscriptions: &Subscriptions,
    stop: &Stop,
) {
    let mut last_recheck = Instant::now();
    // Whatever committed while no connection listened.
    subscriptions.snapshot().wake_all();
    // The connection's prepared statements, for as long as it serves.
    let mut stmts = Stmts::new();
    if recheck(client, &mut stmts, pg, watchers, None).is_err() {
        return;
    }
    while !stopped(stop) {
        let mut changed: HashSet<String> = HashSet::new();
        let wait = RECHECK.saturating_sub(last_recheck.elapsed());
        {
            let mut notifications = client.notifications();
            match notifications.timeout_iter(wait).next() {
                Ok(Some(n)) => changed.extend(n.payload().split(' ').map(str::to_owned)),
                Ok(None) => {}
                Err(_) => return,
            }
            let mut pending = notifications.iter();
            loop {
                match pending.next() {
                    Ok(Some(n)) => changed.extend(n.payload().split(' ').map(str::to_owned)),
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
        if changed.remove(EVENTS_MARK) {
            subscriptions.snapshot().wake_all();
        }
        let all = last_recheck.elapsed() >= RECHECK;
        if all {
            last_recheck = Instant::now();
        }
        let filter = if all { None } else { Some(&changed) };
        if (all || !changed.is_empty())
            && recheck(client, &mut stmts, pg, watchers, filter).is_err()
        {
            return;
        }
    }
}

/// Reads the watched flows (only those in `only`, when given) and wakes
/// the waits they settle.
fn recheck(
    client: &mut Client,
    stmts: &mut Stmts,
    pg: &Pg,
    watchers: &Watchers,
    only: Option<&HashSet<String>>,
) -> Result<(), ()> {
    let ids: Vec<String> = watchers
        .flow_ids()
        .into_iter()
        .filter(|id| only.is_none_or(|only| only.contains(id)))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut db = Db { c: client, stmts };
    let flows = reads::flows(&mut db, pg.label(), &ids).map_err(|err| {
        log::debug!("taskflow store: listener cannot read flows: {err}");
    })?;
    let mut changes: Vec<FlowChange<'_>> =
        flows.iter().map(|f| FlowChange::Put(&f.record)).collect();
    let found: HashSet<&str> = flows.iter().map(|f| f.id()).collect();
    changes.extend(
        ids.iter()
            .filter(|id| !found.contains(id.as_str()))
            .map(|id| FlowChange::Deleted(id.as_str())),
    );
    watch::wake(watchers.settled(changes));
    Ok(())
}
