//! `signIn` of a guest store (docs/sync.md, "Guests and sign-in"), in pure Rust: what a guest wrote
//! lives in the personal space of no one (`_personal:`) and has never been synced, so claiming it
//! rewrites the records and their pending changes in place — the space becomes `_personal:<userId>`
//! and, with a new vault key, every encrypted value is re-sealed under it (same AAD:
//! collection/id/field). Timestamps stay: nothing was written anew, the writes just got an owner.

use serde::Serialize;
use serde_json::{Map, Value};
use tsify::Tsify;

use crate::crypto::{is_encrypted, CryptoError, EncryptionRegistry, FieldCipher, RandomPool};
use crate::protocol::{personal_space, Change, FIELD_ID, FIELD_SPACE_ID, PERSONAL_PREFIX};
use crate::records::RecordError;

/// `signIn`'s options: with `vaultKey`, the guest's data is re-encrypted under the user's key.
// Read from JS by hand (serde can't see a typed array), by the name `VAULT_KEY`, which a test
// pins to the serde name here.
#[derive(Default, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct SignInOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional, type = "Uint8Array")]
    pub vault_key: Option<Vec<u8>>,
}

impl SignInOptions {
    /// The JS name of `vault_key`.
    pub const VAULT_KEY: &'static str = "vaultKey";
}

/// Everything a claim needs.
pub struct Claim<'a> {
    pub registry: &'a EncryptionRegistry,
    /// The space the guest's records move to.
    pub space: String,
    /// `Some((old, new))` re-seals encrypted values; `old` is `None` while locked (then an
    /// encrypted value fails with `vault_locked`).
    pub reseal: Option<(Option<&'a FieldCipher>, &'a FieldCipher)>,
    pub random: &'a mut RandomPool,
}

/// Whether a space is the guest's (`_personal:` of no user).
pub fn is_guest_space(space: Option<&str>) -> bool {
    space == Some(PERSONAL_PREFIX)
}

impl Claim<'_> {
    pub fn new<'a>(
        registry: &'a EncryptionRegistry,
        user_id: &str,
        reseal: Option<(Option<&'a FieldCipher>, &'a FieldCipher)>,
        random: &'a mut RandomPool,
    ) -> Claim<'a> {
        Claim {
            registry,
            space: personal_space(user_id),
            reseal,
            random,
        }
    }

    fn reseal_value(
        &mut self,
        collection: &str,
        id: &str,
        field: &str,
        value: &mut Value,
    ) -> Result<(), RecordError> {
        let Some((old, new)) = self.reseal else {
            return Ok(());
        };
        if !self.registry.is_encrypted_field(collection, field) || !is_encrypted(value) {
            return Ok(());
        }
        let old = old.ok_or(CryptoError::VaultLocked)?;
        let plain = old.decrypt(collection, id, field, value)?;
        let nonce: [u8; 12] = self.random.array()?;
        *value = Value::String(new.encrypt(collection, id, field, &plain, nonce));
        Ok(())
    }

    /// Claims a stored record of the guest; `false` (untouched) for any other record.
    pub fn record(
        &mut self,
        collection: &str,
        record: &mut Map<String, Value>,
    ) -> Result<bool, RecordError> {
        if !is_guest_space(record.get(FIELD_SPACE_ID).and_then(Value::as_str)) {
            return Ok(false);
        }
        record.insert(FIELD_SPACE_ID.into(), Value::String(self.space.clone()));
        let id = record
            .get(FIELD_ID)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let fields: Vec<String> = self
            .registry
            .fields(collection)
            .map(str::to_owned)
            .collect();
        for field in fields {
            if let Some(v) = record.get_mut(&field) {
                self.reseal_value(collection, &id, &field, v)?;
            }
        }
        Ok(true)
    }

    /// Claims a pending change of the guest; `false` for any other change.
    pub fn change(&mut self, change: &mut Change) -> Result<bool, RecordError> {
        if !is_guest_space(change.effective_space_id()) {
            return Ok(false);
        }
        change.space_id = Some(self.space.clone());
        let (table, id) = (change.table.clone(), change.id.clone());
        if let Some(data) = change.data.as_mut() {
            if data.contains_key(FIELD_SPACE_ID) {
                data.insert(FIELD_SPACE_ID.into(), Value::String(self.space.clone()));
            }
            for (field, v) in data.iter_mut() {
                self.reseal_value(&table, &id, field, v)?;
            }
        }
        if let Some(fields) = change.fields.as_mut() {
            if let Some(f) = fields.get_mut(FIELD_SPACE_ID) {
                f.value = Value::String(self.space.clone());
            }
            for (field, f) in fields.iter_mut() {
                self.reseal_value(&table, &id, field, &mut f.value)?;
            }
        }
        Ok(true)
    }
}
