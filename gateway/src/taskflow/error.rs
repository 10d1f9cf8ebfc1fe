//! Errors: `StoreError` for opening the store, and the `TaskFlowError` values
//! that the bound methods return.

use std::fmt;
use std::path::{Path, PathBuf};

use openclaw_ffi::outcome::{ErrorCode, TaskFlowError};

pub(crate) const PERSIST_FAILED_MESSAGE: &str = "TaskFlow persistence failed.";

/// Why the store could not be opened.
#[derive(Debug)]
pub enum StoreError {
    /// The directory or file could not be created or hardened.
    Io {
        path: PathBuf,
        action: &'static str,
        source: std::io::Error,
    },
    /// SQLite refused to open, configure or migrate the file.
    Sqlite {
        path: PathBuf,
        action: &'static str,
        source: rusqlite::Error,
    },
    /// The file exists but holds no TaskFlow store (it is empty, not an
    /// SQLite database, or has no schema). It was left as it was: only a
    /// file the store creates itself starts empty.
    NotAStore { path: PathBuf, found: String },
    /// Another process holds the file open.
    InUse { path: PathBuf },
    /// A stored row or the schema cannot be understood; nothing was loaded.
    Corrupt { path: PathBuf, detail: String },
    /// PostgreSQL refused or could not be reached (`path` is the
    /// server's redacted URL).
    Postgres {
        path: PathBuf,
        action: &'static str,
        source: postgres::Error,
    },
    /// PostgreSQL failed to connect less than a second ago; not tried
    /// again yet.
    Unavailable { path: PathBuf },
    /// The TLS settings for PostgreSQL could not be built.
    Tls {
        path: PathBuf,
        source: rustls::Error,
    },
    /// A background thread could not be started.
    Thread {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    /// An SQLite failure while opening, named by what it says about the
    /// file: in use elsewhere, not a database, damaged, or another failure.
    pub(crate) fn sqlite(path: &Path, action: &'static str, source: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as Code;
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(Code::DatabaseBusy | Code::DatabaseLocked) => Self::InUse { path },
            Some(Code::NotADatabase) => Self::NotAStore {
                path,
                found: "the file is not an SQLite database".into(),
            },
            Some(Code::DatabaseCorrupt) => Self::Corrupt {
                path,
                detail: format!("{action}: the file is damaged: {source}"),
            },
            _ => Self::Sqlite {
                path,
                action,
                source,
            },
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Sqlite { path, .. }
            | Self::Postgres { path, .. }
            | Self::Unavailable { path }
            | Self::Tls { path, .. }
            | Self::NotAStore { path, .. }
            | Self::InUse { path }
            | Self::Corrupt { path, .. }
            | Self::Thread { path, .. } => path,
        }
    }
}

/// Maps an SQLite failure while opening `path` to a [`StoreError`].
pub(crate) fn sqlite_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError + 'a {
    move |source| StoreError::sqlite(path, action, source)
}

/// Every message names the file once, first.
impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot open the TaskFlow store {}: ",
            self.path().display()
        )?;
        self.detail(f)
    }
}

/// A failure of a read of an open store: logged with what failed (the
/// row it names, if any), answered as `INTERNAL`.
pub(crate) fn read_failed(err: &StoreError) -> TaskFlowError {
    struct Detail<'a>(&'a StoreError);
    impl fmt::Display for Detail<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.detail(f)
        }
    }
    log::error!(
        "taskflow store {}: a read failed: {}",
        err.path().display(),
        Detail(err)
    );
    internal("TaskFlow store read failed.")
}

impl StoreError {
    /// What went wrong, without the file's name.
    fn detail(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { action, source, .. } => write!(f, "{action}: {source}"),
            Self::Sqlite { action, source, .. } => write!(f, "{action}: {source}"),
            Self::Postgres { action, source, .. } => {
                write!(
                    f,
                    "{action}: {}",
                    crate::cluster::error::with_causes(source)
                )
            }
            Self::NotAStore { found, .. } => write!(
                f,
                "{found}. It is refused so that no flows are lost silently. To start fresh \
                 deliberately, move the file aside or delete it (with its -wal and -shm files, \
                 if any); the Gateway creates a new, empty store only where no file exists."
            ),
            Self::InUse { .. } => f.write_str(
                "the file is in use by another process (is another Gateway running with the \
                 same state directory?)",
            ),
            Self::Corrupt { detail, .. } => f.write_str(detail),
            Self::Unavailable { .. } => {
                f.write_str("PostgreSQL could not be reached a moment ago; not tried again yet")
            }
            Self::Thread { source, .. } => write!(f, "cannot start thread: {source}"),
            Self::Tls { source, .. } => write!(f, "cannot set up TLS: {source}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::Thread { source, .. } => Some(source),
            Self::Sqlite { source, .. } => Some(source),
            Self::Postgres { source, .. } => Some(source),
            Self::Tls { source, .. } => Some(source),
            Self::NotAStore { .. }
            | Self::InUse { .. }
            | Self::Corrupt { .. }
            | Self::Unavailable { .. } => None,
        }
    }
}

/// A read the PostgreSQL store could not answer: logged with its cause,
/// answered as `UNAVAILABLE` when the server could not be asked, else as
/// [`read_failed`] does.
pub(crate) fn pg_read_failed(err: &StoreError) -> TaskFlowError {
    match err {
        StoreError::Postgres {
            path,
            action,
            source,
        } => {
            log::warn!(
                "taskflow store {}: a read failed: {action}: {source}",
                path.display()
            );
            TaskFlowError::new(ErrorCode::UNAVAILABLE, "TaskFlow store unavailable.")
        }
        StoreError::Unavailable { .. } => {
            TaskFlowError::new(ErrorCode::UNAVAILABLE, "TaskFlow store unavailable.")
        }
        other => read_failed(other),
    }
}

/// Maps a PostgreSQL failure on `action` against the server at `path`
/// (its redacted URL).
pub(crate) fn pg_err<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl Fn(postgres::Error) -> StoreError + 'a {
    move |source| StoreError::Postgres {
        path: path.to_path_buf(),
        action,
        source,
    }
}

pub(crate) fn persist_failed() -> TaskFlowError {
    TaskFlowError::new(ErrorCode::PERSIST_FAILED, PERSIST_FAILED_MESSAGE)
}

pub(crate) fn internal(message: &str) -> TaskFlowError {
    TaskFlowError::new(ErrorCode::INTERNAL, message)
}

pub(crate) fn invalid_input(message: &str) -> TaskFlowError {
    TaskFlowError::new(ErrorCode::INVALID_INPUT, message)
}
