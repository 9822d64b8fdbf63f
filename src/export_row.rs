//! A stored record → its backup row as JSON text: the export's hot path, without building the
//! record as values. Fields are copied as their text, an encrypted field is replaced by its
//! plaintext's text (which is a JSON value's text already), and the compact `__fieldMeta` is
//! expanded as text. Rows it can't take that way (escaped keys, `\u` escapes, the object form
//! of `__fieldMeta`, anything odd) go through [`records::export_row`], which it equals (tests).
//!
//! Why: parsing 100,000 records into `serde_json` maps and writing them out again took more of
//! a sealed export's main thread than anything but AES (BENCHMARKS.md, "Backup (browser)").

use serde_json::value::RawValue;
use serde_json::Value;

use crate::crypto::{CryptoError, EncryptionRegistry, FieldCipher, ENVELOPE_PREFIX};
use crate::field_meta::is_data_field;
use crate::json_text::{get, has_escape_or_newline, plain_str, Fields, ObjectWriter};
use crate::protocol::{FIELD_ID, FIELD_META};
use crate::records::{self, RecordError};
use crate::strict_json;

/// Appends to `out` the backup row of the stored record whose JSON text is `stored`: what
/// [`records::export_row`] gives, serialised on one line (without the newline). On an error
/// `out` is left as it was.
pub fn write_export_row(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    collection: &str,
    stored: &str,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let start = out.len();
    let result = match fast(registry, cipher, collection, stored, out) {
        Some(result) => result,
        None => {
            out.truncate(start);
            by_value(registry, cipher, collection, stored, out)
        }
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn by_value(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    collection: &str,
    stored: &str,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    let value: Value = serde_json::from_str(stored)
        .map_err(|e| RecordError::InvalidRecord(format!("stored record is not JSON: {e}")))?;
    let row = records::export_row(registry, cipher, collection, value)?;
    serde_json::to_writer(out, &row).expect("a JSON map serialises");
    Ok(())
}

/// `None` when the row needs the value path.
fn fast(
    registry: &EncryptionRegistry,
    cipher: Option<&FieldCipher>,
    collection: &str,
    stored: &str,
    out: &mut Vec<u8>,
) -> Option<Result<(), RecordError>> {
    // A borrowed parse does not check `\u` escapes (lone surrogates), and the row must stay on
    // one line: `JSON.stringify` writes neither for a record the store wrote.
    if has_escape_or_newline(stored.as_bytes()) {
        return None;
    }
    let Fields(mut fields) = serde_json::from_str(stored).ok()?;
    let meta_text = match fields.iter().position(|(k, _)| *k == FIELD_META) {
        Some(i) => compact_meta(fields.remove(i).1)?,
        None => None,
    };
    let meta = match &meta_text {
        Some(text) => Some(parse_meta(text)?),
        None => None,
    };
    let id = match get(&fields, FIELD_ID) {
        Some(raw) if raw.get().starts_with('"') => plain_str(raw)?,
        // As `open_fields` reads it.
        _ => "",
    };
    let mut opened: Vec<(&str, Vec<u8>)> = Vec::new();
    for field in registry.fields(collection) {
        let Some(raw) = get(&fields, field).filter(|r| r.get().starts_with('"')) else {
            continue;
        };
        let Some(b64) = plain_str(raw)?.strip_prefix(ENVELOPE_PREFIX) else {
            continue;
        };
        let Some(cipher) = cipher else {
            return Some(Err(CryptoError::VaultLocked.into()));
        };
        let plain = match cipher.open_text(collection, id, field, b64) {
            Ok(plain) => plain,
            Err(e) => return Some(Err(e.into())),
        };
        if !strict_json::is_valid(&plain) {
            return Some(Err(
                CryptoError::decrypt_failed(collection, id, field).into()
            ));
        }
        if plain.iter().any(|b| matches!(b, b'\n' | b'\r')) {
            return None;
        }
        opened.push((field, plain));
    }
    let mut row = ObjectWriter::new(out);
    for &(key, raw) in &fields {
        match opened.iter().find(|(f, _)| *f == key) {
            Some((_, plain)) => row.entry(key, plain),
            None => row.entry(key, raw.get().as_bytes()),
        }
    }
    if let Some((default, overrides)) = &meta {
        write_meta(&mut row, &fields, default, overrides);
    }
    row.finish();
    Some(Ok(()))
}

/// The stored `__fieldMeta`'s compact text; `Some(None)` when it is `null`, `None` for any
/// other form (the value path takes those).
fn compact_meta(raw: &RawValue) -> Option<Option<String>> {
    if raw.get() == "null" {
        return Some(None);
    }
    if !raw.get().starts_with('"') {
        return None;
    }
    let text: String = serde_json::from_str(raw.get()).ok()?;
    (!has_escape_or_newline(text.as_bytes())).then_some(Some(text))
}

/// `[default, overrides]` (`field_meta`), borrowed from the compact text.
fn parse_meta(text: &str) -> Option<(&RawValue, Vec<(&str, &RawValue)>)> {
    let (default, Fields(overrides)): (&RawValue, Fields) = serde_json::from_str(text).ok()?;
    (default.get() == "null" || default.get().starts_with('{')).then_some((default, overrides))
}

/// The backup's object form of `__fieldMeta` (what `field_meta::decode` gives): each data
/// field's override or the default, then the overrides of fields the record lacks; `null`
/// entries left out, and nothing at all when no entry is left.
fn write_meta(
    row: &mut ObjectWriter,
    fields: &[(&str, &RawValue)],
    default: &RawValue,
    overrides: &[(&str, &RawValue)],
) {
    let own = fields
        .iter()
        .filter(|(k, _)| is_data_field(k))
        .map(|&(key, _)| (key, get(overrides, key).unwrap_or(default)));
    let others = overrides
        .iter()
        .filter(|(k, _)| !is_data_field(k) || get(fields, k).is_none())
        .copied();
    let mut entries = own
        .chain(others)
        .filter(|(_, e)| e.get() != "null")
        .peekable();
    if entries.peek().is_none() {
        return;
    }
    let mut meta = Vec::new();
    let mut object = ObjectWriter::new(&mut meta);
    for (key, entry) in entries {
        object.entry(key, entry.get().as_bytes());
    }
    object.finish();
    row.entry(FIELD_META, &meta);
}
