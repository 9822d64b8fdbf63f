//! The store configuration given at open (docs/client.md): apps → collections → indexes and
//! encrypted fields. Validated here, in pure Rust, so bad configs fail the same everywhere.

use crate::error_code::ErrorCode;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tsify::Tsify;

use crate::crypto::EncryptionRegistry;

/// Object stores of ours; app collections can't use these names.
pub const RESERVED_STORES: &[&str] = &["_pendingChanges", "_syncMeta", "_meta"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct CollectionConfig {
    /// Fields to index (each index is named after its field). Indexed fields stay plaintext.
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Fields sealed with the vault key (AES-256-GCM) in the user's own space.
    #[serde(default)]
    pub encrypted: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct AppConfig {
    #[serde(default)]
    pub collections: BTreeMap<String, CollectionConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct StoreConfig {
    /// IndexedDB database name.
    pub name: String,
    /// Empty (or absent) for a guest store: everything works locally; `signIn` claims it.
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub apps: BTreeMap<String, AppConfig>,
    /// Schema version stamped on every change this store writes (default 1).
    #[serde(default = "one")]
    pub schema_version: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid store config: {0}")]
pub struct ConfigError(pub String);

impl ConfigError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidConfig
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.name.is_empty() {
            return err("name is empty".into());
        }
        if self.schema_version == 0 {
            return err("schemaVersion starts at 1".into());
        }
        let mut seen = BTreeMap::new();
        for (app, cfg) in &self.apps {
            for (name, coll) in &cfg.collections {
                if name.is_empty()
                    || name.starts_with('_')
                    || RESERVED_STORES.contains(&name.as_str())
                {
                    return err(format!("collection name {name:?} is reserved or empty"));
                }
                if let Some(other) = seen.insert(name.clone(), app.clone()) {
                    return err(format!(
                        "collection {name:?} is declared by apps {other:?} and {app:?}"
                    ));
                }
                for idx in &coll.indexes {
                    if coll.encrypted.contains(idx) {
                        return err(format!("{name}.{idx} can't be both indexed and encrypted"));
                    }
                }
                if coll
                    .encrypted
                    .iter()
                    .any(|f| f == "id" || f == "spaceId" || f == "deletedAt")
                {
                    return err(format!(
                        "{name}: id, spaceId and deletedAt can't be encrypted"
                    ));
                }
            }
        }
        Ok(())
    }

    pub fn collection(&self, name: &str) -> Option<&CollectionConfig> {
        self.apps.values().find_map(|a| a.collections.get(name))
    }

    /// Every collection with the app that declares it.
    pub fn collections(&self) -> impl Iterator<Item = (&str, &str, &CollectionConfig)> {
        self.apps.iter().flat_map(|(app, a)| {
            a.collections
                .iter()
                .map(move |(c, cfg)| (app.as_str(), c.as_str(), cfg))
        })
    }

    pub fn registry(&self) -> EncryptionRegistry {
        EncryptionRegistry::new(
            self.collections()
                .map(|(_, c, cfg)| (c.to_string(), cfg.encrypted.clone())),
        )
    }

    /// The user's personal space (`_personal:` alone for a guest store).
    pub fn personal_space(&self) -> String {
        crate::protocol::personal_space(&self.user_id)
    }
}
