//! `__fieldMeta` decode. Input: JSON `[record, stored]` (any stored value), or, after a leading
//! `#`, the raw text of a stored compact string for a fixed record. Whatever decodes, with object
//! entries only, must encode and decode back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mana_sync::field_meta::{decode, encode};
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let (record, stored) = if let Some(rest) = data.strip_prefix(b"#") {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let record = json!({"id": "r1", "title": "t", "body": "b", "n": 1});
        (record, Value::String(text.to_owned()))
    } else {
        let Ok(Value::Array(mut pair)) = serde_json::from_slice::<Value>(data) else {
            return;
        };
        if pair.len() != 2 {
            return;
        }
        let stored = pair.pop().unwrap();
        (pair.pop().unwrap(), stored)
    };
    let Value::Object(record) = record else {
        return;
    };
    let Some(meta) = decode(&record, &stored) else {
        return;
    };
    if meta.values().all(Value::is_object) {
        let encoded = encode(&record, &meta);
        let back: Option<Map<String, Value>> = decode(&record, &encoded);
        assert_eq!(back.as_ref(), Some(&meta), "encoded as {encoded}");
    }
});
