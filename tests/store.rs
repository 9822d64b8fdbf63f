//! Headless-Chromium tests of the IndexedDB store (docs/client.md).
#![cfg(target_arch = "wasm32")]

use mana_sync::schema::StoreConfig;
use mana_sync::web::ManaStore;
use rexie::{Rexie, TransactionMode};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod common;
use common::{code, js, ok, rs, sleep, unique, Collector};

fn config(name: &str, extra_collection: bool) -> StoreConfig {
    let mut collections = json!({
        "notes": {"indexes": ["updatedAt"], "encrypted": ["title", "content"]},
    });
    if extra_collection {
        collections["tags"] = json!({"indexes": ["label"]});
        collections["notes"]["indexes"] = json!(["updatedAt", "pinned"]);
    }
    serde_json::from_value(
        json!({"name": name, "userId": "u1", "apps": {"notes": {"collections": collections}}}),
    )
    .unwrap()
}

async fn open_unlocked(name: &str) -> ManaStore {
    let store = ManaStore::open_with(config(name, false)).await.unwrap();
    JsFuture::from(store.unlock(&[7u8; 32])).await.unwrap();
    store
}

async fn pending(store: &ManaStore) -> u64 {
    ok(store.pending_count()).await.as_u64().unwrap()
}

async fn raw_get(db_name: &str, store_name: &str, id: &str) -> Value {
    let db = Rexie::builder(db_name).build().await.unwrap();
    let tx = db
        .transaction(&[store_name], TransactionMode::ReadOnly)
        .unwrap();
    let v = tx.store(store_name).unwrap().get(id.into()).await.unwrap();
    drop(tx);
    db.close();
    v.map(|v| rs(&v)).unwrap_or(Value::Null)
}

/// A record's `__fieldMeta`, decoded from its compact stored form (JSON text).
async fn raw_meta(db_name: &str, store_name: &str, id: &str) -> Value {
    let Value::Object(mut record) = raw_get(db_name, store_name, id).await else {
        panic!("{id} is not stored")
    };
    let stored = record.remove("__fieldMeta").unwrap();
    assert!(stored.is_string(), "__fieldMeta is stored as JSON text");
    Value::Object(mana_sync::field_meta::decode(&record, &stored).unwrap())
}

/// Every queued change, in order, read straight from the `_pendingChanges` rows.
async fn raw_pending(db_name: &str) -> Vec<Value> {
    let db = Rexie::builder(db_name).build().await.unwrap();
    let tx = db
        .transaction(&["_pendingChanges"], TransactionMode::ReadOnly)
        .unwrap();
    let rows = tx
        .store("_pendingChanges")
        .unwrap()
        .get_all(None, None)
        .await
        .unwrap();
    drop(tx);
    db.close();
    let mut out = Vec::new();
    for row in rows {
        let row = rs(&row);
        let changes: Vec<Value> = serde_json::from_str(row["changes"].as_str().unwrap()).unwrap();
        assert_eq!(row["count"], json!(changes.len()));
        out.extend(changes);
    }
    out
}

#[wasm_bindgen_test]
async fn crud_round_trip_with_pending_changes() {
    let name = unique("crud");
    let s = open_unlocked(&name).await;

    ok(s.put(
        "notes".into(),
        js(json!({"id": "n1", "title": "Hello", "updatedAt": 1})),
        None,
    ))
    .await;
    ok(s.bulk_put(
        "notes".into(),
        js(json!([{"id": "n2", "title": "B", "updatedAt": 3}, {"id": "n3", "updatedAt": 2}])),
        None,
    ))
    .await;
    assert_eq!(pending(&s).await, 3);
    let got = ok(s.get("notes".into(), "n1".into())).await;
    assert_eq!(
        got,
        json!({"id": "n1", "title": "Hello", "updatedAt": 1, "spaceId": "_personal:u1"})
    );
    ok(s.update(
        "notes".into(),
        "n1".into(),
        js(json!({"content": "body"})),
        Some(js(json!({"actor": {"kind": "ai"}})).unchecked_into()),
    ))
    .await;
    assert_eq!(
        ok(s.get("notes".into(), "n1".into())).await["content"],
        json!("body")
    );
    ok(s.delete("notes".into(), "n2".into(), None)).await;
    assert_eq!(pending(&s).await, 5);

    let ids = |v: Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(ok(s.list("notes".into(), None)).await), ["n1", "n3"]);
    assert_eq!(
        ids(ok(s.list(
            "notes".into(),
            Some(js(json!({"includeDeleted": true})).unchecked_into())
        ))
        .await),
        ["n1", "n2", "n3"]
    );
    let by_index = ok(s.list(
        "notes".into(),
        Some(js(json!({"index": "updatedAt", "range": {"lower": 1, "upper": 2}})).unchecked_into()),
    ))
    .await;
    assert_eq!(ids(by_index), ["n1", "n3"]);
    let rev = ok(s.list(
        "notes".into(),
        Some(js(json!({"index": "updatedAt", "reverse": true, "limit": 1})).unchecked_into()),
    ))
    .await;
    assert_eq!(ids(rev), ["n3"]);
    for r in ok(s.list(
        "notes".into(),
        Some(js(json!({"includeDeleted": true})).unchecked_into()),
    ))
    .await
    .as_array()
    .unwrap()
    {
        assert!(r.get("__fieldMeta").is_none());
    }
    // The pending queue holds the changes themselves, in order, with eventId and actor.
    assert_eq!(
        raw_meta(&name, "notes", "n1").await["content"]["actor"],
        json!({"kind": "ai"})
    );
    let queued = raw_pending(&name).await;
    let summary: Vec<_> = queued
        .iter()
        .map(|c| (c["op"].as_str().unwrap(), c["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        summary,
        [
            ("insert", "n1"),
            ("insert", "n2"),
            ("insert", "n3"),
            ("update", "n1"),
            ("delete", "n2")
        ]
    );
    assert!(queued.iter().all(|c| c["eventId"].is_string()
        && c["schemaVersion"] == json!(1)
        && c["spaceId"] == json!("_personal:u1")));
    assert!(queued[0]["data"]["title"]
        .as_str()
        .unwrap()
        .starts_with("enc:1:"));
    assert_eq!(
        queued[3]["fields"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["content"]
    );
    assert_eq!(queued[3]["actor"], json!({"kind": "ai"}));
    assert!(queued[4]["deletedAt"].is_string());
    assert_eq!(
        code(s.update("notes".into(), "missing".into(), js(json!({"a": 1})), None)).await,
        "not_found"
    );
}

#[wasm_bindgen_test]
async fn a_write_and_its_pending_change_are_atomic() {
    let name = unique("atomic");
    let s = open_unlocked(&name).await;
    ok(s.put(
        "notes".into(),
        js(json!({"id": "keep", "title": "x"})),
        None,
    ))
    .await;
    s.fail_next_commit();
    let c = code(s.bulk_put(
        "notes".into(),
        js(json!([{"id": "a1", "title": "x"}, {"id": "a2"}])),
        None,
    ))
    .await;
    assert_eq!(c, "storage");
    assert_eq!(raw_get(&name, "notes", "a1").await, Value::Null);
    assert_eq!(raw_get(&name, "notes", "a2").await, Value::Null);
    assert_eq!(
        pending(&s).await,
        1,
        "neither the records nor their pending changes"
    );
    // The store keeps working after the aborted transaction.
    ok(s.put("notes".into(), js(json!({"id": "a1"})), None)).await;
    assert_eq!(pending(&s).await, 2);
}

#[wasm_bindgen_test]
async fn registered_fields_are_ciphertext_at_rest_and_shared_spaces_stay_plaintext() {
    let name = unique("enc");
    let s = open_unlocked(&name).await;
    ok(s.put(
        "notes".into(),
        js(json!({"id": "p", "title": "secret", "content": {"a": 1}, "updatedAt": 5})),
        None,
    ))
    .await;
    ok(s.put(
        "notes".into(),
        js(json!({"id": "s", "title": "team", "spaceId": "space-1"})),
        None,
    ))
    .await;
    let raw = raw_get(&name, "notes", "p").await;
    assert!(
        raw["title"].as_str().unwrap().starts_with("enc:1:"),
        "{raw}"
    );
    assert!(raw["content"].as_str().unwrap().starts_with("enc:1:"));
    assert_eq!(
        raw["updatedAt"],
        json!(5),
        "unregistered fields stay plaintext"
    );
    let got = ok(s.get("notes".into(), "p".into())).await;
    assert_eq!(got["title"], json!("secret"));
    assert_eq!(got["content"], json!({"a": 1}));
    assert_eq!(raw_get(&name, "notes", "s").await["title"], json!("team"));
}

#[wasm_bindgen_test]
async fn a_locked_vault_refuses_and_writes_nothing() {
    let name = unique("locked");
    let s = open_unlocked(&name).await;
    ok(s.put(
        "notes".into(),
        js(json!({"id": "p", "title": "secret"})),
        None,
    ))
    .await;
    ok(s.put(
        "notes".into(),
        js(json!({"id": "s", "title": "team", "spaceId": "space-1"})),
        None,
    ))
    .await;
    s.lock();
    assert!(!s.is_unlocked());
    assert_eq!(
        code(s.put("notes".into(), js(json!({"id": "q", "title": "x"})), None)).await,
        "vault_locked"
    );
    assert_eq!(
        code(s.update("notes".into(), "p".into(), js(json!({"title": "y"})), None)).await,
        "vault_locked"
    );
    assert_eq!(
        code(s.get("notes".into(), "p".into())).await,
        "vault_locked"
    );
    assert_eq!(code(s.list("notes".into(), None)).await, "vault_locked");
    assert_eq!(raw_get(&name, "notes", "q").await, Value::Null);
    assert_eq!(pending(&s).await, 2);
    // A shared-space record is readable while locked.
    assert_eq!(
        ok(s.get("notes".into(), "s".into())).await["title"],
        json!("team")
    );
    // Wrong keys are refused; the right one unlocks again.
    assert_eq!(code(s.unlock(&[8u8; 32])).await, "wrong_vault_key");
    assert_eq!(code(s.unlock(&[7u8; 16])).await, "invalid_key");
    ok(s.unlock(&[7u8; 32])).await;
    assert_eq!(
        ok(s.get("notes".into(), "p".into())).await["title"],
        json!("secret")
    );
}

#[wasm_bindgen_test]
async fn bad_input_gets_coded_errors_and_writes_nothing() {
    let name = unique("bad");
    let s = open_unlocked(&name).await;
    let u = || None;
    assert_eq!(
        code(s.put("nope".into(), js(json!({"id": "x"})), u())).await,
        "unknown_collection"
    );
    assert_eq!(
        code(s.get("nope".into(), "x".into())).await,
        "unknown_collection"
    );
    assert_eq!(
        code(s.put("notes".into(), js(json!({"title": "no id"})), u())).await,
        "invalid_record"
    );
    assert_eq!(
        code(s.put("notes".into(), js(json!("a string")), u())).await,
        "invalid_record"
    );
    assert_eq!(
        code(s.put("notes".into(), JsValue::UNDEFINED, u())).await,
        "invalid_record"
    );
    // One bad record fails the whole batch.
    assert_eq!(
        code(s.bulk_put("notes".into(), js(json!([{"id": "ok1"}, {"id": 5}])), u())).await,
        "invalid_record"
    );
    assert_eq!(raw_get(&name, "notes", "ok1").await, Value::Null);
    assert_eq!(
        code(s.bulk_put("notes".into(), js(json!({"id": "ok2"})), u())).await,
        "invalid_record",
        "bulkPut takes an array"
    );
    assert_eq!(raw_get(&name, "notes", "ok2").await, Value::Null);
    assert_eq!(
        code(s.list(
            "notes".into(),
            Some(js(json!({"index": "nope"})).unchecked_into())
        ))
        .await,
        "unknown_index"
    );
    assert_eq!(pending(&s).await, 0);
    assert!(s.live_query("nope".into(), None).is_err());
    let err = match ManaStore::open_with(
        serde_json::from_value(json!({"name": "", "userId": "u"})).unwrap(),
    )
    .await
    {
        Err(e) => e,
        Ok(_) => panic!("empty name accepted"),
    };
    assert_eq!(err.code, "invalid_config");
}

#[wasm_bindgen_test]
async fn live_query_notifies_on_put_update_and_delete() {
    let name = unique("live");
    let s = open_unlocked(&name).await;
    let c = Collector::new();
    let lq = s.live_query("notes".into(), None).unwrap();
    let unsubscribe: js_sys::Function = lq.subscribe(c.function()).unchecked_into();
    assert_eq!(c.seen.borrow().as_slice(), [Value::Null], "called at once");
    c.wait_until("the empty list", |v| *v == json!([])).await;
    ok(s.put("notes".into(), js(json!({"id": "n1", "title": "a"})), None)).await;
    c.wait_until("the put", |v| v[0]["title"] == json!("a"))
        .await;
    ok(s.update("notes".into(), "n1".into(), js(json!({"title": "b"})), None)).await;
    c.wait_until("the update", |v| v[0]["title"] == json!("b"))
        .await;
    ok(s.delete("notes".into(), "n1".into(), None)).await;
    c.wait_until("the delete", |v| *v == json!([])).await;
    let calls = c.seen.borrow().len();
    assert_eq!(calls, 5, "one call per change: {:?}", c.seen.borrow());
    unsubscribe.call0(&JsValue::NULL).unwrap();
    // A second call (a Svelte component destroyed twice, a cleanup run again) does nothing.
    unsubscribe
        .call0(&JsValue::NULL)
        .expect("unsubscribing again does not throw");
    ok(s.put("notes".into(), js(json!({"id": "n2"})), None)).await;
    // A query that would now differ: give it time to (wrongly) arrive.
    sleep(100).await;
    assert_eq!(c.seen.borrow().len(), calls, "no calls after unsubscribe");
}

#[wasm_bindgen_test]
async fn reopening_keeps_client_id_clock_and_data_and_new_collections_upgrade() {
    let name = unique("reopen");
    let s = open_unlocked(&name).await;
    let client_id = s.client_id();
    ok(s.put("notes".into(), js(json!({"id": "n1", "title": "t"})), None)).await;
    let at1 = raw_meta(&name, "notes", "n1").await["title"]["at"]
        .as_str()
        .unwrap()
        .to_string();
    ok(s.close()).await;
    assert_eq!(
        code(s.get("notes".into(), "n1".into())).await,
        "store_closed"
    );

    // Reopen with one more collection and one more index: an upgrade that keeps the data.
    let s2 = ManaStore::open_with(config(&name, true)).await.unwrap();
    assert_eq!(s2.client_id(), client_id);
    ok(s2.unlock(&[7u8; 32])).await;
    assert_eq!(
        ok(s2.get("notes".into(), "n1".into())).await["title"],
        json!("t")
    );
    assert_eq!(pending(&s2).await, 1);
    ok(s2.put("tags".into(), js(json!({"id": "t1", "label": "x"})), None)).await;
    ok(s2.put(
        "notes".into(),
        js(json!({"id": "n2", "title": "u", "pinned": 1})),
        None,
    ))
    .await;
    let pinned = ok(s2.list(
        "notes".into(),
        Some(js(json!({"index": "pinned", "equals": 1})).unchecked_into()),
    ))
    .await;
    assert_eq!(pinned.as_array().unwrap().len(), 1);
    let at2 = raw_meta(&name, "notes", "n2").await["title"]["at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(at2 > at1, "clock continues after reopen: {at2} > {at1}");
    // One device (the node's high 40 bits), a new opening of the store (its low 24 bits).
    let (node1, node2) = (&at1[at1.len() - 16..], &at2[at2.len() - 16..]);
    assert_eq!(node1[..10], node2[..10], "same device");
    assert_ne!(
        node1[10..],
        node2[10..],
        "each opening has its own tab bits"
    );
    ok(s2.close()).await;
}

#[wasm_bindgen_test]
async fn live_queries_of_another_store_on_the_same_database_follow_its_writes() {
    // Two stores on one database stand in for two tabs: the BroadcastChannel reaches both.
    let name = unique("tabs");
    let writer = open_unlocked(&name).await;
    let reader = open_unlocked(&name).await;
    let c = Collector::new();
    let _unsubscribe = reader
        .live_query("notes".into(), None)
        .unwrap()
        .subscribe(c.function());
    ok(writer.put(
        "notes".into(),
        js(json!({"id": "x", "title": "from the other tab"})),
        None,
    ))
    .await;
    c.wait_until("the other store's write", |v| {
        v[0]["title"] == json!("from the other tab")
    })
    .await;
}

#[wasm_bindgen_test]
async fn live_queries_follow_the_vault_lock() {
    let name = unique("livelock");
    let s = open_unlocked(&name).await;
    ok(s.put(
        "notes".into(),
        js(json!({"id": "n1", "title": "secret"})),
        None,
    ))
    .await;
    s.lock();
    let c = Collector::new();
    let _unsubscribe = s
        .live_query("notes".into(), None)
        .unwrap()
        .subscribe(c.function());
    // Subscribed while locked: nothing decrypted; unlocking delivers the records.
    ok(s.unlock(&[7u8; 32])).await;
    c.wait_until("the records after unlock", |v| {
        v[0]["title"] == json!("secret")
    })
    .await;
    // Locking takes the decrypted records back from subscribers.
    s.lock();
    c.wait_until("undefined after lock", |v| v.is_null()).await;
}

#[wasm_bindgen_test]
async fn a_bad_record_late_in_a_large_bulk_put_writes_nothing() {
    // bulkPut puts its records chunk by chunk while preparing the next; a bad record in a
    // later chunk must still abort the whole transaction.
    let name = unique("bulk-abort");
    let s = open_unlocked(&name).await;
    let mut records: Vec<Value> = (0..2500)
        .map(|i| json!({"id": format!("r{i}"), "title": "t", "updatedAt": i}))
        .collect();
    records[2400] = json!({"title": "no id"});
    assert_eq!(
        code(s.bulk_put("notes".into(), js(Value::Array(records)), None)).await,
        "invalid_record"
    );
    assert_eq!(raw_get(&name, "notes", "r0").await, Value::Null);
    assert_eq!(pending(&s).await, 0);
    assert_eq!(
        ok(s.list("notes".into(), None)).await,
        json!([]),
        "the first chunks were rolled back too"
    );
}

#[wasm_bindgen_test]
async fn concurrent_updates_of_one_record_both_land() {
    // Two patches of different fields, neither awaited before the other starts: each must
    // read the record in its own write transaction, or the later one writes back a stale copy.
    let name = unique("concurrent");
    let s = open_unlocked(&name).await;
    ok(s.put("notes".into(), js(json!({"id": "n1", "title": "t"})), None)).await;
    let a = s.update("notes".into(), "n1".into(), js(json!({"a": 1})), None);
    let b = s.update("notes".into(), "n1".into(), js(json!({"b": 2})), None);
    let c = s.delete("notes".into(), "n1".into(), None);
    ok(a).await;
    ok(b).await;
    ok(c).await;
    let got = ok(s.get("notes".into(), "n1".into())).await;
    assert_eq!((got["a"].clone(), got["b"].clone()), (json!(1), json!(2)));
    assert!(got["deletedAt"].is_string());
    let meta = raw_meta(&name, "notes", "n1").await;
    assert!(meta["a"].is_object() && meta["b"].is_object() && meta["deletedAt"].is_object());
    assert_eq!(pending(&s).await, 4);
}

#[wasm_bindgen_test]
async fn writes_are_stamped_in_the_order_they_commit() {
    // An update (which reads first) and a put fired together: whatever order they commit in,
    // the later commit carries the later timestamp, the record shows it, and the stored clock
    // never goes back.
    let name = unique("order");
    let s = open_unlocked(&name).await;
    ok(s.put("notes".into(), js(json!({"id": "n1", "title": "0"})), None)).await;
    let u = s.update("notes".into(), "n1".into(), js(json!({"title": "A"})), None);
    let p = s.put("notes".into(), js(json!({"id": "n1", "title": "B"})), None);
    ok(u).await;
    ok(p).await;
    let queued = raw_pending(&name).await;
    let stamps: Vec<String> = queued
        .iter()
        .map(|c| {
            let at = c["updatedAt"]
                .as_str()
                .or_else(|| c["fields"]["title"]["updatedAt"].as_str());
            at.unwrap().to_string()
        })
        .collect();
    assert_eq!(stamps.len(), 3);
    assert!(
        stamps.windows(2).all(|w| w[0] < w[1]),
        "queue order = stamp order: {stamps:?}"
    );
    let last_title = if queued[2]["op"] == json!("insert") {
        "B"
    } else {
        "A"
    };
    assert_eq!(
        ok(s.get("notes".into(), "n1".into())).await["title"],
        json!(last_title)
    );
    let title_at = raw_meta(&name, "notes", "n1").await["title"]["at"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(title_at, stamps[2]);
    let clock = {
        let db = Rexie::builder(&name).build().await.unwrap();
        let tx = db
            .transaction(&["_meta"], TransactionMode::ReadOnly)
            .unwrap();
        let v = tx
            .store("_meta")
            .unwrap()
            .get("clock".into())
            .await
            .unwrap();
        drop(tx);
        db.close();
        rs(&v.unwrap())["value"].as_str().unwrap().to_string()
    };
    assert!(clock >= stamps[2], "stored clock {clock} < {}", stamps[2]);
}
