//! The lines of one `data/<table>.jsonl`: each at most `max_line_bytes`, each one JSON object;
//! blank lines only at the end of the file.

use std::io::{self, BufRead, Read};

use serde_json::Value;

use super::error::BackupError;
use super::Row;

/// One line as read: its exact bytes (with its line ending) and, unless it is a trailing blank
/// line, its row. The `raw` of every line, in order, make up the file's exact bytes.
pub(crate) struct Line<'a> {
    pub raw: &'a [u8],
    pub row: Option<Row>,
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
        let row = match serde_json::from_slice::<Value>(content) {
            Ok(Value::Object(row)) => row,
            Ok(other) => {
                let kind = json_kind(&other);
                return Err(self.bad(line_no, format!("expected a JSON object, found {kind}")));
            }
            Err(e) => return Err(self.bad(line_no, format!("not valid JSON: {e}"))),
        };
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
