//! `ManaStore`: the IndexedDB-backed local store exposed to JS (docs/client.md).
//!
//! Every write runs in one readwrite transaction over its collections, `_pendingChanges` and
//! `_meta`: the records, their pending rows (one per up to 2,000 changes) and the clock state
//! commit together or not at all. Writes are fired without awaiting each; the only awaits
//! inside a transaction are a read-modify-write's reads. A store's writes take turns.

use crate::error_code::ErrorCode;
use std::cell::RefCell;
use std::rc::Rc;

use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;
use web_sys::IdbDatabase;

use super::error::{internal, JsCodedError};
use super::idb::{self, META, PENDING};
use super::idb_write::{dom_error, Pacer, WriteTx};
use super::json::{from_js, parse, to_js, ArrayText};
use super::listeners::Listeners;
use super::query::ListQuery;
use super::tabs::TabChannel;
use super::types::{ListQueryJs, WriteOptionsJs};
use crate::clock::{tab_node, Clock, Hlc};
use crate::crypto::{EncryptionRegistry, RandomPool, Vault};
use crate::protocol::Change;
use crate::records::{self, PreparedText, PreparedWrite, RecordError, Writer};
use crate::schema::StoreConfig;

pub(crate) struct StoreInner {
    /// The connection (see `idb` and `idb_write`); `None` once closed.
    pub raw: RefCell<Option<IdbDatabase>>,
    pub config: StoreConfig,
    pub registry: EncryptionRegistry,
    pub vault: RefCell<Vault>,
    pub vault_check: RefCell<Option<Vec<u8>>>,
    pub clock: RefCell<Clock>,
    pub random: RefCell<RandomPool>,
    pub client_id: String,
    /// The signed-in user (empty for a guest store); `signIn` sets it.
    pub user_id: RefCell<String>,
    pub listeners: Listeners,
    pub tabs: RefCell<Option<TabChannel>>,
    /// Migrations of imported rows, by the schema version they produce.
    pub migrations: RefCell<std::collections::BTreeMap<u32, js_sys::Function>>,
    /// Test hook: make the next write's transaction abort after its puts were issued.
    pub fail_next_commit: RefCell<bool>,
    /// See [`StoreInner::write_turn`].
    pub write_turn: futures::lock::Mutex<()>,
}

type JsResult<T> = Result<T, JsCodedError>;

impl StoreInner {
    /// The open database (a cheap handle clone, so no borrow is held across awaits).
    pub fn raw(&self) -> JsResult<IdbDatabase> {
        self.raw
            .borrow()
            .clone()
            .ok_or_else(|| JsCodedError::new(ErrorCode::StoreClosed, "the store is closed"))
    }

    pub(crate) fn check_collection(&self, collection: &str) -> JsResult<()> {
        if self.config.collection(collection).is_none() {
            return Err(RecordError::UnknownCollection(collection.into()).into());
        }
        Ok(())
    }

    /// Prepares writes with the store's clock, vault and random pool. Nothing is written if
    /// any record fails.
    pub(crate) fn prepare<T, E>(
        &self,
        actor: Option<&Value>,
        f: impl FnOnce(&mut Writer) -> Result<T, E>,
    ) -> JsResult<T>
    where
        JsCodedError: From<E>,
    {
        let vault = self.vault.borrow();
        let mut clock = self.clock.borrow_mut();
        let mut random = self.random.borrow_mut();
        let user = self.user_id.borrow();
        let claimed;
        // A guest store that signed in since it was opened writes into the user's space.
        let config = if *user == self.config.user_id {
            &self.config
        } else {
            claimed = StoreConfig {
                user_id: user.clone(),
                ..self.config.clone()
            };
            &claimed
        };
        let mut writer = Writer {
            config,
            registry: &self.registry,
            cipher: vault.cipher().ok(),
            clock: &mut clock,
            random: &mut random,
            wall_millis: js_sys::Date::now() as u64,
            actor,
        };
        Ok(f(&mut writer)?)
    }

    /// Opens the one readwrite transaction of a write over `collections`, the pending queue
    /// and `_meta`. Hold [`StoreInner::write_turn`] first. Read with [`Commit::get`], fill
    /// with [`Commit::write`], then [`StoreInner::finish`] it, awaiting nothing else in
    /// between; dropped unfinished, it aborts and nothing is written.
    pub(crate) fn begin(&self, collections: &[&str]) -> JsResult<Commit> {
        let mut stores = collections.to_vec();
        stores.extend([PENDING, META]);
        Ok(Commit {
            tx: WriteTx::begin(&self.raw()?, &stores)?,
            pending: ArrayText::default(),
            written: Vec::new(),
            created_at: js_sys::Date::now(),
            pacer: Pacer::new(),
        })
    }

    /// This store's writes take turns, from stamping to commit: a write that reads first (an
    /// update, an import) would otherwise let a later call stamp earlier and commit after it,
    /// and the queue, the record and the stored clock would disagree on what came last.
    pub(crate) async fn write_turn(&self) -> futures::lock::MutexGuard<'_, ()> {
        self.write_turn.lock().await
    }

    /// Adds the last pending row and the clock, commits, then notifies live queries and other
    /// tabs of every collection written.
    pub(crate) async fn finish(&self, mut commit: Commit) -> JsResult<()> {
        commit.flush_pending()?;
        if commit.written.is_empty() {
            return Ok(());
        }
        let clock_row =
            to_js(&json!({"key": "clock", "value": self.clock.borrow().last().to_string()}))?;
        commit.tx.put(META, &clock_row)?;
        if self.fail_next_commit.replace(false) {
            // Adding an existing key is a ConstraintError, which aborts the transaction.
            commit.tx.add(META, &clock_row)?;
        }
        let Commit { tx, written, .. } = commit;
        tx.commit().await?;
        for collection in &written {
            self.changed(collection);
        }
        self.listeners.local_write();
        Ok(())
    }

    async fn get_stored(&self, collection: &str, id: &str) -> JsResult<Option<Value>> {
        let v = idb::read(&self.raw()?, collection, |s| {
            s.get(&JsValue::from_str(id)).map_err(dom_error)
        })
        .await?;
        if v.is_undefined() {
            return Ok(None);
        }
        Ok(Some(from_js(&v, ErrorCode::Internal)?))
    }

    /// After a commit: re-run this store's live queries and tell the other tabs.
    pub(crate) fn changed(&self, collection: &str) {
        self.listeners.notify(collection);
        if let Some(tabs) = self.tabs.borrow().as_ref() {
            tabs.post(collection);
        }
    }

    /// `bulkPut`: records are read from JS, prepared and put in chunks, all in one
    /// transaction, so that IndexedDB stores one chunk while the next is prepared. A bad
    /// record anywhere aborts the transaction: nothing is written.
    pub async fn put_array(
        &self,
        collection: &str,
        records: &js_sys::Array,
        actor: Option<Value>,
    ) -> JsResult<()> {
        self.check_collection(collection)?;
        let _turn = self.write_turn().await;
        let mut commit = self.begin(&[collection])?;
        let len = records.length();
        let mut start = 0;
        while start < len {
            let end = len.min(start + PUT_CHUNK);
            let chunk: Vec<Value> = from_js(&records.slice(start, end), ErrorCode::InvalidRecord)?;
            // A put replaces: fields of a stored record that the new one lacks are nulled (see
            // `Writer::put_replacing`), so the stored records are read.
            let existing = commit.get_existing(collection, &chunk).await?;
            let writes = self.prepare(actor.as_ref(), |w| {
                chunk
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| {
                        let old = existing
                            .get(i)
                            .and_then(|v| v.as_ref())
                            .and_then(Value::as_object);
                        w.put_replacing(collection, r, old)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?;
            commit.write(collection, writes)?;
            commit.breathe(collection).await?;
            start = end;
        }
        self.finish(commit).await
    }

    /// Reads the record, applies `f` and writes it back, all in one readwrite transaction:
    /// IndexedDB runs overlapping ones in order, so concurrent patches of one record each see
    /// the one before.
    async fn modify(
        &self,
        collection: &str,
        id: &str,
        actor: Option<Value>,
        f: impl FnOnce(&mut Writer, Option<Value>) -> Result<PreparedWrite, RecordError>,
    ) -> JsResult<()> {
        self.check_collection(collection)?;
        let _turn = self.write_turn().await;
        let mut commit = self.begin(&[collection])?;
        let stored = commit.get(collection, id).await?;
        let write = self.prepare(actor.as_ref(), |w| f(w, stored))?;
        commit.write(collection, vec![write])?;
        self.finish(commit).await
    }

    pub async fn get(&self, collection: &str, id: &str) -> JsResult<JsValue> {
        self.check_collection(collection)?;
        let Some(stored) = self.get_stored(collection, id).await? else {
            return Ok(JsValue::UNDEFINED);
        };
        let vault = self.vault.borrow();
        let record = records::read(&self.registry, vault.cipher().ok(), collection, stored)?;
        to_js(&record)
    }

    /// Runs a query and returns the result as JSON text (live queries compare the text).
    pub async fn list_json(&self, collection: &str, query: &ListQuery) -> JsResult<String> {
        self.check_collection(collection)?;
        let range = query.key_range()?;
        // Tombstones are filtered after the read, so the limit can only go to IndexedDB when
        // they are included.
        let idb_limit = if query.include_deleted {
            query.limit
        } else {
            None
        };
        let array = idb::read(&self.raw()?, collection, |store| {
            let range: JsValue = range.map_or(JsValue::NULL, Into::into);
            let get_all = |source: &web_sys::IdbObjectStore| match idb_limit {
                Some(n) => source.get_all_with_key_and_limit(&range, n),
                None => source.get_all_with_key(&range),
            };
            let get_all_index = |source: &web_sys::IdbIndex| match idb_limit {
                Some(n) => source.get_all_with_key_and_limit(&range, n),
                None => source.get_all_with_key(&range),
            };
            match &query.index {
                Some(index) => {
                    let idx = store.index(index).map_err(|_| {
                        JsCodedError::new(
                            ErrorCode::UnknownIndex,
                            format!("{collection} has no index {index:?}"),
                        )
                    })?;
                    get_all_index(&idx)
                }
                None => get_all(store),
            }
            .map_err(dom_error)
        })
        .await?;
        let mut rows: Vec<Value> = from_js(&array, ErrorCode::Internal)?;
        if query.reverse {
            rows.reverse();
        }
        let vault = self.vault.borrow();
        let cipher = vault.cipher().ok();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Value::Object(m) = &row {
                if !query.include_deleted && records::is_deleted(m) {
                    continue;
                }
            }
            out.push(Value::Object(records::read(
                &self.registry,
                cipher,
                collection,
                row,
            )?));
            if query.limit.is_some_and(|l| out.len() >= l as usize) {
                break;
            }
        }
        serde_json::to_string(&out).map_err(internal)
    }

    pub async fn pending_count(&self) -> JsResult<u32> {
        let rows: js_sys::Array =
            idb::read(&self.raw()?, PENDING, |s| s.get_all().map_err(dom_error))
                .await?
                .unchecked_into();
        let mut total = 0;
        for row in rows.iter() {
            let n = js_sys::Reflect::get(&row, &"count".into())
                .ok()
                .and_then(|v| v.as_f64());
            total += n.unwrap_or(0.0) as u32;
        }
        Ok(total)
    }

    async fn put_meta(&self, key: &str, value: Value) -> JsResult<()> {
        let row = to_js(&json!({"key": key, "value": value}))?;
        let tx = WriteTx::begin(&self.raw()?, &[META])?;
        tx.put(META, &row)?;
        tx.commit().await
    }
}

/// Records per chunk of a `bulkPut`: small enough that each chunk is a short main-thread task
/// (each waits for its reads) and IndexedDB starts storing early, big enough that the
/// per-chunk JSON hand-over stays cheap.
const PUT_CHUNK: u32 = 250;

/// Changes per `_pendingChanges` row: big enough that a batch costs a handful of puts, small
/// enough that no row becomes a multi-megabyte value (IndexedDB slows down sharply on those)
/// and that encoding one stays a short task (rows of 2,000, 500 or 150 changes cost the same).
const PENDING_ROW_CHANGES: usize = 500;

/// A write transaction being filled (see [`StoreInner::begin`]). Records are put as soon as
/// their chunk is prepared, so IndexedDB's backend already stores one chunk while the next is
/// prepared.
pub(crate) struct Commit {
    tx: WriteTx,
    /// Changes not yet in a `_pendingChanges` row, as the text of their array.
    pending: ArrayText,
    written: Vec<String>,
    created_at: f64,
    pacer: Pacer,
}

impl Commit {
    /// A stored record, read inside this transaction (see [`WriteTx::get`]).
    pub async fn get(&self, collection: &str, id: &str) -> JsResult<Option<Value>> {
        let v = self.tx.get(collection, id).await?;
        if v.is_undefined() {
            return Ok(None);
        }
        Ok(Some(from_js(&v, ErrorCode::Internal)?))
    }

    /// The stored records of the ids of `records` (`None` where absent or without an id),
    /// all read at once inside this transaction.
    pub async fn get_existing(
        &self,
        collection: &str,
        records: &[Value],
    ) -> JsResult<Vec<Option<Value>>> {
        let ids: Vec<&str> = records
            .iter()
            .map(|r| {
                r.get(crate::protocol::FIELD_ID)
                    .and_then(Value::as_str)
                    .unwrap_or("")
            })
            .collect();
        // A record without a string id reads as absent; `put` refuses it afterwards.
        read_existing(&self.tx, collection, &ids).await
    }

    /// Every stored record of a collection, read inside this transaction; `on_chunk` after
    /// each read of [`READ_CHUNK`] (it may call into the store: nothing is borrowed).
    pub async fn get_all(&self, collection: &str, on_chunk: &dyn Fn()) -> JsResult<StoredRecords> {
        let mut index = std::collections::HashMap::new();
        let mut values = Vec::new();
        let mut add = |keys: js_sys::Array, chunk: js_sys::Array| {
            // The chunk's keys cross as one JSON text (one call, not one per key), indexed in
            // the chunk's own task.
            let keys: Vec<Value> = from_js(&keys.into(), ErrorCode::Internal)?;
            let c = values.len() as u32;
            for (i, key) in (0u32..).zip(keys) {
                if let Value::String(id) = key {
                    index.insert(id, (c, i));
                }
            }
            values.push(chunk);
            on_chunk();
            Ok(())
        };
        self.tx
            .get_all_chunked(collection, READ_CHUNK, &mut add)
            .await?;
        Ok(StoredRecords { values, index })
    }

    /// Issues the puts of prepared records and queues their changes.
    pub fn write(&mut self, collection: &str, writes: Vec<PreparedWrite>) -> JsResult<()> {
        let mut batch = TextBatch::default();
        for w in &writes {
            batch.push(w)?;
        }
        self.write_text(collection, batch)
    }

    /// [`Commit::write`] of records and changes already JSON text.
    pub fn write_text(&mut self, collection: &str, mut batch: TextBatch) -> JsResult<()> {
        if batch.changes.is_empty() {
            return Ok(());
        }
        // One JSON.parse per chunk builds every JS object at once.
        let stored: js_sys::Array = parse(&batch.stored.take())?.unchecked_into();
        self.pacer
            .issued(self.tx.put_all_in_flight(collection, &stored)?);
        if !self.written.iter().any(|c| c == collection) {
            self.written.push(collection.to_string());
        }
        for change in batch.changes {
            self.pending.push(&change);
            if self.pending.len() == PENDING_ROW_CHANGES {
                self.flush_pending()?;
            }
        }
        Ok(())
    }

    /// Between chunks of a long write: gives the event loop its turn when this slice of
    /// main-thread work is used up, keeping the transaction active (see [`Pacer`]).
    pub async fn breathe(&mut self, collection: &str) -> JsResult<()> {
        self.pacer.breathe(&self.tx, collection).await
    }

    /// One `_pendingChanges` row `{count, createdAt, changes}`, where `changes` is the JSON
    /// text of the changes in order: a string is far cheaper for IndexedDB to clone and store
    /// than thousands of objects, and it is sent as it is.
    fn flush_pending(&mut self) -> JsResult<()> {
        let count = self.pending.len();
        if count == 0 {
            return Ok(());
        }
        let row = pending_row_text(self.pending.take(), count, self.created_at)?;
        self.tx.add(PENDING, &row)?;
        Ok(())
    }
}

/// Records to store and their changes as JSON text: a chunk for [`Commit::write_text`].
#[derive(Default)]
pub(crate) struct TextBatch {
    stored: ArrayText,
    changes: Vec<String>,
}

impl TextBatch {
    pub fn push(&mut self, w: &PreparedWrite) -> JsResult<()> {
        self.push_text(PreparedText {
            stored: serde_json::to_string(&w.stored).map_err(internal)?,
            change: serde_json::to_string(&w.change).map_err(internal)?,
        });
        Ok(())
    }

    pub fn push_text(&mut self, w: PreparedText) {
        self.stored.push(&w.stored);
        self.changes.push(w.change);
    }

    pub fn len(&self) -> usize {
        self.changes.len()
    }
}

/// One `_pendingChanges` row `{count, createdAt, changes}`, `changes` the JSON text of the
/// changes in order (see [`Commit::flush_pending`]).
pub(crate) fn pending_row(changes: &[Change], created_at: f64) -> JsResult<JsValue> {
    let text = serde_json::to_string(changes).map_err(internal)?;
    pending_row_text(text, changes.len(), created_at)
}

/// [`pending_row`] of `count` changes given as the JSON text of their array.
fn pending_row_text(text: String, count: usize, created_at: f64) -> JsResult<JsValue> {
    let row = js_sys::Object::new();
    let set = |k: &str, v: JsValue| js_sys::Reflect::set(&row, &k.into(), &v);
    set("count", (count as u32).into())
        .and_then(|_| set("createdAt", created_at.into()))
        .and_then(|_| set("changes", text.into()))
        .map_err(|_| internal("building a pending row"))?;
    Ok(row.into())
}

/// The changes of a `_pendingChanges` row: JSON text since the layout of docs/client.md, an
/// array in rows written before it.
pub(crate) fn pending_changes(row: &JsValue) -> JsResult<Vec<Change>> {
    let changes =
        js_sys::Reflect::get(row, &"changes".into()).map_err(|_| internal("pending row"))?;
    match changes.as_string() {
        Some(text) => serde_json::from_str(&text).map_err(internal),
        None => from_js(&changes, ErrorCode::Internal),
    }
}

/// The stored records of `ids` (`None` where absent), read inside the transaction; `ids`
/// without a string id read as absent. When no stored key lies between the smallest and the
/// greatest id (new records: a first sync, a bulkPut of fresh ids), one `count` spares every
/// `get`.
pub(crate) async fn read_existing(
    tx: &WriteTx,
    store: &str,
    ids: &[&str],
) -> JsResult<Vec<Option<Value>>> {
    // IndexedDB orders string keys by UTF-16 code units.
    let utf16 = |a: &&&str, b: &&&str| a.encode_utf16().cmp(b.encode_utf16());
    let (Some(lo), Some(hi)) = (ids.iter().min_by(utf16), ids.iter().max_by(utf16)) else {
        return Ok(Vec::new());
    };
    if tx.count_between(store, lo, hi).await? == 0 {
        return Ok(vec![None; ids.len()]);
    }
    let stored = tx.get_many(store, ids).await?;
    // `undefined` (absent) becomes `null` in the array's JSON.
    from_js(&stored.into(), ErrorCode::Internal)
}

/// A collection's stored records as IndexedDB returned them, each converted only when taken:
/// converting a large collection at once would be one long main-thread task.
pub(crate) struct StoredRecords {
    /// As read, a chunk at a time.
    values: Vec<js_sys::Array>,
    /// id → (chunk, position in it), of the records not taken yet.
    index: std::collections::HashMap<String, (u32, u32)>,
}

/// Records per read of [`Commit::get_all`]; progress is reported after each. Reads of 5,000
/// left up to ~275 ms between two reports under load (BENCHMARKS.md).
const READ_CHUNK: u32 = 2_500;

impl StoredRecords {
    /// The stored record of `id`, once (`None` if absent or taken before).
    pub fn take(&mut self, id: &str) -> JsResult<Option<Value>> {
        match self.index.remove(id) {
            Some((c, i)) => from_js(&self.values[c as usize].get(i), ErrorCode::Internal).map(Some),
            None => Ok(None),
        }
    }
}

/// Numbers this opening of the store among every opening on this device (tabs, or two stores
/// on one database): one read-write transaction, so two tabs opening at once get different
/// numbers, and thus different HLC nodes.
async fn next_tab(db: &IdbDatabase) -> JsResult<u32> {
    let tx = WriteTx::begin(db, &[META])?;
    let row = tx.get(META, "tabs").await?;
    let row: Option<Value> = if row.is_undefined() {
        None
    } else {
        from_js(&row, ErrorCode::Internal)?
    };
    let last = row
        .as_ref()
        .and_then(|r| r.get("value"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let tab = (last + 1) % (1 << crate::clock::TAB_BITS);
    tx.put(META, &to_js(&json!({"key": "tabs", "value": tab}))?)?;
    tx.commit().await?;
    Ok(tab as u32)
}

async fn read_meta(db: &IdbDatabase) -> JsResult<std::collections::HashMap<String, Value>> {
    let rows = idb::read(db, META, |s| s.get_all().map_err(dom_error)).await?;
    let rows: Vec<Value> = from_js(&rows, ErrorCode::Internal)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| Some((r.get("key")?.as_str()?.to_string(), r.get("value")?.clone())))
        .collect())
}

impl ManaStore {
    /// Opens a store from an already parsed config (what `ManaStore.open` does after
    /// parsing; Rust callers and tests use it directly).
    pub async fn open_with(config: StoreConfig) -> Result<ManaStore, JsCodedError> {
        config.validate()?;
        let db = idb::open(&config).await?;
        let meta = read_meta(&db).await?;
        let client_id = match meta.get("clientId").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => {
                let mut random = RandomPool::default();
                let rand: [u8; 10] = random.array()?;
                uuid::Builder::from_unix_timestamp_millis(js_sys::Date::now() as u64, &rand)
                    .into_uuid()
                    .to_string()
            }
        };
        let node = tab_node(&client_id, next_tab(&db).await?);
        let clock = match meta.get("clock").and_then(Value::as_str).map(Hlc::parse) {
            Some(Ok(last)) => Clock::resume(node, last),
            _ => Clock::new(node),
        };
        // A guest store that signed in before keeps its user when opened without one.
        let user_id = match meta.get("userId").and_then(Value::as_str) {
            Some(stored) if config.user_id.is_empty() => stored.to_owned(),
            _ => config.user_id.clone(),
        };
        let vault_check = meta
            .get("vaultKeyCheck")
            .and_then(Value::as_str)
            .and_then(|s| hex::decode(s).ok());
        let inner = Rc::new(StoreInner {
            raw: RefCell::new(Some(db)),
            registry: config.registry(),
            config,
            vault: RefCell::new(Vault::default()),
            vault_check: RefCell::new(vault_check),
            clock: RefCell::new(clock),
            random: RefCell::new(RandomPool::default()),
            client_id: client_id.clone(),
            user_id: RefCell::new(user_id),
            listeners: Listeners::default(),
            tabs: RefCell::new(None),
            migrations: RefCell::default(),
            fail_next_commit: RefCell::new(false),
            write_turn: futures::lock::Mutex::new(()),
        });
        let weak = Rc::downgrade(&inner);
        *inner.tabs.borrow_mut() = TabChannel::open(
            &format!("mana-sync:{}", inner.config.name),
            move |collection| {
                if let Some(store) = weak.upgrade() {
                    store.listeners.notify(collection);
                }
            },
        );
        if !meta.contains_key("clientId") {
            inner.put_meta("clientId", Value::String(client_id)).await?;
        }
        Ok(ManaStore { inner })
    }
}

/// The local store. Create with `await ManaStore.open(config)`.
#[wasm_bindgen]
pub struct ManaStore {
    pub(crate) inner: Rc<StoreInner>,
}

/// Options of `put`, `bulkPut`, `update` and `delete`.
#[derive(serde::Deserialize, Default, tsify::Tsify)]
pub struct WriteOptions {
    /// Stamped on the change (who made it).
    #[serde(default)]
    #[tsify(type = "Actor")]
    actor: Option<Value>,
}

fn parse_options(v: Option<JsValue>) -> JsResult<WriteOptions> {
    match v {
        Some(v) if !v.is_undefined() && !v.is_null() => from_js(&v, ErrorCode::InvalidOptions),
        _ => Ok(WriteOptions::default()),
    }
}

pub(crate) fn promise<F, T>(f: F) -> js_sys::Promise
where
    F: std::future::Future<Output = JsResult<T>> + 'static,
    T: Into<JsValue>,
{
    future_to_promise(async move { f.await.map(Into::into).map_err(Into::into) })
}

#[wasm_bindgen]
impl ManaStore {
    /// Opens (creating or upgrading) the store's IndexedDB database.
    #[wasm_bindgen(unchecked_return_type = "Promise<ManaStore>")]
    pub fn open(
        #[wasm_bindgen(unchecked_param_type = "StoreConfig")] config: JsValue,
    ) -> js_sys::Promise {
        promise(async move {
            let config: StoreConfig = from_js(&config, ErrorCode::InvalidConfig)?;
            ManaStore::open_with(config).await
        })
    }

    /// 32 random bytes for a new vault key.
    #[wasm_bindgen(js_name = generateVaultKey)]
    pub fn generate_vault_key() -> Result<js_sys::Uint8Array, JsValue> {
        let key: [u8; 32] = RandomPool::default().array().map_err(JsCodedError::from)?;
        Ok(js_sys::Uint8Array::from(&key[..]))
    }

    /// This store's client id (stable across reloads).
    #[wasm_bindgen(getter, js_name = clientId)]
    pub fn client_id(&self) -> String {
        self.inner.client_id.clone()
    }

    /// Unlocks the vault. The first key ever used is remembered (as a fingerprint, never the
    /// key); a different key later is refused with `wrong_vault_key`.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unlock(&self, key: &[u8]) -> js_sys::Promise {
        let inner = self.inner.clone();
        let key = zeroize::Zeroizing::new(key.to_vec());
        promise(async move {
            let expected = inner.vault_check.borrow().clone();
            let check = inner.vault.borrow_mut().unlock(&key, expected.as_deref())?;
            if expected.is_none() {
                inner
                    .put_meta("vaultKeyCheck", Value::String(hex::encode(check)))
                    .await?;
                *inner.vault_check.borrow_mut() = Some(check.to_vec());
            }
            inner.listeners.notify_all();
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Forgets the vault key (zeroized). Encrypted fields can't be read or written until
    /// the next `unlock`.
    pub fn lock(&self) {
        self.inner.vault.borrow_mut().lock();
        self.inner.listeners.notify_all();
    }

    #[wasm_bindgen(getter, js_name = isUnlocked)]
    pub fn is_unlocked(&self) -> bool {
        self.inner.vault.borrow().is_unlocked()
    }

    /// Inserts or replaces a record (with its pending change, atomically).
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn put(
        &self,
        collection: String,
        #[wasm_bindgen(unchecked_param_type = "ManaRecord")] record: JsValue,
        options: Option<WriteOptionsJs>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let opts = parse_options(options.map(Into::into))?;
            inner
                .put_array(&collection, &js_sys::Array::of1(&record), opts.actor)
                .await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Writes many records and their pending changes in one transaction.
    #[wasm_bindgen(js_name = bulkPut, unchecked_return_type = "Promise<void>")]
    pub fn bulk_put(
        &self,
        collection: String,
        #[wasm_bindgen(unchecked_param_type = "ManaRecord[]")] records: JsValue,
        options: Option<WriteOptionsJs>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let opts = parse_options(options.map(Into::into))?;
            let records: &js_sys::Array = records.dyn_ref().ok_or_else(|| {
                JsCodedError::new(
                    ErrorCode::InvalidRecord,
                    "bulkPut takes an array of records",
                )
            })?;
            inner.put_array(&collection, records, opts.actor).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Patches some fields of an existing record. Throws `not_found` if there is none.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn update(
        &self,
        collection: String,
        id: String,
        #[wasm_bindgen(unchecked_param_type = "Record<string, unknown>")] patch: JsValue,
        options: Option<WriteOptionsJs>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let opts = parse_options(options.map(Into::into))?;
            let patch: Value = from_js(&patch, ErrorCode::InvalidRecord)?;
            inner
                .modify(&collection, &id, opts.actor, |w, stored| {
                    w.update(&collection, stored, &id, patch)
                })
                .await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Soft-deletes a record: it becomes a tombstone (`deletedAt`) that syncs.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn delete(
        &self,
        collection: String,
        id: String,
        options: Option<WriteOptionsJs>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let opts = parse_options(options.map(Into::into))?;
            inner
                .modify(&collection, &id, opts.actor, |w, stored| {
                    w.delete(&collection, stored, &id)
                })
                .await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The record (decrypted, without `__fieldMeta`), or `undefined`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ManaRecord | undefined>")]
    pub fn get(&self, collection: String, id: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move { inner.get(&collection, &id).await })
    }

    /// Records of a collection, optionally through an index and key range. Tombstones are
    /// hidden unless `includeDeleted`.
    #[wasm_bindgen(unchecked_return_type = "Promise<ManaRecord[]>")]
    pub fn list(&self, collection: String, query: Option<ListQueryJs>) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let query =
                ListQuery::from_js(&query.map(JsValue::from).unwrap_or(JsValue::UNDEFINED))?;
            parse(&inner.list_json(&collection, &query).await?)
        })
    }

    /// Number of local changes not yet acknowledged by the server.
    #[wasm_bindgen(js_name = pendingCount, unchecked_return_type = "Promise<number>")]
    pub fn pending_count(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move { inner.pending_count().await })
    }

    /// Closes the database and locks the vault.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.vault.borrow_mut().lock();
            if let Some(tabs) = inner.tabs.borrow_mut().take() {
                tabs.close();
            }
            // Requests still in flight finish first (IndexedDB closes once they are done).
            if let Some(raw) = inner.raw.borrow_mut().take() {
                raw.close();
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    #[doc(hidden)]
    #[wasm_bindgen(js_name = __failNextCommit, skip_typescript)]
    pub fn fail_next_commit(&self) {
        *self.inner.fail_next_commit.borrow_mut() = true;
    }
}
