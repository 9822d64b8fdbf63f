//! How a record's hidden `__fieldMeta` (`{ field: { at, actor? } }`, docs/client.md) is kept in
//! IndexedDB: as compact JSON text, `[default, overrides]`, where `default` is the entry most
//! fields share and `overrides` holds the others (`null` = a field of the record without
//! meta, never the case for records written through this crate).
//!
//! Why: a put writes every field with one timestamp, so the object form repeats one entry per
//! field. The browser clones and stores that at about the cost of the record itself again
//! (BENCHMARKS.md, "The stored shape"); one short string costs next to nothing. The encoding
//! is lossless, and the object form (stores written before) still decodes.

use serde_json::{Map, Value};

use crate::protocol::{FIELD_ID, FIELD_META};

/// Encodes `meta` for a record whose stored fields are `record` (without `__fieldMeta`).
pub fn encode(record: &Map<String, Value>, meta: &Map<String, Value>) -> Value {
    let fields = || record.keys().filter(|k| is_data_field(k));
    // The entry shared by most of the record's fields becomes the default.
    let mut counts: Vec<(&Value, usize)> = Vec::new();
    for entry in fields().filter_map(|k| meta.get(k)) {
        match counts.iter_mut().find(|(e, _)| *e == entry) {
            Some((_, n)) => *n += 1,
            None => counts.push((entry, 1)),
        }
    }
    let default = counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .map(|(e, _)| (*e).clone())
        .unwrap_or(Value::Null);
    let mut overrides = Map::new();
    for k in fields() {
        match meta.get(k) {
            Some(e) if *e == default => {}
            Some(e) => {
                overrides.insert(k.clone(), e.clone());
            }
            None => {
                overrides.insert(k.clone(), Value::Null);
            }
        }
    }
    for (k, e) in meta {
        if !record.contains_key(k) || !is_data_field(k) {
            overrides.insert(k.clone(), e.clone());
        }
    }
    let text = serde_json::to_string(&(default, overrides)).expect("JSON values serialise");
    Value::String(text)
}

/// The encoding when every field of the record has `entry` (a `put`): the same value as
/// [`encode`] gives, without building the map.
pub fn uniform(entry: &Value) -> Value {
    let text = serde_json::to_string(&(entry, Map::new())).expect("JSON values serialise");
    Value::String(text)
}

/// Decodes a stored `__fieldMeta` for the record it was stored with (without `__fieldMeta`).
/// `None` when the stored value is neither form.
pub fn decode(record: &Map<String, Value>, stored: &Value) -> Option<Map<String, Value>> {
    match stored {
        Value::Null => Some(Map::new()),
        Value::Object(meta) => Some(meta.clone()),
        Value::String(text) => {
            let (default, overrides): (Value, Map<String, Value>) =
                serde_json::from_str(text).ok()?;
            if !(default.is_null() || default.is_object()) {
                return None;
            }
            let mut meta = Map::new();
            for k in record.keys().filter(|k| is_data_field(k)) {
                let entry = overrides.get(k).unwrap_or(&default);
                if !entry.is_null() {
                    meta.insert(k.clone(), entry.clone());
                }
            }
            for (k, e) in overrides {
                if !e.is_null() && !meta.contains_key(&k) {
                    meta.insert(k, e);
                }
            }
            Some(meta)
        }
        _ => None,
    }
}

/// Whether a record's field carries meta (all but `id` and `__fieldMeta` itself).
pub fn is_data_field(name: &str) -> bool {
    name != FIELD_ID && name != FIELD_META
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a_put_encodes_to_one_entry() {
        let record = obj(json!({"id": "n1", "title": "t", "body": "b", "spaceId": "s"}));
        let at = json!({"at": "2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60"});
        let meta = obj(json!({"title": at, "body": at, "spaceId": at}));
        let stored = encode(&record, &meta);
        assert_eq!(
            stored,
            json!(r#"[{"at":"2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60"},{}]"#)
        );
        assert_eq!(uniform(&at), stored);
        assert_eq!(decode(&record, &stored), Some(meta));
    }

    #[test]
    fn odd_shapes_round_trip() {
        let record = obj(json!({"id": "n1", "a": 1, "b": 2, "c": 3}));
        let meta = obj(json!({
            "a": {"at": "x"}, "b": {"at": "y", "actor": {"kind": "ai"}}, "gone": {"at": "z"}
        }));
        let stored = encode(&record, &meta);
        assert_eq!(decode(&record, &stored), Some(meta));
        assert_eq!(
            decode(&record, &encode(&record, &Map::new())),
            Some(Map::new())
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest::proptest! {
        /// Lossless for any record fields and any meta, including fields on one side only.
        #[test]
        fn decode_inverts_encode(
            fields in proptest::collection::btree_set("[a-e]", 0..5),
            meta in proptest::collection::btree_map("[a-g]", 0..4u8, 0..6),
        ) {
            let record: Map<String, Value> =
                fields.into_iter().map(|f| (f, json!(1))).chain([("id".into(), json!("r"))]).collect();
            let meta: Map<String, Value> = meta
                .into_iter()
                .map(|(f, e)| (f, if e == 3 { json!({"at": "h", "actor": {"k": e}}) } else { json!({"at": e}) }))
                .collect();
            proptest::prop_assert_eq!(decode(&record, &encode(&record, &meta)), Some(meta));
        }
    }

    #[test]
    fn the_object_form_and_garbage() {
        let record = obj(json!({"id": "n1", "a": 1}));
        let meta = json!({"a": {"at": "x"}});
        assert_eq!(decode(&record, &meta), Some(obj(meta.clone())));
        assert_eq!(decode(&record, &json!("not json")), None);
        assert_eq!(decode(&record, &json!("[1, {}]")), None);
        assert_eq!(decode(&record, &json!(7)), None);
    }
}
