//! Local write preparation: stamping, encryption, pending changes and coded refusals.
#![cfg(not(target_arch = "wasm32"))]

use mana_sync::clock::Clock;
use mana_sync::crypto::{FieldCipher, RandomPool};
use mana_sync::protocol::Op;
use mana_sync::records::{read, take_meta, Writer};
use mana_sync::schema::StoreConfig;
use serde_json::{json, Map, Value};

/// A stored record's `__fieldMeta`, as the map it encodes.
fn meta(stored: &Map<String, Value>) -> Map<String, Value> {
    take_meta(&mut stored.clone()).unwrap()
}

fn config() -> StoreConfig {
    serde_json::from_value(
        json!({"name": "t", "userId": "u1", "apps": {"notes": {"collections": {
            "notes": {"indexes": ["updatedAt"], "encrypted": ["title", "content"]},
            "tags": {}
        }}}}),
    )
    .unwrap()
}

struct Env {
    cfg: StoreConfig,
    clock: Clock,
    random: RandomPool,
    cipher: FieldCipher,
}

impl Env {
    fn new() -> Env {
        Env {
            cfg: config(),
            clock: Clock::new(1),
            random: RandomPool::default(),
            cipher: FieldCipher::new(&[3; 32]),
        }
    }
    fn run<T>(&mut self, locked: bool, f: impl FnOnce(&mut Writer) -> T) -> T {
        let registry = self.cfg.registry();
        let mut w = Writer {
            config: &self.cfg,
            registry: &registry,
            cipher: if locked { None } else { Some(&self.cipher) },
            clock: &mut self.clock,
            random: &mut self.random,
            wall_millis: 1_795_600_800_000,
            actor: None,
        };
        f(&mut w)
    }
}

#[test]
fn put_stamps_space_meta_encrypts_and_builds_an_insert() {
    let mut env = Env::new();
    let p = env
        .run(false, |w| {
            w.put(
                "notes",
                json!({"id": "n1", "title": "secret", "updatedAt": 5}),
            )
        })
        .unwrap();
    assert!(p.stored["title"].as_str().unwrap().starts_with("enc:1:"));
    assert_eq!(p.stored["updatedAt"], json!(5));
    assert_eq!(p.stored["spaceId"], json!("_personal:u1"));
    assert!(
        p.stored["__fieldMeta"].is_string(),
        "stored as JSON text, one string for IndexedDB to clone"
    );
    assert!(meta(&p.stored)["title"]["at"].is_string());
    assert_eq!(p.change.op, Op::Insert);
    p.change.validate().unwrap();
    let data = p.change.data.as_ref().unwrap();
    assert!(data.get("__fieldMeta").is_none());
    assert_eq!(
        data["title"], p.stored["title"],
        "the server gets ciphertext"
    );
    let back = read(
        &env.cfg.registry(),
        Some(&env.cipher),
        "notes",
        Value::Object(p.stored),
    )
    .unwrap();
    assert_eq!(
        back,
        json!({"id": "n1", "title": "secret", "updatedAt": 5, "spaceId": "_personal:u1"})
            .as_object()
            .unwrap()
            .clone()
    );
}

#[test]
fn locked_vault_refuses_writes_and_reads_of_encrypted_collections() {
    let mut env = Env::new();
    let err = env
        .run(true, |w| w.put("notes", json!({"id": "n1", "title": "x"})))
        .unwrap_err();
    assert_eq!(err.code(), "vault_locked");
    // A collection without encrypted fields and a shared-space record are fine while locked.
    env.run(true, |w| w.put("tags", json!({"id": "t1", "name": "x"})))
        .unwrap();
    let shared = env
        .run(true, |w| {
            w.put(
                "notes",
                json!({"id": "n2", "title": "team", "spaceId": "space-9"}),
            )
        })
        .unwrap();
    assert_eq!(shared.stored["title"], json!("team"));
    let sealed = env
        .run(false, |w| w.put("notes", json!({"id": "n3", "title": "x"})))
        .unwrap();
    let err = read(
        &env.cfg.registry(),
        None,
        "notes",
        Value::Object(sealed.stored),
    )
    .unwrap_err();
    assert_eq!(err.code(), "vault_locked");
}

#[test]
fn update_sends_only_the_patched_fields_and_delete_a_tombstone() {
    let mut env = Env::new();
    let p = env
        .run(false, |w| {
            w.put("notes", json!({"id": "n1", "title": "a", "body": "b"}))
        })
        .unwrap();
    let u = env
        .run(false, |w| {
            w.update(
                "notes",
                Some(Value::Object(p.stored.clone())),
                "n1",
                json!({"body": "c"}),
            )
        })
        .unwrap();
    let fields = u.change.fields.as_ref().unwrap();
    assert_eq!(fields.keys().collect::<Vec<_>>(), vec!["body"]);
    assert!(meta(&u.stored)["body"]["at"].as_str() > meta(&p.stored)["body"]["at"].as_str());
    assert_eq!(u.stored["title"], p.stored["title"]);
    let d = env
        .run(false, |w| {
            w.delete("notes", Some(Value::Object(u.stored.clone())), "n1")
        })
        .unwrap();
    assert_eq!(d.change.op, Op::Delete);
    assert!(d.stored["deletedAt"].is_string());
    d.change.validate().unwrap();
}

#[test]
fn bad_input_gets_coded_errors() {
    let mut env = Env::new();
    let cases = vec![
        (
            "unknown_collection",
            env.run(false, |w| w.put("nope", json!({"id": "1"})))
                .unwrap_err()
                .code(),
        ),
        (
            "invalid_record",
            env.run(false, |w| w.put("notes", json!([1])))
                .unwrap_err()
                .code(),
        ),
        (
            "invalid_record",
            env.run(false, |w| w.put("notes", json!({"title": "x"})))
                .unwrap_err()
                .code(),
        ),
        (
            "invalid_record",
            env.run(false, |w| w.put("notes", json!({"id": 7})))
                .unwrap_err()
                .code(),
        ),
        (
            "not_found",
            env.run(false, |w| w.update("notes", None, "x", json!({"a": 1})))
                .unwrap_err()
                .code(),
        ),
        (
            "not_found",
            env.run(false, |w| w.delete("notes", None, "x"))
                .unwrap_err()
                .code(),
        ),
    ];
    for (want, got) in cases {
        assert_eq!(want, got);
    }
    let p = env
        .run(false, |w| w.put("notes", json!({"id": "n1"})))
        .unwrap();
    let err = env
        .run(false, |w| {
            w.update(
                "notes",
                Some(Value::Object(p.stored)),
                "n1",
                json!({"spaceId": "other"}),
            )
        })
        .unwrap_err();
    assert_eq!(err.code(), "invalid_record");
}

#[test]
fn config_validation() {
    let bad = [
        json!({"name": "", "userId": "u"}),
        json!({"name": "n", "userId": "u", "apps": {"a": {"collections": {"_meta": {}}}}}),
        json!({"name": "n", "userId": "u", "apps": {"a": {"collections": {"x": {}}}, "b": {"collections": {"x": {}}}}}),
        json!({"name": "n", "userId": "u", "apps": {"a": {"collections": {"x": {"indexes": ["t"], "encrypted": ["t"]}}}}}),
    ];
    for b in bad {
        let c: StoreConfig = serde_json::from_value(b.clone()).unwrap();
        assert_eq!(c.validate().unwrap_err().code(), "invalid_config", "{b}");
    }
    config().validate().unwrap();
}

#[test]
fn import_merges_field_by_field_and_reimport_is_a_no_op() {
    use mana_sync::records::export_row;
    // Account A writes and exports.
    let mut a = Env::new();
    let p = a
        .run(false, |w| {
            w.put("notes", json!({"id": "n1", "title": "from A", "body": "x"}))
        })
        .unwrap();
    let row = export_row(
        &a.cfg.registry(),
        Some(&a.cipher),
        "notes",
        Value::Object(p.stored),
    )
    .unwrap();
    assert_eq!(row["title"], json!("from A"), "exported plaintext");
    assert!(row["__fieldMeta"]["title"]["at"].is_string());

    // Account B (other user, other key) imports it: re-encrypted under B's key, B's space.
    let mut b = Env::new();
    b.cfg.user_id = "u2".into();
    b.cipher = FieldCipher::new(&[4; 32]);
    let w = b
        .run(false, |w| w.import_row("notes", None, row.clone()))
        .unwrap()
        .expect("new record");
    assert_eq!(w.stored["spaceId"], json!("_personal:u2"));
    assert!(w.stored["title"].as_str().unwrap().starts_with("enc:1:"));
    let opened = read(
        &b.cfg.registry(),
        Some(&b.cipher),
        "notes",
        Value::Object(w.stored.clone()),
    )
    .unwrap();
    assert_eq!(opened["title"], json!("from A"));
    w.change.validate().unwrap();

    // Re-importing the same row changes nothing.
    let again = b
        .run(false, |w2| {
            w2.import_row("notes", Some(Value::Object(w.stored.clone())), row.clone())
        })
        .unwrap();
    assert!(again.is_none());

    // A newer local edit survives; an older field is still filled in from the row.
    let edited = b
        .run(false, |w2| {
            w2.update(
                "notes",
                Some(Value::Object(w.stored.clone())),
                "n1",
                json!({"title": "B's edit"}),
            )
        })
        .unwrap();
    let mut older = row.clone();
    older.insert("extra".into(), json!(1));
    let merged = b
        .run(false, |w2| {
            w2.import_row("notes", Some(Value::Object(edited.stored.clone())), older)
        })
        .unwrap()
        .unwrap();
    let opened = read(
        &b.cfg.registry(),
        Some(&b.cipher),
        "notes",
        Value::Object(merged.stored),
    )
    .unwrap();
    assert_eq!(opened["title"], json!("B's edit"));
    assert_eq!(opened["extra"], json!(1));
    assert_eq!(
        merged
            .change
            .fields
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec!["extra"]
    );
}

#[test]
fn import_without_field_meta_never_beats_local_edits() {
    let mut env = Env::new();
    let local = env
        .run(false, |w| {
            w.put("notes", json!({"id": "n1", "title": "local"}))
        })
        .unwrap();
    let row = json!({"id": "n1", "title": "old archive", "updatedAt": "2020-01-01T00:00:00.000Z"});
    let out = env
        .run(false, |w| {
            w.import_row(
                "notes",
                Some(Value::Object(local.stored)),
                row.as_object().unwrap().clone(),
            )
        })
        .unwrap();
    // Only `updatedAt` (absent locally) is taken from the archive.
    let w = out.unwrap();
    assert_eq!(
        w.change.fields.as_ref().unwrap().keys().collect::<Vec<_>>(),
        vec!["updatedAt"]
    );
    let err = env
        .run(false, |w| {
            w.import_row(
                "notes",
                None,
                json!({"title": "no id"}).as_object().unwrap().clone(),
            )
        })
        .unwrap_err();
    assert_eq!(err.code(), "invalid_record");
}

/// An archive's `__fieldMeta` entry without a string `at` takes the row's fallback time (as
/// if it had no entry, its `actor` kept); a string that is no timestamp refuses the row.
#[test]
fn import_takes_the_fallback_time_for_an_entry_without_a_string_at() {
    let mut env = Env::new();
    let row = |at: Value| {
        json!({"id": "n1", "title": "t", "updatedAt": "2020-01-01T00:00:00.000Z",
               "__fieldMeta": {"title": {"at": at, "actor": {"kind": "ai"}}}})
        .as_object()
        .unwrap()
        .clone()
    };
    let fallback = env
        .run(false, |w| w.import_row("notes", None, row(json!(null))))
        .unwrap()
        .unwrap();
    let meta = mana_sync::field_meta::decode(&fallback.stored, &fallback.stored["__fieldMeta"])
        .expect("stored meta decodes");
    let title = meta["title"]["at"].as_str().unwrap();
    assert!(title.starts_with("2020-01-01T00:00:00.000Z-"), "{title}");
    assert_eq!(meta["title"]["actor"], json!({"kind": "ai"}));
    for at in [json!(123), json!({"x": 1})] {
        let w = env
            .run(false, |w| w.import_row("notes", None, row(at.clone())))
            .unwrap()
            .unwrap();
        assert_eq!(
            w.stored["__fieldMeta"], fallback.stored["__fieldMeta"],
            "{at}"
        );
    }
    let err = env
        .run(false, |w| {
            w.import_row("notes", None, row(json!("not a time")))
        })
        .unwrap_err();
    assert_eq!(err.code(), "invalid_record");
}

#[test]
fn a_put_over_a_stored_record_nulls_the_fields_it_drops_locally_and_on_the_wire() {
    let mut env = Env::new();
    let first = env
        .run(false, |w| {
            w.put(
                "notes",
                json!({"id": "n1", "title": "t", "updatedAt": 1, "extra": true}),
            )
        })
        .unwrap();
    let second = env
        .run(false, |w| {
            w.put_replacing(
                "notes",
                json!({"id": "n1", "updatedAt": 2}),
                Some(&first.stored),
            )
        })
        .unwrap();
    let data = second.change.data.as_ref().unwrap();
    assert_eq!(
        data["title"],
        json!(null),
        "an encrypted field is dropped as plain null"
    );
    assert_eq!(data["extra"], json!(null));
    assert_eq!(second.stored["extra"], json!(null));
    assert!(data.get("__fieldMeta").is_none());
    let at = second.change.updated_at.clone().unwrap();
    assert_eq!(
        meta(&second.stored)["extra"]["at"],
        json!(at),
        "under the put's timestamp"
    );
    second.change.validate().unwrap();
}

/// An entry's `actor: null` is no actor, as a change's `actor: null` deserialises: the
/// imported record's meta and its pending change carry none, so the import agrees with what
/// the server and other devices read.
#[test]
fn an_archive_actor_null_is_no_actor() {
    let mut env = Env::new();
    let at = "2020-01-01T00:00:00.000Z-0000-0000000000000001";
    let row = json!({"id": "n1", "title": "t",
                     "__fieldMeta": {"title": {"at": at, "actor": null}}})
    .as_object()
    .unwrap()
    .clone();
    let w = env
        .run(false, |w| w.import_row("notes", None, row))
        .unwrap()
        .unwrap();
    let meta = mana_sync::field_meta::decode(&w.stored, &w.stored["__fieldMeta"])
        .expect("stored meta decodes");
    assert_eq!(meta["title"], json!({"at": at}));
    assert_eq!(w.change.actor, None);
}
