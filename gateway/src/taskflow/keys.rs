//! Idempotency records: the reply a keyed write got, stored in the same
//! commit as the write's effect, so that after a crash either both exist or
//! neither does. Records live only in SQLite (never in the in-memory
//! index), so memory does not grow with the number of keys; the writer
//! looks a key up inside the batch's transaction.

use std::collections::HashMap;

use openclaw_ffi::runtime::{IdempotencyClaim, StoredReply, WriteOutcome};
use rusqlite::{params, Connection, OptionalExtension};

/// Renders the reply stored with a keyed write (the plugin's side).
pub(crate) type Render = Box<dyn Fn(&WriteOutcome) -> Option<StoredReply> + Send>;

/// A keyed write's claim, as the writer receives it.
pub(crate) struct Claim {
    pub claim: IdempotencyClaim,
    pub render: Render,
}

/// A stored reply and what it answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    pub status: u16,
    pub body: Vec<u8>,
    pub expires_at: u64,
}

/// What a claimed key already has, judged inside the batch.
pub(crate) enum Prior {
    /// No live record: the write runs.
    None,
    /// A live record for the same request.
    Same(StoredReply),
    /// A live record for another request.
    Other,
}

/// Records staged by the current batch, which its later writes must see.
#[derive(Default)]
pub(crate) struct Staged(HashMap<(String, String), Record>);

impl Staged {
    pub fn add(&mut self, record: Record) {
        self.0
            .insert((record.scope.clone(), record.key.clone()), record);
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn get(&self, scope: &str, key: &str) -> Option<&Record> {
        self.0.get(&(scope.to_owned(), key.to_owned()))
    }
}

/// What a key's record (if any) means for `claim` at `now`. An expired
/// record counts as none.
pub(crate) fn judge(found: Option<Record>, claim: &IdempotencyClaim, now: u64) -> Prior {
    match found {
        Some(r) if r.expires_at > now => {
            if r.fingerprint == claim.fingerprint.as_str() {
                Prior::Same(StoredReply {
                    status: r.status,
                    body: r.body.into(),
                })
            } else {
                Prior::Other
            }
        }
        _ => Prior::None,
    }
}

/// What `claim`'s key already has at `now`: the batch's staged records
/// first, then the committed ones. An expired record counts as none.
pub(crate) fn prior(
    conn: &Connection,
    staged: &Staged,
    claim: &IdempotencyClaim,
    now: u64,
) -> rusqlite::Result<Prior> {
    let key = (claim.scope.to_string(), claim.key.to_string());
    let found = match staged.0.get(&key) {
        Some(r) => Some(r.clone()),
        None => find(conn, &key.0, &key.1)?,
    };
    Ok(judge(found, claim, now))
}

fn find(conn: &Connection, scope: &str, key: &str) -> rusqlite::Result<Option<Record>> {
    let mut stmt = conn.prepare_cached(
        "SELECT fingerprint, status, body, expires_at FROM idempotency WHERE scope = ?1 AND key = ?2",
    )?;
    stmt.query_row(params![scope, key], |row| {
        Ok(Record {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint: row.get(0)?,
            status: row.get(1)?,
            body: row.get(2)?,
            expires_at: row.get::<_, i64>(3)?.max(0) as u64,
        })
    })
    .optional()
}

/// Stores (or replaces an expired) record.
pub(crate) fn put(conn: &Connection, r: &Record) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT OR REPLACE INTO idempotency (scope, key, fingerprint, status, body, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    stmt.execute(params![
        r.scope,
        r.key,
        r.fingerprint,
        r.status,
        r.body,
        i64::try_from(r.expires_at).unwrap_or(i64::MAX)
    ])?;
    Ok(())
}

/// Row ids of at most `limit` records expired at `now`, oldest first.
pub(crate) fn expired(conn: &Connection, now: u64, limit: usize) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid FROM idempotency WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![
            i64::try_from(now).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        |row| row.get(0),
    )?;
    rows.collect()
}

pub(crate) fn delete(conn: &Connection, rowid: i64) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached("DELETE FROM idempotency WHERE rowid = ?1")?;
    stmt.execute(params![rowid])?;
    Ok(())
}
