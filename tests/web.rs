//! Headless-Chromium smoke test: the clock and the merge, called through wasm.
#![cfg(target_arch = "wasm32")]

use mana_sync::web::{merge_changes, HybridClock};
use serde_json::json;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

mod common;
use common::{js as to_js, rs};

#[wasm_bindgen_test]
fn clock_issues_increasing_timestamps_after_observing_a_future_one() {
    let mut clock = HybridClock::new("client-a");
    let a = clock.now().unwrap();
    let b = clock.now().unwrap();
    assert!(b > a, "{b} > {a}");
    let future = "2999-01-01T00:00:00.000Z-0005-0000000000000001";
    clock.observe(future).unwrap();
    let c = clock.now().unwrap();
    assert!(c.as_str() > future, "{c}");
    let err = clock.observe("not a timestamp").unwrap_err();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("invalid_timestamp"));
    assert!(err.is_instance_of::<js_sys::Error>());
}

#[wasm_bindgen_test]
fn merge_runs_in_wasm_and_reports_conflicts() {
    let t1 = "2026-11-25T10:00:00.000Z-0000-0000000000000001";
    let t2 = "2026-11-25T10:00:01.000Z-0000-0000000000000002";
    let eid = "0190a6f0-0000-7000-8000-000000000001";
    let changes = json!([
        {"eventId": eid, "table": "notes", "id": "n1", "op": "update",
         "fields": {"title": {"value": "remote", "updatedAt": t2}}},
        {"eventId": eid, "table": "notes", "id": "n1", "op": "insert",
         "data": {"id": "n1", "title": "local", "body": "b"}, "updatedAt": t1},
    ]);
    let out = merge_changes(to_js(changes)).unwrap();
    let out = rs(&out);
    assert_eq!(
        out["record"],
        json!({"id": "n1", "title": "remote", "body": "b"})
    );
    assert_eq!(out["fieldMeta"]["title"]["at"], json!(t2));
    // Applied in this order, the older insert arrives second: no conflict.
    assert_eq!(out["conflicts"], json!([]));

    let reversed = json!([
        {"eventId": eid, "table": "notes", "id": "n1", "op": "insert",
         "data": {"id": "n1", "title": "local"}, "updatedAt": t1},
        {"eventId": eid, "table": "notes", "id": "n1", "op": "update",
         "fields": {"title": {"value": "remote", "updatedAt": t2}}},
    ]);
    let out = rs(&merge_changes(to_js(reversed)).unwrap());
    assert_eq!(out["record"]["title"], json!("remote"));
    assert_eq!(out["conflicts"][0]["wasLocal"], json!("local"));

    let bad = json!([{"eventId": eid, "table": "notes", "id": "n1", "op": "update"}]);
    let err = merge_changes(to_js(bad)).unwrap_err();
    let code = js_sys::Reflect::get(&err, &"code".into()).unwrap();
    assert_eq!(code.as_string().as_deref(), Some("missing_fields"));
}
