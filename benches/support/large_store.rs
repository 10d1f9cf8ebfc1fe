//! The Gateway over a store of `BENCH_LARGE_FLOWS` flows (default
//! 1,000,000), written straight into SQLite: startup time, resident
//! memory, `get_flow` of a hot flow (in the cache) and of cold ones (read
//! from disk), and `list_flows` of a session with 1,000 flows.

use std::time::{Duration, Instant};

use rusqlite::{params, Connection};
use testkit::{post_json, Gateway, TempDir, SECRET};

use super::{bench_config, create, run_load, same, Load, Stats};

/// Flows of the bench route's session among the generated ones: the
/// cold reads pick from them.
const OWN_SHARE: usize = 5;
const LIST_FLOWS: usize = 1000;

/// A generated flow's id: UUID-shaped, so it reads like any other.
fn bulk_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012}")
}

/// Fills the store of the state directory `dir` (its schema made by a
/// Gateway that ran there) with `n` flows: one in `OWN_SHARE` of the bench
/// route's session, 1,000 of the list route's, the rest spread over 1,000
/// other sessions; one in four ended (within the retention).
fn fill_store(dir: &TempDir, n: usize) -> Duration {
    let started = Instant::now();
    let path = dir
        .path()
        .join("state")
        .join("taskflow")
        .join("flows.sqlite");
    let mut conn = Connection::open(path).expect("open store");
    conn.pragma_update(None, "synchronous", "OFF")
        .expect("pragma");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO flows (seq, flow_id, owner_key, sync_mode, controller_id, revision, \
                 status, notify_policy, goal, state_json, created_at, updated_at, ended_at) \
                 VALUES (?1, ?2, ?3, 'managed', 'bench/controller', ?4, ?5, 'done_only', \
                 'bulk', '{\"source\":\"bench\",\"n\":1}', ?6, ?6, ?7)",
            )
            .expect("prepare");
        for i in 0..n {
            let owner = if i < LIST_FLOWS {
                "agent:bench:list".to_owned()
            } else if i % OWN_SHARE == 0 {
                "agent:bench:main".to_owned()
            } else {
                format!("agent:bulk:{}", i % 1000)
            };
            let ended = i % 4 == 3;
            let created = now - 3_600_000 + (i as i64 % 3_000_000);
            insert
                .execute(params![
                    1_000_000_000 + i as i64,
                    bulk_id(i),
                    owner,
                    i64::from(ended),
                    if ended { "succeeded" } else { "running" },
                    created,
                    ended.then_some(created),
                ])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    started.elapsed()
}

fn rss_mib(gateway: &Gateway) -> f64 {
    gateway.rss_kib() as f64 / 1024.0
}

pub fn run(conns: usize, duration: Duration, ceiling: &Stats) {
    let n: usize = super::env_or("BENCH_LARGE_FLOWS", 1_000_000);
    if n == 0 {
        return;
    }
    // A Gateway makes the store (and its schema) and stops; the flows are
    // then written straight into the file.
    let dir = Gateway::start(&bench_config()).stop();
    let filled = fill_store(&dir, n);
    let started = Instant::now();
    let gateway = Gateway::start_in(dir, &bench_config(), &[]);
    let startup = started.elapsed();
    let idle_rss = rss_mib(&gateway);

    let hot_id = create(gateway.addr, "/hooks/bench", "hot flow");
    let hot = post_json(
        "/hooks/bench",
        SECRET,
        &[],
        &format!(r#"{{"action":"get_flow","flowId":"{hot_id}"}}"#),
    );
    let owned = n / OWN_SHARE;
    // A different generated flow of the bench session on every request.
    let cold = Load::each(move |conn, seq| {
        let k = (seq as usize)
            .wrapping_mul(2_654_435_761)
            .wrapping_add(conn * 97)
            % owned.max(1);
        let i = (k * OWN_SHARE).max(LIST_FLOWS.next_multiple_of(OWN_SHARE));
        post_json(
            "/hooks/bench",
            SECRET,
            &[],
            &format!(r#"{{"action":"get_flow","flowId":"{}"}}"#, bulk_id(i)),
        )
    });
    let list = post_json("/hooks/list", SECRET, &[], r#"{"action":"list_flows"}"#);
    let rows = [
        (
            "get_flow, hot (in the cache)",
            run_load(gateway.addr, &same(&hot), conns, duration, None, 200),
        ),
        (
            "get_flow, cold (a different stored flow each time)",
            run_load(gateway.addr, &cold, conns, duration, None, 200),
        ),
        (
            "list_flows (1,000 flows of one session)",
            run_load(gateway.addr, &same(&list), conns, duration, None, 200),
        ),
    ];
    let loaded_rss = rss_mib(&gateway);
    println!();
    println!("# Large store: {n} flows ({filled:.1?} to write them straight into SQLite)");
    println!();
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| startup (spawn to listening) | {:.0} ms |",
        startup.as_secs_f64() * 1e3
    );
    println!("| resident memory after start | {idle_rss:.1} MiB |");
    println!("| resident memory after the loads below | {loaded_rss:.1} MiB |");
    println!();
    println!("| scenario | req/s | ratio to ceiling | p50 ms | p99 ms | errors |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, s) in &rows {
        println!(
            "| {name} | {:.0} | {:.2} | {:.3} | {:.3} | {} |",
            s.rps,
            s.rps / ceiling.rps,
            s.p50_ms,
            s.p99_ms,
            s.errors
        );
    }
    // The cold rate at half its maximum: the latency a caller sees when
    // the Gateway is not saturated.
    let target = rows[1].1.rps / 2.0;
    let paced = run_load(gateway.addr, &cold, conns, duration, Some(target), 200);
    println!();
    println!(
        "| cold get_flow at half its maximum rate | {target:.0} req/s offered, {:.0} achieved | p50 {:.3} ms | p99 {:.3} ms |",
        paced.rps, paced.p50_ms, paced.p99_ms
    );
    let logs = gateway.logs();
    if !logs.is_empty() {
        println!();
        println!("Gateway log (warnings and errors):\n{logs}");
    }
}
