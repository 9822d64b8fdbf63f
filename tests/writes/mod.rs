//! Random writes through the store's own writer, for the property tests of the export's and the
//! import's text paths (native).
#![allow(dead_code)]

use mana_sync::records::{PreparedWrite, RecordError, Writer};
use proptest::prelude::*;
use serde_json::{json, Value};

/// One write: put, update or delete (by `op % 3`) of one field of the record `r` of `notes`,
/// `title` and `content` being its encrypted fields.
#[derive(Debug, Clone)]
pub struct WriteOp {
    op: u8,
    field: String,
    n: i32,
    s: String,
}

/// Up to `max` writes; strings with quotes, newlines and non-ASCII.
pub fn writes(max: usize) -> impl Strategy<Value = Vec<WriteOp>> {
    proptest::collection::vec(
        (0..3u8, "[a-d]", any::<i32>(), "[ -~\\n\"é]{0,6}").prop_map(|(op, field, n, s)| WriteOp {
            op,
            field,
            n,
            s,
        }),
        1..max,
    )
}

impl WriteOp {
    /// Applies it over `stored` (the record as stored so far).
    pub fn apply(
        &self,
        w: &mut Writer,
        stored: &Option<Value>,
    ) -> Result<PreparedWrite, RecordError> {
        let (n, s) = (self.n, &self.s);
        let value = match n % 4 {
            0 => json!(n),
            1 => json!(s),
            2 => json!(null),
            _ => json!({"k": [n, s]}),
        };
        let field = match self.field.as_str() {
            "a" => "title",
            "b" => "content",
            f => f,
        };
        match self.op {
            0 => w.put("notes", json!({"id": "r", field: value})),
            1 => w.update("notes", stored.clone(), "r", json!({field: value})),
            _ => w.delete("notes", stored.clone(), "r"),
        }
    }
}
