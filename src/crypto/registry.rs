//! Which fields of which collection are encrypted, given when the store is opened.

use crate::collect::CollectInserted;
use std::collections::{BTreeMap, BTreeSet};

/// `spaceId` absent or `_personal:<userId>` is the user's own space; anything else is shared
/// and stays plaintext (protected by the server's access rules only).
pub fn is_shared_space(space_id: Option<&str>) -> bool {
    match space_id {
        None => false,
        Some(s) => !s.starts_with(crate::protocol::PERSONAL_PREFIX),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionRegistry {
    fields: BTreeMap<String, BTreeSet<String>>,
}

impl EncryptionRegistry {
    pub fn new<I, F>(entries: I) -> Self
    where
        I: IntoIterator<Item = (String, F)>,
        F: IntoIterator<Item = String>,
    {
        EncryptionRegistry {
            fields: entries
                .into_iter()
                .map(|(c, f)| (c, f.into_iter().collect_inserted::<BTreeSet<_>>()))
                .filter(|(_, f)| !f.is_empty())
                .collect_inserted(),
        }
    }

    /// The encrypted fields of a collection (empty when none).
    pub fn fields(&self, collection: &str) -> impl Iterator<Item = &str> {
        self.fields
            .get(collection)
            .into_iter()
            .flat_map(|f| f.iter().map(String::as_str))
    }

    pub fn has_encrypted_fields(&self, collection: &str) -> bool {
        self.fields.contains_key(collection)
    }

    pub fn is_encrypted_field(&self, collection: &str, field: &str) -> bool {
        self.fields
            .get(collection)
            .is_some_and(|f| f.contains(field))
    }
}
