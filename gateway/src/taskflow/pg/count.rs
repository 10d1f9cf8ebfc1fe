//! Flows by status across the cluster (`openclaw_taskflow_flows`): one
//! thread per Gateway counts them again every [`RECOUNT`] on a pooled
//! connection, so every node reports the whole cluster's flows, whichever
//! node changed them. Between counts the writer keeps the gauge from this
//! node's commits, so it may be off by other nodes' changes (or by one of
//! this node's batches that committed as a count ran) until the next
//! count. A count that fails or takes too long keeps the last values and
//! is logged; it never holds up anything else.

use std::time::Duration;

use super::listen::Stop;
use super::{reads, Pg};
use crate::taskflow::metrics::FlowCounts;

/// How often the flows are counted: a count reads the status index of
/// every flow.
pub(crate) const RECOUNT: Duration = Duration::from_secs(10);

/// How long one count may run (longer than the store's usual statement
/// timeout: a large table takes a while, and nothing waits for it).
const COUNT_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs until `stop` is set.
pub(crate) fn run(pg: &Pg, counts: &FlowCounts, stop: &Stop) {
    let mut failing = false;
    loop {
        {
            let (flag, cv) = &**stop;
            let mut stopped = flag.lock();
            if !*stopped {
                cv.wait_for(&mut stopped, RECOUNT);
            }
            if *stopped {
                return;
            }
        }
        let counted = pg.with(|db| {
            db.c.batch_execute(&format!(
                "SET statement_timeout = {}",
                COUNT_TIMEOUT.as_millis()
            ))
            .map_err(pg.err("cannot count flows"))?;
            let counted = reads::status_counts(db, pg.label());
            // Back to the pool's bound before the connection is reused.
            db.c.batch_execute(&format!(
                "SET statement_timeout = {}",
                super::PG_TIMEOUT.as_millis()
            ))
            .map_err(pg.err("cannot count flows"))?;
            counted
        });
        match counted {
            Ok(fresh) => {
                counts.set(fresh);
                if std::mem::take(&mut failing) {
                    log::info!("taskflow store: flows are counted by status again");
                }
            }
            Err(err) if !failing => {
                failing = true;
                log::warn!(
                    "taskflow store: cannot count flows by status ({err}); \
                     openclaw_taskflow_flows keeps its last values"
                );
            }
            Err(_) => {}
        }
    }
}
