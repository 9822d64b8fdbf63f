//! Storage behind a trait of storage primitives, and the one push path every backend shares.
//!
//! A store keeps two things (docs/protocol.md): an append-only **change log** whose sequence
//! number is the sync cursor, and the **merged current state** of every record. A backend
//! stores; it does not decide who may write: [`push`] loads what a push touches through the
//! backend's [`PushTx`], lets the pure [`plan`] decide (authorization, duplicates, the shared
//! LWW merge of [`mana_sync::merge`]) and has the backend write that decision and commit.

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use mana_sync::protocol::ValidChange;
use mana_sync::{Change, Conflict};

pub mod plan;
pub mod postgres;
pub mod sqlite;

pub use plan::{Loaded, LogRow, RecordKey, RecordWrite, StoredRecord, Touched};
pub use sqlite::SqliteStore;

pub use mana_sync::protocol::{personal_space, PERSONAL_PREFIX};

/// Who is asking, and which spaces they belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: String,
    /// Every space the user is a member of, their personal space included.
    pub spaces: BTreeSet<String>,
    /// Whether `spaces` is authoritative (memberships service configured). When it is not,
    /// a user may still write to a shared space (only they will see the rows until
    /// memberships are known); when it is, writing to a space one is not a member of is 403.
    pub memberships_known: bool,
}

impl Viewer {
    /// A viewer that only knows its personal space.
    pub fn personal(user_id: &str) -> Viewer {
        Viewer {
            user_id: user_id.to_owned(),
            spaces: BTreeSet::from([personal_space(user_id)]),
            memberships_known: false,
        }
    }

    /// Whether a row with this author and space is visible to the viewer.
    pub fn sees(&self, author: &str, space_id: Option<&str>) -> bool {
        author == self.user_id || space_id.is_some_and(|s| self.spaces.contains(s))
    }
}

/// A sync cursor. On the wire it is an opaque string:
/// - `"<seq>"`: every change with a greater sequence number is still to come;
/// - `"snapshot:<upto>:<after>"`: a first sync served from the current state, paused after the
///   record with row id `<after>`; once it is done the client continues from `"<upto>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Log(i64),
    Snapshot { upto: i64, after: i64 },
}

impl Cursor {
    pub fn parse(s: &str) -> Option<Cursor> {
        let nonneg = |p: &str| {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<i64>().ok()
        };
        if let Some(rest) = s.strip_prefix("snapshot:") {
            let (upto, after) = rest.split_once(':')?;
            return Some(Cursor::Snapshot {
                upto: nonneg(upto)?,
                after: nonneg(after)?,
            });
        }
        nonneg(s).map(Cursor::Log)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cursor::Log(seq) => write!(f, "{seq}"),
            Cursor::Snapshot { upto, after } => write!(f, "snapshot:{upto}:{after}"),
        }
    }
}

/// One push: validated changes of one client of one user to one app.
#[derive(Debug, Clone)]
pub struct PushRequest {
    pub app_id: String,
    pub viewer: Viewer,
    pub client_id: String,
    pub changes: Vec<ValidChange>,
}

/// Who pushes where: what a push transaction is opened with.
#[derive(Debug, Clone)]
pub struct PushScope {
    pub app_id: String,
    /// The authenticated user and their spaces. A backend with row-level security sets its
    /// per-transaction settings from it (e.g. PostgreSQL `set_config('app.current_user_id',
    /// user_id, true)` in `begin_push`); it never uses it to refuse a write (the plan did).
    pub viewer: Viewer,
    /// Written on every log row of the push (`exclude_client` of [`PageQuery`] matches it).
    pub client_id: String,
}

/// What live streams need to know of a logged change (they read the change itself from the
/// store, after their cursor).
#[derive(Debug, Clone)]
pub struct LoggedChange {
    pub table: String,
    pub id: String,
    pub seq: i64,
    pub author: String,
    pub space_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct PushOutcome {
    /// Changes newly appended to the log, in order.
    pub applied: Vec<LoggedChange>,
    /// Changes whose `eventId` was already known: acknowledged, not applied again.
    pub duplicates: usize,
    /// Fields where the pushed value lost to a newer one the server already had.
    pub conflicts: Vec<Conflict>,
}

/// A page of changes for one viewer.
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub app_id: String,
    pub viewer: Viewer,
    /// Only these tables; `None` = all.
    pub collections: Option<Vec<String>>,
    /// `None` = first sync, served from the current state.
    pub since: Option<Cursor>,
    pub limit: usize,
    /// Leave out the changes this client pushed itself (it has them).
    pub exclude_client: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page {
    pub changes: Vec<Change>,
    /// Where the next page starts.
    pub next: Cursor,
    pub has_more: bool,
}

/// `Forbidden` and `Invalid` are decisions of [`plan`]; a backend only ever returns `Internal`
/// or `Unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The push writes a row the viewer may not write; nothing was written.
    #[error("changes[{index}]: {message}")]
    Forbidden { index: usize, message: String },
    /// The push contains a change the store can't accept; nothing was written.
    #[error("changes[{index}]: {message}")]
    Invalid {
        index: usize,
        code: &'static str,
        message: String,
    },
    #[error("storage failure: {0}")]
    Internal(String),
    /// The database can't be reached right now (down, restarting, out of connections): nothing
    /// was written, and the same request may succeed a moment later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// A storage backend: the primitives a push and a pull need, no rules.
///
/// Implementations: [`SqliteStore`]; PostgreSQL implements the same trait.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Opens the one transaction of one push (see [`PushTx`] for its contract). Called by
    /// [`push`] only. A backend that serializes pushes (SQLite: one writer connection, `BEGIN
    /// IMMEDIATE`) waits here for its turn.
    async fn begin_push(&self, scope: PushScope) -> Result<Box<dyn PushTx>, StoreError>;
    /// A page of the changes the viewer is missing since a cursor: rows authored by the viewer
    /// or in one of `viewer.spaces`, in sequence order. One read transaction (a consistent
    /// snapshot of log and state).
    async fn page(&self, q: PageQuery) -> Result<Page, StoreError>;
    /// Sequence number of the newest committed change of any user (0 when empty): every
    /// change a later page returns has a greater one. Carries no rows, so a backend with
    /// row-level security may read it from an unprotected counter.
    async fn head(&self) -> Result<i64, StoreError>;
    /// The distinct `(appId, table)` pairs with changes visible to the viewer after `after`
    /// (used to re-notify a WebSocket that fell behind the live feed).
    async fn changed_tables(
        &self,
        viewer: Viewer,
        after: i64,
        app_id: Option<String>,
    ) -> Result<Vec<(String, String)>, StoreError>;
}

/// The transaction of one push, as [`push`] drives it: `load` once, then (unless the plan
/// refused the push) `append` once, `upsert` once, `commit`. Every call of one `PushTx` runs in
/// the same database transaction, opened by [`Store::begin_push`] for its [`PushScope`].
///
/// Contract:
/// - **Isolation.** From `begin_push` to `commit`, no other push may commit a change to a
///   record or an eventId this one loaded (SQLite: the single writer's `BEGIN IMMEDIATE`;
///   PostgreSQL: e.g. a transaction-level advisory lock on the log, which also keeps the cursor
///   commit-ordered, or `SELECT … FOR UPDATE`). The plan's decisions rest on what was loaded.
/// - **Nothing is decided here.** Everything handed to `append` and `upsert` has been
///   authorized, deduplicated and merged by [`plan::plan`]: write it as given. Don't filter,
///   merge, or refuse rows; a failure is `StoreError::Internal`.
/// - **All or nothing.** Dropping a `PushTx` without `commit` (the plan refused the push, a
///   call failed, the request was cancelled) must leave no trace: roll back, at the latest
///   before the next push.
/// - **Acknowledged = durable.** `commit` returns `Ok` only once the push is durable and
///   visible to `page`, `head` and `changed_tables` (the answer is sent after it).
#[async_trait]
pub trait PushTx: Send {
    /// The touched records that exist (keyed by `(table, id)` of the scope's app; absent ones
    /// left out) and which touched eventIds the log already holds (eventIds are unique across
    /// the whole log, every app and user).
    ///
    /// Whoever owns them: the plan answers a write to another user's record with 403, so it
    /// must learn that the record exists and who wrote it. Under row-level security that
    /// means reading past the viewer's policies (e.g. a `SECURITY DEFINER` function); for a
    /// record the viewer did not author, `author` and `space_id` suffice (`state` may be
    /// left empty: the plan never merges into it). Likewise an eventId logged by another user
    /// must be reported known, or the append would break the log's uniqueness.
    async fn load(&mut self, touched: Touched) -> Result<Loaded, StoreError>;
    /// Appends the rows to the log in order, with the scope's `app_id` and `client_id`, and
    /// returns their sequence numbers in the same order: strictly increasing, each greater
    /// than that of any change committed before. Called once, possibly with no rows.
    async fn append(&mut self, rows: Vec<LogRow>) -> Result<Vec<i64>, StoreError>;
    /// Inserts or replaces the current state of these records (of the scope's app), in order:
    /// a new record's first-sync position follows that order. `author` and `space_id` are
    /// only written for a new record. Called once, after `append`, possibly with none.
    async fn upsert(&mut self, records: Vec<RecordWrite>) -> Result<(), StoreError>;
    /// Commits; see the contract above.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Applies a push in one transaction of `store` and returns only after it committed. The same
/// rules on every backend: the decisions are [`plan::plan`]'s.
pub async fn push(store: &dyn Store, req: PushRequest) -> Result<PushOutcome, StoreError> {
    let touched = plan::touched(&req.changes);
    let mut tx = store
        .begin_push(PushScope {
            app_id: req.app_id,
            viewer: req.viewer.clone(),
            client_id: req.client_id,
        })
        .await?;
    let loaded = tx.load(touched).await?;
    // A refusal drops `tx`: rolled back, nothing written.
    let planned = plan::plan(&req.viewer, loaded, req.changes)?;
    let mut applied: Vec<LoggedChange> = planned
        .log
        .iter()
        .map(|r| LoggedChange {
            table: r.change.table.clone(),
            id: r.change.id.clone(),
            seq: 0,
            author: r.author.clone(),
            space_id: r.space_id.clone(),
        })
        .collect();
    let seqs = tx.append(planned.log).await?;
    if seqs.len() != applied.len() {
        return Err(StoreError::Internal(format!(
            "append returned {} sequence numbers for {} rows",
            seqs.len(),
            applied.len()
        )));
    }
    for (a, seq) in applied.iter_mut().zip(&seqs) {
        a.seq = *seq;
    }
    let records = planned
        .records
        .into_iter()
        .map(|p| RecordWrite {
            last_seq: seqs[p.last_row],
            ..p.record
        })
        .collect();
    tx.upsert(records).await?;
    tx.commit().await?;
    Ok(PushOutcome {
        applied,
        duplicates: planned.duplicates,
        conflicts: planned.conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        for c in [
            Cursor::Log(0),
            Cursor::Log(42),
            Cursor::Snapshot { upto: 9, after: 3 },
        ] {
            assert_eq!(Cursor::parse(&c.to_string()), Some(c));
        }
        for bad in [
            "",
            "-1",
            "x",
            "1.5",
            "snapshot:",
            "snapshot:1",
            "snapshot:a:b",
            " 1",
            "99999999999999999999",
        ] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn viewer_sees_authored_and_member_rows() {
        let v = Viewer::personal("alice");
        assert!(v.sees("alice", None));
        assert!(v.sees("bob", Some("_personal:alice")));
        assert!(!v.sees("bob", None));
        assert!(!v.sees("bob", Some("team")));
    }
}
