//! The store file on disk: its directory and modes, creating a new store,
//! and refusing a file that exists but holds no store.
//!
//! A store starts empty only in a file it creates itself. The new file is
//! built, schema and all, under a temporary name and then renamed into
//! place, so a file under the store's name always holds a schema: one that
//! is empty or has none was truncated or put there by something else, and
//! opening it as a new store would lose every flow silently.

use std::ffi::OsString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::error::{sqlite_err, StoreError};
use super::schema;

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        path,
        action,
        source,
    }
}

/// `path` with `suffix` appended to its file name (`flows.sqlite-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

/// The length of a file, or `None` when there is none.
fn file_len(path: &Path, of: &Path) -> Result<Option<u64>, StoreError> {
    match std::fs::metadata(of) {
        Ok(meta) => Ok(Some(meta.len())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "cannot read file")(e)),
    }
}

/// What is said of a write-ahead log that holds data.
fn wal_note(path: &Path) -> Result<String, StoreError> {
    Ok(match file_len(path, &sibling(path, "-wal"))? {
        Some(len) if len > 0 => format!(", though its -wal file holds {len} bytes"),
        _ => String::new(),
    })
}

/// Takes the store's lock: an exclusive advisory lock on `<file>-lock`,
/// held as long as the returned file is open. One process owns a store;
/// a second one is refused at once. (The lock is on a file of its own:
/// closing any other descriptor of the database would drop SQLite's own
/// locks.)
pub fn lock(path: &Path) -> Result<File, StoreError> {
    prepare_dir(path)?;
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(sibling(path, "-lock"))
        .map_err(io_err(path, "cannot open the lock file"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(path, "cannot lock the file")(e)),
    }
}

/// Opens the store at `path`: creates a new store where no file exists,
/// refuses a file that holds none, and otherwise opens and migrates it.
/// The caller holds the store's [`lock`].
pub(crate) fn open(path: &Path, max_store_bytes: Option<u64>) -> Result<Connection, StoreError> {
    prepare_dir(path)?;
    match file_len(path, path)? {
        None => create(path)?,
        Some(0) => {
            return Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                found: format!(
                    "the file is empty (0 bytes){}, which a store the Gateway created never is \
                     (was it truncated?)",
                    wal_note(path)?
                ),
            })
        }
        Some(_) => {}
    }
    harden_modes(path)?;
    schema::open_connection(path, max_store_bytes)
}

/// Creates a missing parent directory with mode 0700.
fn prepare_dir(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err(path, "cannot create directory"))?;
        }
    }
    Ok(())
}

/// Builds a new store (mode 0600) under a temporary name, then renames it
/// into place and makes the rename durable.
fn create(path: &Path) -> Result<(), StoreError> {
    // A log left by a store whose file is gone may hold its flows; a new
    // file beside it would take the log for its own.
    let note = wal_note(path)?;
    if !note.is_empty() {
        return Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            found: format!("there is no file{note}"),
        });
    }
    let temp = sibling(path, ".new");
    // What an interrupted creation left never held a flow.
    for leftover in [temp.clone(), sibling(&temp, "-journal")] {
        match std::fs::remove_file(&leftover) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(io_err(path, "cannot remove an unfinished new file")(e))
            }
            _ => {}
        }
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io_err(path, "cannot create file"))?;
    let conn = Connection::open(&temp).map_err(sqlite_err(path, "cannot create file"))?;
    schema::create(&conn, path)?;
    conn.close()
        .map_err(|(_, e)| sqlite_err(path, "cannot create file")(e))?;
    std::fs::rename(&temp, path).map_err(io_err(path, "cannot create file"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(path, "cannot sync directory"))
}

/// Sets mode 0600 on the file and on `-wal`/`-shm` if they exist.
pub(crate) fn harden_modes(path: &Path) -> Result<(), StoreError> {
    let names = [
        path.to_path_buf(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
        sibling(path, "-lock"),
    ];
    for name in names.iter().filter(|n| n.exists()) {
        std::fs::set_permissions(name, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(path, "cannot set file mode"))?;
    }
    Ok(())
}
