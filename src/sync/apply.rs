//! Merging server changes into stored records with the shared LWW merge (`merge::apply`).
//! Values are kept as they arrive (ciphertext stays ciphertext), `__fieldMeta` takes the
//! winners' timestamps, and nothing is queued. The driver calls this inside the one
//! transaction that also writes the page's cursor.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::clock::{same_device, Hlc};
use crate::crypto::{is_encrypted, EncryptionRegistry, FieldCipher};
use crate::merge::{self, meta_entry, RecordState};
use crate::protocol::{Change, Conflict, FIELD_ID};
use crate::records::{store_meta, take_meta, RecordError};

/// The outcome for one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The record to store, `None` when the changes changed nothing.
    pub stored: Option<Map<String, Value>>,
    /// Fields this device wrote that a newer remote value overwrote (values as stored).
    pub conflicts: Vec<Conflict>,
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
    for change in changes {
        let (next, found) =
            merge::apply(state, change).map_err(|e| RecordError::InvalidRecord(e.to_string()))?;
        state = next;
        for c in found {
            let local = before.fields.get(&c.field);
            let ours = local.is_some_and(|l| {
                same_device(l.at.node, own_node) && l.at.to_string() == c.local_at
            });
            if ours {
                conflicts.insert(c.field.clone(), c);
            }
        }
    }
    // A later change of the same page may have moved the field on again: report the final
    // server value, and only if the local value really lost.
    let conflicts = conflicts
        .into_values()
        .filter_map(|mut c| {
            let now = state.fields.get(&c.field)?;
            if now.value == c.was_local {
                return None;
            }
            c.now_server = now.value.clone();
            c.server_at = now.at.to_string();
            Some(c)
        })
        .collect();
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
        });
    }
    store_meta(&mut record, &meta);
    Ok(Merged {
        stored: Some(record),
        conflicts,
    })
}

/// The greatest timestamp among `changes` (the clock observes it, so that a later local
/// write beats what was pulled).
pub fn max_hlc(changes: &[Change]) -> Option<Hlc> {
    changes
        .iter()
        .filter_map(|c| merge::field_writes(c).ok())
        .flat_map(|w| w.into_iter().map(|(_, f)| f.at))
        .max()
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
    use serde_json::json;

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
        let remote: Change = serde_json::from_value(json!({
            "eventId": "e2", "table": "notes", "id": "n1", "op": "update",
            "fields": {"title": {"value": "theirs", "updatedAt": hlc(2_000, 42)}},
        }))
        .unwrap();
        // The leader (tab 2) applies it: tab 1's edit was this device's, so it is reported.
        let merged = merge_into(Some(stored.clone()), "n1", &[&remote], tab2).unwrap();
        assert_eq!(merged.conflicts.len(), 1);
        assert_eq!(merged.conflicts[0].was_local, json!("mine"));
        assert_eq!(merged.conflicts[0].now_server, json!("theirs"));
        // Another device's store overwrote nothing of its own.
        let elsewhere = tab_node("other-device", 1);
        let merged = merge_into(Some(stored), "n1", &[&remote], elsewhere).unwrap();
        assert!(merged.conflicts.is_empty());
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
