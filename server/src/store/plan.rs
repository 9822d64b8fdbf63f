//! The rules of a push, as pure code shared by every storage backend: who may write which row,
//! which changes are re-sent duplicates, and what the merged state becomes. No I/O: a push
//! loads what it touches ([`touched`] → [`PushTx::load`]), [`plan`] decides, and the backend
//! writes the decision ([`PushTx::append`], [`PushTx::upsert`]) and commits.
//!
//! Why here and not in `mana_sync` next to `merge.rs`: the client shares the merge, the
//! conflict rule, validation and the wire types (all in `mana_sync`), but authorization and the
//! change log are the server's alone; a client never asks who may write a row.
//!
//! [`PushTx::load`]: super::PushTx::load
//! [`PushTx::append`]: super::PushTx::append
//! [`PushTx::upsert`]: super::PushTx::upsert

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use mana_sync::merge::{apply_detailed, RecordState};
use mana_sync::protocol::{personal_owner, ValidChange, PERSONAL_PREFIX};
use mana_sync::{Change, Conflict};

use super::{StoreError, Viewer};

/// A record within one app: `(table, id)`.
pub type RecordKey = (String, String);

/// What a push reads before it decides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Touched {
    /// Every record the push writes, each once, in the order first touched.
    pub records: Vec<RecordKey>,
    /// Every eventId the push carries, each once.
    pub event_ids: Vec<String>,
}

/// A stored record as a push sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub author: String,
    /// `None` = the author's personal space.
    pub space_id: Option<String>,
    pub state: RecordState,
    /// Greatest HLC ever applied (as its string).
    pub updated_at: Option<String>,
    pub schema_version: u32,
}

/// What [`super::PushTx::load`] found.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The touched records that exist (absent = not yet stored).
    pub records: HashMap<RecordKey, StoredRecord>,
    /// The touched eventIds already in the log.
    pub known_event_ids: HashSet<String>,
}

/// One row to append to the change log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    /// The change as pushed (validated).
    pub change: Change,
    /// The writer (always the push's viewer: only a record's author writes it).
    pub author: String,
    /// The record's space, normalised: `None` = the author's personal space.
    pub space_id: Option<String>,
}

/// The new current state of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordWrite {
    pub table: String,
    pub id: String,
    /// Whether the record was absent at load (a backend may insert instead of upserting).
    pub new: bool,
    /// Immutable once stored: an existing record's author and space are never changed.
    pub author: String,
    pub space_id: Option<String>,
    pub state: RecordState,
    pub updated_at: Option<String>,
    pub schema_version: u32,
    /// Sequence number of the last log row of this record.
    pub last_seq: i64,
}

/// A record the plan writes, with the index in [`PushPlan::log`] of its last row (its
/// `last_seq` is that row's sequence number, known once appended).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRecord {
    pub record: RecordWrite,
    pub last_row: usize,
}

/// The decision for one push.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PushPlan {
    /// Rows to append, in push order (duplicates left out).
    pub log: Vec<LogRow>,
    /// Records whose state changed, in the order first touched (a new record's position in
    /// a first-sync snapshot is its place here).
    pub records: Vec<PlannedRecord>,
    /// Changes whose eventId was already logged or came earlier in this push: acknowledged,
    /// not applied again.
    pub duplicates: usize,
    /// Fields where the pushed value lost to a newer one the server already had.
    pub conflicts: Vec<Conflict>,
}

/// What a push must load: the records it touches and the eventIds it carries.
pub fn touched(changes: &[ValidChange]) -> Touched {
    let mut records = Vec::new();
    let mut seen_records = HashSet::with_capacity(changes.len());
    let mut event_ids = Vec::with_capacity(changes.len());
    let mut seen_events = HashSet::with_capacity(changes.len());
    for c in changes {
        if seen_records.insert((c.table.as_str(), c.id.as_str())) {
            records.push((c.table.clone(), c.id.clone()));
        }
        if seen_events.insert(c.event_id.as_str()) {
            event_ids.push(c.event_id.clone());
        }
    }
    Touched { records, event_ids }
}

/// A record as the plan works on it.
struct Working {
    key: RecordKey,
    stored: StoredRecord,
    new: bool,
    last_row: Option<usize>,
}

/// Decides a push of `viewer`'s `changes` against the `loaded` state: all or nothing. The
/// first change the viewer may not write is `Forbidden`, the first that can't be applied is
/// `Invalid`, both with its index; the backend then writes nothing.
///
/// The rules, per change in order:
/// - a `spaceId` of another user's personal space (`_personal:<other>`) is forbidden;
/// - a new record in a shared space the viewer is not a member of is forbidden when the
///   memberships are known ([`Viewer::memberships_known`]); when they are not, it is allowed
///   (only its author sees it until they are);
/// - a record is written only by its author: anyone else's change to it is forbidden, even in
///   a space both belong to;
/// - a record's space never changes: a change naming another space is `space_immutable`;
/// - a change whose eventId is already logged, or came earlier in this push, is a duplicate:
///   acknowledged, not applied (the checks above still apply to it);
/// - anything else is merged with [`mana_sync::merge::apply_detailed`], whose `lost` fields
///   are the push's conflicts, and logged.
pub fn plan(
    viewer: &Viewer,
    loaded: Loaded,
    changes: Vec<ValidChange>,
) -> Result<PushPlan, StoreError> {
    let user = viewer.user_id.as_str();
    let Loaded {
        mut records,
        mut known_event_ids,
    } = loaded;
    let mut out = PushPlan {
        log: Vec::with_capacity(changes.len()),
        ..PushPlan::default()
    };
    let mut slots: HashMap<RecordKey, usize> = HashMap::new();
    let mut work: Vec<Working> = Vec::new();

    for (index, c) in changes.into_iter().enumerate() {
        let c = c.into_inner();
        let given_space = c.effective_space_id();
        if let Some(owner) = given_space.and_then(personal_owner) {
            if owner != user {
                return Err(StoreError::Forbidden {
                    index,
                    message: format!(
                        "spaceId {PERSONAL_PREFIX}{owner} is another user's personal space"
                    ),
                });
            }
        }
        let named_space = given_space.is_some();
        // The author's own personal space is stored as `None`.
        let given_space = given_space
            .filter(|s| personal_owner(s).is_none())
            .map(str::to_owned);

        let slot = match slots.entry((c.table.clone(), c.id.clone())) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(v) => {
                let w = match records.remove(v.key()) {
                    Some(stored) => Working {
                        key: v.key().clone(),
                        stored,
                        new: false,
                        last_row: None,
                    },
                    None => {
                        if let Some(space) = &given_space {
                            if viewer.memberships_known && !viewer.spaces.contains(space) {
                                return Err(StoreError::Forbidden {
                                    index,
                                    message: format!("not a member of space {space:?}"),
                                });
                            }
                        }
                        Working {
                            key: v.key().clone(),
                            stored: StoredRecord {
                                author: user.to_owned(),
                                space_id: given_space.clone(),
                                state: RecordState::default(),
                                updated_at: None,
                                schema_version: c.schema_version(),
                            },
                            new: true,
                            last_row: None,
                        }
                    }
                };
                work.push(w);
                *v.insert(work.len() - 1)
            }
        };
        let rec = &mut work[slot];
        if rec.stored.author != user {
            return Err(StoreError::Forbidden {
                index,
                message: format!(
                    "{}/{} belongs to another user: only its author writes it",
                    c.table, c.id
                ),
            });
        }
        if named_space && given_space != rec.stored.space_id {
            return Err(StoreError::Invalid {
                index,
                code: "space_immutable",
                message: format!("spaceId of {}/{} can't change after insert", c.table, c.id),
            });
        }
        // Known or already planned: acknowledged, not applied again. (Inserting makes a
        // later repeat within this push a duplicate.)
        if !known_event_ids.insert(c.event_id.clone()) {
            out.duplicates += 1;
            continue;
        }

        let applied = apply_detailed(std::mem::take(&mut rec.stored.state), &c).map_err(|e| {
            StoreError::Invalid {
                index,
                code: e.code().as_str(),
                message: e.to_string(),
            }
        })?;
        rec.stored.state = applied.state;
        out.conflicts.extend(applied.lost);
        rec.stored.schema_version = rec.stored.schema_version.max(c.schema_version());
        if let Some(at) = change_at(&c) {
            if rec.stored.updated_at.as_deref().is_none_or(|u| at > u) {
                rec.stored.updated_at = Some(at.to_owned());
            }
        }
        rec.last_row = Some(out.log.len());
        out.log.push(LogRow {
            author: user.to_owned(),
            space_id: rec.stored.space_id.clone(),
            change: c,
        });
    }

    out.records = work
        .into_iter()
        .filter_map(|w| {
            let last_row = w.last_row?;
            let (table, id) = w.key;
            Some(PlannedRecord {
                record: RecordWrite {
                    table,
                    id,
                    new: w.new,
                    author: w.stored.author,
                    space_id: w.stored.space_id,
                    state: w.stored.state,
                    updated_at: w.stored.updated_at,
                    schema_version: w.stored.schema_version,
                    last_seq: 0,
                },
                last_row,
            })
        })
        .collect();
    Ok(out)
}

/// The greatest timestamp a change carries.
fn change_at(c: &Change) -> Option<&str> {
    let fields = c
        .fields
        .iter()
        .flat_map(|f| f.values().map(|v| v.updated_at.as_str()));
    c.updated_at
        .as_deref()
        .into_iter()
        .chain(c.deleted_at.as_deref())
        .chain(fields)
        .max()
}

#[cfg(test)]
mod tests {
    use mana_sync::clock::Hlc;
    use serde_json::{json, Value};

    use super::*;

    fn hlc(ms: u64) -> String {
        Hlc::new(ms, 0, 7).unwrap().to_string()
    }

    fn eid(n: u32) -> String {
        format!("0190a6f0-0000-7000-8000-{n:012}")
    }

    fn valid(v: Value) -> ValidChange {
        ValidChange::new(serde_json::from_value(v).unwrap()).unwrap()
    }

    fn insert(n: u32, id: &str, data: Value, at: u64) -> ValidChange {
        valid(
            json!({"eventId": eid(n), "table": "notes", "id": id, "op": "insert",
            "data": data, "updatedAt": hlc(at)}),
        )
    }

    fn update(n: u32, id: &str, field: &str, value: Value, at: u64) -> ValidChange {
        valid(
            json!({"eventId": eid(n), "table": "notes", "id": id, "op": "update",
            "fields": {field: {"value": value, "updatedAt": hlc(at)}}}),
        )
    }

    fn viewer(user: &str, shared: &[&str], known: bool) -> Viewer {
        let mut v = Viewer::personal(user);
        v.spaces.extend(shared.iter().map(|s| s.to_string()));
        v.memberships_known = known;
        v
    }

    fn key(id: &str) -> RecordKey {
        ("notes".into(), id.into())
    }

    /// A stored record of `author` in `space` whose `title` is `title` at `at`.
    fn stored(author: &str, space: Option<&str>, title: &str, at: u64) -> StoredRecord {
        let c = insert(999, "x", json!({"title": title}), at);
        StoredRecord {
            author: author.into(),
            space_id: space.map(str::to_owned),
            state: RecordState::from_change(&c).unwrap(),
            updated_at: Some(hlc(at)),
            schema_version: 1,
        }
    }

    fn loaded(records: Vec<(&str, StoredRecord)>, known: &[u32]) -> Loaded {
        Loaded {
            records: records.into_iter().map(|(id, r)| (key(id), r)).collect(),
            known_event_ids: known.iter().map(|n| eid(*n)).collect(),
        }
    }

    fn forbidden(r: Result<PushPlan, StoreError>) -> (usize, String) {
        match r {
            Err(StoreError::Forbidden { index, message }) => (index, message),
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[test]
    fn touched_lists_each_record_and_event_once_in_push_order() {
        let cs = vec![
            insert(1, "b", json!({}), 1),
            insert(2, "a", json!({}), 1),
            update(3, "b", "t", json!(1), 2),
            update(3, "b", "t", json!(1), 2),
        ];
        let t = touched(&cs);
        assert_eq!(t.records, vec![key("b"), key("a")]);
        assert_eq!(t.event_ids, vec![eid(1), eid(2), eid(3)]);
    }

    #[test]
    fn a_new_record_is_the_viewers_and_its_own_personal_space_is_stored_as_none() {
        let v = viewer("alice", &[], false);
        let cs = vec![
            insert(
                1,
                "n1",
                json!({"title": "t", "spaceId": "_personal:alice"}),
                1,
            ),
            insert(2, "n2", json!({"title": "u"}), 2),
        ];
        let p = plan(&v, Loaded::default(), cs).unwrap();
        assert_eq!(p.log.len(), 2);
        assert!(p
            .log
            .iter()
            .all(|r| r.author == "alice" && r.space_id.is_none()));
        let ids: Vec<_> = p.records.iter().map(|r| r.record.id.as_str()).collect();
        assert_eq!(ids, ["n1", "n2"]);
        let r = &p.records[0];
        assert!(r.record.new);
        assert_eq!(r.last_row, 0);
        assert_eq!(r.record.author, "alice");
        assert_eq!(r.record.space_id, None);
        assert_eq!(r.record.state.fields["title"].value, json!("t"));
        assert_eq!(r.record.updated_at, Some(hlc(1)));
        assert_eq!((p.duplicates, p.conflicts.len()), (0, 0));
    }

    #[test]
    fn another_users_personal_space_is_forbidden_whatever_the_memberships() {
        for known in [false, true] {
            let v = viewer("alice", &["_personal:bob"], known);
            let cs = vec![
                insert(1, "ok", json!({}), 1),
                insert(2, "n", json!({"spaceId": "_personal:bob"}), 1),
            ];
            let (index, message) = forbidden(plan(&v, Loaded::default(), cs));
            assert_eq!(index, 1);
            assert!(
                message.contains("another user's personal space"),
                "{message}"
            );
        }
        // A guest's space (`_personal:` of no one) is nobody's to push to.
        let v = viewer("alice", &[], false);
        let cs = vec![insert(1, "n", json!({"spaceId": "_personal:"}), 1)];
        assert_eq!(forbidden(plan(&v, Loaded::default(), cs)).0, 0);
    }

    #[test]
    fn a_new_record_in_a_shared_space_needs_membership_once_memberships_are_known() {
        let cs = || vec![insert(1, "n", json!({"spaceId": "team"}), 1)];
        let (_, message) = forbidden(plan(&viewer("alice", &[], true), Loaded::default(), cs()));
        assert!(message.contains("not a member"), "{message}");
        for v in [
            viewer("alice", &["team"], true),
            viewer("alice", &[], false),
        ] {
            let p = plan(&v, Loaded::default(), cs()).unwrap();
            assert_eq!(p.log[0].space_id.as_deref(), Some("team"));
            assert_eq!(p.records[0].record.space_id.as_deref(), Some("team"));
        }
    }

    #[test]
    fn only_the_author_writes_a_record_even_in_a_shared_space() {
        let v = viewer("alice", &["team"], true);
        let l = || loaded(vec![("n", stored("bob", Some("team"), "b", 1))], &[]);
        for c in [
            update(1, "n", "title", json!("mine"), 9),
            valid(
                json!({"eventId": eid(1), "table": "notes", "id": "n", "op": "delete",
                "deletedAt": hlc(9)}),
            ),
        ] {
            let (index, message) = forbidden(plan(&v, l(), vec![c]));
            assert_eq!(index, 0);
            assert!(message.contains("belongs to another user"), "{message}");
        }
        // Even a re-sent change (its eventId already logged) is refused, not acknowledged.
        let l = loaded(vec![("n", stored("bob", Some("team"), "b", 1))], &[1]);
        let c = update(1, "n", "title", json!("mine"), 9);
        assert_eq!(forbidden(plan(&v, l, vec![c])).0, 0);
    }

    #[test]
    fn a_records_space_never_changes() {
        let v = viewer("alice", &["team", "other"], true);
        let l = || loaded(vec![("n", stored("alice", Some("team"), "a", 1))], &[]);
        let moved = update(1, "n", "spaceId", json!("other"), 5);
        match plan(&v, l(), vec![moved]) {
            Err(StoreError::Invalid { index: 0, code, .. }) => assert_eq!(code, "space_immutable"),
            other => panic!("{other:?}"),
        }
        let to_personal = update(1, "n", "spaceId", json!("_personal:alice"), 5);
        assert!(matches!(
            plan(&v, l(), vec![to_personal]),
            Err(StoreError::Invalid { .. })
        ));
        // Naming no space keeps the record's: the log row carries it.
        let p = plan(&v, l(), vec![update(1, "n", "title", json!("b"), 5)]).unwrap();
        assert_eq!(p.log[0].space_id.as_deref(), Some("team"));
        assert!(!p.records[0].record.new);
    }

    #[test]
    fn duplicates_already_logged_or_repeated_in_the_push_are_acknowledged_not_applied() {
        let v = viewer("alice", &[], false);
        let cs = vec![
            insert(1, "n1", json!({"title": "t"}), 1),
            insert(1, "n1", json!({"title": "t"}), 1),
            insert(2, "n2", json!({"title": "old"}), 1),
        ];
        let p = plan(&v, loaded(vec![], &[2]), cs).unwrap();
        assert_eq!(p.duplicates, 2);
        assert_eq!(p.log.len(), 1);
        assert_eq!(p.log[0].change.event_id, eid(1));
        // n2 only had a duplicate: its state is not rewritten.
        let ids: Vec<_> = p.records.iter().map(|r| r.record.id.as_str()).collect();
        assert_eq!(ids, ["n1"]);
    }

    #[test]
    fn conflicts_are_the_merges_lost_fields() {
        let v = viewer("alice", &[], false);
        let l = loaded(vec![("n", stored("alice", None, "server", 10))], &[]);
        let cs = vec![
            update(1, "n", "title", json!("stale"), 5),
            update(2, "n", "body", json!("new"), 6),
        ];
        let p = plan(&v, l, cs).unwrap();
        assert_eq!(p.conflicts.len(), 1);
        let c = &p.conflicts[0];
        assert_eq!((c.id.as_str(), c.field.as_str()), ("n", "title"));
        assert_eq!(
            (&c.was_local, &c.now_server),
            (&json!("stale"), &json!("server"))
        );
        assert_eq!((c.local_at.clone(), c.server_at.clone()), (hlc(5), hlc(10)));
        // Both changes are logged; the newer server value stays; the record's last row is 1.
        assert_eq!(p.log.len(), 2);
        let r = &p.records[0];
        assert_eq!(r.last_row, 1);
        assert_eq!(r.record.state.fields["title"].value, json!("server"));
        assert_eq!(r.record.state.fields["body"].value, json!("new"));
        // updatedAt only grows.
        assert_eq!(r.record.updated_at, Some(hlc(10)));
    }

    #[test]
    fn a_delete_writes_the_tombstone_and_the_greatest_schema_version_is_kept() {
        let v = viewer("alice", &[], false);
        let l = loaded(vec![("n", stored("alice", None, "t", 1))], &[]);
        let cs = vec![
            valid(
                json!({"eventId": eid(1), "table": "notes", "id": "n", "op": "update",
                "schemaVersion": 3, "fields": {"title": {"value": "u", "updatedAt": hlc(2)}}}),
            ),
            valid(
                json!({"eventId": eid(2), "table": "notes", "id": "n", "op": "delete",
                "deletedAt": hlc(4)}),
            ),
        ];
        let p = plan(&v, l, cs).unwrap();
        let r = &p.records[0].record;
        assert_eq!(r.state.deleted_at(), Some(hlc(4).as_str()));
        assert_eq!(r.updated_at, Some(hlc(4)));
        assert_eq!(r.schema_version, 3);
        assert_eq!(p.log[1].change.op, mana_sync::Op::Delete);
    }

    #[test]
    fn a_refusal_anywhere_refuses_the_whole_push() {
        let v = viewer("bob", &[], false);
        let l = loaded(vec![("a1", stored("alice", None, "t", 1))], &[]);
        let cs = vec![
            insert(1, "b1", json!({"title": "ok"}), 1),
            update(2, "a1", "title", json!("hijack"), 9),
        ];
        assert_eq!(forbidden(plan(&v, l, cs)).0, 1);
    }
}
