//! The export's text path (`export_row::write_export_row`) writes exactly the row the value
//! path (`records::export_row`) builds, or fails with the same error, for records the store
//! wrote and for stored shapes it only reads (old `__fieldMeta` form, escapes, garbage).
#![cfg(not(target_arch = "wasm32"))]

use mana_sync::clock::Clock;
use mana_sync::crypto::{EncryptionRegistry, FieldCipher, RandomPool};
use mana_sync::export_row::write_export_row;
use mana_sync::records::{export_row, Writer};
use mana_sync::schema::StoreConfig;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

mod writes;

fn config() -> StoreConfig {
    serde_json::from_value(
        json!({"name": "t", "userId": "u1", "apps": {"notes": {"collections": {
            "notes": {"encrypted": ["title", "content"]}, "tags": {}
        }}}}),
    )
    .unwrap()
}

/// Both paths over one stored record's JSON text: the rows they give (as values, and the
/// text path's bytes) or their errors.
fn both(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    collection: &str,
    stored: &str,
) -> (Result<Value, String>, Result<Value, String>) {
    let by_value = serde_json::from_str::<Value>(stored)
        .map_err(|e| format!("invalid_record: {e}"))
        .and_then(|v| {
            export_row(registry, cipher, collection, v)
                .map(Value::Object)
                .map_err(|e| format!("{}: {e}", e.code()))
        });
    let mut out = b"prefix".to_vec();
    let by_text = write_export_row(registry, cipher, collection, stored, &mut out)
        .map_err(|e| format!("{}: {e}", e.code()));
    let by_text = by_text.map(|()| {
        let line = &out[b"prefix".len()..];
        assert!(
            !line.contains(&b'\n'),
            "one line: {}",
            String::from_utf8_lossy(line)
        );
        serde_json::from_slice(line).expect("the text path writes JSON")
    });
    if by_text.is_err() {
        assert_eq!(out, b"prefix", "nothing written on an error");
    }
    (by_value, by_text)
}

fn assert_same(cipher: Option<&FieldCipher>, collection: &str, stored: &str) {
    let registry = config().registry();
    let (by_value, by_text) = both(&registry, cipher, collection, stored);
    match (&by_value, &by_text) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "{stored}"),
        // The value path's parse error of a non-JSON text is worded by the caller.
        (Err(a), Err(b)) if a.starts_with("invalid_record: ") => {
            assert!(b.starts_with("invalid_record"), "{stored}: {a} vs {b}")
        }
        _ => assert_eq!(by_value, by_text, "{stored}"),
    }
}

struct Device {
    cfg: StoreConfig,
    clock: Clock,
    random: RandomPool,
    cipher: FieldCipher,
}

impl Device {
    fn new() -> Device {
        Device {
            cfg: config(),
            clock: Clock::new(1),
            random: RandomPool::default(),
            cipher: FieldCipher::new(&[3; 32]),
        }
    }

    fn write<T>(&mut self, f: impl FnOnce(&mut Writer) -> T) -> T {
        let registry = self.cfg.registry();
        let mut w = Writer {
            config: &self.cfg,
            registry: &registry,
            cipher: Some(&self.cipher),
            clock: &mut self.clock,
            random: &mut self.random,
            wall_millis: 1_795_600_800_000,
            actor: None,
        };
        f(&mut w)
    }
}

fn text(stored: &Map<String, Value>) -> String {
    serde_json::to_string(stored).unwrap()
}

#[test]
fn records_the_store_wrote() {
    let mut d = Device::new();
    let put = d
        .write(|w| {
            w.put(
                "notes",
                json!({"id": "n1", "title": "a \"quoted\"\ttitle", "content": {"nested": [1, 2.5, null]},
                       "pinned": true, "updatedAt": 1_700_000_000_000u64, "tags": ["x"]}),
            )
        })
        .unwrap();
    let stored = Value::Object(put.stored.clone());
    let updated = d
        .write(|w| {
            w.update(
                "notes",
                Some(stored.clone()),
                "n1",
                json!({"title": "b", "extra": 1e21}),
            )
        })
        .unwrap();
    let deleted = d
        .write(|w| w.delete("notes", Some(Value::Object(updated.stored.clone())), "n1"))
        .unwrap();
    let plain = d
        .write(|w| w.put("tags", json!({"id": "t1", "name": "ünïcode ✓"})))
        .unwrap();
    for s in [&put.stored, &updated.stored, &deleted.stored, &plain.stored] {
        let cipher = d.cipher.clone();
        assert_same(Some(&cipher), "notes", &text(s));
        assert_same(Some(&cipher), "tags", &text(s));
        // Locked: the same error, or the same row when nothing is encrypted.
        assert_same(None, "notes", &text(s));
        assert_same(None, "tags", &text(s));
        // Under another key: decrypt_failed naming the same field.
        assert_same(Some(&FieldCipher::new(&[9; 32])), "notes", &text(s));
    }
    // The common row takes the text path: its fields in stored order, `__fieldMeta` last (the
    // value path sorts it among them).
    let registry = d.cfg.registry();
    let mut out = Vec::new();
    write_export_row(
        &registry,
        Some(&d.cipher),
        "notes",
        &text(&put.stored),
        &mut out,
    )
    .unwrap();
    let line = String::from_utf8(out).unwrap();
    assert!(
        line.starts_with(r#"{"content":{"nested":[1,2.5,null]},"id":"n1","#),
        "{line}"
    );
    assert!(line.find("__fieldMeta") > line.find("updatedAt"), "{line}");
}

#[test]
fn shapes_the_store_only_reads() {
    let cipher = FieldCipher::new(&[3; 32]);
    let c = Some(&cipher);
    let at = "2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60";
    for stored in [
        // The object form of `__fieldMeta`, none, null, garbage, a bad default.
        format!(r#"{{"id":"n1","a":1,"__fieldMeta":{{"a":{{"at":"{at}"}}}}}}"#),
        r#"{"id":"n1","a":1}"#.to_string(),
        r#"{"id":"n1","a":1,"__fieldMeta":null}"#.to_string(),
        r#"{"id":"n1","a":1,"__fieldMeta":"not json"}"#.to_string(),
        r#"{"id":"n1","a":1,"__fieldMeta":"[1,{}]"}"#.to_string(),
        r#"{"id":"n1","a":1,"__fieldMeta":7}"#.to_string(),
        // Overrides: a field without meta, meta of a field the record lacks, an actor.
        format!(
            r#"{{"id":"n1","a":1,"b":2,"__fieldMeta":"[{{\"at\":\"{at}\"}},{{\"a\":null,\"gone\":{{\"at\":\"x\",\"actor\":{{\"k\":1}}}}}}]"}}"#
        ),
        format!(r#"{{"id":"n1","__fieldMeta":"[null,{{\"z\":{{\"at\":\"{at}\"}}}}]"}}"#),
        format!(
            r#"{{"id":"n1","a":1,"__fieldMeta":"[{{\"at\":\"{at}\"}},{{\"id\":{{\"at\":\"y\"}},\"a\":null}}]"}}"#
        ),
        // Duplicate keys (the last one counts), in the record and in the overrides.
        r#"{"id":"n1","a":1,"a":2}"#.to_string(),
        format!(
            r#"{{"id":"n1","a":1,"__fieldMeta":"[null,{{\"a\":{{\"at\":\"{at}\"}},\"a\":null}}]"}}"#
        ),
        // Escapes: in a key, a value, a lone surrogate, a newline inside the meta text.
        r#"{"id":"n1","a\"b":1}"#.to_string(),
        r#"{"id":"n\\1","title":"x\ny"}"#.to_string(),
        r#"{"id":"n1","a":"\ud800"}"#.to_string(),
        r#"{"id":"n1","a":"\u00e9"}"#.to_string(),
        format!(r#"{{"id":"n1","a":1,"__fieldMeta":"[{{\"at\":\"{at}\"}},\n{{}}]"}}"#),
        // Not a record: not an object, not JSON, empty, an id that is not a string.
        r#"[1,2]"#.to_string(),
        r#"{"id":"n1","#.to_string(),
        "{}".to_string(),
        r#"{"id":5,"title":"plain"}"#.to_string(),
        r#"{"id":"n1","title":"enc:1:!!!"}"#.to_string(),
        r#"{"id":"n1","title":"enc:1:"}"#.to_string(),
        r#"{"id":"n1","title":7,"content":null}"#.to_string(),
        r#"{"id":"n1","title":"en\u0063:1:AAAA"}"#.to_string(),
    ] {
        assert_same(c, "notes", &stored);
        assert_same(None, "notes", &stored);
    }
}

proptest! {
    /// Any sequence of writes through the store's own writer, exported both ways.
    #[test]
    fn the_text_path_equals_the_value_path(
        ops in writes::writes(8),
    ) {
        let mut d = Device::new();
        let mut stored: Option<Value> = None;
        for op in ops {
            let w = d.write(|w| op.apply(w, &stored));
            if let Ok(w) = w {
                stored = Some(Value::Object(w.stored));
            }
            if let Some(Value::Object(m)) = &stored {
                let cipher = d.cipher.clone();
                assert_same(Some(&cipher), "notes", &text(m));
                assert_same(None, "notes", &text(m));
            }
        }
    }
}

#[test]
fn a_sealed_value_that_is_not_json_text_fails_on_both_paths() {
    let cipher = FieldCipher::new(&[3; 32]);
    let registry = config().registry();
    // Not UTF-8 inside a string, not JSON, a byte-order mark.
    for plain in [&b"\"\xff\""[..], b"{nope", b"\xef\xbb\xbf1"] {
        let sealed = cipher.encrypt_text("notes", "n1", "title", plain.to_vec(), [7; 12]);
        let stored = json!({"id": "n1", "title": sealed}).to_string();
        let (by_value, by_text) = both(&registry, Some(&cipher), "notes", &stored);
        for result in [by_value, by_text] {
            assert!(
                result
                    .as_ref()
                    .is_err_and(|e| e.starts_with("decrypt_failed")),
                "{plain:?}: {result:?}"
            );
        }
    }
}
