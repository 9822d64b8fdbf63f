//! Storage behind a trait, so that the PostgreSQL backend (a later issue) can slot in.
//!
//! A store keeps two things (docs/protocol.md): an append-only **change log** whose sequence number
//! is the sync cursor, and the **merged current state** of every record (field-level LWW through
//! the shared [`mana_sync::merge::apply`]).

use std::collections::BTreeSet;
use std::fmt;

use async_trait::async_trait;
use mana_sync::{Change, Conflict};

pub mod sqlite;

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
    pub changes: Vec<Change>,
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
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies a push in one transaction and returns only after it committed.
    async fn push(&self, req: PushRequest) -> Result<PushOutcome, StoreError>;
    /// A page of the changes the viewer is missing since a cursor.
    async fn page(&self, q: PageQuery) -> Result<Page, StoreError>;
    /// Sequence number of the newest logged change (0 when empty).
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
