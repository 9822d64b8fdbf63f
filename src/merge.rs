//! Field-level last-writer-wins merge (docs/protocol.md, "Records and timestamps"), shared by
//! the client and the server.
//!
//! A record's state is a map `field -> (value, HLC, actor)`; the tombstone is the field
//! `deletedAt` under the same rule. Joining two states keeps, per field, the entry with the
//! greatest HLC. Equal HLCs (only possible for the very same write, or a misbehaving peer)
//! are broken by a total order on the value and then the actor, so the join is commutative,
//! associative and idempotent whatever the input.

use crate::collect::CollectInserted;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use tsify::Tsify;

use crate::clock::Hlc;
use crate::protocol::{
    Actor, Change, Conflict, Op, ProtocolError, FIELD_DELETED_AT, FIELD_ID, FIELD_META,
    FIELD_SPACE_ID,
};

/// The current value of one field and when (and by whom) it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldState {
    pub value: Value,
    pub at: Hlc,
    pub actor: Option<Actor>,
}

/// The merged state of one record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordState {
    pub fields: BTreeMap<String, FieldState>,
}

impl RecordState {
    /// The state a single change describes on its own.
    pub fn from_change(change: &Change) -> Result<RecordState, ProtocolError> {
        let mut state = RecordState::default();
        for (name, field) in field_writes(change)? {
            state.fields.insert(name, field);
        }
        Ok(state)
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The tombstone, if the record is deleted.
    pub fn deleted_at(&self) -> Option<&str> {
        self.fields
            .get(FIELD_DELETED_AT)
            .and_then(|f| f.value.as_str())
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at().is_some()
    }

    /// The greatest timestamp of any field (when the record last changed).
    pub fn last_changed(&self) -> Option<Hlc> {
        self.fields.values().map(|f| f.at).max()
    }

    /// The record as the application sees it: `id` plus every field's value.
    pub fn to_record(&self, id: &str) -> Map<String, Value> {
        let mut out = Map::with_capacity(self.fields.len() + 1);
        out.insert(FIELD_ID.into(), Value::String(id.into()));
        for (name, f) in &self.fields {
            out.insert(name.clone(), f.value.clone());
        }
        out
    }

    /// The hidden `__fieldMeta` object: `{ field: { at, actor? } }`.
    pub fn field_meta(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(name, f)| (name.clone(), meta_entry(f.at, f.actor.as_ref())))
            .collect_inserted()
    }

    /// Rebuilds a state from a stored record and its `__fieldMeta`. Fields without meta are
    /// ignored: they were never written through the merge.
    pub fn from_record(
        record: &Map<String, Value>,
        meta: &Map<String, Value>,
    ) -> Result<RecordState, ProtocolError> {
        let mut state = RecordState::default();
        for (name, m) in meta {
            let FieldMeta { at, actor } =
                FieldMeta::read(m).ok_or_else(|| FieldMeta::invalid(name, m))?;
            state.fields.insert(
                name.clone(),
                FieldState {
                    value: record.get(name).cloned().unwrap_or(Value::Null),
                    at,
                    actor,
                },
            );
        }
        Ok(state)
    }
}

/// One field's entry of a record's `__fieldMeta`: when, and by whom, it was last written.
// Read (`read`) and written (`meta_entry`) by hand, not by derived serde impls (those cost the
// wasm ~2 KB gzipped); the derived `Serialize` is the declared shape, only tests call it, and
// `ts_drift` pins `read` and `meta_entry` to it.
#[derive(Debug, Clone, PartialEq, Serialize, Tsify)]
pub struct FieldMeta {
    pub at: Hlc,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional, type = "Actor")]
    pub actor: Option<Actor>,
}

impl FieldMeta {
    /// Reads one stored entry; `None` unless it is an object with a valid `at`.
    pub fn read(entry: &Value) -> Option<FieldMeta> {
        let at = entry.get("at")?.as_str()?.parse().ok()?;
        Some(FieldMeta {
            at,
            actor: FieldMeta::read_actor(entry),
        })
    }

    /// The entry's actor; `null` is none, as a change's `actor: null` deserialises.
    pub fn read_actor(entry: &Value) -> Option<Actor> {
        entry.get("actor").filter(|a| !a.is_null()).cloned()
    }

    /// `read`'s error: the entry of `name` has no valid `at`.
    fn invalid(name: &str, entry: &Value) -> ProtocolError {
        let at = entry.get("at").and_then(Value::as_str).unwrap_or_default();
        ProtocolError::InvalidTimestamp {
            field: format!("{FIELD_META}.{name}.at"),
            value: at.chars().take(64).collect(),
        }
    }
}

/// One field's entry of `__fieldMeta` as JSON (a [`FieldMeta`]).
pub fn meta_entry(at: Hlc, actor: Option<&Actor>) -> Value {
    let mut m = Map::with_capacity(2);
    m.insert("at".into(), Value::String(at.to_string()));
    if let Some(actor) = actor {
        m.insert("actor".into(), actor.clone());
    }
    Value::Object(m)
}

/// Applies one change to a record's state: field-level LWW. Returns the new state and the
/// conflicts seen by the holder of the state: fields where the change's value strictly beat a
/// different, non-empty value (the client's view of a pulled change).
pub fn apply(
    state: RecordState,
    change: &Change,
) -> Result<(RecordState, Vec<Conflict>), ProtocolError> {
    let applied = apply_detailed(state, change)?;
    Ok((applied.state, applied.overwritten))
}

/// What applying one change did, seen from both sides.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Applied {
    pub state: RecordState,
    /// Fields where the change's value beat a different, non-empty value the state held: the
    /// holder's value was overwritten (what a client reports for a pulled change).
    pub overwritten: Vec<Conflict>,
    /// Fields where the change's non-empty value lost to a newer, different value the state
    /// already held: the sender's value lost (what the server answers a push with).
    pub lost: Vec<Conflict>,
}

/// [`apply`], also reporting the conflicts the change's sender is to be told about. Both lists
/// come from one rule, [`conflict`], with the sides swapped.
pub fn apply_detailed(mut state: RecordState, change: &Change) -> Result<Applied, ProtocolError> {
    let mut overwritten = Vec::new();
    let mut lost = Vec::new();
    for (name, incoming) in field_writes(change)? {
        if let Some(held) = state.fields.get(&name) {
            overwritten.extend(conflict(change, &name, held, &incoming));
            lost.extend(conflict(change, &name, &incoming, held));
        }
        join_field(&mut state.fields, name, incoming);
    }
    Ok(Applied {
        state,
        overwritten,
        lost,
    })
}

/// The conflict rule: a non-empty `local` value is lost to a strictly newer, different `winner`.
/// (An empty local value is nothing to lose; equal HLCs are one write, or resolved silently
/// by [`join_field`]'s total order.)
fn conflict(
    change: &Change,
    field: &str,
    local: &FieldState,
    winner: &FieldState,
) -> Option<Conflict> {
    (winner.at > local.at && !is_empty(&local.value) && winner.value != local.value).then(|| {
        Conflict {
            collection: change.table.clone(),
            id: change.id.clone(),
            field: field.to_owned(),
            was_local: local.value.clone(),
            now_server: winner.value.clone(),
            local_at: local.at.to_string(),
            server_at: winner.at.to_string(),
        }
    })
}

/// Joins two states (the state-based form of [`apply`]).
pub fn merge(mut a: RecordState, b: &RecordState) -> RecordState {
    for (name, f) in &b.fields {
        join_field(&mut a.fields, name.clone(), f.clone());
    }
    a
}

/// Keeps the greater of the current and the incoming entry of one field. Returns whether
/// the incoming entry won.
pub fn join_field(
    fields: &mut BTreeMap<String, FieldState>,
    name: String,
    incoming: FieldState,
) -> bool {
    match fields.get_mut(&name) {
        Some(current) => {
            if beats(&incoming, current) {
                *current = incoming;
                true
            } else {
                false
            }
        }
        None => {
            fields.insert(name, incoming);
            true
        }
    }
}

/// Total order between two entries of one field: HLC, then value, then actor.
fn beats(a: &FieldState, b: &FieldState) -> bool {
    a.at.cmp(&b.at)
        .then_with(|| cmp_json(&a.value, &b.value))
        .then_with(|| match (&a.actor, &b.actor) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => cmp_json(x, y),
        })
        == Ordering::Greater
}

fn parse_hlc(field: &str, s: &str) -> Result<Hlc, ProtocolError> {
    Hlc::parse(s).map_err(|_| ProtocolError::InvalidTimestamp {
        field: field.to_owned(),
        value: s.chars().take(64).collect(),
    })
}

/// A timestamp an op requires, as given and parsed.
fn required_at<'a>(
    given: Option<&'a str>,
    op: &'static str,
    field: &'static str,
) -> Result<(&'a str, Hlc), ProtocolError> {
    let at_str = given.ok_or(ProtocolError::MissingTimestamp { op, field })?;
    Ok((at_str, parse_hlc(field, at_str)?))
}

/// The field writes a change carries, each with its own timestamp.
pub fn field_writes(change: &Change) -> Result<Vec<(String, FieldState)>, ProtocolError> {
    let entry = |value: Value, at: Hlc| FieldState {
        value,
        at,
        actor: change.actor.clone(),
    };
    let mut out = Vec::new();
    match change.op {
        Op::Insert => {
            let data = change.data.as_ref().ok_or(ProtocolError::MissingData)?;
            let (_, at) = required_at(change.updated_at.as_deref(), "insert", "updatedAt")?;
            for (name, value) in data {
                if name != FIELD_ID && name != FIELD_META {
                    out.push((name.clone(), entry(value.clone(), at)));
                }
            }
            if let Some(space) = &change.space_id {
                if !data.contains_key(FIELD_SPACE_ID) {
                    out.push((
                        FIELD_SPACE_ID.into(),
                        entry(Value::String(space.clone()), at),
                    ));
                }
            }
        }
        Op::Update => {
            let fields = change.fields.as_ref().ok_or(ProtocolError::MissingFields)?;
            for (name, f) in fields {
                if name == FIELD_ID || name == FIELD_META {
                    return Err(ProtocolError::ReservedField(name.clone()));
                }
                let at = parse_hlc(&format!("fields.{name}.updatedAt"), &f.updated_at)?;
                out.push((name.clone(), entry(f.value.clone(), at)));
            }
        }
        Op::Delete => {
            let (at_str, at) = required_at(change.deleted_at.as_deref(), "delete", "deletedAt")?;
            out.push((
                FIELD_DELETED_AT.into(),
                entry(Value::String(at_str.into()), at),
            ));
        }
        Op::Unknown => return Err(ProtocolError::UnknownOp),
    }
    Ok(out)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// A total order on JSON values (null < bool < number < string < array < object).
pub fn cmp_json(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (fx, fy) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            fx.total_cmp(&fy)
                .then_with(|| x.to_string().cmp(&y.to_string()))
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(p, q)| cmp_json(p, q))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<_> = x.iter().collect();
            let mut ys: Vec<_> = y.iter().collect();
            // One comparator for both: each closure would be its own copy of the sort.
            let by_key = |p: &(&String, &Value), q: &(&String, &Value)| p.0.cmp(q.0);
            xs.sort_by(by_key);
            ys.sort_by(by_key);
            xs.iter()
                .zip(&ys)
                .map(|(p, q)| p.0.cmp(q.0).then_with(|| cmp_json(p.1, q.1)))
                .find(|o| o.is_ne())
                .unwrap_or_else(|| xs.len().cmp(&ys.len()))
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hlc(ms: u64, node: u64) -> String {
        Hlc::new(ms, 0, node).unwrap().to_string()
    }

    fn change(v: Value) -> Change {
        serde_json::from_value(v).unwrap()
    }

    const EID: &str = "0190a6f0-0000-7000-8000-000000000001";

    #[test]
    fn insert_then_update_then_delete() {
        let ins = change(
            json!({"eventId": EID, "table": "notes", "id": "n1", "op": "insert",
            "data": {"id": "n1", "title": "a", "body": "b"}, "updatedAt": hlc(1, 1)}),
        );
        let (s, c) = apply(RecordState::default(), &ins).unwrap();
        assert!(c.is_empty());
        let upd = change(
            json!({"eventId": EID, "table": "notes", "id": "n1", "op": "update",
            "fields": {"title": {"value": "A", "updatedAt": hlc(2, 2)}}}),
        );
        let (s, c) = apply(s, &upd).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "title");
        assert_eq!(c[0].was_local, json!("a"));
        assert_eq!(c[0].now_server, json!("A"));
        let rec = s.to_record("n1");
        assert_eq!(rec["title"], json!("A"));
        assert_eq!(rec["body"], json!("b"));
        let del = change(
            json!({"eventId": EID, "table": "notes", "id": "n1", "op": "delete",
            "deletedAt": hlc(3, 1)}),
        );
        let (s, _) = apply(s, &del).unwrap();
        assert!(s.is_deleted());
    }

    #[test]
    fn the_sender_of_an_older_write_is_told_it_lost() {
        let newer = change(
            json!({"eventId": EID, "table": "t", "id": "x", "op": "update",
            "fields": {"f": {"value": 2, "updatedAt": hlc(10, 1)}, "g": {"value": 1, "updatedAt": hlc(10, 1)}}}),
        );
        let older = change(
            json!({"eventId": EID, "table": "t", "id": "x", "op": "update",
            "fields": {"f": {"value": 1, "updatedAt": hlc(5, 2)}, "g": {"value": 1, "updatedAt": hlc(5, 2)},
                       "h": {"value": null, "updatedAt": hlc(1, 2)}}}),
        );
        let (s, _) = apply(RecordState::default(), &newer).unwrap();
        let a = apply_detailed(s.clone(), &older).unwrap();
        // f: lost to a different newer value; g: same value, no conflict; h: new field.
        assert!(a.overwritten.is_empty());
        assert_eq!(a.lost.len(), 1);
        let c = &a.lost[0];
        assert_eq!(
            (c.field.as_str(), &c.was_local, &c.now_server),
            ("f", &json!(1), &json!(2))
        );
        assert_eq!(
            (c.local_at.clone(), c.server_at.clone()),
            (hlc(5, 2), hlc(10, 1))
        );
        // The same rule from the other side: the holder of the older state is overwritten.
        let (s_old, _) = apply(RecordState::default(), &older).unwrap();
        let b = apply_detailed(s_old, &newer).unwrap();
        assert_eq!(b.overwritten, a.lost);
        assert!(b.lost.is_empty());
        // An empty pushed value is nothing lost.
        let empty = change(
            json!({"eventId": EID, "table": "t", "id": "x", "op": "update",
            "fields": {"f": {"value": "", "updatedAt": hlc(1, 3)}}}),
        );
        assert!(apply_detailed(s, &empty).unwrap().lost.is_empty());
    }

    #[test]
    fn older_write_loses_without_conflict() {
        let newer = change(
            json!({"eventId": EID, "table": "t", "id": "x", "op": "update",
            "fields": {"f": {"value": 2, "updatedAt": hlc(10, 1)}}}),
        );
        let older = change(
            json!({"eventId": EID, "table": "t", "id": "x", "op": "update",
            "fields": {"f": {"value": 1, "updatedAt": hlc(5, 2)}}}),
        );
        let (s, _) = apply(RecordState::default(), &newer).unwrap();
        let (s, c) = apply(s, &older).unwrap();
        assert!(c.is_empty());
        assert_eq!(s.fields["f"].value, json!(2));
    }

    #[test]
    fn record_and_meta_round_trip() {
        let ins = change(
            json!({"eventId": EID, "table": "t", "id": "x", "op": "insert",
            "data": {"a": 1}, "updatedAt": hlc(1, 1), "actor": {"kind": "ai"}}),
        );
        let s = RecordState::from_change(&ins).unwrap();
        let back = RecordState::from_record(&s.to_record("x"), &s.field_meta()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn json_order_is_total_on_numbers_that_compare_equal_as_floats() {
        let (a, b) = (json!(1), json!(1.0));
        assert_ne!(cmp_json(&a, &b), Ordering::Equal);
        assert_eq!(cmp_json(&a, &b), cmp_json(&b, &a).reverse());
    }
}
