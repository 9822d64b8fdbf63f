//! The lines of one `data/<table>.jsonl`: each at most `max_line_bytes`, each one JSON object;
//! blank lines only at the end of the file.

use std::io::{self, BufRead, Read};

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::error::BackupError;
use super::Row;
use crate::strict_json::{self, Valid};

/// One line as read: its exact bytes (with its line ending) and, unless it is a trailing blank
/// line, its row (a [`Row`], or what [`Lines::next_checked`] keeps of it). The `raw` of every
/// line, in order, make up the file's exact bytes.
pub(crate) struct Line<'a, T = Row> {
    pub raw: &'a [u8],
    pub row: Option<T>,
}

/// A row kept as its JSON text, checked to be one JSON object, and parsed when used: a parsed
/// [`Row`] takes several times its text in memory (a map per `__fieldMeta` entry), which a
/// caller holding a whole table before writing it cannot afford.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    id: Option<String>,
    json: Box<str>,
}

impl RawRow {
    /// Its `id`, when that is a string.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// A row as its text (e.g. one a migration returned).
    pub fn new(row: &Row) -> RawRow {
        RawRow {
            id: row.get("id").and_then(Value::as_str).map(str::to_owned),
            json: serde_json::to_string(row)
                .expect("a JSON map serialises")
                .into(),
        }
    }

    /// Its JSON text, checked to be one JSON object.
    pub fn text(&self) -> &str {
        &self.json
    }

    /// The row. It was checked when read, so this fails only on a bug (reported as
    /// `invalid_input`, never as a corrupt archive).
    pub fn parse(&self) -> Result<Row, BackupError> {
        serde_json::from_str(&self.json)
            .map_err(|e| BackupError::InvalidInput(format!("a checked row does not parse: {e}")))
    }
}

/// Why reading stopped.
pub(crate) enum Stop {
    /// The underlying reader failed (the entry is damaged or too large).
    Io(io::Error),
    /// A line is not what a `.mana` table holds.
    Content(BackupError),
}

/// A lending iterator over the lines of one table.
pub(crate) struct Lines<R> {
    reader: R,
    table: String,
    max_line: u64,
    buf: Vec<u8>,
    line_no: u64,
    /// First blank line since the last row (an error if another row follows).
    blank: Option<u64>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(reader: R, table: &str, max_line: u64) -> Self {
        Lines {
            reader,
            table: table.to_string(),
            max_line,
            buf: Vec::new(),
            line_no: 0,
            blank: None,
        }
    }

    /// The next line; `Ok(None)` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, Stop> {
        self.next_with(|content| match serde_json::from_str::<Value>(content) {
            Ok(Value::Object(row)) => Ok(row),
            Ok(other) => Err(format!(
                "expected a JSON object, found {}",
                json_kind(&other)
            )),
            Err(e) => Err(format!("not valid JSON: {e}")),
        })
    }

    /// [`Self::next_line`], its row kept as a [`RawRow`]: checked to the same rules, without
    /// building the map.
    pub fn next_checked(&mut self) -> Result<Option<Line<'_, RawRow>>, Stop> {
        self.next_with(|content| {
            let id = check_object(content)?;
            Ok(RawRow {
                id,
                json: content.into(),
            })
        })
    }

    /// The next line, its content (not blank) turned into a row by `parse` (an `Err` is the
    /// reason the line is refused).
    fn next_with<T>(
        &mut self,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<Line<'_, T>>, Stop> {
        self.buf.clear();
        let n = Read::by_ref(&mut self.reader)
            .take(self.max_line.saturating_add(2))
            .read_until(b'\n', &mut self.buf)
            .map_err(Stop::Io)?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        let line_no = self.line_no;
        if self.buf.len() as u64 > self.max_line.saturating_add(1) {
            return Err(self.bad(line_no, format!("line longer than {} bytes", self.max_line)));
        }
        let content = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        let content = content.strip_suffix(b"\r").unwrap_or(content);
        if content.iter().all(u8::is_ascii_whitespace) {
            self.blank.get_or_insert(line_no);
            return Ok(Some(Line {
                raw: &self.buf,
                row: None,
            }));
        }
        if let Some(blank) = self.blank {
            return Err(self.bad(blank, "empty line: every line must be one JSON object"));
        }
        let row = strict_json::as_text(content)
            .and_then(parse)
            .map_err(|reason| self.bad(line_no, reason))?;
        Ok(Some(Line {
            raw: &self.buf,
            row: Some(row),
        }))
    }

    /// The reader, to drain or finish it.
    pub fn into_inner(self) -> R {
        self.reader
    }

    pub fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    fn bad(&self, line: u64, reason: impl Into<String>) -> Stop {
        Stop::Content(BackupError::corrupt_at(&self.table, Some(line), reason))
    }
}

/// Checks that `content` is one JSON object, as [`Lines::next_line`] would, without building
/// it; returns its `id` when that is a string.
fn check_object(content: &str) -> Result<Option<String>, String> {
    let mut de = serde_json::Deserializer::from_str(content);
    let parsed = de
        .deserialize_any(ObjectId)
        .map_err(|e| format!("not valid JSON: {e}"))?;
    de.end().map_err(|e| format!("not valid JSON: {e}"))?;
    // Worded as `next_line` words it (and without echoing the line).
    parsed.map_err(|kind| format!("expected a JSON object, found {kind}"))
}

/// Visits one JSON value: an object's string `id`, or what kind of value it is instead (the
/// value checked all the same, so that invalid JSON is reported first, as a full parse does).
struct ObjectId;

type ObjectOrKind = Result<Option<String>, &'static str>;

impl<'de> Visitor<'de> for ObjectId {
    type Value = ObjectOrKind;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ObjectOrKind, A::Error> {
        let mut id = None;
        while let Some(is_id) = map.next_key_seed(IsId)? {
            if is_id {
                id = map.next_value::<Value>()?.as_str().map(str::to_owned);
            } else {
                map.next_value_seed(Valid)?;
            }
        }
        Ok(Ok(id))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<ObjectOrKind, A::Error> {
        Valid.visit_seq(seq)?;
        Ok(Err("an array"))
    }

    fn visit_bool<E>(self, _: bool) -> Result<ObjectOrKind, E> {
        Ok(Err("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<ObjectOrKind, E> {
        Ok(Err("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<ObjectOrKind, E> {
        Ok(Err("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<ObjectOrKind, E> {
        Ok(Err("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<ObjectOrKind, E> {
        Ok(Err("a string"))
    }

    fn visit_unit<E>(self) -> Result<ObjectOrKind, E> {
        Ok(Err("null"))
    }
}

/// A key, seen only as whether it is `id` (no copy of it is made).
struct IsId;

impl<'de> DeserializeSeed<'de> for IsId {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsId {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == "id")
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What refused a line (its message), if anything.
    fn refusal<T>(read: Result<Option<Line<'_, T>>, Stop>) -> Result<Option<T>, String> {
        match read {
            Ok(line) => Ok(line.and_then(|l| l.row)),
            Err(Stop::Content(e)) => Err(e.to_string()),
            Err(Stop::Io(e)) => Err(e.to_string()),
        }
    }

    /// A line's row as `next_line` and `next_checked` read it: the same verdict, in the same
    /// words, on every line.
    fn both(line: &[u8]) -> (Result<Row, String>, Result<Option<String>, String>) {
        let mut full = Lines::new(line, "t", 1 << 20);
        let mut checked = Lines::new(line, "t", 1 << 20);
        let row = refusal(full.next_line()).map(|r| r.expect("a row"));
        let raw = refusal(checked.next_checked()).map(|r| {
            let r = r.expect("a row");
            assert_eq!(r.parse().ok().as_ref(), row.as_ref().ok(), "{line:?}");
            r.id
        });
        if let (Err(a), Err(b)) = (&row, &raw) {
            assert_eq!(a, b, "{}", String::from_utf8_lossy(line));
        }
        (row, raw)
    }

    #[test]
    fn a_checked_line_is_refused_exactly_when_a_parsed_one_is() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        let lines: Vec<Vec<u8>> = [
            r#"{"id":"a","n":1}"#,
            r#"{"id":1}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"x":{"id":"inner"}}"#,
            r#"{}"#,
            r#"  {"a":1}  "#,
            r#"[1]"#,
            r#""text""#,
            r#"null"#,
            r#"true"#,
            r#"-1.5"#,
            r#"[1, {"a": tru}]"#,
            r#"[1] x"#,
            r#"{"a":1} x"#,
            r#"{"a":1}{"b":2}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-0.0,"b":123456789012345678901234567890}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\ud83d\ude00"}"#,
            r#"{"a":"\u00zz"}"#,
            r#"{"a":"tab	inside"}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"id":"a"#,
            deep.as_str(),
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .chain([
            b"{\"a\":\"\xff\"}".to_vec(),
            b"{\"id\":\"\xc3\xa9\"}".to_vec(),
        ])
        .collect();
        for line in &lines {
            let (row, id) = both(line);
            assert_eq!(row.is_ok(), id.is_ok(), "{}", String::from_utf8_lossy(line));
            if let (Ok(row), Ok(id)) = (row, id) {
                assert_eq!(id.as_deref(), row.get("id").and_then(Value::as_str));
            }
        }
    }
}
