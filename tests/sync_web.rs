//! The sync engine in headless Chromium against a real `mana-sync-server --dev`, started by
//! `scripts/ci/test-browser.sh` behind `tests/support/sync_harness.mjs` (which can take the
//! server down and shows what reached it). Its URLs arrive at compile time, as gloo's own
//! tests take `HTTPBIN_URL`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use mana_sync::schema::StoreConfig;
use mana_sync::web::{ManaStore, ManaSync};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod common;
use common::{code, js, ok, ok_js, rs, sleep, unique, Collector};

const SYNC_URL: Option<&str> = option_env!("MANA_SYNC_URL");
const CONTROL_URL: Option<&str> = option_env!("MANA_SYNC_CONTROL");
const KEY: [u8; 32] = [7; 32];

fn sync_url() -> &'static str {
    SYNC_URL.expect("MANA_SYNC_URL: run through scripts/ci/test-browser.sh")
}

async fn fetch_json(url: &str, method: &str, body: Option<Value>) -> Value {
    let mut builder = match method {
        "POST" => gloo_net::http::Request::post(url),
        _ => gloo_net::http::Request::get(url),
    };
    if body.is_some() {
        builder = builder.header("Content-Type", "application/json");
    }
    let req = match body {
        Some(b) => builder.body(b.to_string()).unwrap(),
        None => builder.build().unwrap(),
    };
    let resp = req.send().await.expect("harness answers");
    serde_json::from_str(&resp.text().await.unwrap()).unwrap()
}

async fn control(path: &str) -> Value {
    let base = CONTROL_URL.expect("MANA_SYNC_CONTROL");
    fetch_json(&format!("{base}{path}"), "GET", None).await
}

async fn dev_token(user: &str) -> String {
    let v = fetch_json(
        &format!("{}/dev/token", sync_url()),
        "POST",
        Some(json!({ "userId": user })),
    )
    .await;
    v["token"].as_str().unwrap().to_owned()
}

/// Requests (not preflights) that reached the server since `from`, as `METHOD url`.
async fn requests_since(from: usize) -> Vec<String> {
    let log = control("/log").await;
    log.as_array().unwrap()[from..]
        .iter()
        .filter(|r| r["method"] != "OPTIONS")
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["url"].as_str().unwrap()
            )
        })
        .collect()
}

async fn log_len() -> usize {
    control("/log").await.as_array().unwrap().len()
}

fn config(name: &str, user: &str) -> StoreConfig {
    serde_json::from_value(json!({
        "name": name, "userId": user,
        "apps": {"notes": {"collections": {
            "notes": {"indexes": ["updatedAt"], "encrypted": ["title", "body"]},
            "tags": {}
        }}}
    }))
    .unwrap()
}

/// One device: a store of its own database, unlocked with the user's key.
async fn device(user: &str) -> (ManaStore, String) {
    let name = unique("sync-dev");
    let store = ManaStore::open_with(config(&name, user)).await.unwrap();
    ok_js(store.unlock(&KEY)).await;
    (store, name)
}

fn token_fn(token: &str) -> js_sys::Function {
    js_sys::Function::new_with_args("refresh", &format!("return Promise.resolve({token:?})"))
}

/// `token()` as an app writes it: a fresh token from the server each time it is asked (a dev
/// server that restarts has a new secret).
fn fresh_token_fn(user: &str) -> js_sys::Function {
    js_sys::Function::new_with_args(
        "refresh",
        &format!(
            "return fetch({:?}, {{method: 'POST', headers: {{'content-type': 'application/json'}}, \
             body: JSON.stringify({{userId: {user:?}}})}}).then(r => r.json()).then(j => j.token)",
            format!("{}/dev/token", sync_url())
        ),
    )
}

fn sync_of(store: &ManaStore, token: &str, live: bool) -> ManaSync {
    sync_with(store, token_fn(token), live)
}

fn sync_with(store: &ManaStore, token: js_sys::Function, live: bool) -> ManaSync {
    let opts = js_sys::Object::new();
    let set = |k: &str, v: JsValue| js_sys::Reflect::set(&opts, &k.into(), &v).unwrap();
    set("url", sync_url().into());
    set("token", token.into());
    set("live", live.into());
    store.sync(opts.into()).unwrap()
}

async fn get(store: &ManaStore, collection: &str, id: &str) -> Value {
    ok(store.get(collection.into(), id.into())).await
}

async fn pending(store: &ManaStore) -> u64 {
    ok(store.pending_count()).await.as_u64().unwrap()
}

async fn sync_now(sync: &ManaSync) {
    ok_js(sync.sync_now()).await;
}

/// Collects the values a sync event delivers.
fn listen(sync: &ManaSync, event: &str) -> Rc<RefCell<Vec<Value>>> {
    subscribe(sync, event).0
}

/// [`listen`], with the unsubscribe function `sync.on` returned.
fn subscribe(sync: &ManaSync, event: &str) -> (Rc<RefCell<Vec<Value>>>, js_sys::Function) {
    let seen: Rc<RefCell<Vec<Value>>> = Rc::default();
    let sink = seen.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| sink.borrow_mut().push(rs(&v)));
    let unsubscribe = sync
        .on(
            event.into(),
            f.as_ref().unchecked_ref::<js_sys::Function>().clone(),
        )
        .unwrap();
    f.forget();
    (seen, unsubscribe.unchecked_into())
}

async fn wait_for(what: &str, ms: u32, mut cond: impl FnMut() -> bool) {
    for _ in 0..ms / 20 {
        if cond() {
            return;
        }
        sleep(20).await;
    }
    panic!("timed out after {ms} ms waiting for {what}");
}

fn without_meta(mut v: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.remove("updatedAt");
    }
    v
}

#[wasm_bindgen_test]
async fn two_devices_converge_on_insert_update_and_delete_and_the_server_sees_no_plaintext() {
    let user = unique("alice");
    let token = dev_token(&user).await;
    let (a, _) = device(&user).await;
    let (b, _) = device(&user).await;
    let (sa, sb) = (sync_of(&a, &token, false), sync_of(&b, &token, false));
    let secret = unique("secret-title");
    let plain = unique("plain-tag");
    let note = json!({"id": "n1", "title": secret, "body": "first", "updatedAt": 1});
    ok_js(a.put("notes".into(), js(note.clone()), None)).await;
    ok_js(a.put("tags".into(), js(json!({"id": "t1", "label": plain})), None)).await;
    assert_eq!(pending(&a).await, 2);
    sync_now(&sa).await;
    assert_eq!(pending(&a).await, 0, "acknowledged changes leave the queue");
    assert_eq!(
        sa.status(),
        "local",
        "syncNow alone does not start automatic sync"
    );
    sync_now(&sb).await;
    assert_eq!(get(&b, "notes", "n1").await, get(&a, "notes", "n1").await);
    assert_eq!(get(&b, "notes", "n1").await["title"], json!(secret));
    assert_eq!(get(&b, "tags", "t1").await["label"], json!(plain));
    assert_eq!(
        pending(&b).await,
        0,
        "applying server changes queues nothing"
    );

    ok_js(b.update(
        "notes".into(),
        "n1".into(),
        js(json!({"body": "edited on b"})),
        None,
    ))
    .await;
    sync_now(&sb).await;
    sync_now(&sa).await;
    assert_eq!(get(&a, "notes", "n1").await["body"], "edited on b");

    ok_js(a.delete("notes".into(), "n1".into(), None)).await;
    sync_now(&sa).await;
    sync_now(&sb).await;
    let (ra, rb) = (get(&a, "notes", "n1").await, get(&b, "notes", "n1").await);
    assert!(rb["deletedAt"].is_string(), "{rb}");
    assert_eq!(ra, rb);
    let listed = ok(b.list("notes".into(), None)).await;
    assert_eq!(listed, json!([]), "the tombstone is hidden");

    // A put replaces: the fields it drops are dropped on every device and the server too.
    let full = json!({"id": "p1", "title": "full", "body": "body", "extra": 1});
    ok_js(a.put("notes".into(), js(full), None)).await;
    sync_now(&sa).await;
    sync_now(&sb).await;
    ok_js(b.put(
        "notes".into(),
        js(json!({"id": "p1", "title": "short"})),
        None,
    ))
    .await;
    sync_now(&sb).await;
    sync_now(&sa).await;
    let (pa, pb) = (get(&a, "notes", "p1").await, get(&b, "notes", "p1").await);
    assert_eq!(pa, pb);
    assert_eq!(
        (pa["title"].clone(), pa["body"].clone(), pa["extra"].clone()),
        (json!("short"), Value::Null, Value::Null)
    );
    let (c, _) = device(&user).await;
    sync_now(&sync_of(&c, &token, false)).await;
    assert_eq!(
        get(&c, "notes", "p1").await,
        pa,
        "a new device gets the server's state"
    );

    // A later local write beats what was pulled: the clock observed the remote HLCs.
    ok_js(b.update(
        "tags".into(),
        "t1".into(),
        js(json!({"label": "b wins"})),
        None,
    ))
    .await;
    sync_now(&sb).await;
    sync_now(&sa).await;
    assert_eq!(get(&a, "tags", "t1").await["label"], "b wins");

    assert_eq!(
        control(&format!("/db-contains?s={plain}")).await["found"],
        true
    );
    assert_eq!(
        control(&format!("/db-contains?s={secret}")).await["found"],
        false,
        "an encrypted field's plaintext reached the server"
    );
}

#[wasm_bindgen_test]
async fn concurrent_edits_merge_per_field_and_the_loser_gets_a_plaintext_conflict() {
    let user = unique("bob");
    let token = dev_token(&user).await;
    let (a, _) = device(&user).await;
    let (b, _) = device(&user).await;
    let (sa, sb) = (sync_of(&a, &token, false), sync_of(&b, &token, false));
    let conflicts_a = listen(&sa, "conflict");
    let conflicts_b = listen(&sb, "conflict");
    ok_js(a.put(
        "notes".into(),
        js(json!({"id": "n", "title": "v0", "body": "v0"})),
        None,
    ))
    .await;
    sync_now(&sa).await;
    sync_now(&sb).await;
    // Offline edits: a edits body and title, then b (later) edits title.
    ok_js(a.update(
        "notes".into(),
        "n".into(),
        js(json!({"body": "body by a", "title": "title by a"})),
        None,
    ))
    .await;
    sleep(5).await;
    ok_js(b.update(
        "notes".into(),
        "n".into(),
        js(json!({"title": "title by b"})),
        None,
    ))
    .await;
    sync_now(&sa).await;
    sync_now(&sb).await;
    sync_now(&sa).await;
    let (ra, rb) = (get(&a, "notes", "n").await, get(&b, "notes", "n").await);
    assert_eq!(ra, rb);
    assert_eq!(
        ra["body"], "body by a",
        "edits of different fields both survive"
    );
    assert_eq!(
        ra["title"], "title by b",
        "the later write of one field wins"
    );
    let got = conflicts_a.borrow().clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let c = &got[0];
    assert_eq!(
        (
            c["collection"].as_str(),
            c["id"].as_str(),
            c["field"].as_str()
        ),
        (Some("notes"), Some("n"), Some("title"))
    );
    assert_eq!(c["wasLocal"], "title by a", "values are decrypted");
    assert_eq!(c["nowServer"], "title by b");
    assert!(c["serverAt"].as_str() > c["localAt"].as_str());
    assert!(
        conflicts_b.borrow().is_empty(),
        "the winner has no conflict"
    );
}

#[wasm_bindgen_test]
async fn an_edit_made_after_seeing_ours_is_no_conflict() {
    let user = unique("erin");
    let token = dev_token(&user).await;
    let (a, _) = device(&user).await;
    let (b, _) = device(&user).await;
    let (sa, sb) = (sync_of(&a, &token, false), sync_of(&b, &token, false));
    let conflicts_a = listen(&sa, "conflict");
    ok_js(a.put(
        "notes".into(),
        js(json!({"id": "t", "title": "Buy milk"})),
        None,
    ))
    .await;
    sync_now(&sa).await;
    sync_now(&sb).await;
    // b saw "Buy milk" and renames it: a's value is replaced knowingly.
    ok_js(b.update(
        "notes".into(),
        "t".into(),
        js(json!({"title": "Buy oat milk"})),
        None,
    ))
    .await;
    sync_now(&sb).await;
    sync_now(&sa).await;
    assert_eq!(get(&a, "notes", "t").await["title"], "Buy oat milk");
    let got = conflicts_a.borrow().clone();
    assert!(got.is_empty(), "an ordinary edit is no conflict: {got:?}");
}

#[wasm_bindgen_test]
async fn a_first_sync_pages_2500_records_and_resumes_after_its_first_page() {
    let user = unique("carol");
    let token = dev_token(&user).await;
    let (a, _) = device(&user).await;
    let sa = sync_of(&a, &token, false);
    let rows: Vec<Value> = (0..2500)
        .map(|i| json!({"id": format!("r{i:05}"), "title": format!("t{i}"), "updatedAt": i}))
        .collect();
    ok_js(a.bulk_put("notes".into(), js(Value::Array(rows)), None)).await;
    sync_now(&sa).await;
    assert_eq!(pending(&a).await, 0);

    // Device b starts its first sync and is stopped right after the first page landed.
    let (b, b_name) = device(&user).await;
    let sb = sync_of(&b, &token, false);
    let changes = listen(&sb, "change");
    let status = listen(&sb, "status");
    let sb = Rc::new(sb);
    let sb2 = sb.clone();
    let f = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| sb2.stop());
    let _ = sb.on(
        "change".into(),
        f.as_ref().unchecked_ref::<js_sys::Function>().clone(),
    );
    f.forget();
    sb.start();
    wait_for("the first page", 10_000, || !changes.borrow().is_empty()).await;
    wait_for("the stop", 10_000, || {
        status.borrow().last() == Some(&json!("local"))
    })
    .await;
    let first = ok(b.list("notes".into(), None)).await;
    assert_eq!(
        first.as_array().unwrap().len(),
        1000,
        "exactly the first page"
    );
    ok_js(b.close()).await;

    // "Reload": the same database, a new store and sync. It resumes from the stored cursor.
    let b = ManaStore::open_with(config(&b_name, &user)).await.unwrap();
    ok_js(b.unlock(&KEY)).await;
    let from = log_len().await;
    let sb = sync_of(&b, &token, false);
    sync_now(&sb).await;
    let all = ok(b.list("notes".into(), None)).await;
    assert_eq!(all.as_array().unwrap().len(), 2500);
    let pulls: Vec<String> = requests_since(from)
        .await
        .into_iter()
        .filter(|r| r.contains("/pull") && r.contains("collection=notes"))
        .collect();
    assert_eq!(pulls.len(), 2, "pages 2 and 3 only: {pulls:?}");
    assert!(pulls[0].contains("since=snapshot"), "{pulls:?}");
    for i in [0, 1234, 2499] {
        let id = format!("r{i:05}");
        assert_eq!(
            without_meta(get(&b, "notes", &id).await),
            without_meta(get(&a, "notes", &id).await)
        );
    }
}

#[wasm_bindgen_test]
async fn a_live_write_reaches_the_other_device_within_two_seconds_without_sync_now() {
    let user = unique("dave");
    let token = dev_token(&user).await;
    let (a, _) = device(&user).await;
    let (b, _) = device(&user).await;
    let (sa, sb) = (sync_of(&a, &token, true), sync_of(&b, &token, true));
    let sb_status = listen(&sb, "status");
    sa.start();
    sb.start();
    wait_for("b synced", 5_000, || {
        sb_status.borrow().last() == Some(&json!("synced"))
    })
    .await;
    // Give b's WebSocket a moment to be subscribed (auth-ok).
    sleep(300).await;
    let live = Collector::new();
    let q = b.live_query("notes".into(), None).unwrap();
    let _unsubscribe = q.subscribe(live.function());
    ok_js(a.put(
        "notes".into(),
        js(json!({"id": "live", "title": "hello"})),
        None,
    ))
    .await;
    live.wait_until("the note from a", |v| {
        v.as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["title"] == "hello"))
    })
    .await;
    assert_eq!(sa.status(), "synced");
    sa.stop();
    sb.stop();
}

#[wasm_bindgen_test]
async fn server_down_is_offline_writes_stay_pending_and_drain_when_it_is_back() {
    let user = unique("erin");
    let (a, _) = device(&user).await;
    let sa = sync_with(&a, fresh_token_fn(&user), false);
    let status = listen(&sa, "status");
    sa.start();
    wait_for("synced", 5_000, || sa.status() == "synced").await;
    control("/down").await;
    ok_js(a.put(
        "notes".into(),
        js(json!({"id": "o1", "title": "while down"})),
        None,
    ))
    .await;
    wait_for("offline", 5_000, || sa.status() == "offline").await;
    assert_eq!(code(sa.sync_now()).await, "network");
    assert_eq!(pending(&a).await, 1, "nothing is dropped");
    control("/up").await;
    for _ in 0..300 {
        if pending(&a).await == 0 {
            break;
        }
        sleep(100).await;
    }
    let log = requests_since(0).await;
    let tail = &log[log.len().saturating_sub(12)..];
    assert_eq!(
        pending(&a).await,
        0,
        "drained by the backoff retry, without a call; statuses {:?}, last requests {tail:?}",
        status.borrow()
    );
    wait_for("synced again", 5_000, || sa.status() == "synced").await;
    let seen = status.borrow().clone();
    assert!(seen.contains(&json!("offline")), "{seen:?}");
    sa.stop();
    let (b, _) = device(&user).await;
    sync_now(&sync_with(&b, fresh_token_fn(&user), false)).await;
    assert_eq!(get(&b, "notes", "o1").await["title"], "while down");
}

#[wasm_bindgen_test]
async fn a_refused_token_is_asked_once_more_then_sync_waits_without_a_request_loop() {
    let (a, _) = device(&unique("frank")).await;
    let calls = Rc::new(RefCell::new(0u32));
    let counter = calls.clone();
    let token = Closure::<dyn FnMut(JsValue) -> JsValue>::new(move |_| {
        *counter.borrow_mut() += 1;
        JsValue::from_str("not-a-valid-token")
    });
    let opts = js_sys::Object::new();
    js_sys::Reflect::set(&opts, &"url".into(), &sync_url().into()).unwrap();
    js_sys::Reflect::set(&opts, &"token".into(), token.as_ref()).unwrap();
    js_sys::Reflect::set(&opts, &"live".into(), &false.into()).unwrap();
    let sa = a.sync(opts.into()).unwrap();
    ok_js(a.put("notes".into(), js(json!({"id": "x", "title": "t"})), None)).await;
    let from = log_len().await;
    sa.start();
    wait_for("auth-required", 5_000, || sa.status() == "auth-required").await;
    sleep(1500).await;
    ok_js(a.put("notes".into(), js(json!({"id": "y", "title": "t"})), None)).await;
    sleep(500).await;
    let requests = requests_since(from).await;
    assert_eq!(
        requests.len(),
        2,
        "one request, one retry with a fresh token: {requests:?}"
    );
    assert_eq!(*calls.borrow(), 2, "token() asked twice");
    assert_eq!(pending(&a).await, 2, "writes stay pending");
    assert_eq!(code(sa.sync_now()).await, "unauthorized");
    token.forget();
}

#[wasm_bindgen_test]
async fn an_answer_that_is_not_the_documented_shape_is_a_protocol_error_and_writes_nothing() {
    let user = unique("gina");
    let token = dev_token(&user).await;
    let (a, _) = device(&user).await;
    let sa = sync_of(&a, &token, false);
    ok_js(a.put("notes".into(), js(json!({"id": "p", "title": "t"})), None)).await;
    for body in [
        "not json",
        r#"{"serverChanges":[{"op":"insert"}],"syncedUntil":"1"}"#,
    ] {
        control(&format!(
            "/inject?status=200&body={}",
            js_sys::encode_uri_component(body)
        ))
        .await;
        assert_eq!(code(sa.sync_now()).await, "protocol_error", "{body}");
        assert_eq!(pending(&a).await, 1, "nothing acknowledged");
        assert_eq!(sa.status(), "error");
    }
    control(&format!(
        "/inject?status=503&body={}",
        js_sys::encode_uri_component("{}")
    ))
    .await;
    assert_eq!(code(sa.sync_now()).await, "server_error");
    sync_now(&sa).await;
    assert_eq!(pending(&a).await, 0);
}

#[wasm_bindgen_test]
async fn a_guest_works_locally_and_its_writes_upload_after_sign_in() {
    let user = unique("hana");
    let name = unique("guest");
    let mut cfg = config(&name, "");
    cfg.user_id = String::new();
    let guest = ManaStore::open_with(cfg).await.unwrap();
    assert_eq!(guest.user_id(), "");
    let guest_key = [9u8; 32];
    ok_js(guest.unlock(&guest_key)).await;
    ok_js(guest.put(
        "notes".into(),
        js(json!({"id": "g1", "title": "guest note", "body": "b"})),
        None,
    ))
    .await;
    ok_js(guest.put(
        "tags".into(),
        js(json!({"id": "g2", "label": "plain"})),
        None,
    ))
    .await;
    ok_js(guest.update(
        "notes".into(),
        "g1".into(),
        js(json!({"body": "edited"})),
        None,
    ))
    .await;
    let offline = sync_with(&guest, js_sys::Function::new_no_args("return null"), false);
    assert_eq!(code(offline.sync_now()).await, "unauthorized");
    assert_eq!(offline.status(), "local", "no token: local, not an error");
    assert_eq!(pending(&guest).await, 3);

    // Sign in with the user's key: the guest's data is re-encrypted under it and claimed.
    let opts = js(json!({}));
    js_sys::Reflect::set(
        &opts,
        &"vaultKey".into(),
        &js_sys::Uint8Array::from(&KEY[..]),
    )
    .unwrap();
    ok_js(guest.sign_in(user.clone(), Some(opts.unchecked_into()))).await;
    assert_eq!(guest.user_id(), user);
    let note = get(&guest, "notes", "g1").await;
    assert_eq!(note["spaceId"], json!(format!("_personal:{user}")));
    assert_eq!(note["title"], "guest note", "readable under the new key");
    let token = dev_token(&user).await;
    sync_now(&sync_of(&guest, &token, false)).await;
    assert_eq!(
        pending(&guest).await,
        0,
        "everything the guest wrote was accepted"
    );

    let (b, _) = device(&user).await;
    sync_now(&sync_of(&b, &token, false)).await;
    let on_b = get(&b, "notes", "g1").await;
    assert_eq!(
        (on_b["title"].as_str(), on_b["body"].as_str()),
        (Some("guest note"), Some("edited"))
    );
    assert_eq!(get(&b, "tags", "g2").await["label"], "plain");
    // A reopened store without userId stays signed in.
    ok_js(guest.close()).await;
    let mut cfg = config(&name, "");
    cfg.user_id = String::new();
    let again = ManaStore::open_with(cfg).await.unwrap();
    assert_eq!(again.user_id(), user);
}

#[wasm_bindgen_test]
async fn bad_sync_options_and_sign_ins_get_coded_errors_and_change_nothing() {
    let (a, _) = device(&unique("ivan")).await;
    let sync_code = |opts: Value, token: Option<js_sys::Function>| {
        let o = js(opts);
        if let Some(t) = token {
            js_sys::Reflect::set(&o, &"token".into(), &t).unwrap();
        }
        let err = a.sync(o).err().expect("refused");
        js_sys::Reflect::get(&err, &"code".into())
            .unwrap()
            .as_string()
            .unwrap()
    };
    let t = || Some(token_fn("x"));
    assert_eq!(
        sync_code(json!({"url": "ftp://x", }), t()),
        "invalid_options"
    );
    assert_eq!(
        sync_code(json!({"url": sync_url()}), None),
        "invalid_options",
        "no token()"
    );
    assert_eq!(
        sync_code(json!({"url": sync_url(), "token": "jwt"}), None),
        "invalid_options"
    );
    assert_eq!(
        sync_code(json!({"url": sync_url(), "apps": ["nope"]}), t()),
        "invalid_options"
    );
    assert_eq!(
        sync_code(json!({"url": sync_url(), "apps": "notes"}), t()),
        "invalid_options",
        "apps is a list"
    );
    assert_eq!(
        sync_code(json!({"url": sync_url(), "live": "yes"}), t()),
        "invalid_options",
        "live is a boolean"
    );
    assert_eq!(sync_code(json!({"url": 7}), t()), "invalid_options");
    let err = a
        .sync(JsValue::UNDEFINED)
        .err()
        .expect("no options refused");
    assert_eq!(
        js_sys::Reflect::get(&err, &"code".into()).unwrap(),
        "invalid_options"
    );
    let sa = sync_of(&a, "x", false);
    let err = sa.on("bogus".into(), token_fn("x")).err().unwrap();
    assert_eq!(
        js_sys::Reflect::get(&err, &"code".into()).unwrap(),
        "invalid_options"
    );

    // signIn: a store of another user, an empty user, a short key — each refused, nothing moved.
    ok_js(a.put("notes".into(), js(json!({"id": "s1", "title": "t"})), None)).await;
    let before = get(&a, "notes", "s1").await;
    assert_eq!(
        code(a.sign_in("someone-else".into(), None)).await,
        "already_signed_in"
    );
    let mut cfg = config(&unique("guest-bad"), "");
    cfg.user_id = String::new();
    let guest = ManaStore::open_with(cfg).await.unwrap();
    ok_js(guest.unlock(&KEY)).await;
    ok_js(guest.put("notes".into(), js(json!({"id": "g", "title": "t"})), None)).await;
    assert_eq!(
        code(guest.sign_in("  ".into(), None)).await,
        "invalid_options"
    );
    let short = js(json!({}));
    js_sys::Reflect::set(
        &short,
        &"vaultKey".into(),
        &js_sys::Uint8Array::from(&[1u8; 5][..]),
    )
    .unwrap();
    assert_eq!(
        code(guest.sign_in("u".into(), Some(short.unchecked_into()))).await,
        "invalid_key"
    );
    assert_eq!(guest.user_id(), "", "still a guest");
    assert_eq!(get(&guest, "notes", "g").await["spaceId"], "_personal:");
    assert_eq!(get(&a, "notes", "s1").await, before);
}

/// The function `sync.on` returns unsubscribes that listener: it hears nothing more, while
/// another listener of the same event still does.
#[wasm_bindgen_test]
async fn an_unsubscribed_listener_hears_nothing_more() {
    let user = unique("uma");
    let token = dev_token(&user).await;
    let (a, _) = device(&user).await;
    let sync = sync_of(&a, &token, false);
    let kept = listen(&sync, "status");
    let (heard, unsubscribe) = subscribe(&sync, "status");
    ok_js(a.put("notes".into(), js(json!({"id": "u1", "title": "t"})), None)).await;
    sync_now(&sync).await;
    let before = heard.borrow().len();
    assert!(before > 0, "subscribed, it hears the round");
    assert_eq!(*heard.borrow(), *kept.borrow());
    unsubscribe.call0(&JsValue::NULL).unwrap();
    unsubscribe
        .call0(&JsValue::NULL)
        .expect("unsubscribing again does not throw");
    ok_js(a.put("notes".into(), js(json!({"id": "u2", "title": "t"})), None)).await;
    sync_now(&sync).await;
    assert_eq!(
        heard.borrow().len(),
        before,
        "unsubscribed: {:?}",
        heard.borrow()
    );
    assert!(
        kept.borrow().len() > before,
        "the other listener still hears: {:?}",
        kept.borrow()
    );
    sync.stop();
}
