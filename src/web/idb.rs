//! Opening the IndexedDB database (rexie) and upgrading it when the declared schema grows.
//!
//! The database version is ours to manage: we open at the current version, compare the
//! object stores and indexes with the declared ones, and only when something is missing
//! reopen at `version + 1` with the union of what exists and what is declared — so adding a
//! collection or an index never drops data, and an undeclared old collection is kept.

use std::collections::{BTreeMap, BTreeSet};

use rexie::{Index, ObjectStore, Rexie, TransactionMode};

use super::error::JsCodedError;
use crate::schema::StoreConfig;

pub const PENDING: &str = "_pendingChanges";
pub const SYNC_META: &str = "_syncMeta";
pub const META: &str = "_meta";

type Layout = BTreeMap<String, BTreeSet<String>>;

fn declared(config: &StoreConfig) -> Layout {
    let mut layout: Layout = config
        .collections()
        .map(|(_, c, cfg)| (c.to_string(), cfg.indexes.iter().cloned().collect()))
        .collect();
    for s in [PENDING, SYNC_META, META] {
        layout.insert(s.to_string(), BTreeSet::new());
    }
    layout
}

async fn existing(db: &Rexie) -> Result<Layout, JsCodedError> {
    let names = db.store_names();
    let mut layout = Layout::new();
    if names.is_empty() {
        return Ok(layout);
    }
    let tx = db.transaction(&names, TransactionMode::ReadOnly)?;
    for name in &names {
        let store = tx.store(name)?;
        layout.insert(name.clone(), store.index_names().into_iter().collect());
    }
    Ok(layout)
}

fn object_store(name: &str, indexes: &BTreeSet<String>) -> ObjectStore {
    let store = match name {
        PENDING => ObjectStore::new(name).auto_increment(true),
        SYNC_META | META => ObjectStore::new(name).key_path("key"),
        _ => ObjectStore::new(name).key_path("id"),
    };
    // Our indexes are always named after the field they index.
    indexes
        .iter()
        .fold(store, |s, idx| s.add_index(Index::new(idx, idx)))
}

/// Opens (creating or upgrading as needed) the database of `config`.
pub async fn open(config: &StoreConfig) -> Result<Rexie, JsCodedError> {
    let db = Rexie::builder(&config.name).build().await?;
    let have = existing(&db).await?;
    let want = declared(config);
    let missing = want
        .iter()
        .any(|(s, idx)| have.get(s).is_none_or(|h| !idx.is_subset(h)));
    if !missing {
        return Ok(db);
    }
    let version = db.version()? + 1;
    db.close();
    let mut union = have;
    for (s, idx) in want {
        union.entry(s).or_default().extend(idx);
    }
    let builder = union.iter().fold(
        Rexie::builder(&config.name).version(version),
        |b, (s, idx)| b.add_object_store(object_store(s, idx)),
    );
    Ok(builder.build().await?)
}
