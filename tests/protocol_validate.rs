//! `Change::validate` rejects each structurally invalid shape with its own code, and the
//! wire format round-trips (camelCase, absent fields omitted, unknown fields tolerated).
#![cfg(not(target_arch = "wasm32"))]

use mana_sync::protocol::{Change, Changeset, SyncResponse, MAX_CHANGES_PER_PUSH};
use serde_json::{json, Value};

const T1: &str = "2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60";
const EID: &str = "0190a6f0-0000-7000-8000-000000000001";

fn base(op: &str) -> Value {
    match op {
        "insert" => json!({"eventId": EID, "table": "notes", "id": "n1", "op": "insert",
                           "data": {"id": "n1", "title": "x"}, "updatedAt": T1}),
        "update" => json!({"eventId": EID, "table": "notes", "id": "n1", "op": "update",
                           "fields": {"title": {"value": "y", "updatedAt": T1}}}),
        _ => json!({"eventId": EID, "table": "notes", "id": "n1", "op": "delete", "deletedAt": T1}),
    }
}

fn code_of(v: Value) -> Option<&'static str> {
    let c: Change = serde_json::from_value(v).expect("deserializes");
    c.validate().err().map(|e| e.code().as_str())
}

fn with(op: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut v = base(op);
    f(v.as_object_mut().unwrap());
    v
}

#[test]
fn valid_changes_pass() {
    for op in ["insert", "update", "delete"] {
        assert_eq!(code_of(base(op)), None, "{op}");
    }
}

#[test]
fn each_invalid_shape_has_its_code() {
    let cases: Vec<(&str, Value)> = vec![
        (
            "empty_id",
            with("insert", |m| {
                m.insert("id".into(), json!(""));
            }),
        ),
        (
            "empty_table",
            with("update", |m| {
                m.insert("table".into(), json!(""));
            }),
        ),
        (
            "unknown_op",
            with("delete", |m| {
                m.insert("op".into(), json!("upsert"));
            }),
        ),
        (
            "missing_data",
            with("insert", |m| {
                m.remove("data");
            }),
        ),
        (
            "missing_fields",
            with("update", |m| {
                m.remove("fields");
            }),
        ),
        (
            "missing_fields",
            with("update", |m| {
                m.insert("fields".into(), json!({}));
            }),
        ),
        (
            "missing_timestamp",
            with("insert", |m| {
                m.remove("updatedAt");
            }),
        ),
        (
            "missing_timestamp",
            with("delete", |m| {
                m.remove("deletedAt");
            }),
        ),
        (
            "invalid_timestamp",
            with("update", |m| {
                m.insert(
                    "fields".into(),
                    json!({"title": {"value": 1, "updatedAt": "2026-11-25"}}),
                );
            }),
        ),
        (
            "invalid_timestamp",
            with("delete", |m| {
                m.insert("deletedAt".into(), json!("yesterday"));
            }),
        ),
        (
            "invalid_timestamp",
            with("insert", |m| {
                m.insert("updatedAt".into(), json!(T1.to_uppercase()));
            }),
        ),
        (
            "invalid_event_id",
            with("insert", |m| {
                m.insert("eventId".into(), json!("e1"));
            }),
        ),
        (
            "reserved_field",
            with("update", |m| {
                m.insert(
                    "fields".into(),
                    json!({"__fieldMeta": {"value": {}, "updatedAt": T1}}),
                );
            }),
        ),
        (
            "reserved_field",
            with("insert", |m| {
                m.insert("data".into(), json!({"__fieldMeta": {}}));
            }),
        ),
        (
            "id_mismatch",
            with("insert", |m| {
                m.insert("data".into(), json!({"id": "other"}));
            }),
        ),
    ];
    for (code, v) in cases {
        assert_eq!(code_of(v.clone()), Some(code), "{v}");
    }
}

#[test]
fn changeset_validation_names_the_index() {
    let mut bad = base("update");
    bad["fields"] = json!(null);
    let cs: Changeset = serde_json::from_value(json!({
        "clientId": "c1", "changes": [base("insert"), base("delete"), bad]
    }))
    .unwrap();
    let (i, e) = cs.validate().unwrap_err();
    assert_eq!((i, e.code().as_str()), (2, "missing_fields"));

    let many: Changeset = serde_json::from_value(json!({
        "clientId": "c1", "changes": vec![base("delete"); MAX_CHANGES_PER_PUSH + 1]
    }))
    .unwrap();
    assert_eq!(many.validate().unwrap_err().1.code(), "too_many_changes");
}

#[test]
fn wire_format_is_camel_case_omits_absent_and_tolerates_unknown() {
    let mut v = base("insert");
    v["somethingNew"] = json!(42);
    v["actor"] = json!({"kind": "ai", "model": "x"});
    let c: Change = serde_json::from_value(v).unwrap();
    let out = serde_json::to_value(&c).unwrap();
    assert_eq!(out["eventId"], json!(EID));
    assert_eq!(out["updatedAt"], json!(T1));
    assert_eq!(out["actor"], json!({"kind": "ai", "model": "x"}));
    for absent in [
        "fields",
        "deletedAt",
        "schemaVersion",
        "spaceId",
        "seq",
        "somethingNew",
    ] {
        assert!(out.get(absent).is_none(), "{absent} should be omitted");
    }
    assert_eq!(c.schema_version(), 1);

    let resp: SyncResponse = serde_json::from_value(json!({
        "serverChanges": [], "conflicts": [], "syncedUntil": "17", "hasMore": false
    }))
    .unwrap();
    assert_eq!(
        serde_json::to_value(&resp).unwrap()["syncedUntil"],
        json!("17")
    );
}

#[test]
fn space_id_comes_from_top_level_then_data_then_fields() {
    let mut v = base("insert");
    v["data"]["spaceId"] = json!("s-data");
    let c: Change = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(c.effective_space_id(), Some("s-data"));
    v["spaceId"] = json!("s-top");
    let c: Change = serde_json::from_value(v).unwrap();
    assert_eq!(c.effective_space_id(), Some("s-top"));
    let mut u = base("update");
    u["fields"]["spaceId"] = json!({"value": "s-field", "updatedAt": T1});
    let c: Change = serde_json::from_value(u).unwrap();
    assert_eq!(c.effective_space_id(), Some("s-field"));
}
