//! Which files open as a store: a new store starts empty only where no file
//! exists; an existing file that holds no store is refused, left exactly as
//! it was, with a message that says what was found and how to start fresh.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::support::*;
use crate::taskflow::{Store, StoreError};

fn open_at(dir: &TempDir) -> Result<Store, StoreError> {
    Store::open(options_for(dir, &Arc::new(AtomicU64::new(T0)), |_| {}))
}

fn refused(dir: &TempDir) -> StoreError {
    match open_at(dir) {
        Ok(store) => panic!(
            "opened a file that holds no store, with {} flows",
            store.flow_count()
        ),
        Err(e) => e,
    }
}

/// Puts `bytes` where the store's file belongs.
fn place(dir: &TempDir, bytes: &[u8]) -> PathBuf {
    let path = db_path(dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// The refusal's shape: it says what was `found`, names the file once, says
/// how to start fresh, blames no other process, and leaves the file and its
/// neighbours alone.
fn assert_refused(e: &StoreError, found: &str, path: &Path, before: &[u8]) {
    let text = e.to_string();
    assert!(matches!(e, StoreError::NotAStore { .. }), "{text}");
    assert!(text.contains(found), "{text}");
    assert_eq!(
        text.matches(&path.display().to_string()).count(),
        1,
        "{text}"
    );
    assert!(text.contains("To start fresh deliberately, move the file aside or delete it"));
    assert!(!text.contains("another process"), "{text}");
    assert_eq!(std::fs::read(path).unwrap(), before);
    assert!(!companion(path, "-shm").exists());
}

#[test]
fn a_store_is_created_where_no_file_exists_and_starts_empty() {
    let dir = TempDir::new();
    let store = open_at(&dir).unwrap();
    assert_eq!(store.flow_count(), 0);
    create(&store.bind("s").unwrap(), "first");
    store.close();
    let path = db_path(&dir);
    assert!(std::fs::metadata(&path).unwrap().len() > 0);
    assert!(!companion(&path, ".new").exists());
    assert_eq!(open_at(&dir).unwrap().flow_count(), 1);
}

#[test]
fn an_unfinished_new_file_left_by_an_interrupted_creation_is_replaced() {
    let dir = TempDir::new();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(companion(&path, ".new"), b"half").unwrap();
    assert_eq!(open_at(&dir).unwrap().flow_count(), 0);
    assert!(!companion(&path, ".new").exists());
}

#[test]
fn a_zero_length_file_is_refused_with_what_was_found_and_how_to_start_fresh() {
    let dir = TempDir::new();
    let path = place(&dir, b"");
    let e = refused(&dir);
    assert_eq!(
        e.to_string(),
        format!(
            "cannot open the TaskFlow store {}: the file is empty (0 bytes), which a store the \
             Gateway created never is (was it truncated?). It is refused so that no flows are \
             lost silently. To start fresh deliberately, move the file aside or delete it (with \
             its -wal and -shm files, if any); the Gateway creates a new, empty store only where \
             no file exists.",
            path.display()
        )
    );
    assert_refused(&e, "the file is empty (0 bytes)", &path, b"");
    assert!(!companion(&path, "-wal").exists());
}

#[test]
fn a_zero_length_file_whose_log_holds_data_is_refused_naming_the_log() {
    let dir = TempDir::new();
    let path = place(&dir, b"");
    std::fs::write(companion(&path, "-wal"), [7u8; 32]).unwrap();
    let found = "the file is empty (0 bytes), though its -wal file holds 32 bytes";
    assert_refused(&refused(&dir), found, &path, b"");
    assert_eq!(std::fs::read(companion(&path, "-wal")).unwrap(), [7u8; 32]);
}

#[test]
fn a_log_without_its_file_is_refused_rather_than_taken_by_a_new_store() {
    let dir = TempDir::new();
    let path = db_path(&dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(companion(&path, "-wal"), [7u8; 32]).unwrap();
    let e = refused(&dir);
    assert!(matches!(e, StoreError::NotAStore { .. }), "{e}");
    assert!(e
        .to_string()
        .contains("there is no file, though its -wal file holds 32 bytes"));
    assert!(!path.exists());
}

fn sqlite_file(dir: &TempDir, sql: &str) -> (PathBuf, Vec<u8>) {
    let path = db_path(dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    let bytes = std::fs::read(&path).unwrap();
    assert!(!bytes.is_empty());
    (path, bytes)
}

#[test]
fn an_sqlite_file_without_a_schema_is_refused_and_left_as_it_was() {
    let dir = TempDir::new();
    let (path, before) = sqlite_file(&dir, "CREATE TABLE t (x); DROP TABLE t;");
    let found =
        "the file is an SQLite database without the TaskFlow schema (schema version 0, no tables)";
    assert_refused(&refused(&dir), found, &path, &before);
}

#[test]
fn another_applications_database_is_refused_naming_its_tables() {
    let dir = TempDir::new();
    let (path, before) = sqlite_file(&dir, "CREATE TABLE notes (x); CREATE TABLE tags (y);");
    let found = "(schema version 0, tables: notes, tags)";
    assert_refused(&refused(&dir), found, &path, &before);
}

#[test]
fn a_file_that_is_not_an_sqlite_database_is_refused_as_such() {
    let dir = TempDir::new();
    let before = "not a database\n".repeat(100).into_bytes();
    let path = place(&dir, &before);
    let found = "the file is not an SQLite database. It is refused";
    assert_refused(&refused(&dir), found, &path, &before);
}
