//! Local writes and reads of records (docs/client.md), in pure Rust: stamping `__fieldMeta`,
//! the space and the actor, encrypting registered fields, and building the pending change
//! that must commit together with the record. The browser layer only moves the results in
//! and out of IndexedDB.

use crate::collect::CollectInserted;
use crate::error_code::ErrorCode;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};
use tsify::Tsify;

use crate::clock::{Clock, ClockError, Hlc};
use crate::crypto::{
    is_encrypted, is_shared_space, CryptoError, EncryptionRegistry, FieldCipher, RandomPool,
};
use crate::field_meta;
use crate::merge::{join_field, meta_entry, FieldMeta, FieldState, RecordState};
use crate::protocol::{
    Change, FieldChange, Op, FIELD_DELETED_AT, FIELD_ID, FIELD_META, FIELD_SPACE_ID,
};
use crate::schema::StoreConfig;

mod import_text;
pub use import_text::PreparedText;

/// A record: a JSON object with a string `id`. `spaceId` and `deletedAt` are reserved.
// The shape the `.d.ts` declares; the code reads records as JSON objects by these names (the
// `FIELD_*` constants), which a test pins to the serde names here.
#[derive(Debug, Clone, PartialEq, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ManaRecord {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub space_id: Option<String>,
    /// Set when the record is deleted (a tombstone).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional, type = "Hlc | null")]
    pub deleted_at: Option<Hlc>,
    /// The app's own fields.
    #[serde(flatten)]
    #[tsify(type = "Record<string, unknown>")]
    pub fields: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("unknown collection {0:?}")]
    UnknownCollection(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("{collection}/{id} not found")]
    NotFound { collection: String, id: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Clock(#[from] ClockError),
}

impl RecordError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RecordError::UnknownCollection(_) => ErrorCode::UnknownCollection,
            RecordError::InvalidRecord(_) => ErrorCode::InvalidRecord,
            RecordError::NotFound { .. } => ErrorCode::NotFound,
            RecordError::Crypto(e) => e.code(),
            RecordError::Clock(e) => e.code(),
        }
    }
}

/// A record as it goes to IndexedDB, and the change that goes to the pending queue with it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedWrite {
    pub stored: Map<String, Value>,
    pub change: Change,
}

/// Everything a local write needs besides the record itself.
pub struct Writer<'a> {
    pub config: &'a StoreConfig,
    pub registry: &'a EncryptionRegistry,
    /// `None` while the vault is locked.
    pub cipher: Option<&'a FieldCipher>,
    pub clock: &'a mut Clock,
    pub random: &'a mut RandomPool,
    pub wall_millis: u64,
    pub actor: Option<&'a Value>,
}

impl Writer<'_> {
    /// Fails early, before anything is prepared, when the collection is unknown or when it
    /// has encrypted fields and the vault is locked.
    pub fn check_collection(&self, collection: &str) -> Result<(), RecordError> {
        if self.config.collection(collection).is_none() {
            return Err(RecordError::UnknownCollection(collection.into()));
        }
        Ok(())
    }

    fn event_id(&mut self) -> Result<String, RecordError> {
        let rand: [u8; 10] = self.random.array()?;
        Ok(
            uuid::Builder::from_unix_timestamp_millis(self.wall_millis, &rand)
                .into_uuid()
                .to_string(),
        )
    }

    fn base_change(
        &mut self,
        collection: &str,
        id: &str,
        op: Op,
        space: Option<&str>,
    ) -> Result<Change, RecordError> {
        Ok(Change {
            event_id: self.event_id()?,
            table: collection.into(),
            id: id.into(),
            op,
            data: None,
            fields: None,
            deleted_at: None,
            updated_at: None,
            schema_version: Some(self.config.schema_version),
            actor: self.actor.cloned(),
            space_id: space.map(str::to_owned),
            seq: None,
        })
    }

    fn meta_entry(&self, at: Hlc) -> Value {
        meta_entry(at, self.actor)
    }

    /// Encrypts the value of `field` when the collection registers it and the record lives
    /// in the user's own space. Locked vault → `vault_locked`, never silent plaintext.
    fn seal(
        &mut self,
        collection: &str,
        id: &str,
        space: Option<&str>,
        field: &str,
        value: &Value,
    ) -> Result<Value, RecordError> {
        if is_shared_space(space)
            || !self.registry.is_encrypted_field(collection, field)
            || value.is_null()
        {
            return Ok(value.clone());
        }
        let cipher = self.cipher.ok_or(CryptoError::VaultLocked)?;
        let nonce: [u8; 12] = self.random.array()?;
        Ok(Value::String(
            cipher.encrypt(collection, id, field, value, nonce),
        ))
    }

    /// A whole-record write (`put`) of a new record: every field gets the same new timestamp.
    /// The change is an `insert` carrying the whole (encrypted) record.
    pub fn put(&mut self, collection: &str, record: Value) -> Result<PreparedWrite, RecordError> {
        self.put_replacing(collection, record, None)
    }

    /// A `put` over the stored record `existing`: a put replaces, so every field the stored
    /// record has and the new one lacks is written as `null` under the put's timestamp —
    /// locally and in the `insert` — and every replica drops it too (field-level LWW alone
    /// would keep it on the server and the other devices).
    pub fn put_replacing(
        &mut self,
        collection: &str,
        record: Value,
        existing: Option<&Map<String, Value>>,
    ) -> Result<PreparedWrite, RecordError> {
        self.check_collection(collection)?;
        let Value::Object(mut record) = record else {
            return Err(RecordError::InvalidRecord(
                "a record must be an object".into(),
            ));
        };
        let id = match record.get(FIELD_ID) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(RecordError::InvalidRecord(
                    "a record needs a non-empty string id".into(),
                ))
            }
        };
        record.remove(FIELD_META);
        let space = match record.get(FIELD_SPACE_ID) {
            None | Some(Value::Null) => self.config.personal_space(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                return Err(RecordError::InvalidRecord(format!(
                    "{id}: spaceId must be a string"
                )))
            }
        };
        record.insert(FIELD_SPACE_ID.into(), Value::String(space.clone()));
        for name in existing.into_iter().flat_map(|e| e.keys()) {
            if name != FIELD_META && !record.contains_key(name) {
                record.insert(name.clone(), Value::Null);
            }
        }
        if self.registry.has_encrypted_fields(collection)
            && !is_shared_space(Some(&space))
            && self.cipher.is_none()
        {
            return Err(CryptoError::VaultLocked.into());
        }
        let at = self.clock.now(self.wall_millis)?;
        let registry = self.registry;
        for field in registry.fields(collection) {
            if let Some(value) = record.get(field) {
                let sealed = self.seal(collection, &id, Some(&space), field, value)?;
                record.insert(field.to_owned(), sealed);
            }
        }
        let mut change = self.base_change(collection, &id, Op::Insert, Some(&space))?;
        change.updated_at = Some(at.to_string());
        change.data = Some(record.clone());
        // Every field gets the same entry.
        record.insert(FIELD_META.into(), field_meta::uniform(&self.meta_entry(at)));
        Ok(PreparedWrite {
            stored: record,
            change,
        })
    }

    /// A field patch (`update`) of a stored record. Only the patched fields get a new
    /// timestamp and go into the change.
    pub fn update(
        &mut self,
        collection: &str,
        stored: Option<Value>,
        id: &str,
        patch: Value,
    ) -> Result<PreparedWrite, RecordError> {
        self.check_collection(collection)?;
        let Value::Object(patch) = patch else {
            return Err(RecordError::InvalidRecord(
                "a patch must be an object".into(),
            ));
        };
        let (mut record, space) = existing(collection, stored, id)?;
        for (field, value) in &patch {
            match field.as_str() {
                FIELD_META => {
                    return Err(RecordError::InvalidRecord(format!(
                        "{FIELD_META} is reserved"
                    )))
                }
                FIELD_ID if value.as_str() != Some(id) => {
                    return Err(RecordError::InvalidRecord("id can't be changed".into()))
                }
                FIELD_SPACE_ID if value.as_str() != space.as_deref() => {
                    return Err(RecordError::InvalidRecord(
                        "spaceId is immutable after insert".into(),
                    ))
                }
                _ => {}
            }
        }
        let at = self.clock.now(self.wall_millis)?;
        let mut meta = take_meta(&mut record)?;
        let mut fields = BTreeMap::new();
        for (field, value) in patch {
            if field == FIELD_ID || field == FIELD_SPACE_ID {
                continue;
            }
            let sealed = self.seal(collection, id, space.as_deref(), &field, &value)?;
            // What this write replaces, so that other devices can tell a lost edit of theirs
            // from one this device had seen.
            let base = meta
                .get(&field)
                .and_then(|e| e.get("at"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            fields.insert(
                field.clone(),
                FieldChange {
                    value: sealed.clone(),
                    updated_at: at.to_string(),
                    base,
                },
            );
            record.insert(field.clone(), sealed);
            meta.insert(field, self.meta_entry(at));
        }
        if fields.is_empty() {
            return Err(RecordError::InvalidRecord(
                "the patch changes no field".into(),
            ));
        }
        let mut change = self.base_change(collection, id, Op::Update, space.as_deref())?;
        change.fields = Some(fields);
        store_meta(&mut record, &meta);
        Ok(PreparedWrite {
            stored: record,
            change,
        })
    }

    /// A soft delete: the tombstone `deletedAt` is set and synced; the record stays.
    pub fn delete(
        &mut self,
        collection: &str,
        stored: Option<Value>,
        id: &str,
    ) -> Result<PreparedWrite, RecordError> {
        self.check_collection(collection)?;
        let (mut record, space) = existing(collection, stored, id)?;
        let at = self.clock.now(self.wall_millis)?;
        let mut meta = take_meta(&mut record)?;
        record.insert(FIELD_DELETED_AT.into(), Value::String(at.to_string()));
        meta.insert(FIELD_DELETED_AT.into(), self.meta_entry(at));
        store_meta(&mut record, &meta);
        let mut change = self.base_change(collection, id, Op::Delete, space.as_deref())?;
        change.deleted_at = Some(at.to_string());
        Ok(PreparedWrite {
            stored: record,
            change,
        })
    }
}

/// The stored record an update or delete applies to, and its space; `not_found` if none.
fn existing(
    collection: &str,
    stored: Option<Value>,
    id: &str,
) -> Result<(Map<String, Value>, Option<String>), RecordError> {
    let Some(Value::Object(record)) = stored else {
        return Err(RecordError::NotFound {
            collection: collection.into(),
            id: id.into(),
        });
    };
    let space = record
        .get(FIELD_SPACE_ID)
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((record, space))
}

/// Turns a stored record into what the app sees: encrypted fields decrypted, `__fieldMeta`
/// removed. Reading an encrypted value while locked → `vault_locked`; a value that does not
/// decrypt → `decrypt_failed`.
pub fn read(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    collection: &str,
    stored: Value,
) -> Result<Map<String, Value>, RecordError> {
    let mut record = stored_object(stored)?;
    record.remove(FIELD_META);
    open_fields(registry, cipher, collection, &mut record)?;
    Ok(record)
}

fn stored_object(stored: Value) -> Result<Map<String, Value>, RecordError> {
    match stored {
        Value::Object(record) => Ok(record),
        _ => Err(RecordError::InvalidRecord(
            "stored record is not an object".into(),
        )),
    }
}

/// Stores `meta` in the record in its compact form (see `field_meta`).
pub fn store_meta(record: &mut Map<String, Value>, meta: &Map<String, Value>) {
    record.remove(FIELD_META);
    let stored = field_meta::encode(record, meta);
    record.insert(FIELD_META.into(), stored);
}

/// Removes a stored record's `__fieldMeta` and returns it as a map (empty when absent).
pub fn take_meta(record: &mut Map<String, Value>) -> Result<Map<String, Value>, RecordError> {
    let stored = record.remove(FIELD_META).unwrap_or(Value::Null);
    field_meta::decode(record, &stored)
        .ok_or_else(|| RecordError::InvalidRecord(format!("stored {FIELD_META} is not readable")))
}

/// Decrypts, in place, the registered fields of a record (other fields are left alone).
pub fn open_fields(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    collection: &str,
    record: &mut Map<String, Value>,
) -> Result<(), RecordError> {
    let id = record
        .get(FIELD_ID)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    for field in registry.fields(collection) {
        if let Some(v) = record.get_mut(field) {
            if is_encrypted(v) {
                let cipher = cipher.ok_or(CryptoError::VaultLocked)?;
                *v = cipher.decrypt(collection, &id, field, v)?;
            }
        }
    }
    Ok(())
}

/// Whether a stored record is a tombstone.
pub fn is_deleted(record: &Map<String, Value>) -> bool {
    matches!(record.get(FIELD_DELETED_AT), Some(v) if !v.is_null())
}

/// A stored record as it goes into a backup: encrypted fields decrypted (portability), the
/// tombstone and `__fieldMeta` kept so that an import can merge field by field.
pub fn export_row(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    collection: &str,
    stored: Value,
) -> Result<Map<String, Value>, RecordError> {
    let mut record = stored_object(stored)?;
    let meta = take_meta(&mut record)?;
    open_fields(registry, cipher, collection, &mut record)?;
    if !meta.is_empty() {
        record.insert(FIELD_META.into(), Value::Object(meta));
    }
    Ok(record)
}

/// Timestamp for fields of an imported row that carry no `__fieldMeta` (archives of older
/// writers): the row's `updatedAt` when it is epoch millis or an ISO date, else the epoch —
/// so such rows fill in what is missing locally but never beat a local edit.
fn fallback_at(row: &Map<String, Value>) -> Hlc {
    let millis = match row.get("updatedAt") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => parse_iso_millis(s),
        _ => None,
    };
    Hlc::new(millis.unwrap_or(0).min(crate::clock::MAX_MILLIS), 0, 0).expect("clamped to range")
}

fn parse_iso_millis(s: &str) -> Option<u64> {
    // Reuse the HLC parser: an ISO millis date is the first 24 characters of an HLC.
    let padded = format!("{}-0000-0000000000000000", s.get(..24)?);
    Hlc::parse(&padded).ok().map(|h| h.millis)
}

impl Writer<'_> {
    /// Merges one backup row into the local record with the shared LWW rule. Returns `None`
    /// when the row changes nothing (re-import, or every local field is newer); otherwise the
    /// record to store (re-encrypted under the current vault key) and the pending change that
    /// carries exactly the fields the row won, with their original timestamps.
    pub fn import_row(
        &mut self,
        collection: &str,
        local: Option<Value>,
        mut row: Map<String, Value>,
    ) -> Result<Option<PreparedWrite>, RecordError> {
        self.check_collection(collection)?;
        let id = match row.get(FIELD_ID) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(RecordError::InvalidRecord(format!(
                    "{collection}: a row without a string id"
                )))
            }
        };
        let fallback = fallback_at(&row);
        let incoming_meta = match row.remove(FIELD_META) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        // The local record, decrypted, so values compare as plaintext on both sides.
        let (mut record, mut meta, exists) = match local {
            Some(Value::Object(mut m)) => {
                open_fields(self.registry, self.cipher, collection, &mut m)?;
                let meta = take_meta(&mut m)?;
                (m, meta, true)
            }
            _ => {
                let mut m = Map::new();
                m.insert(FIELD_ID.into(), Value::String(id.clone()));
                (m, Map::new(), false)
            }
        };
        let local_state = RecordState::from_record(&record, &meta)
            .map_err(|e| RecordError::InvalidRecord(e.to_string()))?;
        let mut fields = local_state.fields;
        let mut won: BTreeMap<String, FieldState> = BTreeMap::new();
        for (name, value) in row {
            if name == FIELD_ID || (name == FIELD_SPACE_ID && exists) {
                continue; // the id is the key; the space is immutable once the record exists
            }
            let entry = incoming_meta.get(&name);
            let at = entry
                .and_then(|e| e.get("at"))
                .and_then(Value::as_str)
                .map(|s| {
                    Hlc::parse(s).map_err(|_| {
                        RecordError::InvalidRecord(format!(
                            "{collection}/{id}: bad __fieldMeta.{name}.at"
                        ))
                    })
                })
                .transpose()?
                .unwrap_or(fallback);
            let value = if name == FIELD_SPACE_ID
                && value
                    .as_str()
                    .is_some_and(|s| s.starts_with(crate::protocol::PERSONAL_PREFIX))
            {
                // Restoring another account's personal data makes it this user's personal data.
                Value::String(self.config.personal_space())
            } else {
                value
            };
            let state = FieldState {
                value,
                at,
                actor: entry.and_then(FieldMeta::read_actor),
            };
            if join_field(&mut fields, name.clone(), state.clone()) {
                won.insert(name, state);
            }
        }
        if won.is_empty() {
            return Ok(None);
        }
        if !exists && !won.contains_key(FIELD_SPACE_ID) {
            let space = FieldState {
                value: Value::String(self.config.personal_space()),
                at: fallback,
                actor: None,
            };
            won.insert(FIELD_SPACE_ID.into(), space);
        }
        let space = match (exists, won.get(FIELD_SPACE_ID)) {
            (false, Some(s)) => s.value.as_str().map(str::to_owned),
            _ => record
                .get(FIELD_SPACE_ID)
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        if self.registry.has_encrypted_fields(collection)
            && !is_shared_space(space.as_deref())
            && self.cipher.is_none()
        {
            return Err(CryptoError::VaultLocked.into());
        }
        // Re-encrypt every registered field of the merged record under the current key.
        for (name, f) in &won {
            self.clock.observe(&f.at);
            record.insert(name.clone(), f.value.clone());
            meta.insert(name.clone(), meta_entry(f.at, f.actor.as_ref()));
        }
        let names: Vec<String> = record.keys().filter(|k| *k != FIELD_ID).cloned().collect();
        for name in names {
            let sealed = self.seal(collection, &id, space.as_deref(), &name, &record[&name])?;
            record.insert(name, sealed);
        }
        let same_at = won.values().map(|f| f.at).min() == won.values().map(|f| f.at).max();
        let mut change;
        if !exists && same_at {
            change = self.base_change(collection, &id, Op::Insert, space.as_deref())?;
            change.updated_at = won.values().next().map(|f| f.at.to_string());
            change.data = Some(record.clone());
        } else {
            change = self.base_change(collection, &id, Op::Update, space.as_deref())?;
            change.fields = Some(
                won.iter()
                    .map(|(name, f)| {
                        (
                            name.clone(),
                            FieldChange {
                                value: record[name].clone(),
                                updated_at: f.at.to_string(),
                                base: None,
                            },
                        )
                    })
                    .collect_inserted(),
            );
        }
        store_meta(&mut record, &meta);
        Ok(Some(PreparedWrite {
            stored: record,
            change,
        }))
    }
}
