//! Merging server changes into stored records with the shared LWW merge (`merge::apply`).
//! Values are kept as they arrive (ciphertext stays ciphertext), `__fieldMeta` takes the
//! winners' timestamps, and nothing is queued. The driver calls this inside the one
//! transaction that also writes the page's cursor.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::clock::{same_device, Hlc};
use crate::crypto::{is_encrypted, EncryptionRegistry, FieldCipher};
use crate::field_meta;
use crate::merge::{self, meta_entry, RecordState};
use crate::protocol::{Change, Conflict, Op, FIELD_ID, FIELD_META};
use crate::records::{store_meta, take_meta, RecordError};

/// The outcome for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The record to store, `None` when the changes changed nothing.
    pub stored: Option<Map<String, Value>>,
    /// Fields this device wrote that a newer remote value overwrote, written by a device
    /// that had not seen them (its `base` is another timestamp). Values as stored.
    pub conflicts: Vec<Conflict>,
    /// The same, where the remote write names no `base` (an insert, an older client): lost
    /// only if the local value was still pending ([`unacknowledged`] decides).
    pub if_pending: Vec<Conflict>,
}

/// Applies `changes` (all of one record, in server order) to its stored form. `own_node` is
/// this tab's HLC node: a conflict is reported only where the overwritten value was written on
/// this device, in any of its tabs (a remote value beating another remote value is no one's
/// lost edit).
pub fn merge_into(
    stored: Option<Value>,
    id: &str,
    changes: &[&Change],
    own_node: u64,
) -> Result<Merged, RecordError> {
    if let (None, [only]) = (&stored, changes) {
        if only.op == Op::Insert {
            return Ok(Merged {
                stored: first_insert(id, only)?,
                conflicts: Vec::new(),
                if_pending: Vec::new(),
            });
        }
    }
    merge_general(stored, id, changes, own_node)
}

/// [`merge_into`] through the shared merge state, for any stored record and changes.
fn merge_general(
    stored: Option<Value>,
    id: &str,
    changes: &[&Change],
    own_node: u64,
) -> Result<Merged, RecordError> {
    let (mut record, mut meta) = match stored {
        Some(Value::Object(mut m)) => {
            let meta = take_meta(&mut m)?;
            (m, meta)
        }
        Some(_) => {
            return Err(RecordError::InvalidRecord(
                "stored record is not an object".into(),
            ))
        }
        None => {
            let mut m = Map::new();
            m.insert(FIELD_ID.into(), Value::String(id.into()));
            (m, Map::new())
        }
    };
    let before = RecordState::from_record(&record, &meta)
        .map_err(|e| RecordError::InvalidRecord(e.to_string()))?;
    let mut state = before.clone();
    let mut conflicts: BTreeMap<String, Conflict> = BTreeMap::new();
    let mut if_pending: BTreeMap<String, Conflict> = BTreeMap::new();
    for change in changes {
        let (next, found) =
            merge::apply(state, change).map_err(|e| RecordError::InvalidRecord(e.to_string()))?;
        state = next;
        for c in found {
            let local = before.fields.get(&c.field);
            let ours = local.is_some_and(|l| {
                same_device(l.at.node, own_node) && l.at.to_string() == c.local_at
            });
            if !ours {
                continue;
            }
            let base = change
                .fields
                .as_ref()
                .and_then(|f| f.get(&c.field))
                .and_then(|f| f.base.as_deref());
            match base {
                // The writer replaced our value knowing it: an edit after ours, not a loss.
                Some(b) if b == c.local_at => {}
                Some(_) => {
                    if_pending.remove(&c.field);
                    conflicts.insert(c.field.clone(), c);
                }
                None if conflicts.contains_key(&c.field) => {}
                None => {
                    if_pending.insert(c.field.clone(), c);
                }
            }
        }
    }
    // A later change of the same page may have moved the field on again: report the final
    // server value, and only if the local value really lost.
    let lost = |map: BTreeMap<String, Conflict>| -> Vec<Conflict> {
        map.into_values()
            .filter_map(|mut c| {
                let now = state.fields.get(&c.field)?;
                if now.value == c.was_local {
                    return None;
                }
                c.now_server = now.value.clone();
                c.server_at = now.at.to_string();
                Some(c)
            })
            .collect()
    };
    let (conflicts, if_pending) = (lost(conflicts), lost(if_pending));
    let mut changed = false;
    for (name, f) in &state.fields {
        if before.fields.get(name) != Some(f) {
            record.insert(name.clone(), f.value.clone());
            meta.insert(name.clone(), meta_entry(f.at, f.actor.as_ref()));
            changed = true;
        }
    }
    if !changed {
        return Ok(Merged {
            stored: None,
            conflicts,
            if_pending,
        });
    }
    store_meta(&mut record, &meta);
    Ok(Merged {
        stored: Some(record),
        conflicts,
        if_pending,
    })
}

/// [`merge_into`] of one insert into no stored record (most of a first sync): the record is the
/// insert's field writes ([`merge::field_writes`], the rule every path uses) with one
/// `__fieldMeta` entry for them all, as the general path would store it, without building the
/// merge state (no conflict is possible).
fn first_insert(id: &str, change: &Change) -> Result<Option<Map<String, Value>>, RecordError> {
    let writes =
        merge::field_writes(change).map_err(|e| RecordError::InvalidRecord(e.to_string()))?;
    // Nothing but the id: the general path stores nothing either.
    let Some((_, first)) = writes.first() else {
        return Ok(None);
    };
    let meta = field_meta::uniform(&meta_entry(first.at, first.actor.as_ref()));
    let mut record = Map::new();
    record.insert(FIELD_ID.into(), Value::String(id.into()));
    for (name, write) in writes {
        record.insert(name, write.value);
    }
    record.insert(FIELD_META.into(), meta);
    Ok(Some(record))
}

/// Of the conflicts found while applying, those that cost this device an edit: the overwritten
/// value is still in the pending queue (`pending`: the changes not yet acknowledged). A value
/// the server had acknowledged and another device overwrote later is that device editing after
/// it saw ours — ordinary sync, not a lost edit. (When the other edit reached the server first,
/// the push answer reports the conflict itself.)
pub fn unacknowledged(conflicts: Vec<Conflict>, pending: &[Change]) -> Vec<Conflict> {
    if conflicts.is_empty() {
        return conflicts;
    }
    let mut queued: BTreeSet<(&str, &str, String, String)> = BTreeSet::new();
    for change in pending {
        for (field, state) in merge::field_writes(change).unwrap_or_default() {
            queued.insert((&change.table, &change.id, field, state.at.to_string()));
        }
    }
    conflicts
        .into_iter()
        .filter(|c| {
            let key = (c.collection.as_str(), c.id.as_str());
            queued.contains(&(key.0, key.1, c.field.clone(), c.local_at.clone()))
        })
        .collect()
}

/// The greatest timestamp among `changes` (the clock observes it, so that a later local
/// write beats what was pulled).
pub fn max_hlc(changes: &[Change]) -> Option<Hlc> {
    changes.iter().filter_map(latest_write).max()
}

/// The latest timestamp of the field writes a change carries ([`merge::field_writes`]'s),
/// read without copying their values; `None` for a change it rejects or that writes nothing.
fn latest_write(c: &Change) -> Option<Hlc> {
    let parse = |s: &str| Hlc::parse(s).ok();
    match c.op {
        Op::Insert => {
            let data = c.data.as_ref()?;
            let at = parse(c.updated_at.as_deref()?)?;
            let writes =
                c.space_id.is_some() || data.keys().any(|k| k != FIELD_ID && k != FIELD_META);
            writes.then_some(at)
        }
        Op::Update => {
            let fields = c.fields.as_ref()?;
            let mut max = None;
            for (name, f) in fields {
                if name == FIELD_ID || name == FIELD_META {
                    return None;
                }
                max = max.max(Some(parse(&f.updated_at)?));
            }
            max
        }
        Op::Delete => parse(c.deleted_at.as_deref()?),
        Op::Unknown => None,
    }
}

/// Groups a page's changes by record, keeping server order within a record and the order in
/// which records first appear.
pub fn by_record(changes: &[Change]) -> Vec<(&str, &str, Vec<&Change>)> {
    let mut index: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut out: Vec<(&str, &str, Vec<&Change>)> = Vec::new();
    for c in changes {
        let key = (c.table.as_str(), c.id.as_str());
        match index.get(&key) {
            Some(&i) => out[i].2.push(c),
            None => {
                index.insert(key, out.len());
                out.push((key.0, key.1, vec![c]));
            }
        }
    }
    out
}

/// The conflicts an applied answer reports to the app: one per field (the last), values of
/// encrypted fields decrypted (left as they are while the vault is locked, `cipher` `None`),
/// and none where both sides are one plaintext (two ciphertexts of one value differ).
pub fn open_conflicts(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    conflicts: Vec<Conflict>,
) -> Vec<Conflict> {
    let mut by_field: BTreeMap<(String, String, String), Conflict> = BTreeMap::new();
    for mut c in conflicts {
        if let (true, Some(cipher)) = (registry.is_encrypted_field(&c.collection, &c.field), cipher)
        {
            for v in [&mut c.was_local, &mut c.now_server] {
                if is_encrypted(v) {
                    if let Ok(plain) = cipher.decrypt(&c.collection, &c.id, &c.field, v) {
                        *v = plain;
                    }
                }
            }
        }
        if c.was_local != c.now_server {
            by_field.insert((c.collection.clone(), c.id.clone(), c.field.clone()), c);
        }
    }
    by_field.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::tab_node;
    #[cfg(not(target_arch = "wasm32"))]
    use proptest::strategy::Strategy;
    use serde_json::json;

    fn change(v: Value) -> Change {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_first_insert_is_stored_as_the_shared_merge_stores_it() {
        let at = Hlc::new(1_000, 3, 7).unwrap().to_string();
        let inserts = [
            json!({"eventId": "e", "table": "notes", "id": "n1", "op": "insert",
                   "data": {"id": "n1", "title": "t", "n": 2, "pinned": true},
                   "updatedAt": at, "spaceId": "_personal:u"}),
            // Data naming its space, an actor, a stray __fieldMeta, no spaceId.
            json!({"eventId": "e", "table": "notes", "id": "n1", "op": "insert",
                   "data": {"id": "n1", "spaceId": "s", "__fieldMeta": "x", "a": null},
                   "updatedAt": at, "spaceId": "other", "actor": {"kind": "ai"}}),
            json!({"eventId": "e", "table": "notes", "id": "n1", "op": "insert",
                   "data": {"id": "n1", "a": {"b": [1]}}, "updatedAt": at}),
            // Nothing but the id: nothing stored.
            json!({"eventId": "e", "table": "notes", "id": "n1", "op": "insert",
                   "data": {"id": "n1"}, "updatedAt": at}),
        ];
        for v in inserts {
            let c = change(v);
            let fast = merge_into(None, "n1", &[&c], 1).unwrap();
            assert_eq!(fast, merge_general(None, "n1", &[&c], 1).unwrap(), "{c:?}");
        }
        let bad = change(
            json!({"eventId": "e", "table": "notes", "id": "n1", "op": "insert",
                                "data": {"id": "n1", "a": 1}, "updatedAt": "nope"}),
        );
        assert!(merge_into(None, "n1", &[&bad], 1).is_err());
        assert!(merge_general(None, "n1", &[&bad], 1).is_err());
    }

    // proptest is a native dev-dependency only.
    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        /// The first-insert shortcut and the general merge agree on any insert into no stored
        /// record, and `max_hlc` on any change: random field names (the reserved ones among
        /// them), values, spaces, actors and timestamps, valid or not.
        #[test]
        fn the_first_insert_shortcut_agrees_with_the_merge(
            fields in proptest::collection::btree_map(
                proptest::sample::select(vec!["id", "__fieldMeta", "spaceId", "a", "b", "deletedAt"]),
                proptest::prop_oneof![
                    proptest::strategy::Just(Value::Null),
                    proptest::prelude::any::<i64>().prop_map(Value::from),
                    "[a-z]{0,3}".prop_map(Value::from),
                ],
                0..6,
            ),
            space in proptest::option::of("[a-z_:]{1,6}"),
            actor in proptest::option::of(proptest::strategy::Just(json!({"kind": "ai"}))),
            ms in 0u64..2_000,
            valid in proptest::prelude::any::<bool>(),
        ) {
            let at = if valid { Hlc::new(ms, 1, 5).unwrap().to_string() } else { format!("t{ms}") };
            let mut data: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            data.insert("id".into(), json!("n1"));
            let mut v = json!({"eventId": "e", "table": "notes", "id": "n1", "op": "insert",
                               "data": data, "updatedAt": at});
            if let Some(space) = space {
                v["spaceId"] = json!(space);
            }
            if let Some(actor) = actor {
                v["actor"] = actor;
            }
            let c = change(v);
            let fast = merge_into(None, "n1", &[&c], 1);
            let general = merge_general(None, "n1", &[&c], 1);
            match (&fast, &general) {
                (Ok(f), Ok(g)) => proptest::prop_assert_eq!(f, g),
                (Err(_), Err(_)) => {}
                _ => proptest::prop_assert!(false, "{fast:?} vs {general:?} for {c:?}"),
            }
            let via_writes = merge::field_writes(&c)
                .ok()
                .and_then(|w| w.into_iter().map(|(_, f)| f.at).max());
            proptest::prop_assert_eq!(max_hlc(std::slice::from_ref(&c)), via_writes);
        }
    }

    #[test]
    fn max_hlc_is_the_latest_field_write() {
        let hlc = |ms: u64| Hlc::new(ms, 0, 9).unwrap().to_string();
        let changes = [
            json!({"eventId": "e", "table": "t", "id": "a", "op": "insert",
                   "data": {"id": "a", "x": 1}, "updatedAt": hlc(5)}),
            json!({"eventId": "e", "table": "t", "id": "a", "op": "insert",
                   "data": {"id": "a"}, "updatedAt": hlc(90)}),
            json!({"eventId": "e", "table": "t", "id": "a", "op": "insert",
                   "data": {"id": "a"}, "updatedAt": hlc(7), "spaceId": "s"}),
            json!({"eventId": "e", "table": "t", "id": "a", "op": "update",
                   "fields": {"x": {"value": 1, "updatedAt": hlc(8)},
                              "y": {"value": 2, "updatedAt": hlc(6)}}}),
            json!({"eventId": "e", "table": "t", "id": "a", "op": "update",
                   "fields": {"x": {"value": 1, "updatedAt": hlc(95)}, "id": {"value": 1, "updatedAt": hlc(1)}}}),
            json!({"eventId": "e", "table": "t", "id": "a", "op": "delete", "deletedAt": hlc(9)}),
            json!({"eventId": "e", "table": "t", "id": "a", "op": "delete", "deletedAt": "bad"}),
        ];
        let changes: Vec<Change> = changes.into_iter().map(change).collect();
        let via_writes = |cs: &[Change]| {
            cs.iter()
                .filter_map(|c| merge::field_writes(c).ok())
                .flat_map(|w| w.into_iter().map(|(_, f)| f.at))
                .max()
        };
        for i in 0..changes.len() {
            let one = &changes[i..=i];
            assert_eq!(max_hlc(one), via_writes(one), "{:?}", one[0]);
        }
        assert_eq!(max_hlc(&changes), Hlc::parse(&hlc(9)).ok());
        assert_eq!(max_hlc(&changes), via_writes(&changes));
    }

    #[test]
    fn only_a_lost_edit_still_pending_is_a_conflict() {
        let conflict = |id: &str, at: &str| Conflict {
            collection: "tasks".into(),
            id: id.into(),
            field: "title".into(),
            was_local: json!("Buy milk"),
            now_server: json!("Buy oat milk"),
            local_at: at.into(),
            server_at: "later".into(),
        };
        let at = Hlc::new(1_000, 0, 7).unwrap().to_string();
        let pending: Change = serde_json::from_value(json!({
            "eventId": "e1", "table": "tasks", "id": "t1", "op": "update",
            "fields": {"title": {"value": "Buy milk", "updatedAt": at}},
        }))
        .unwrap();
        let found = vec![conflict("t1", &at), conflict("t2", &at)];
        // t2's edit was acknowledged (not pending): the other device edited after seeing it.
        let lost = unacknowledged(found.clone(), std::slice::from_ref(&pending));
        assert_eq!(lost, vec![conflict("t1", &at)]);
        assert!(unacknowledged(found, &[]).is_empty());
        // A newer pending edit of the field is not the value that lost.
        let newer = Hlc::new(2_000, 0, 7).unwrap().to_string();
        assert!(unacknowledged(vec![conflict("t1", &newer)], &[pending]).is_empty());
    }

    #[test]
    fn a_write_of_another_tab_of_this_device_that_lost_is_a_conflict() {
        let hlc = |ms: u64, node: u64| Hlc::new(ms, 0, node).unwrap().to_string();
        let (tab1, tab2) = (tab_node("device", 1), tab_node("device", 2));
        let insert: Change = serde_json::from_value(json!({
            "eventId": "e1", "table": "notes", "id": "n1", "op": "insert",
            "data": {"id": "n1", "title": "mine"}, "updatedAt": hlc(1_000, tab1),
        }))
        .unwrap();
        let stored = merge_into(None, "n1", &[&insert], tab1).unwrap().stored;
        let stored = Value::Object(stored.unwrap());
        let remote = |base: Option<String>| -> Change {
            let mut field = json!({"value": "theirs", "updatedAt": hlc(2_000, 42)});
            if let Some(b) = base {
                field["base"] = json!(b);
            }
            serde_json::from_value(json!({
                "eventId": "e2", "table": "notes", "id": "n1", "op": "update",
                "fields": {"title": field},
            }))
            .unwrap()
        };
        // Written by a device that had seen an older value: the leader (tab 2) reports tab 1's
        // edit as this device's loss.
        let concurrent = remote(Some(hlc(500, 42)));
        let merged = merge_into(Some(stored.clone()), "n1", &[&concurrent], tab2).unwrap();
        assert_eq!(merged.conflicts.len(), 1);
        assert_eq!(merged.conflicts[0].was_local, json!("mine"));
        assert_eq!(merged.conflicts[0].now_server, json!("theirs"));
        // Written by a device that had seen ours: ordinary sync.
        let after_ours = remote(Some(hlc(1_000, tab1)));
        let merged = merge_into(Some(stored.clone()), "n1", &[&after_ours], tab2).unwrap();
        assert!(merged.conflicts.is_empty() && merged.if_pending.is_empty());
        // No base: a loss only if ours was still pending.
        let merged = merge_into(Some(stored.clone()), "n1", &[&remote(None)], tab2).unwrap();
        assert!(merged.conflicts.is_empty());
        assert_eq!(merged.if_pending.len(), 1);
        // Another device's store overwrote nothing of its own.
        let elsewhere = tab_node("other-device", 1);
        let merged = merge_into(Some(stored), "n1", &[&concurrent], elsewhere).unwrap();
        assert!(merged.conflicts.is_empty() && merged.if_pending.is_empty());
    }

    #[test]
    fn conflicts_are_decrypted_deduplicated_and_dropped_when_equal() {
        let registry = EncryptionRegistry::new([("notes".to_string(), vec!["title".to_string()])]);
        let cipher = FieldCipher::new(&[1; 32]);
        let seal = |v: &str, n: u8| {
            Value::String(cipher.encrypt("notes", "n1", "title", &json!(v), [n; 12]))
        };
        let conflict = |field: &str, was: Value, now: Value| Conflict {
            collection: "notes".into(),
            id: "n1".into(),
            field: field.into(),
            was_local: was,
            now_server: now,
            local_at: "a".into(),
            server_at: "b".into(),
        };
        let found = vec![
            conflict("title", seal("mine", 1), seal("theirs", 2)),
            conflict("title", seal("mine", 3), seal("final", 4)),
            conflict("body", json!("x"), json!("y")),
            conflict("body2", json!("same"), json!("same")),
        ];
        let open = open_conflicts(&registry, Some(&cipher), found.clone());
        assert_eq!(open.len(), 2);
        assert_eq!(
            (open[1].was_local.clone(), open[1].now_server.clone()),
            (json!("mine"), json!("final"))
        );
        // One plaintext under two nonces is no conflict.
        let same = vec![conflict("title", seal("v", 5), seal("v", 6))];
        assert!(open_conflicts(&registry, Some(&cipher), same).is_empty());
        // Locked: values stay ciphertext.
        let locked = open_conflicts(&registry, None, found);
        assert!(is_encrypted(&locked[1].was_local));
    }
}
