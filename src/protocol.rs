//! Wire types shared by the client and the server (docs/protocol.md). JSON, camelCase; absent
//! optional fields are omitted; unknown fields are tolerated so that older peers keep working.

use crate::error_code::ErrorCode;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tsify::Tsify;

use crate::clock::Hlc;

/// Most changes one push may carry.
pub const MAX_CHANGES_PER_PUSH: usize = 5000;
/// Schema version assumed when a change carries none.
pub const DEFAULT_SCHEMA_VERSION: u32 = 1;

/// Reserved record fields (docs/protocol.md).
pub const FIELD_ID: &str = "id";
pub const FIELD_SPACE_ID: &str = "spaceId";
pub const FIELD_DELETED_AT: &str = "deletedAt";
pub const FIELD_META: &str = "__fieldMeta";

/// Prefix of a user's personal space id; the prefix alone is a guest's (no user yet).
pub const PERSONAL_PREFIX: &str = "_personal:";

/// The personal space of a user (`_personal:<userId>`).
pub fn personal_space(user_id: &str) -> String {
    format!("{PERSONAL_PREFIX}{user_id}")
}

/// Whose personal space a space id is: `Some(userId)` for `_personal:<userId>` (`Some("")` for
/// a guest's `_personal:`), `None` for a shared space.
pub fn personal_owner(space_id: &str) -> Option<&str> {
    space_id.strip_prefix(PERSONAL_PREFIX)
}

/// What a change does. On the wire (and in a server's change log) it is the string of
/// [`Op::as_str`]; [`Op::parse`] is its inverse — the one mapping between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
    /// Any other string; rejected by [`Change::validate`] with `unknown_op`.
    Unknown,
}

impl Op {
    pub const fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Unknown => "unknown",
        }
    }

    /// The op a string names; any other string is [`Op::Unknown`].
    pub fn parse(s: &str) -> Op {
        match s {
            "insert" => Op::Insert,
            "update" => Op::Update,
            "delete" => Op::Delete,
            _ => Op::Unknown,
        }
    }
}

impl Serialize for Op {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Op {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Op, D::Error> {
        struct OpVisitor;
        impl serde::de::Visitor<'_> for OpVisitor {
            type Value = Op;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an op string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Op, E> {
                Ok(Op::parse(v))
            }
        }
        d.deserialize_str(OpVisitor)
    }
}

/// One field of an update: its new value and when it was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct FieldChange {
    #[serde(default)]
    #[tsify(type = "unknown")]
    pub value: Value,
    #[tsify(type = "Hlc")]
    pub updated_at: String,
    /// The timestamp of the value this write replaced, as its writer saw it: a device whose
    /// own value carries another timestamp knows the writer had not seen it (a conflict),
    /// one whose value carries this one knows it was edited after being seen (ordinary sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(type = "Hlc")]
    pub base: Option<String>,
}

/// Opaque application JSON describing who made a change (`{ kind: "user" | "ai" | "system" }`).
pub type Actor = Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub event_id: String,
    pub table: String,
    pub id: String,
    #[tsify(type = "\"insert\" | \"update\" | \"delete\"")]
    pub op: Op,
    /// Insert: the whole record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(type = "Record<string, unknown>")]
    pub data: Option<Map<String, Value>>,
    /// Update: the changed fields with their timestamps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, FieldChange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(type = "Hlc")]
    pub deleted_at: Option<String>,
    /// Insert/delete: timestamp of the whole operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(type = "Hlc")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space_id: Option<String>,
    /// Server-assigned cursor of this change (server→client only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Changeset {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub collection: String,
    pub id: String,
    pub field: String,
    #[tsify(type = "unknown")]
    pub was_local: Value,
    #[tsify(type = "unknown")]
    pub now_server: Value,
    #[tsify(type = "Hlc")]
    pub local_at: String,
    #[tsify(type = "Hlc")]
    pub server_at: String,
}

/// Answer to a push (`POST /sync/{appId}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResponse {
    #[serde(default)]
    pub server_changes: Vec<Change>,
    #[serde(default)]
    pub conflicts: Vec<Conflict>,
    pub synced_until: String,
    #[serde(default)]
    pub has_more: bool,
}

/// Answer to `GET /sync/{appId}/pull`: same field names as a push answer, so one client
/// parser serves both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PullResponse {
    #[serde(default)]
    pub server_changes: Vec<Change>,
    pub synced_until: String,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("eventId {0:?} is not a UUID")]
    InvalidEventId(String),
    #[error("table is empty")]
    EmptyTable,
    #[error("id is empty")]
    EmptyId,
    #[error("unknown op")]
    UnknownOp,
    #[error("insert without data")]
    MissingData,
    #[error("update without fields")]
    MissingFields,
    #[error("{op} without {field}")]
    MissingTimestamp {
        op: &'static str,
        field: &'static str,
    },
    #[error("{field}: invalid HLC timestamp {value:?}")]
    InvalidTimestamp { field: String, value: String },
    #[error("reserved field {0:?} cannot be written")]
    ReservedField(String),
    #[error("data.id {0:?} differs from the change id")]
    IdMismatch(String),
    #[error("more than {MAX_CHANGES_PER_PUSH} changes in one push ({0})")]
    TooManyChanges(usize),
}

impl ProtocolError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::InvalidEventId(_) => ErrorCode::InvalidEventId,
            ProtocolError::EmptyTable => ErrorCode::EmptyTable,
            ProtocolError::EmptyId => ErrorCode::EmptyId,
            ProtocolError::UnknownOp => ErrorCode::UnknownOp,
            ProtocolError::MissingData => ErrorCode::MissingData,
            ProtocolError::MissingFields => ErrorCode::MissingFields,
            ProtocolError::MissingTimestamp { .. } => ErrorCode::MissingTimestamp,
            ProtocolError::InvalidTimestamp { .. } => ErrorCode::InvalidTimestamp,
            ProtocolError::ReservedField(_) => ErrorCode::ReservedField,
            ProtocolError::IdMismatch(_) => ErrorCode::IdMismatch,
            ProtocolError::TooManyChanges(_) => ErrorCode::TooManyChanges,
        }
    }
}

fn check_hlc(field: &str, value: &str) -> Result<Hlc, ProtocolError> {
    Hlc::parse(value).map_err(|_| ProtocolError::InvalidTimestamp {
        field: field.to_owned(),
        value: value.chars().take(64).collect(),
    })
}

impl Change {
    /// The schema version, defaulting absent to 1.
    pub fn schema_version(&self) -> u32 {
        self.schema_version.unwrap_or(DEFAULT_SCHEMA_VERSION)
    }

    /// The record's space: top level, else `data.spaceId`, else `fields.spaceId.value`.
    pub fn effective_space_id(&self) -> Option<&str> {
        self.space_id
            .as_deref()
            .or_else(|| {
                self.data
                    .as_ref()
                    .and_then(|d| d.get(FIELD_SPACE_ID))
                    .and_then(Value::as_str)
            })
            .or_else(|| {
                self.fields
                    .as_ref()
                    .and_then(|f| f.get(FIELD_SPACE_ID))
                    .and_then(|f| f.value.as_str())
            })
    }

    /// Rejects a structurally invalid change. A valid change can be merged without error.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        if uuid::Uuid::try_parse(&self.event_id).is_err() {
            return Err(ProtocolError::InvalidEventId(
                self.event_id.chars().take(64).collect(),
            ));
        }
        if self.table.is_empty() {
            return Err(ProtocolError::EmptyTable);
        }
        if self.id.is_empty() {
            return Err(ProtocolError::EmptyId);
        }
        if let Some(at) = &self.updated_at {
            check_hlc("updatedAt", at)?;
        }
        if let Some(at) = &self.deleted_at {
            check_hlc("deletedAt", at)?;
        }
        match self.op {
            Op::Unknown => return Err(ProtocolError::UnknownOp),
            Op::Insert => {
                let data = self.data.as_ref().ok_or(ProtocolError::MissingData)?;
                if self.updated_at.is_none() {
                    return Err(ProtocolError::MissingTimestamp {
                        op: "insert",
                        field: "updatedAt",
                    });
                }
                if data.contains_key(FIELD_META) {
                    return Err(ProtocolError::ReservedField(FIELD_META.into()));
                }
                if let Some(id) = data.get(FIELD_ID) {
                    if id.as_str() != Some(self.id.as_str()) {
                        return Err(ProtocolError::IdMismatch(id.to_string()));
                    }
                }
            }
            Op::Update => {
                let fields = self.fields.as_ref().ok_or(ProtocolError::MissingFields)?;
                if fields.is_empty() {
                    return Err(ProtocolError::MissingFields);
                }
                for (name, f) in fields {
                    if name == FIELD_META || name == FIELD_ID {
                        return Err(ProtocolError::ReservedField(name.clone()));
                    }
                    check_hlc(&format!("fields.{name}.updatedAt"), &f.updated_at)?;
                    if let Some(base) = &f.base {
                        check_hlc(&format!("fields.{name}.base"), base)?;
                    }
                }
            }
            Op::Delete => {
                if self.deleted_at.is_none() {
                    return Err(ProtocolError::MissingTimestamp {
                        op: "delete",
                        field: "deletedAt",
                    });
                }
            }
        }
        Ok(())
    }
}

/// A change that passed [`Change::validate`]. Only [`ValidChange::new`] makes one, so code that
/// takes it (the server's push plan) knows it is valid without checking again.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidChange(Change);

impl ValidChange {
    pub fn new(change: Change) -> Result<ValidChange, ProtocolError> {
        change.validate()?;
        Ok(ValidChange(change))
    }

    pub fn into_inner(self) -> Change {
        self.0
    }
}

impl std::ops::Deref for ValidChange {
    type Target = Change;
    fn deref(&self) -> &Change {
        &self.0
    }
}

impl Changeset {
    /// Validates every change; the error names the index of the first invalid one.
    pub fn validate(&self) -> Result<(), (usize, ProtocolError)> {
        if self.changes.len() > MAX_CHANGES_PER_PUSH {
            return Err((
                MAX_CHANGES_PER_PUSH,
                ProtocolError::TooManyChanges(self.changes.len()),
            ));
        }
        for (i, c) in self.changes.iter().enumerate() {
            c.validate().map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

/// The body of every error answer (`{ code, message, index? }`), written by the server and
/// read by the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
    /// Index of the offending change in a push, when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// A frame a client sends on the WebSocket (`/ws`, `/ws/{appId}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum WsClientFrame {
    /// Must be the first frame: browsers can't set headers on a WebSocket.
    #[serde(rename_all = "camelCase")]
    Auth {
        token: String,
        /// Suppresses notifications of this client's own pushes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
    Ping,
}

/// A frame the server sends on the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum WsServerFrame {
    /// The subscription is live: every later push concerning the user is announced.
    #[serde(rename_all = "camelCase")]
    AuthOk {
        user_id: String,
    },
    /// Another client pushed changes to `table` of `appId`: pull it.
    #[serde(rename_all = "camelCase")]
    SyncAvailable {
        app_id: String,
        table: String,
    },
    Pong,
    /// The socket is refused or ends (e.g. `unauthorized`, then close code 4401).
    Error {
        code: String,
        #[serde(default)]
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_strings_round_trip_through_serde_and_parse() {
        for op in [Op::Insert, Op::Update, Op::Delete, Op::Unknown] {
            let wire = serde_json::to_value(op).unwrap();
            assert_eq!(wire, Value::String(op.as_str().into()));
            assert_eq!(Op::parse(op.as_str()), op);
            assert_eq!(serde_json::from_value::<Op>(wire).unwrap(), op);
        }
        assert_eq!(
            serde_json::from_str::<Op>("\"upsert\"").unwrap(),
            Op::Unknown
        );
        assert!(serde_json::from_str::<Op>("1").is_err());
    }

    #[test]
    fn personal_owner_names_the_user_of_a_personal_space() {
        assert_eq!(personal_owner(&personal_space("alice")), Some("alice"));
        assert_eq!(personal_owner(PERSONAL_PREFIX), Some(""));
        assert_eq!(personal_owner("team"), None);
    }

    #[test]
    fn a_valid_change_is_only_made_by_validation() {
        let bad: Change = serde_json::from_value(serde_json::json!({
            "eventId": "not-a-uuid", "table": "t", "id": "x", "op": "delete",
            "deletedAt": "x"}))
        .unwrap();
        assert_eq!(
            ValidChange::new(bad).unwrap_err().code(),
            "invalid_event_id"
        );
    }
}
