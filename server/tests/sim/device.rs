//! One simulated device: an in-memory model of the browser store (records with their
//! compact `__fieldMeta`, the pending rows, the cursors, the clock), written exactly the way
//! the browser driver writes it, and the sync engine that drives it.

use std::collections::{BTreeMap, BTreeSet};

use mana_sync::clock::{node_id_from_client_id, Clock};
use mana_sync::crypto::{EncryptionRegistry, FieldCipher, RandomPool};
use mana_sync::merge::RecordState;
use mana_sync::records::{take_meta, RecordError, Writer};
use mana_sync::schema::{AppConfig, CollectionConfig, StoreConfig};
use mana_sync::sync::apply::{by_record, max_hlc, merge_into};
use mana_sync::sync::{
    Apply, EngineConfig, PendingRow, RowEdit, SplitMix64, SyncEngine, SyncError, SyncStatus,
};
use mana_sync::Change;
use serde_json::{Map, Value};

pub const USER: &str = "sim-user";

/// `(collection, id)`.
pub type Key = (String, String);

/// A collection of the simulated apps: its record ids are `<prefix><0..IDS>`, its fields
/// the two named (the first two of `notes` are encrypted).
pub struct Collection {
    pub app: &'static str,
    pub name: &'static str,
    pub prefix: &'static str,
    pub fields: [&'static str; 2],
    pub encrypted: bool,
}

pub const COLLECTIONS: [Collection; 3] = [
    Collection {
        app: "notes",
        name: "notes",
        prefix: "n",
        fields: ["title", "body"],
        encrypted: true,
    },
    Collection {
        app: "notes",
        name: "tags",
        prefix: "t",
        fields: ["name", "color"],
        encrypted: false,
    },
    Collection {
        app: "todo",
        name: "tasks",
        prefix: "k",
        fields: ["title", "done"],
        encrypted: false,
    },
];

/// Record ids per collection: few, so that devices write the same records.
pub const IDS: u64 = 6;

/// What every device shares: the store config, its registry and the vault key.
pub struct Schema {
    pub config: StoreConfig,
    pub registry: EncryptionRegistry,
    pub cipher: FieldCipher,
    /// app → collections, as the engine takes them.
    pub apps: BTreeMap<String, Vec<String>>,
}

impl Schema {
    pub fn new(vault_key: [u8; 32]) -> Schema {
        let mut apps: BTreeMap<String, AppConfig> = BTreeMap::new();
        for c in &COLLECTIONS {
            let encrypted = if c.encrypted {
                c.fields.iter().map(|f| f.to_string()).collect()
            } else {
                Vec::new()
            };
            apps.entry(c.app.into()).or_default().collections.insert(
                c.name.into(),
                CollectionConfig {
                    indexes: Vec::new(),
                    encrypted,
                },
            );
        }
        let config = StoreConfig {
            name: "sim".into(),
            user_id: USER.into(),
            apps,
            schema_version: 1,
        };
        config.validate().expect("a valid store config");
        let apps = config
            .apps
            .iter()
            .map(|(a, cfg)| (a.clone(), cfg.collections.keys().cloned().collect()))
            .collect();
        Schema {
            registry: config.registry(),
            config,
            cipher: FieldCipher::new(&vault_key),
            apps,
        }
    }
}

/// What survives a restart: the IndexedDB of the device.
pub struct LocalStore {
    pub records: BTreeMap<Key, Map<String, Value>>,
    /// `_pendingChanges`, in key order.
    pub pending: Vec<PendingRow>,
    pub next_key: u64,
    /// `_syncMeta`: (app, collection) → cursor.
    pub cursors: BTreeMap<Key, String>,
    pub clock: Clock,
}

impl LocalStore {
    fn new(node: u64) -> LocalStore {
        LocalStore {
            records: BTreeMap::new(),
            pending: Vec::new(),
            next_key: 1,
            cursors: BTreeMap::new(),
            clock: Clock::new(node),
        }
    }

    /// Commits an [`Apply`] the way the driver does, in one transaction: the merged
    /// records, the pending-row edits, the cursors, the clock. `Err` = the engine asked for
    /// something impossible (an edit of a row that is not there).
    pub fn commit(&mut self, a: &Apply) -> Result<(), String> {
        for (table, id, changes) in by_record(&a.changes) {
            let key = (table.to_owned(), id.to_owned());
            let stored = self.records.get(&key).cloned().map(Value::Object);
            let merged = merge_into(stored, id, &changes, self.clock.node())
                .map_err(|e| format!("merging {table}/{id}: {e}"))?;
            if let Some(record) = merged.stored {
                self.records.insert(key, record);
            }
        }
        for edit in &a.pending {
            self.edit_pending(edit)?;
        }
        for (collection, cursor) in &a.cursors {
            self.cursors
                .insert((a.app.clone(), collection.clone()), cursor.clone());
        }
        if let Some(h) = max_hlc(&a.changes) {
            self.clock.observe(&h);
        }
        Ok(())
    }

    fn edit_pending(&mut self, edit: &RowEdit) -> Result<(), String> {
        let key = match edit {
            RowEdit::Delete(k) | RowEdit::Replace { key: k, .. } => *k,
        };
        let Some(i) = self.pending.iter().position(|r| r.key == key) else {
            return Err(format!("{edit:?} of pending row {key}, which is not there"));
        };
        match edit {
            RowEdit::Delete(_) => {
                self.pending.remove(i);
            }
            RowEdit::Replace { changes, .. } => self.pending[i].changes = changes.clone(),
        }
        Ok(())
    }

    /// Every record as a merge state (value, HLC, actor per field).
    pub fn state(&self) -> Result<BTreeMap<Key, RecordState>, String> {
        let mut out = BTreeMap::new();
        for (key, record) in &self.records {
            let mut record = record.clone();
            let meta = take_meta(&mut record).map_err(|e| format!("{key:?}: {e}"))?;
            let state =
                RecordState::from_record(&record, &meta).map_err(|e| format!("{key:?}: {e}"))?;
            out.insert(key.clone(), state);
        }
        Ok(out)
    }
}

/// One write of a (bulk) local transaction.
#[derive(Debug, Clone)]
pub enum WriteOp {
    Put {
        collection: String,
        record: Value,
    },
    Update {
        collection: String,
        id: String,
        patch: Value,
    },
    Delete {
        collection: String,
        id: String,
    },
}

/// A request in flight: whether it is a push, and whether the server has handled it.
#[derive(Debug, Clone)]
pub struct Flight {
    pub push: bool,
    pub reached_server: bool,
}

pub struct Device {
    pub store: LocalStore,
    random: RandomPool,
    /// This device's wall clock minus the simulation's.
    pub skew: i64,
    cfg: EngineConfig,
    pub engine: SyncEngine,
    /// Bumped by a restart: messages of an earlier generation are dropped.
    pub gen: u32,
    pub started: bool,
    pub status: SyncStatus,
    pub inflight: BTreeMap<u64, Flight>,
    /// The last pull answer said `hasMore`.
    pub mid_pull: bool,
    /// The browser is offline: every fetch fails at once.
    pub offline: bool,
    /// `syncNow` waiters not yet settled, and the results of those that were.
    pub waiters: BTreeSet<u64>,
    pub settled: BTreeMap<u64, Result<(), SyncError>>,
}

impl Device {
    pub fn new(
        index: usize,
        schema: &Schema,
        cfg_seed: (usize, usize),
        skew: i64,
        rng: SplitMix64,
    ) -> Device {
        let client_id = format!("device-{index}");
        let mut cfg = EngineConfig::new(&client_id, 1, schema.apps.clone());
        cfg.push_batch = cfg_seed.0;
        cfg.pull_limit = cfg_seed.1;
        cfg.live = false;
        let engine = SyncEngine::new(cfg.clone(), BTreeMap::new(), Box::new(rng));
        Device {
            store: LocalStore::new(node_id_from_client_id(&client_id)),
            random: RandomPool::default(),
            skew,
            cfg,
            engine,
            gen: 0,
            started: false,
            status: SyncStatus::Local,
            inflight: BTreeMap::new(),
            mid_pull: false,
            offline: false,
            waiters: BTreeSet::new(),
            settled: BTreeMap::new(),
        }
    }

    /// A page reload: a new engine from the stored cursors; everything in memory is gone.
    pub fn new_engine(&mut self, rng: SplitMix64) {
        self.engine = SyncEngine::new(self.cfg.clone(), self.store.cursors.clone(), Box::new(rng));
        self.gen += 1;
        self.inflight.clear();
        self.mid_pull = false;
        self.waiters.clear();
    }

    pub fn push_in_flight(&self) -> bool {
        self.inflight.values().any(|f| f.push)
    }

    pub fn push_reached_server(&self) -> bool {
        self.inflight.values().any(|f| f.push && f.reached_server)
    }

    /// One local transaction: every op stamped and stored, their changes in one new pending
    /// row. `event_id` replaces the writer's random event ids, so that a seed replays.
    pub fn write(
        &mut self,
        schema: &Schema,
        ops: &[WriteOp],
        wall_millis: u64,
        actor: Option<&Value>,
        event_id: &mut dyn FnMut() -> String,
    ) -> Result<Vec<Change>, RecordError> {
        let mut changes = Vec::with_capacity(ops.len());
        for op in ops {
            let (collection, id) = match op {
                WriteOp::Put { collection, record } => (
                    collection,
                    record["id"].as_str().unwrap_or_default().to_owned(),
                ),
                WriteOp::Update { collection, id, .. } | WriteOp::Delete { collection, id } => {
                    (collection, id.clone())
                }
            };
            let key = (collection.clone(), id.clone());
            let existing = self.store.records.get(&key).cloned();
            let stored = existing.clone().map(Value::Object);
            let mut writer = Writer {
                config: &schema.config,
                registry: &schema.registry,
                cipher: Some(&schema.cipher),
                clock: &mut self.store.clock,
                random: &mut self.random,
                wall_millis,
                actor,
            };
            let mut prepared = match op {
                WriteOp::Put { record, .. } => {
                    writer.put_replacing(collection, record.clone(), existing.as_ref())?
                }
                WriteOp::Update { patch, .. } => {
                    writer.update(collection, stored, &id, patch.clone())?
                }
                WriteOp::Delete { .. } => writer.delete(collection, stored, &id)?,
            };
            prepared.change.event_id = event_id();
            self.store.records.insert(key, prepared.stored);
            changes.push(prepared.change);
        }
        self.store.pending.push(PendingRow {
            key: self.store.next_key,
            changes: changes.clone(),
        });
        self.store.next_key += 1;
        Ok(changes)
    }
}
