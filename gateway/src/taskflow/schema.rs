//! The SQLite side of opening: pragmas, the schema version check, and the
//! versioned schema migrations (`PRAGMA user_version`).

use std::path::Path;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension};

use super::error::{sqlite_err, StoreError};

/// Ordered migrations; migration `i` brings the schema to version `i + 1`.
///
/// Rows are keyed by `seq` (creation order, the rowid) so that inserts append
/// and a batch dirties few pages. Since version 4 every read is an indexed
/// query (nothing is loaded at open): ids are unique indexes, and partial
/// indexes hold the few rows the sweep and `resolve` look for. The
/// terminal predicate in those indexes is written exactly as the queries
/// in `queries` write it (SQLite uses a partial index only then).
const MIGRATIONS: &[&str] = &[
    // 1: initial tables.
    "CREATE TABLE flows (
        seq INTEGER PRIMARY KEY,
        flow_id TEXT NOT NULL,
        owner_key TEXT NOT NULL,
        sync_mode TEXT NOT NULL,
        controller_id TEXT,
        revision INTEGER NOT NULL,
        status TEXT NOT NULL,
        notify_policy TEXT NOT NULL,
        goal TEXT NOT NULL,
        current_step TEXT,
        blocked_task_id TEXT,
        blocked_summary TEXT,
        state_json TEXT,
        wait_json TEXT,
        cancel_requested_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        ended_at INTEGER
    );
    CREATE INDEX flows_owner ON flows(owner_key, created_at);
    CREATE TABLE tasks (
        seq INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL,
        owner_key TEXT NOT NULL,
        runtime TEXT NOT NULL,
        source_id TEXT,
        child_session_key TEXT,
        parent_flow_id TEXT,
        parent_task_id TEXT,
        agent_id TEXT,
        run_id TEXT,
        label TEXT,
        error TEXT,
        progress_summary TEXT,
        terminal_summary TEXT,
        terminal_outcome TEXT,
        scope_kind TEXT NOT NULL,
        task TEXT NOT NULL,
        status TEXT NOT NULL,
        delivery_status TEXT NOT NULL,
        notify_policy TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        ended_at INTEGER,
        last_event_at INTEGER,
        cleanup_after INTEGER
    );
    CREATE INDEX tasks_owner ON tasks(owner_key);
    CREATE INDEX tasks_parent_flow ON tasks(parent_flow_id);",
    // 2: idempotency records (see `keys`), looked up by scope and key,
    // pruned by expiry.
    "CREATE TABLE idempotency (
        scope TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        status INTEGER NOT NULL,
        body BLOB NOT NULL,
        expires_at INTEGER NOT NULL,
        UNIQUE (scope, key)
    );
    CREATE INDEX idempotency_expiry ON idempotency(expires_at);",
    // 3: outbox events (see `outbox`): claimed by scope and due time, one
    // open event per flow and scope at a time, pruned by settle time. Ids
    // may be reused only after the newest events were pruned, long after
    // anyone could settle them.
    "CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL,
        flow_id TEXT NOT NULL,
        revision INTEGER NOT NULL,
        created INTEGER NOT NULL,
        flow TEXT NOT NULL,
        occurred_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER,
        settled_at INTEGER,
        last_error TEXT
    );
    CREATE INDEX outbox_due ON outbox(scope, next_attempt_at) WHERE settled_at IS NULL;
    CREATE INDEX outbox_open ON outbox(scope, flow_id, revision) WHERE settled_at IS NULL;
    CREATE INDEX outbox_settled ON outbox(settled_at) WHERE settled_at IS NOT NULL;",
    // 4: reads served by indexed queries instead of a full load at open.
    // `flows_owner` (owner_key, created_at) already orders a session's
    // flows newest first (the rowid `seq` breaks ties).
    "CREATE UNIQUE INDEX flows_id ON flows(flow_id);
    CREATE UNIQUE INDEX tasks_id ON tasks(task_id);
    CREATE INDEX flows_status ON flows(status);
    CREATE INDEX flows_live ON flows(owner_key, created_at)
        WHERE NOT (status IN ('succeeded', 'failed', 'cancelled', 'lost')
            OR (status = 'blocked' AND ended_at IS NOT NULL));
    CREATE INDEX flows_cancel ON flows(seq)
        WHERE cancel_requested_at IS NOT NULL
        AND NOT (status IN ('succeeded', 'failed', 'cancelled', 'lost')
            OR (status = 'blocked' AND ended_at IS NOT NULL));
    CREATE INDEX flows_ended ON flows(coalesce(ended_at, updated_at), seq)
        WHERE (status IN ('succeeded', 'failed', 'cancelled', 'lost')
            OR (status = 'blocked' AND ended_at IS NOT NULL));",
    // 5: a flow's open events found by the flow's creation sequence instead
    // of its random id, so that the index grows at its end instead of
    // touching a random page for every event. Open events of flows that
    // are gone get a key of their own (their negated id).
    "ALTER TABLE outbox ADD COLUMN flow_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE outbox SET flow_seq = coalesce(
        (SELECT seq FROM flows WHERE flows.flow_id = outbox.flow_id), -id)
        WHERE settled_at IS NULL;
    DROP INDEX outbox_open;
    CREATE INDEX outbox_open ON outbox(scope, flow_seq, revision) WHERE settled_at IS NULL;",
];

/// The version whose migration makes ids unique; a store migrating to it
/// is first checked for duplicates, so that the refusal names the row.
const UNIQUE_IDS_VERSION: i64 = 4;

pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens an existing store with the store's pragmas and migrates its
/// schema. A file without a schema is refused before anything is written.
pub(crate) fn open_connection(
    path: &Path,
    max_store_bytes: Option<u64>,
) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sqlite_err(path, "cannot open"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err(path, "cannot set busy timeout"))?;
    // One process owns the file (see `file::lock`); its reader threads
    // share it, so the locking mode stays NORMAL.
    let version = stored_version(&conn, path)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite_err(path, "cannot enable WAL"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("journal mode is {mode}, expected wal"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_err(path, "cannot set synchronous"))?;
    // Plans chosen once per statement: without the stability guarantee,
    // SQLite re-plans a cached statement on every run whose parameters
    // take part in choosing an index (the outbox's partial indexes), which
    // cost more than running it.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(sqlite_err(
            path,
            "cannot set the query planner stability guarantee",
        ))?;
    migrate(&conn, path, version)?;
    if let Some(bytes) = max_store_bytes {
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |row| row.get(0))
            .map_err(sqlite_err(path, "cannot read page size"))?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
        conn.pragma_update(None, "max_page_count", pages.max(1))
            .map_err(sqlite_err(path, "cannot set size quota"))?;
    }
    Ok(conn)
}

/// A query-only connection for the readers of the store that owns the
/// file (WAL: readers never block the writer, nor it them). It is opened
/// read-write so that it can open the WAL's files however the writer
/// left them, and refuses writes (`query_only`).
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .map_err(sqlite_err(path, "cannot open a reader"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err(path, "cannot set busy timeout"))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(sqlite_err(path, "cannot make a reader query-only"))?;
    Ok(conn)
}

/// Gives a new, empty database file the whole schema.
pub(crate) fn create(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    migrate(conn, path, 0)
}

/// The schema version of an existing store. A file without one (version 0)
/// was not made by the store, and one newer than this build is not
/// understood: both are refused.
fn stored_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_err(path, "cannot read schema version"))?;
    if version == 0 {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            found: format!(
                "the file is an SQLite database without the TaskFlow schema (schema version 0, {})",
                tables(conn, path)?
            ),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "schema version {version} is newer than this build supports ({SCHEMA_VERSION})"
            ),
        });
    }
    Ok(version)
}

/// The tables a database holds, as a phrase: `no tables`, or the first few
/// names.
fn tables(conn: &Connection, path: &Path) -> Result<String, StoreError> {
    const SHOWN: usize = 5;
    let list = sqlite_err(path, "cannot list tables");
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .map_err(&list)?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(&list)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(&list)?;
    Ok(match names.len() {
        0 => "no tables".to_owned(),
        n if n <= SHOWN => format!("tables: {}", names.join(", ")),
        n => format!(
            "tables: {} and {} more",
            names[..SHOWN].join(", "),
            n - SHOWN
        ),
    })
}

/// Brings the schema from version `from` to [`SCHEMA_VERSION`] in one
/// transaction.
fn migrate(conn: &Connection, path: &Path, from: i64) -> Result<(), StoreError> {
    let start = usize::try_from(from.max(0)).unwrap_or(0);
    if start >= MIGRATIONS.len() {
        return Ok(());
    }
    if from > 0 && from < UNIQUE_IDS_VERSION {
        refuse_duplicates(conn, path)?;
    }
    let tx = conn
        .unchecked_transaction()
        .map_err(sqlite_err(path, "cannot begin migration"))?;
    for sql in &MIGRATIONS[start..] {
        tx.execute_batch(sql)
            .map_err(sqlite_err(path, "cannot migrate schema"))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sqlite_err(path, "cannot record schema version"))?;
    tx.commit()
        .map_err(sqlite_err(path, "cannot commit migration"))?;
    Ok(())
}

/// Refuses a store in which two rows share an id, naming the first.
fn refuse_duplicates(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    for (kind, sql) in [
        (
            "flow",
            "SELECT flow_id FROM flows GROUP BY flow_id HAVING count(*) > 1 LIMIT 1",
        ),
        (
            "task",
            "SELECT task_id FROM tasks GROUP BY task_id HAVING count(*) > 1 LIMIT 1",
        ),
    ] {
        let found: Option<String> = conn
            .query_row(sql, [], |row| row.get(0))
            .optional()
            .map_err(sqlite_err(path, "cannot check ids"))?;
        if let Some(id) = found {
            return Err(StoreError::Corrupt {
                path: path.to_path_buf(),
                detail: format!("{kind} row {id}: duplicate id"),
            });
        }
    }
    Ok(())
}

/// `PRAGMA wal_checkpoint(TRUNCATE)`; errors are logged, not raised.
pub(crate) fn checkpoint_truncate(conn: &Connection, path: &Path) {
    if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        log::warn!(
            "taskflow store {}: checkpoint failed: {err}",
            path.display()
        );
    }
}
