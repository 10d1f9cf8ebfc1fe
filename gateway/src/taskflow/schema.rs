//! Opening the SQLite file: directory and file modes, pragmas, and the
//! versioned schema migrations (`PRAGMA user_version`).

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rusqlite::Connection;

use super::error::StoreError;

/// Ordered migrations; migration `i` brings the schema to version `i + 1`.
///
/// Rows are keyed by `seq` (creation order, the rowid) so that inserts append
/// and a batch dirties few pages; ids are random UUIDs whose uniqueness the
/// writer checks in memory and `open` re-checks, so they carry no index.
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
];

pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn sqlite_err(path: &Path, action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Sqlite {
        path,
        action,
        source,
    }
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        path,
        action,
        source,
    }
}

/// Creates a missing parent directory (0700) and the file (0600), and
/// tightens the mode of an existing file and its WAL companions.
pub(crate) fn prepare_files(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(path, "cannot create directory"))?;
        }
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path, "cannot create file"))?;
    harden_modes(path)
}

/// Sets mode 0600 on the file and on `-wal`/`-shm` if they exist.
pub(crate) fn harden_modes(path: &Path) -> Result<(), StoreError> {
    let mut names = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        names.push(name.into());
    }
    for name in names.iter().filter(|n| n.exists()) {
        std::fs::set_permissions(name, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(path, "cannot set file mode"))?;
    }
    Ok(())
}

/// Opens the connection with the store's pragmas and migrates the schema.
pub(crate) fn open_connection(
    path: &Path,
    max_store_bytes: Option<u64>,
) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(sqlite_err(path, "cannot open"))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(sqlite_err(path, "cannot set busy timeout"))?;
    // One process owns the file: the in-memory index is the authority.
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(sqlite_err(path, "cannot set locking mode"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite_err(
            path,
            "cannot enable WAL (is another process using the file?)",
        ))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!("journal mode is {mode}, expected wal"),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_err(path, "cannot set synchronous"))?;
    migrate(&conn, path)?;
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

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sqlite_err(path, "cannot read schema version"))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: format!(
                "schema version {version} is newer than this build supports ({SCHEMA_VERSION})"
            ),
        });
    }
    let start = usize::try_from(version.max(0)).unwrap_or(0);
    if start >= MIGRATIONS.len() {
        return Ok(());
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

/// `PRAGMA wal_checkpoint(TRUNCATE)`; errors are logged, not raised.
pub(crate) fn checkpoint_truncate(conn: &Connection, path: &Path) {
    if let Err(err) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        log::warn!(
            "taskflow store {}: checkpoint failed: {err}",
            path.display()
        );
    }
}
