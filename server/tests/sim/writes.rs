//! The simulated app's local writes: puts (new or over a stored record, leaving fields
//! out), patches (a field set to `null`, a tombstone lifted), deletes, one to four of them
//! in one transaction, on a few record ids that every device writes.

use mana_sync::records::is_deleted;
use mana_sync::sync::Input;
use mana_sync::Change;
use serde_json::{json, Map, Value};

use super::device::{Collection, WriteOp, COLLECTIONS, IDS};
use super::world::{World, EPOCH};

impl World<'_> {
    /// A local transaction of 1–4 writes on distinct records.
    pub(super) fn write(&mut self, d: usize) {
        let n = if self.rng.chance(0.25) {
            self.rng.range(2, 4)
        } else {
            1
        };
        let mut ops: Vec<WriteOp> = Vec::new();
        let mut keys = Vec::new();
        for _ in 0..n {
            let c = &COLLECTIONS[self.rng.index(COLLECTIONS.len())];
            let id = format!("{}{}", c.prefix, self.rng.below(IDS));
            if keys.contains(&(c.name, id.clone())) {
                continue;
            }
            keys.push((c.name, id.clone()));
            ops.push(self.write_op(d, c, id));
        }
        let actor = if self.mixed_actors {
            self.rng.chance(0.3).then(|| json!({"kind": "ai"}))
        } else {
            self.actor.clone()
        };
        let wall = (EPOCH as i64 + self.now as i64 + self.devices[d].skew) as u64;
        let rng = &mut self.rng;
        let mut event_id = || {
            uuid::Builder::from_unix_timestamp_millis(wall, &rng.bytes::<10>())
                .into_uuid()
                .to_string()
        };
        let result = self.devices[d].write(&self.schema, &ops, wall, actor.as_ref(), &mut event_id);
        match result {
            Ok(changes) => {
                self.log(|| format!("d{d} writes {}", summary(&changes)));
                self.stats.writes += 1;
                self.stats.changes += changes.len() as u64;
                self.generated.extend(changes);
                self.feed(d, Input::LocalWrite);
            }
            Err(e) => self.violate("local-writes-succeed", format!("d{d} {ops:?}: {e}")),
        }
    }

    fn write_op(&mut self, d: usize, c: &Collection, id: String) -> WriteOp {
        let collection = c.name.to_owned();
        let stored = self.devices[d]
            .store
            .records
            .get(&(collection.clone(), id.clone()));
        let deleted = stored.is_some_and(is_deleted);
        let roll = if stored.is_none() {
            0
        } else {
            self.rng.below(100)
        };
        match roll {
            0..=24 => {
                let mut record = Map::new();
                record.insert("id".into(), Value::String(id));
                // A put replaces: what it leaves out (a field, the tombstone) is nulled.
                for f in c.fields {
                    if self.rng.chance(0.8) {
                        record.insert(f.into(), self.value(c, f));
                    }
                }
                WriteOp::Put {
                    collection,
                    record: Value::Object(record),
                }
            }
            25..=79 => {
                let mut patch = Map::new();
                for f in c.fields {
                    if patch.is_empty() || self.rng.chance(0.4) {
                        let v = if self.rng.chance(0.2) {
                            Value::Null
                        } else {
                            self.value(c, f)
                        };
                        patch.insert(f.into(), v);
                    }
                }
                if deleted && self.rng.chance(0.3) {
                    patch.insert("deletedAt".into(), Value::Null);
                }
                WriteOp::Update {
                    collection,
                    id,
                    patch: Value::Object(patch),
                }
            }
            _ => WriteOp::Delete { collection, id },
        }
    }

    /// A fresh value; encrypted fields get `secret-<n>`, which must never reach the server.
    fn value(&mut self, c: &Collection, field: &str) -> Value {
        self.counter += 1;
        let n = self.counter;
        match (c.name, field) {
            _ if c.encrypted => {
                self.stats.secrets += 1;
                json!(format!("secret-{n}"))
            }
            ("tags", "color") => json!(["red", "green", "blue"][n as usize % 3]),
            ("tasks", "done") => json!(n % 2 == 0),
            _ => json!(format!("{}-{n}", c.name)),
        }
    }
}

fn summary(changes: &[Change]) -> String {
    let parts: Vec<String> = changes
        .iter()
        .map(|c| {
            let fields: Vec<&str> = c
                .fields
                .iter()
                .flat_map(|f| f.keys().map(String::as_str))
                .collect();
            format!(
                "{:?} {}/{} {fields:?} ev …{}",
                c.op,
                c.table,
                c.id,
                &c.event_id[24..]
            )
        })
        .collect();
    parts.join("; ")
}
