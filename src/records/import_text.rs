//! A backup row for a record this device does not hold → the record to store and its pending
//! change, as JSON text: the import's hot path, without building the row, the record or the
//! change as `serde_json` values. It takes the common row — every field written at one time
//! (a `put`), a `spaceId`, no escapes — and gives what [`Writer::import_row`] gives for it
//! with no local record (tests); any other row is left to `import_row`.
//!
//! Why: parsing 100,000 rows into maps, merging them into empty records and writing the
//! records and changes out again took more of an import's main thread than AES
//! (BENCHMARKS.md, "Backup (browser)").

use serde_json::value::RawValue;
use serde_json::Value;

use super::{RecordError, Writer};
use crate::clock::Hlc;
use crate::crypto::{is_shared_space, CryptoError};
use crate::field_meta;
use crate::json_text::{get, has_escape_or_newline, plain_str, Fields, ObjectWriter};
use crate::merge::meta_entry;
use crate::protocol::{FIELD_ID, FIELD_META, FIELD_SPACE_ID, PERSONAL_PREFIX};

/// A record to store and its pending change, each as JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedText {
    pub stored: String,
    pub change: String,
}

/// One entry of the row's `__fieldMeta`, borrowed: its `at` and its actor (`null` is none);
/// other keys are ignored, as `import_row` reads only these two.
struct Entry<'a> {
    at: &'a str,
    actor: Option<&'a RawValue>,
}

impl<'a> Entry<'a> {
    fn read(raw: &'a RawValue) -> Option<Entry<'a>> {
        let Fields(entry) = serde_json::from_str(raw.get()).ok()?;
        Some(Entry {
            at: plain_str(get(&entry, "at")?)?,
            actor: get(&entry, "actor").filter(|a| a.get() != "null"),
        })
    }
}

impl Writer<'_> {
    /// [`Writer::import_row`] of a row (its JSON text) whose record is not stored here, as
    /// text; `None` when the row needs `import_row` (it then draws nothing from the random
    /// source and changes nothing).
    pub fn import_new_row_text(
        &mut self,
        collection: &str,
        row: &str,
    ) -> Option<Result<PreparedText, RecordError>> {
        let plan = self.plan(collection, row)?;
        Some(self.write_planned(collection, plan))
    }

    /// Everything checked before anything is drawn or observed.
    fn plan<'r>(&self, collection: &str, row: &'r str) -> Option<Plan<'r>> {
        self.config.collection(collection)?;
        if has_escape_or_newline(row.as_bytes()) {
            return None;
        }
        let Fields(mut fields) = serde_json::from_str(row).ok()?;
        let meta_at = fields.iter().position(|(k, _)| *k == FIELD_META)?;
        let Fields(meta) = serde_json::from_str(fields.remove(meta_at).1.get()).ok()?;
        let id = plain_str(get(&fields, FIELD_ID)?)?;
        if id.is_empty() {
            return None;
        }
        let space = plain_str(get(&fields, FIELD_SPACE_ID)?)?;
        // One time and one actor for every field: an insert, its meta one shared entry.
        let mut shared: Option<Entry> = None;
        for (name, _) in fields.iter().filter(|(k, _)| *k != FIELD_ID) {
            let entry = Entry::read(get(&meta, name)?)?;
            let actor = entry.actor;
            match &shared {
                None => shared = Some(entry),
                Some(s)
                    if s.at == entry.at
                        && s.actor.map(RawValue::get) == actor.map(RawValue::get) => {}
                Some(_) => return None,
            }
        }
        let shared = shared?;
        let at: Hlc = Hlc::parse(shared.at).ok()?;
        let actor: Option<Value> = match shared.actor {
            Some(a) => Some(serde_json::from_str(a.get()).ok()?),
            None => None,
        };
        // Restoring another account's personal data makes it this user's personal data.
        let space = if space.starts_with(PERSONAL_PREFIX) {
            self.config.personal_space()
        } else {
            space.to_owned()
        };
        let shared_space = is_shared_space(Some(&space));
        if self.registry.has_encrypted_fields(collection) && !shared_space && self.cipher.is_none()
        {
            return None; // `import_row` says `vault_locked`
        }
        // In key order, as `import_row` seals them (and draws their nonces).
        fields.sort_by(|a, b| a.0.cmp(b.0));
        Some(Plan {
            id,
            fields,
            space,
            shared_space,
            at,
            actor,
        })
    }

    fn write_planned(&mut self, collection: &str, plan: Plan) -> Result<PreparedText, RecordError> {
        self.clock.observe(&plan.at);
        let space_text = serde_json::to_string(&plan.space).expect("a string serialises");
        let mut data = Vec::with_capacity(512);
        let mut record = ObjectWriter::new(&mut data);
        for &(name, raw) in &plan.fields {
            let text = if name == FIELD_SPACE_ID {
                space_text.as_bytes()
            } else {
                raw.get().as_bytes()
            };
            if plan.shared_space
                || name == FIELD_ID
                || text == b"null"
                || !self.registry.is_encrypted_field(collection, name)
            {
                record.entry(name, text);
                continue;
            }
            let cipher = self.cipher.ok_or(CryptoError::VaultLocked)?;
            let nonce: [u8; 12] = self.random.array()?;
            let sealed = cipher.encrypt_text(collection, plan.id, name, text.to_vec(), nonce);
            // An envelope is base64url after an ASCII prefix: nothing to escape.
            let mut quoted = Vec::with_capacity(sealed.len() + 2);
            quoted.push(b'"');
            quoted.extend_from_slice(sealed.as_bytes());
            quoted.push(b'"');
            record.entry(name, &quoted);
        }
        record.finish();
        let data = String::from_utf8(data).expect("copied from UTF-8 text");
        let event_id = self.event_id()?;
        let change = insert_text(&InsertText {
            event_id: &event_id,
            table: collection,
            id: plan.id,
            data: &data,
            updated_at: &plan.at.to_string(),
            schema_version: self.config.schema_version,
            actor: self.actor,
            space_id: &plan.space,
        });
        let meta = field_meta::uniform(&meta_entry(plan.at, plan.actor.as_ref()));
        let meta = serde_json::to_string(&meta).expect("a string serialises");
        let mut stored = data;
        stored.pop(); // the record's closing brace
        stored.push_str(",\"");
        stored.push_str(FIELD_META);
        stored.push_str("\":");
        stored.push_str(&meta);
        stored.push('}');
        Ok(PreparedText { stored, change })
    }
}

/// A row [`Writer::import_new_row_text`] takes: checked, not yet written.
struct Plan<'r> {
    id: &'r str,
    /// The row's fields but `__fieldMeta`, in key order, `spaceId` among them.
    fields: Vec<(&'r str, &'r RawValue)>,
    /// The record's space (a personal one made this user's).
    space: String,
    shared_space: bool,
    at: Hlc,
    actor: Option<Value>,
}

/// An insert's parts, `data` the record's JSON text.
struct InsertText<'a> {
    event_id: &'a str,
    table: &'a str,
    id: &'a str,
    data: &'a str,
    updated_at: &'a str,
    schema_version: u32,
    actor: Option<&'a Value>,
    space_id: &'a str,
}

/// The insert as [`crate::protocol::Change`] serialises it: its fields, in its order (a test
/// compares the two).
fn insert_text(c: &InsertText) -> String {
    let mut out = String::with_capacity(c.data.len() + 256);
    let string = |out: &mut String, key: &str, value: &str| {
        out.push_str(key);
        out.push_str(&serde_json::to_string(value).expect("a string serialises"));
    };
    string(&mut out, "{\"eventId\":", c.event_id);
    string(&mut out, ",\"table\":", c.table);
    string(&mut out, ",\"id\":", c.id);
    out.push_str(",\"op\":\"insert\",\"data\":");
    out.push_str(c.data);
    string(&mut out, ",\"updatedAt\":", c.updated_at);
    out.push_str(",\"schemaVersion\":");
    out.push_str(&c.schema_version.to_string());
    if let Some(actor) = c.actor {
        out.push_str(",\"actor\":");
        out.push_str(&serde_json::to_string(actor).expect("a JSON value serialises"));
    }
    string(&mut out, ",\"spaceId\":", c.space_id);
    out.push('}');
    out
}
