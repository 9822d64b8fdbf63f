//! Borrowed JSON text: an object's entries as their text, and objects written from keys and
//! values' text. Shared by the export's and the import's text paths (`export_row`,
//! `records::import_text`), which skip building `serde_json` values.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Writes `{"key":value,…}` from keys that need no escaping (borrowed from JSON text, which
/// leaves none in them) and values' JSON text.
pub(crate) struct ObjectWriter<'o> {
    out: &'o mut Vec<u8>,
    sep: u8,
}

impl<'o> ObjectWriter<'o> {
    pub(crate) fn new(out: &'o mut Vec<u8>) -> Self {
        ObjectWriter { out, sep: b'{' }
    }

    pub(crate) fn entry(&mut self, key: &str, value: &[u8]) {
        self.out.push(self.sep);
        self.sep = b',';
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out.extend_from_slice(value);
    }

    pub(crate) fn finish(self) {
        if self.sep == b'{' {
            self.out.push(b'{');
        }
        self.out.push(b'}');
    }
}

pub(crate) fn get<'a>(fields: &[(&str, &'a RawValue)], key: &str) -> Option<&'a RawValue> {
    fields.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// An object's entries in order, borrowed from its text; duplicate keys refused (the value
/// path keeps the last, this one would write both).
pub(crate) struct Fields<'a>(pub(crate) Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(FieldsVisitor)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = Fields<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
        let mut fields: Vec<(&'de str, &'de RawValue)> = Vec::new();
        while let Some(key) = map.next_key::<&'de str>()? {
            if get(&fields, key).is_some() {
                return Err(serde::de::Error::custom("duplicate key"));
            }
            fields.push((key, map.next_value()?));
        }
        Ok(Fields(fields))
    }
}

/// A JSON string's content when it has no escape at all (then it is the text between the
/// quotes); `None` otherwise.
pub(crate) fn plain_str(raw: &RawValue) -> Option<&str> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

pub(crate) fn has_escape_or_newline(text: &[u8]) -> bool {
    text.iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' || b == b'\r' || (b == b'\\' && text.get(i + 1) == Some(&b'u')))
}
