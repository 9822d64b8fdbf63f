//! Headless-Chromium tests of `.mana` export/import through the store (docs/backup.md,
//! docs/client.md).
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use mana_sync::backup::Phase;
use mana_sync::schema::StoreConfig;
use mana_sync::web::{inspect_backup, ManaStore};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod common;
use common::{code, js, ok_js, rs};

fn config(name: &str, user: &str) -> StoreConfig {
    serde_json::from_value(json!({"name": name, "userId": user, "apps": {
        "notes": {"collections": {"notes": {"indexes": ["updatedAt"], "encrypted": ["title", "content"]}}},
        "todo": {"collections": {"tasks": {"encrypted": ["text"]}}},
    }}))
    .unwrap()
}

async fn store(user: &str, key: u8) -> ManaStore {
    let name = format!("bk-{user}-{}", js_sys::Math::random().to_bits());
    let s = ManaStore::open_with(config(&name, user)).await.unwrap();
    ok_js(s.unlock(&[key; 32])).await;
    s
}

async fn snapshot(s: &ManaStore) -> Value {
    let all = |c: &str| {
        s.list(
            c.into(),
            Some(js(json!({"includeDeleted": true})).unchecked_into()),
        )
    };
    json!({
        "notes": rs(&ok_js(all("notes")).await),
        "tasks": rs(&ok_js(all("tasks")).await),
        "pending": rs(&ok_js(s.pending_count()).await),
    })
}

async fn seeded(user: &str, key: u8) -> ManaStore {
    let s = store(user, key).await;
    let notes = json!([{"id": "n1", "title": "secret 1", "content": "a", "updatedAt": 1},
                       {"id": "n2", "title": "secret 2", "updatedAt": 2}]);
    ok_js(s.bulk_put("notes".into(), js(notes), None)).await;
    ok_js(s.delete("notes".into(), "n2".into(), None)).await;
    ok_js(s.put(
        "tasks".into(),
        js(json!({"id": "t1", "text": "do it"})),
        None,
    ))
    .await;
    s
}

fn export_opts(v: Value) -> Option<mana_sync::web::ExportOptionsJs> {
    Some(js(v).unchecked_into())
}

fn import_opts(v: Value) -> Option<mana_sync::web::ImportOptionsJs> {
    Some(js(v).unchecked_into())
}

async fn export(s: &ManaStore, opts: Value) -> Vec<u8> {
    let bytes = ok_js(s.export_backup(export_opts(opts))).await;
    js_sys::Uint8Array::new(&bytes).to_vec()
}

#[wasm_bindgen_test]
async fn sealed_round_trip_between_accounts_with_different_keys() {
    let a = seeded("alice", 1).await;
    let bytes = export(&a, json!({"passphrase": "correct horse"})).await;
    let info = rs(&inspect_backup(&bytes).unwrap());
    assert_eq!(info["sealed"], json!(true));
    assert_eq!(info["manifest"]["formatVersion"], json!(2));
    assert_eq!(
        info["manifest"]["rowCounts"],
        json!({"notes": 2, "tasks": 1})
    );
    assert_eq!(
        info["manifest"]["passphrase"]["kdfIterations"],
        json!(600000)
    );

    let b = store("bob", 2).await;
    assert_eq!(
        code(b.import_backup(&bytes, None)).await,
        "passphrase_required"
    );
    let report = rs(&ok_js(
        b.import_backup(&bytes, import_opts(json!({"passphrase": "correct horse"}))),
    )
    .await);
    assert_eq!(report["imported"], json!(3));
    assert_eq!(report["skipped"], json!(0));
    let n1 = rs(&ok_js(b.get("notes".into(), "n1".into())).await);
    assert_eq!(n1["title"], json!("secret 1"));
    assert_eq!(n1["spaceId"], json!("_personal:bob"));
    let n2 = rs(&ok_js(b.get("notes".into(), "n2".into())).await);
    assert!(n2["deletedAt"].is_string(), "tombstones travel");
    assert_eq!(
        rs(&ok_js(b.pending_count()).await),
        json!(3),
        "imported rows sync"
    );

    // Re-importing the same archive changes nothing.
    let before = snapshot(&b).await;
    let again = rs(&ok_js(
        b.import_backup(&bytes, import_opts(json!({"passphrase": "correct horse"}))),
    )
    .await);
    assert_eq!(
        (again["imported"].clone(), again["skipped"].clone()),
        (json!(0), json!(3))
    );
    assert_eq!(snapshot(&b).await, before);
}

#[wasm_bindgen_test]
async fn a_newer_local_edit_survives_an_import() {
    let a = seeded("alice", 1).await;
    let bytes = export(&a, json!({})).await;
    assert_eq!(rs(&inspect_backup(&bytes).unwrap())["sealed"], json!(false));
    ok_js(a.update(
        "notes".into(),
        "n1".into(),
        js(json!({"title": "edited after export"})),
        None,
    ))
    .await;
    let report = rs(&ok_js(a.import_backup(&bytes, None)).await);
    assert_eq!(report["imported"], json!(0));
    let n1 = rs(&ok_js(a.get("notes".into(), "n1".into())).await);
    assert_eq!(n1["title"], json!("edited after export"));
    assert_eq!(n1["content"], json!("a"));
}

#[wasm_bindgen_test]
async fn failed_imports_leave_the_store_exactly_as_it_was() {
    let a = seeded("alice", 1).await;
    let bytes = export(&a, json!({"passphrase": "pw"})).await;
    let b = seeded("bob", 2).await;
    ok_js(b.put(
        "notes".into(),
        js(json!({"id": "mine", "title": "keep"})),
        None,
    ))
    .await;
    let before = snapshot(&b).await;
    assert_eq!(
        code(b.import_backup(&bytes, import_opts(json!({"passphrase": "wrong"})))).await,
        "wrong_passphrase"
    );
    let mut tampered = bytes.clone();
    let i = tampered.len() - 200; // inside data.sealed's ciphertext, before the central directory
    tampered[i] ^= 0x01;
    let c = code(b.import_backup(&tampered, import_opts(json!({"passphrase": "pw"})))).await;
    assert_eq!(c, "archive_tampered");
    assert_eq!(
        code(b.import_backup(b"not a zip", None)).await,
        "not_a_mana_archive"
    );
    assert_eq!(snapshot(&b).await, before);
    // A locked vault refuses before writing anything.
    b.lock();
    assert_eq!(
        code(b.import_backup(&bytes, import_opts(json!({"passphrase": "pw"})))).await,
        "vault_locked"
    );
    ok_js(b.unlock(&[2; 32])).await;
    assert_eq!(snapshot(&b).await, before);
}

#[wasm_bindgen_test]
async fn an_export_needs_the_vault_even_when_it_locks_half_way() {
    // Locked: the encrypted fields can't be exported as plaintext.
    let a = seeded("alice", 1).await;
    a.lock();
    assert_eq!(code(a.export_backup(None)).await, "vault_locked");
    ok_js(a.unlock(&[1; 32])).await;
    // Locked by the app's progress callback while the rows are packed: the export stops with
    // the same code (the callback may call back into the store: nothing is borrowed across it).
    let rows: Vec<Value> = (0..3_000)
        .map(|i| json!({"id": format!("r{i:05}"), "title": format!("note {i}"), "updatedAt": i}))
        .collect();
    ok_js(a.bulk_put("notes".into(), js(json!(rows)), None)).await;
    let store = JsValue::from(a);
    let export = js_sys::Function::new_with_args(
        "s",
        "return s.exportBackup({ onProgress: (phase) => { if (phase === 'serialize') s.lock(); } });",
    );
    let promise: js_sys::Promise = export
        .call1(&JsValue::NULL, &store)
        .unwrap()
        .unchecked_into();
    let err = wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .unwrap_err();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("vault_locked"), "{err:?}");
}

#[wasm_bindgen_test]
async fn every_backup_phase_is_reported_and_app_selection_exports_only_those_apps() {
    let a = seeded("alice", 1).await;
    let phases: Rc<RefCell<Vec<String>>> = Rc::default();
    let sink = phases.clone();
    let cb =
        Closure::<dyn FnMut(String, f64, f64)>::new(move |p: String, done: f64, total: f64| {
            assert!(total == 0.0 || done <= total, "{p} {done}/{total}");
            sink.borrow_mut().push(p);
        });
    let opts = js(json!({"appIds": ["todo"], "passphrase": "pw"}));
    js_sys::Reflect::set(&opts, &"onProgress".into(), cb.as_ref()).unwrap();
    let bytes = js_sys::Uint8Array::new(&ok_js(a.export_backup(Some(opts.unchecked_into()))).await)
        .to_vec();
    let manifest = rs(&inspect_backup(&bytes).unwrap())["manifest"].clone();
    assert_eq!(manifest["rowCounts"], json!({"tasks": 1}));
    assert_eq!(
        manifest["scope"],
        json!({"type": "filtered", "appIds": ["todo"]})
    );
    let exported: BTreeSet<String> = phases.borrow_mut().drain(..).collect();
    let b = store("bob", 3).await;
    let opts = js(json!({"passphrase": "pw"}));
    js_sys::Reflect::set(&opts, &"onProgress".into(), cb.as_ref()).unwrap();
    let report = rs(&ok_js(b.import_backup(&bytes, Some(opts.unchecked_into()))).await);
    assert_eq!(
        report["tables"],
        json!({"tasks": {"imported": 1, "skipped": 0}})
    );
    let imported: BTreeSet<String> = phases.borrow().iter().cloned().collect();
    // A sealed export and its import go through every declared phase (`BackupPhase`, derived
    // from `Phase`), each on its side: a phase nothing reports is a declared one never produced.
    let side =
        |ps: &[Phase]| -> BTreeSet<String> { ps.iter().map(|p| p.as_str().into()).collect() };
    assert_eq!(exported, side(&Phase::ALL[..5]), "export phases");
    let mut import_side = side(&Phase::ALL[5..]);
    import_side.insert(Phase::Derive.as_str().into());
    assert_eq!(imported, import_side, "import phases");

    assert_eq!(
        code(a.export_backup(export_opts(json!({"appIds": ["nope"]})))).await,
        "invalid_options"
    );
}

#[wasm_bindgen_test]
async fn older_rows_pass_through_registered_migrations() {
    let a = seeded("alice", 1).await;
    let bytes = export(&a, json!({})).await;
    let mut cfg = config(
        &format!("bk-mig-{}", js_sys::Math::random().to_bits()),
        "carol",
    );
    cfg.schema_version = 2;
    let c = ManaStore::open_with(cfg).await.unwrap();
    ok_js(c.unlock(&[5; 32])).await;
    let migrate = js_sys::Function::new_with_args(
        "row, table",
        "if (table === 'tasks') { row.done = false; } return row;",
    );
    c.register_migration(2, migrate.unchecked_into()).unwrap();
    ok_js(c.import_backup(&bytes, None)).await;
    let t1 = rs(&ok_js(c.get("tasks".into(), "t1".into())).await);
    assert_eq!(t1["done"], json!(false));
    assert_eq!(t1["text"], json!("do it"));
}

#[wasm_bindgen_test]
async fn a_bad_row_late_in_a_large_import_writes_nothing() {
    // Import merges and puts chunk by chunk in one transaction; a row that fails in a later
    // chunk must roll back the chunks already put.
    let rows: Vec<Value> = (0..2500)
        .map(|i| {
            let at = if i == 2300 {
                "yesterday"
            } else {
                "2026-11-25T10:00:00.000Z-0000-0000000000000001"
            };
            json!({"id": format!("r{i}"), "title": "t", "__fieldMeta": {"title": {"at": at}}})
        })
        .collect();
    let bytes = notes_archive("alice", &rows);
    let b = seeded("bob", 2).await;
    let before = snapshot(&b).await;
    assert_eq!(code(b.import_backup(&bytes, None)).await, "invalid_record");
    assert_eq!(snapshot(&b).await, before);
}

#[wasm_bindgen_test]
async fn pack_backup_writes_an_archive_a_store_imports() {
    use mana_sync::web::pack_backup;
    let tables = json!({"notes": [{"id": "p1", "title": "packed", "updatedAt": 5}]});
    let opts = |v: Value| Some(js(v).unchecked_into());
    let bytes: Vec<u8> = js_sys::Uint8Array::new(
        &ok_js(pack_backup(
            js(tables.clone()),
            opts(json!({"userId": "carol", "passphrase": "pw"})),
        ))
        .await,
    )
    .to_vec();
    let info = rs(&inspect_backup(&bytes).unwrap());
    assert_eq!(info["sealed"], json!(true));
    assert_eq!(info["manifest"]["userId"], json!("carol"));
    let s = store("dave", 4).await;
    let report =
        rs(&ok_js(s.import_backup(&bytes, import_opts(json!({"passphrase": "pw"})))).await);
    assert_eq!(report["imported"], json!(1));
    assert_eq!(
        rs(&ok_js(s.get("notes".into(), "p1".into())).await)["title"],
        json!("packed")
    );
    assert_eq!(
        code(pack_backup(js(json!({"notes": [1, 2]})), None)).await,
        "invalid_record"
    );
    assert_eq!(
        code(pack_backup(js(tables), opts(json!({"passphrase": ""})))).await,
        "invalid_options"
    );
}

/// Timestamps older and newer than any local write.
const OLD: &str = "2000-01-01T00:00:00.000Z-0000-0000000000000001";
const NEW: &str = "2100-01-01T00:00:00.000Z-0000-0000000000000001";

/// An unsealed archive of `user` holding `rows` in `notes`.
fn notes_archive(user: &str, rows: &[Value]) -> Vec<u8> {
    use mana_sync::backup::{BackupWriter, ManifestInfo, Scope};
    let mut w = BackupWriter::new(ManifestInfo::new(
        user,
        "2026-11-25T10:00:00.000Z",
        Scope::Full,
    ));
    w.begin_table("notes").unwrap();
    for row in rows {
        w.write_row(row).unwrap();
    }
    w.finish_unsealed().unwrap()
}

#[wasm_bindgen_test]
async fn repeated_rows_of_an_id_merge_onto_the_local_record() {
    // The first row changes nothing (older), the second wins one field: the local record's
    // other fields must survive.
    let s = store("erin", 5).await;
    ok_js(s.put(
        "notes".into(),
        js(json!({"id": "d1", "title": "local", "content": "keep"})),
        None,
    ))
    .await;
    let bytes = notes_archive(
        "erin",
        &[
            json!({"id": "d1", "title": "old", "__fieldMeta": {"title": {"at": OLD}}}),
            json!({"id": "d1", "tag": "new", "__fieldMeta": {"tag": {"at": NEW}}}),
        ],
    );
    let report = rs(&ok_js(s.import_backup(&bytes, None)).await);
    assert_eq!(
        (report["imported"].clone(), report["skipped"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(
        rs(&ok_js(s.get("notes".into(), "d1".into())).await),
        json!({"id": "d1", "title": "local", "content": "keep", "tag": "new", "spaceId": "_personal:erin"})
    );
}

#[wasm_bindgen_test]
async fn an_import_merges_onto_local_records_in_every_read_chunk() {
    // The local records are read 2,500 at a time: rows of ids in the first, middle and last
    // chunks, on both sides of chunk boundaries, must each find their local record (else they
    // would replace it).
    let s = store("fay", 6).await;
    let local: Vec<Value> = (0..12_000)
        .map(|i| json!({"id": format!("r{i:06}"), "title": "local", "content": i}))
        .collect();
    ok_js(s.bulk_put("notes".into(), js(Value::Array(local)), None)).await;
    let ids = [
        "r000100", "r002499", "r002500", "r004999", "r005000", "r007000", "r011999",
    ];
    let rows: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "title": "old", "tag": "new",
                   "__fieldMeta": {"title": {"at": OLD}, "tag": {"at": NEW}}})
        })
        .collect();
    let bytes = notes_archive("fay", &rows);
    let report = rs(&ok_js(s.import_backup(&bytes, None)).await);
    assert_eq!(report["imported"], json!(ids.len()), "{report}");
    for id in ids {
        let n: u64 = id[1..].parse().unwrap();
        assert_eq!(
            rs(&ok_js(s.get("notes".into(), id.into())).await),
            json!({"id": id, "title": "local", "content": n, "tag": "new", "spaceId": "_personal:fay"}),
            "{id}"
        );
    }
}

/// A ticker that runs one task after another (MessageChannel ping-pong) until stopped: its count
/// tells whether other tasks ran meanwhile.
fn ticker() -> JsValue {
    js_sys::Function::new_no_args(
        "const s = { ticks: 0, stop: false }; const ch = new MessageChannel();
         ch.port1.onmessage = () => { s.ticks++; if (!s.stop) ch.port2.postMessage(0); };
         ch.port2.postMessage(0); return s;",
    )
    .call0(&JsValue::NULL)
    .unwrap()
}

#[wasm_bindgen_test]
async fn long_exports_and_imports_give_the_page_its_turns() {
    // Parsing, merging and packing 30,000 rows take longer than a slice of main-thread work:
    // other tasks must run between their progress reports (the page stays responsive).
    let a = store("alice", 1).await;
    let rows: Vec<Value> = (0..30_000)
        .map(|i| {
            json!({"id": format!("r{i:06}"), "title": format!("note {i}"), "updatedAt": i,
                   "content": format!("{i} {}", "lorem ipsum dolor sit amet ".repeat(8))})
        })
        .collect();
    ok_js(a.bulk_put("notes".into(), js(json!(rows)), None)).await;
    let tick = ticker();
    let seen: Rc<RefCell<Vec<(String, f64, f64)>>> = Rc::default();
    let sink = seen.clone();
    let t = tick.clone();
    let cb = Closure::<dyn FnMut(String, f64, f64)>::new(move |p: String, _: f64, _: f64| {
        let ticks = js_sys::Reflect::get(&t, &"ticks".into()).unwrap();
        sink.borrow_mut()
            .push((p, ticks.as_f64().unwrap(), js_sys::Date::now()));
    });
    // A phase that ran longer than a few slices let other tasks run (the old code ran each
    // phase as one task).
    let check = |phase: &str| {
        let at: Vec<(f64, f64)> = seen
            .borrow()
            .iter()
            .filter(|(p, ..)| p == phase)
            .map(|(_, t, ms)| (*t, *ms))
            .collect();
        assert!(at.len() > 1, "{phase}: {at:?}");
        let (first, last) = (at[0], at[at.len() - 1]);
        if last.1 - first.1 > 100.0 {
            assert!(
                last.0 > first.0,
                "{phase} ran {} ms as one task",
                last.1 - first.1
            );
        }
    };
    let opts = js(json!({"passphrase": "pw"}));
    js_sys::Reflect::set(&opts, &"onProgress".into(), cb.as_ref()).unwrap();
    let bytes = js_sys::Uint8Array::new(&ok_js(a.export_backup(Some(opts.unchecked_into()))).await)
        .to_vec();
    check("serialize");
    assert!(seen.borrow().iter().any(|(p, ..)| p == "derive"));
    seen.borrow_mut().clear();
    let b = store("bob", 2).await;
    let opts = js(json!({"passphrase": "pw"}));
    js_sys::Reflect::set(&opts, &"onProgress".into(), cb.as_ref()).unwrap();
    let report = rs(&ok_js(b.import_backup(&bytes, Some(opts.unchecked_into()))).await);
    js_sys::Reflect::set(&tick, &"stop".into(), &true.into()).unwrap();
    assert_eq!(report["imported"], json!(30_000));
    assert!(seen.borrow().iter().any(|(p, ..)| p == "derive"));
    check("parse");
    check("merge");
}
