//! Inputs the fuzz targets (fuzz/, `make fuzz`) found, each kept as a regression test.

use mana_sync::field_meta::{decode, encode};
use mana_sync::protocol::Changeset;
use serde_json::{json, Map, Value};

/// fuzz/artifacts/field_meta/crash-70bbea1a…: a float in a `__fieldMeta` entry came back one ulp
/// off after encode → decode (serde_json's default float parsing is not correctly rounded; the
/// crate now enables `float_roundtrip`).
#[test]
fn field_meta_float_survives_encode_decode() {
    let record = json!({"id": "r1", "title": "t", "body": "b", "n": 1});
    let Value::Object(record) = record else {
        unreachable!()
    };
    let stored = Value::String(
        r#"[{"at": 555500000000070823967}, {")$dy": {"at": ":30009z?\\\\\\\\\\\n0"}}]"#.into(),
    );
    let meta = decode(&record, &stored).expect("decodes");
    let encoded = encode(&record, &meta);
    let back: Option<Map<String, Value>> = decode(&record, &encoded);
    assert_eq!(back, Some(meta), "encoded as {encoded}");
}

/// The neighbour: any f64 in a record's data survives the wire (serialise, parse) bit for bit.
#[test]
fn floats_in_changes_round_trip_exactly() {
    let values = [
        5.555000000000709e20,
        5.5550000000007084e20,
        0.1 + 0.2,
        1.0e-300,
        f64::MAX,
        f64::MIN_POSITIVE,
        f64::from_bits(0x000f_ffff_ffff_ffff),
        9007199254740993.0,
    ];
    for v in values {
        let cs = json!({"clientId": "c1", "changes": [{
            "eventId": "0190a6f0-0000-7000-8000-000000000001", "table": "t", "id": "a",
            "op": "insert", "data": {"x": v},
            "updatedAt": "2026-11-25T09:30:00.000Z-0000-9f2c4e1a7b3d5c60"}]});
        let parsed: Changeset = serde_json::from_str(&cs.to_string()).unwrap();
        let text = serde_json::to_string(&parsed).unwrap();
        let again: Changeset = serde_json::from_str(&text).unwrap();
        let x = again.changes[0].data.as_ref().unwrap()["x"]
            .as_f64()
            .unwrap();
        assert_eq!(x.to_bits(), v.to_bits(), "{v:e} came back as {x:e}");
    }
}
