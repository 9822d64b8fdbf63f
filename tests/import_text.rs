//! The import's text path (`Writer::import_new_row_text`) gives what `Writer::import_row`
//! gives for a row whose record is not stored here — the stored record, the pending change
//! (its text exactly as `Change` serialises), the clock — or leaves the row to it and
//! changes nothing.
#![cfg(not(target_arch = "wasm32"))]

use mana_sync::clock::Clock;
use mana_sync::crypto::{FieldCipher, RandomPool};
use mana_sync::field_meta;
use mana_sync::records::{export_row, open_fields, PreparedText, PreparedWrite, Writer};
use mana_sync::schema::StoreConfig;
use mana_sync::Change;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

mod writes;

fn config(user: &str) -> StoreConfig {
    serde_json::from_value(
        json!({"name": "t", "userId": user, "apps": {"notes": {"collections": {
            "notes": {"encrypted": ["title", "content"]}, "tags": {}
        }}}}),
    )
    .unwrap()
}

struct Device {
    cfg: StoreConfig,
    clock: Clock,
    random: RandomPool,
    cipher: Option<FieldCipher>,
}

impl Device {
    fn new(user: &str, key: u8) -> Device {
        Device {
            cfg: config(user),
            clock: Clock::new(1),
            random: RandomPool::default(),
            cipher: Some(FieldCipher::new(&[key; 32])),
        }
    }

    fn write<T>(&mut self, actor: Option<&Value>, f: impl FnOnce(&mut Writer) -> T) -> T {
        let registry = self.cfg.registry();
        let mut w = Writer {
            config: &self.cfg,
            registry: &registry,
            cipher: self.cipher.as_ref(),
            clock: &mut self.clock,
            random: &mut self.random,
            wall_millis: 1_795_600_800_000,
            actor,
        };
        f(&mut w)
    }

    /// A stored record with its encrypted fields opened and its meta decoded.
    fn opened(&self, collection: &str, mut record: Map<String, Value>) -> Map<String, Value> {
        open_fields(
            &self.cfg.registry(),
            self.cipher.as_ref(),
            collection,
            &mut record,
        )
        .unwrap();
        if let Some(stored) = record.remove("__fieldMeta") {
            let meta = field_meta::decode(&record, &stored).expect("stored meta decodes");
            record.insert("__fieldMeta".into(), Value::Object(meta));
        }
        record
    }
}

/// Imports `row` (its text) into a device holding no record both ways, from the same state,
/// and checks they agree; returns whether the text path took it.
fn assert_same(device: &Device, collection: &str, row: &str, actor: Option<&Value>) -> bool {
    let mut by_value = Device {
        cfg: device.cfg.clone(),
        clock: device.clock.clone(),
        random: RandomPool::default(),
        cipher: device.cipher.clone(),
    };
    let mut by_text = Device {
        random: RandomPool::default(),
        clock: device.clock.clone(),
        cfg: device.cfg.clone(),
        cipher: device.cipher.clone(),
    };
    let parsed: Map<String, Value> = serde_json::from_str(row).unwrap();
    let slow = by_value.write(actor, |w| w.import_row(collection, None, parsed));
    let fast = by_text.write(actor, |w| w.import_new_row_text(collection, row));
    let Some(fast) = fast else {
        assert_eq!(
            by_text.clock, device.clock,
            "left alone, nothing observed: {row}"
        );
        return false;
    };
    let fast: PreparedText = fast.unwrap_or_else(|e| panic!("{row}: {e}"));
    let slow: PreparedWrite = slow
        .unwrap_or_else(|e| panic!("{row}: the value path fails: {e}"))
        .expect("the value path writes it too");
    assert_eq!(by_text.clock, by_value.clock, "{row}");

    let stored: Map<String, Value> = serde_json::from_str(&fast.stored).unwrap();
    assert_eq!(
        by_text.opened(collection, stored),
        by_value.opened(collection, slow.stored.clone()),
        "{row}"
    );

    // The change: its text is `Change`'s own serialisation, and it equals the value path's
    // but for the event id and the nonces.
    let change: Change = serde_json::from_str(&fast.change).unwrap();
    assert_eq!(
        serde_json::to_string(&change).unwrap(),
        fast.change,
        "{row}"
    );
    change.validate().unwrap();
    let normalise = |d: &Device, mut c: Change| {
        c.event_id = String::new();
        c.data = c.data.map(|data| d.opened(collection, data));
        c
    };
    assert_eq!(
        normalise(&by_text, change),
        normalise(&by_value, slow.change),
        "{row}"
    );
    true
}

/// Rows as `exportBackup` writes them, from records written on another device.
fn exported(d: &mut Device, collection: &str, stored: &Map<String, Value>) -> String {
    let row = export_row(
        &d.cfg.registry(),
        d.cipher.as_ref(),
        collection,
        Value::Object(stored.clone()),
    )
    .unwrap();
    serde_json::to_string(&row).unwrap()
}

#[test]
fn rows_of_puts_take_the_text_path() {
    let mut a = Device::new("u1", 3);
    let ai = json!({"kind": "ai"});
    let put = a
        .write(None, |w| {
            w.put(
                "notes",
                json!({"id": "n1", "title": "a \"quoted\"\ttitle", "content": {"nested": [1, 2.5, null]},
                       "pinned": true, "updatedAt": 1_700_000_000_000u64, "tags": ["x"], "gone": null}),
            )
        })
        .unwrap();
    let by_ai = a
        .write(Some(&ai), |w| {
            w.put("notes", json!({"id": "n2", "title": null, "content": "c"}))
        })
        .unwrap();
    let plain = a
        .write(None, |w| {
            w.put("tags", json!({"id": "t1", "name": "ünïcode ✓"}))
        })
        .unwrap();
    let rows = [
        ("notes", exported(&mut a, "notes", &put.stored)),
        ("notes", exported(&mut a, "notes", &by_ai.stored)),
        ("tags", exported(&mut a, "tags", &plain.stored)),
    ];
    // Into another account (its key, its personal space), with and without the writer's actor.
    let b = Device::new("u2", 4);
    for (collection, row) in &rows {
        assert!(assert_same(&b, collection, row, None), "{row}");
        assert!(assert_same(&b, collection, row, Some(&ai)), "{row}");
    }
    // A clock ahead of the rows, and a shared space (not encrypted, even when locked).
    let mut ahead = Device::new("u2", 4);
    ahead.clock.observe(
        &"2099-01-01T00:00:00.000Z-0000-0000000000000001"
            .parse()
            .unwrap(),
    );
    assert!(assert_same(&ahead, "notes", &rows[0].1, None));
    let shared = rows[0].1.replace("_personal:u1", "team-1");
    assert!(assert_same(&b, "notes", &shared, None));
    let mut locked = Device::new("u2", 4);
    locked.cipher = None;
    assert!(assert_same(&locked, "notes", &shared, None));
    assert!(assert_same(&locked, "tags", &rows[2].1, None));
    // Locked, a personal encrypted row is `import_row`'s to refuse.
    assert!(!assert_same_or_refused(&locked, "notes", &rows[0].1));
}

/// Like [`assert_same`] for a row the value path refuses: the text path must leave it.
fn assert_same_or_refused(device: &Device, collection: &str, row: &str) -> bool {
    let mut d = Device {
        cfg: device.cfg.clone(),
        clock: device.clock.clone(),
        random: RandomPool::default(),
        cipher: device.cipher.clone(),
    };
    let parsed: Map<String, Value> = serde_json::from_str(row).unwrap();
    if d.write(None, |w| w.import_row(collection, None, parsed))
        .is_err()
    {
        let fast = d.write(None, |w| w.import_new_row_text(collection, row));
        assert!(fast.is_none(), "{row}");
        return false;
    }
    assert_same(device, collection, row, None)
}

#[test]
fn rows_it_leaves_to_import_row() {
    let b = Device::new("u2", 4);
    let at = "2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60";
    let later = "2026-11-25T10:00:01.000Z-0000-9f2c4e1a7b3d5c60";
    let meta = |fields: &[&str], at: &str| {
        fields
            .iter()
            .map(|f| format!(r#""{f}":{{"at":"{at}"}}"#))
            .collect::<Vec<_>>()
            .join(",")
    };
    let taken = format!(
        r#"{{"id":"n1","spaceId":"_personal:u1","title":"t","__fieldMeta":{{{}}}}}"#,
        meta(&["spaceId", "title"], at)
    );
    assert!(assert_same(&b, "notes", &taken, None));
    for row in [
        // Fields written at different times (an update), or by different actors.
        format!(
            r#"{{"id":"n1","spaceId":"_personal:u1","title":"t","__fieldMeta":{{{},{}}}}}"#,
            meta(&["spaceId"], at),
            meta(&["title"], later)
        ),
        format!(
            r#"{{"id":"n1","spaceId":"s","title":"t","__fieldMeta":{{"spaceId":{{"at":"{at}"}},"title":{{"at":"{at}","actor":{{"k":1}}}}}}}}"#
        ),
        // No spaceId, no meta, a field without meta, an entry without a string `at`.
        format!(
            r#"{{"id":"n1","title":"t","__fieldMeta":{{{}}}}}"#,
            meta(&["title"], at)
        ),
        r#"{"id":"n1","spaceId":"s","title":"t"}"#.to_string(),
        format!(
            r#"{{"id":"n1","spaceId":"s","title":"t","__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId"], at)
        ),
        r#"{"id":"n1","spaceId":"s","title":"t","__fieldMeta":{"spaceId":{"at":1},"title":{"at":1}}}"#
            .to_string(),
        // Escapes (in a key, the id, a value's `\u`), a spaceId that is not a plain string.
        format!(
            r#"{{"id":"n1","spaceId":"s","ti\"tle":"t","__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId"], at)
        ),
        format!(
            r#"{{"id":"n\\1","spaceId":"s","__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId"], at)
        ),
        format!(
            r#"{{"id":"n1","spaceId":"s","title":"\u00e9","__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId", "title"], at)
        ),
        format!(
            r#"{{"id":"n1","spaceId":7,"__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId"], at)
        ),
        // An id that is not a string or is empty; the meta of an unknown shape.
        format!(
            r#"{{"id":5,"spaceId":"s","__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId"], at)
        ),
        format!(
            r#"{{"id":"","spaceId":"s","__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId"], at)
        ),
        r#"{"id":"n1","spaceId":"s","__fieldMeta":[1]}"#.to_string(),
        // Not a timestamp.
        format!(
            r#"{{"id":"n1","spaceId":"s","__fieldMeta":{{{}}}}}"#,
            meta(&["spaceId"], "not a time")
        ),
    ] {
        assert!(!assert_same_or_refused(&b, "notes", &row), "{row}");
    }
    // An unknown collection.
    let mut d = Device::new("u2", 4);
    assert!(d
        .write(None, |w| w.import_new_row_text("nope", &taken))
        .is_none());
}

proptest! {
    /// Any record another device wrote through its own writer, exported and imported both ways.
    #[test]
    fn the_text_path_equals_import_row(
        ops in writes::writes(6),
        actor in proptest::option::of(0..3u8),
    ) {
        let mut a = Device::new("u1", 3);
        let b = Device::new("u2", 4);
        let actor = actor.map(|k| json!({"kind": k}));
        let mut stored: Option<Value> = None;
        for op in ops {
            let w = a.write(actor.as_ref(), |w| op.apply(w, &stored));
            if let Ok(w) = w {
                stored = Some(Value::Object(w.stored));
            }
            if let Some(Value::Object(m)) = &stored {
                let row = exported(&mut a, "notes", m);
                assert_same_or_refused(&b, "notes", &row);
            }
        }
    }
}
