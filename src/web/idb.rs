//! Opening the IndexedDB database and upgrading it when the declared schema grows, and the
//! single reads outside a write transaction (the hot paths are in `idb_write`).
//!
//! The database version is ours to manage: we open at the current version, compare the
//! object stores and indexes with the declared ones, and only when something is missing
//! reopen at `version + 1` and create what is missing — so adding a collection or an index
//! never drops data, and an undeclared old collection is kept.

use crate::collect::CollectInserted;
use crate::error_code::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};

use js_sys::Array;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{
    DomStringList, IdbDatabase, IdbObjectStore, IdbObjectStoreParameters, IdbOpenDbRequest,
    IdbRequest, IdbTransactionMode,
};

use super::error::JsCodedError;
use super::idb_write::{dom_error, on_settled, settled};
use crate::schema::StoreConfig;

pub const PENDING: &str = "_pendingChanges";
pub const SYNC_META: &str = "_syncMeta";
pub const META: &str = "_meta";

type Layout = BTreeMap<String, BTreeSet<String>>;

fn declared(config: &StoreConfig) -> Layout {
    let mut layout: Layout = config
        .collections()
        .map(|(_, c, cfg)| {
            (
                c.to_string(),
                cfg.indexes.iter().cloned().collect_inserted(),
            )
        })
        .collect_inserted();
    for s in [PENDING, SYNC_META, META] {
        layout.insert(s.to_string(), BTreeSet::new());
    }
    layout
}

fn names(list: &DomStringList) -> Vec<String> {
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

fn existing(db: &IdbDatabase) -> Result<Layout, JsCodedError> {
    let stores = names(&db.object_store_names());
    let mut layout = Layout::new();
    if stores.is_empty() {
        return Ok(layout);
    }
    let list: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
    let tx = db.transaction_with_str_sequence(&list).map_err(dom_error)?;
    for name in stores {
        let store = tx.object_store(&name).map_err(dom_error)?;
        layout.insert(
            name,
            names(&store.index_names()).into_iter().collect_inserted(),
        );
    }
    Ok(layout)
}

fn factory() -> Result<web_sys::IdbFactory, JsCodedError> {
    // `indexedDB` is read structurally, so this works on a Window as on a worker.
    js_sys::global()
        .unchecked_into::<web_sys::WorkerGlobalScope>()
        .indexed_db()
        .ok()
        .flatten()
        .ok_or_else(|| JsCodedError::new(ErrorCode::Storage, "IndexedDB is not available"))
}

/// Creates, in the upgrade transaction of `req`, the stores and indexes of `want` missing there.
fn create_missing(req: &IdbOpenDbRequest, want: &Layout) -> Result<(), JsValue> {
    let db: IdbDatabase = req.result()?.unchecked_into();
    let tx = req
        .transaction()
        .ok_or_else(|| JsValue::from_str("no upgrade transaction"))?;
    let have = db.object_store_names();
    for (name, indexes) in want {
        let store: IdbObjectStore = if have.contains(name) {
            tx.object_store(name)?
        } else {
            let params = IdbObjectStoreParameters::new();
            match name.as_str() {
                PENDING => params.set_auto_increment(true),
                SYNC_META | META => params.set_key_path(&JsValue::from_str("key")),
                _ => params.set_key_path(&JsValue::from_str("id")),
            }
            db.create_object_store_with_optional_parameters(name, &params)?
        };
        let have_idx = store.index_names();
        // Our indexes are always named after the field they index.
        for idx in indexes.iter().filter(|i| !have_idx.contains(i)) {
            store.create_index_with_str(idx, idx)?;
        }
    }
    Ok(())
}

/// Opens `name` (at `version`, or its current one), running `upgrade` if the version grows.
async fn open_at(
    name: &str,
    version: Option<u32>,
    want: &Layout,
) -> Result<IdbDatabase, JsCodedError> {
    let f = factory()?;
    let req = match version {
        Some(v) => f.open_with_u32(name, v),
        None => f.open(name),
    }
    .map_err(dom_error)?;
    let upgrade = Closure::<dyn FnMut(JsValue)>::new({
        let req = req.clone();
        let want = want.clone();
        move |_| {
            if let Err(e) = create_missing(&req, &want) {
                // Aborting the upgrade fails the open request with this error.
                web_sys::console::error_2(&"mana-sync: schema upgrade failed".into(), &e);
                if let Some(tx) = req.transaction() {
                    let _ = tx.abort();
                }
            }
        }
    });
    req.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let done = on_settled(&req);
    let opened = settled(&req, done).await;
    req.set_onupgradeneeded(None);
    drop(upgrade);
    opened?;
    Ok(req.result().map_err(dom_error)?.unchecked_into())
}

/// Opens (creating or upgrading as needed) the database of `config`. The connection closes
/// itself when another tab upgrades the schema (a `versionchange`), so that one can proceed.
pub async fn open(config: &StoreConfig) -> Result<IdbDatabase, JsCodedError> {
    let want = declared(config);
    // A new database is created at version 1 with everything declared.
    let mut db = open_at(&config.name, None, &want).await?;
    let missing = {
        let have = existing(&db)?;
        want.iter()
            .any(|(s, idx)| have.get(s).is_none_or(|h| !idx.is_subset(h)))
    };
    if missing {
        let version = db.version() as u32 + 1;
        db.close();
        db = open_at(&config.name, Some(version), &want).await?;
    }
    let on_version_change = Closure::<dyn FnMut(JsValue)>::new({
        let db = db.clone();
        move |_| db.close()
    });
    db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
    on_version_change.forget();
    Ok(db)
}

/// One request in a readonly transaction of `store`: its result.
pub async fn read(
    db: &IdbDatabase,
    store: &str,
    issue: impl FnOnce(&IdbObjectStore) -> Result<IdbRequest, JsCodedError>,
) -> Result<JsValue, JsCodedError> {
    let tx = db
        .transaction_with_str_and_mode(store, IdbTransactionMode::Readonly)
        .map_err(dom_error)?;
    let req = issue(&tx.object_store(store).map_err(dom_error)?)?;
    let done = on_settled(&req);
    settled(&req, done).await?;
    req.result().map_err(dom_error)
}
