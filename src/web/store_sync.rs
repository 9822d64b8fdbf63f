//! The store's side of sync: the few narrow methods the sync driver calls. Applying a server
//! answer is one readwrite transaction over the records it touches, the pending rows it
//! acknowledges, the cursors it advances and the clock — all or nothing — and it takes the
//! store's write turn like every local write.

use crate::collect::CollectInserted;
use crate::error_code::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::error::{internal, JsCodedError};
use super::idb::{META, PENDING, SYNC_META};
use super::idb_write::{read_all_with_keys, Pacer, WriteTx};
use super::json::{from_js, parse, to_js};
use super::store::{pending_changes, pending_row, read_existing, StoreInner};
use crate::protocol::Conflict;
use crate::sync::apply::{by_record, max_hlc, merge_into, open_conflicts, unacknowledged};
use crate::sync::{Apply, PendingRow, RowEdit};

type JsResult<T> = Result<T, JsCodedError>;

/// What an applied answer changed, for the app's `change` and `conflict` events.
pub(crate) struct Applied {
    /// Values decrypted where the vault allows.
    pub conflicts: Vec<Conflict>,
    /// Collection → ids of the records written.
    pub changed: Vec<(String, Vec<String>)>,
}

/// Records merged and handed to IndexedDB at once (a page is up to 1,000 records).
const APPLY_CHUNK: usize = 250;

fn cursor_key(app: &str, collection: &str) -> String {
    format!("{app}/{collection}")
}

impl StoreInner {
    /// Every pending row, in queue order.
    pub(crate) async fn read_pending(&self) -> JsResult<Vec<PendingRow>> {
        let (keys, values) = read_all_with_keys(&self.raw()?, PENDING).await?;
        let mut rows = Vec::with_capacity(values.length() as usize);
        for (key, row) in keys.iter().zip(values.iter()) {
            let key = key
                .as_f64()
                .ok_or_else(|| internal("a pending row without a numeric key"))?;
            rows.push(PendingRow {
                key: key as u64,
                changes: pending_changes(&row)?,
            });
        }
        Ok(rows)
    }

    /// The stored cursor of every (app, collection) pulled before.
    pub(crate) async fn read_cursors(&self) -> JsResult<BTreeMap<(String, String), String>> {
        let (_, values) = read_all_with_keys(&self.raw()?, SYNC_META).await?;
        let rows: Vec<Value> = from_js(&values.into(), ErrorCode::Internal)?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
                Some(((s("appId")?, s("collection")?), s("cursor")?))
            })
            .collect_inserted())
    }

    /// Applies a push or pull answer in one transaction (see the module doc), then tells live
    /// queries and other tabs.
    pub(crate) async fn apply_remote(&self, apply: &Apply) -> JsResult<Applied> {
        let _turn = self.write_turn().await;
        let groups = by_record(&apply.changes);
        let collections: BTreeSet<&str> = groups.iter().map(|g| g.0).collect_inserted();
        let mut stores: Vec<&str> = collections.iter().copied().collect();
        stores.extend([PENDING, SYNC_META, META]);
        let tx = WriteTx::begin(&self.raw()?, &stores)?;
        let own_node = self.clock.borrow().node();
        let mut conflicts = Vec::new();
        let mut if_pending = Vec::new();
        let mut changed = Vec::new();
        for collection in collections {
            let records: Vec<_> = groups.iter().filter(|g| g.0 == collection).collect();
            let keys: Vec<&str> = records.iter().map(|g| g.1).collect();
            let mut stored = read_existing(&tx, collection, &keys).await?.into_iter();
            let mut ids = Vec::new();
            // Merged and put in chunks; IndexedDB stores while the next chunks are prepared,
            // and the pacer gives the event loop its turns.
            let mut pacer = Pacer::new();
            for chunk in records.chunks(APPLY_CHUNK) {
                let mut puts = Vec::with_capacity(chunk.len());
                for (_, id, changes) in chunk {
                    let merged = merge_into(stored.next().flatten(), id, changes, own_node)?;
                    conflicts.extend(merged.conflicts);
                    if_pending.extend(merged.if_pending);
                    if let Some(record) = merged.stored {
                        puts.push(record);
                        ids.push((*id).to_owned());
                    }
                }
                if !puts.is_empty() {
                    let array = parse(&serde_json::to_string(&puts).map_err(internal)?)?;
                    pacer.issued(tx.put_all_in_flight(collection, &array.into())?);
                }
                pacer.breathe(&tx, collection).await?;
            }
            pacer.drain(&tx).await?;
            if !ids.is_empty() {
                changed.push((collection.to_owned(), ids));
            }
        }
        if !if_pending.is_empty() {
            // Read before the acknowledgements below: a value this very answer acknowledges
            // and overwrites was still ours to lose.
            let rows = tx.get_all(PENDING).await?;
            let mut pending = Vec::new();
            for row in rows.iter() {
                pending.extend(pending_changes(&row)?);
            }
            conflicts.extend(unacknowledged(if_pending, &pending));
        }
        for edit in &apply.pending {
            match edit {
                RowEdit::Delete(key) => tx.delete(PENDING, *key as f64)?,
                RowEdit::Replace { key, changes } => {
                    let row = pending_row(changes, js_sys::Date::now())?;
                    tx.put_at(PENDING, &row, *key as f64)?;
                }
            }
        }
        for (collection, cursor) in &apply.cursors {
            let row = json!({"key": cursor_key(&apply.app, collection), "appId": apply.app,
                             "collection": collection, "cursor": cursor});
            tx.put(SYNC_META, &to_js(&row)?)?;
        }
        if let Some(at) = max_hlc(&apply.changes) {
            // A later local write must beat what was pulled.
            self.clock.borrow_mut().observe(&at);
        }
        let clock = json!({"key": "clock", "value": self.clock.borrow().last().to_string()});
        tx.put(META, &to_js(&clock)?)?;
        tx.commit().await?;
        for (collection, _) in &changed {
            self.changed(collection);
        }
        conflicts.extend(apply.conflicts.iter().cloned());
        Ok(Applied {
            conflicts: open_conflicts(&self.registry, self.vault.borrow().cipher().ok(), conflicts),
            changed,
        })
    }
}
