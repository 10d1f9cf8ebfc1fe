//! Errors: `StoreError` for opening the store, and the `TaskFlowError` values
//! that the bound methods return.

use std::fmt;
use std::path::PathBuf;

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
    /// A stored row or the schema cannot be understood; nothing was loaded.
    Corrupt { path: PathBuf, detail: String },
    /// A background thread could not be started.
    Thread {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "taskflow store {}: {action}: {source}", path.display()),
            Self::Sqlite {
                path,
                action,
                source,
            } => write!(f, "taskflow store {}: {action}: {source}", path.display()),
            Self::Corrupt { path, detail } => {
                write!(f, "taskflow store {}: {detail}", path.display())
            }
            Self::Thread { path, source } => write!(
                f,
                "taskflow store {}: cannot start thread: {source}",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } | Self::Thread { source, .. } => Some(source),
            Self::Sqlite { source, .. } => Some(source),
            Self::Corrupt { .. } => None,
        }
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
