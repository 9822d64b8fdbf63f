//! `store.signIn(userId, { vaultKey? })`: a guest store claims what it wrote for a user, in
//! one transaction over every collection, the pending queue and `_meta` (the rules are the
//! pure `claim` module's). Nothing a guest wrote is left behind: its records and their pending
//! changes move to `_personal:<userId>`, so the next sync uploads them.

use crate::error_code::ErrorCode;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::{internal, JsCodedError};
use super::idb::{META, PENDING};
use super::idb_write::WriteTx;
use super::json::{from_js, parse, to_js};
use super::store::{pending_row, promise, ManaStore, StoreInner};
use super::types::SignInOptionsJs;
use crate::claim::{Claim, SignInOptions};
use crate::crypto::{Vault, VAULT_KEY_LEN};

type JsResult<T> = Result<T, JsCodedError>;

/// Reads `signIn`'s options.
fn sign_in_options(options: &JsValue) -> JsResult<SignInOptions> {
    if options.is_undefined() || options.is_null() {
        return Ok(SignInOptions::default());
    }
    let key = js_sys::Reflect::get(options, &SignInOptions::VAULT_KEY.into()).unwrap_or_default();
    if key.is_undefined() || key.is_null() {
        return Ok(SignInOptions::default());
    }
    let key = key.dyn_into::<js_sys::Uint8Array>().map_err(|_| {
        let name = SignInOptions::VAULT_KEY;
        JsCodedError::new(
            ErrorCode::InvalidKey,
            format!("{name} must be a Uint8Array"),
        )
    })?;
    Ok(SignInOptions {
        vault_key: Some(key.to_vec()),
    })
}

impl StoreInner {
    async fn sign_in(&self, user_id: &str, new_key: Option<&[u8]>) -> JsResult<()> {
        if user_id.trim().is_empty() {
            return Err(JsCodedError::new(
                ErrorCode::InvalidOptions,
                "signIn: userId is empty",
            ));
        }
        let current = self.user_id.borrow().clone();
        if current == user_id && new_key.is_none() {
            return Ok(());
        }
        if !current.is_empty() && current != user_id {
            return Err(JsCodedError::new(
                ErrorCode::AlreadySignedIn,
                format!("this store belongs to {current:?}; open another database for {user_id:?}"),
            ));
        }
        let mut new_vault = Vault::default();
        let new_check = match new_key {
            Some(key) => {
                if key.len() != VAULT_KEY_LEN {
                    return Err(JsCodedError::new(
                        ErrorCode::InvalidKey,
                        "a vault key is 32 bytes",
                    ));
                }
                Some(new_vault.unlock(key, None)?)
            }
            None => None,
        };
        let _turn = self.write_turn().await;
        let collections: Vec<&str> = self.config.collections().map(|(_, c, _)| c).collect();
        let mut stores = collections.clone();
        stores.extend([PENDING, META]);
        let mut rows = self.read_pending().await?;
        let tx = WriteTx::begin(&self.raw()?, &stores)?;
        let mut records = Vec::with_capacity(collections.len());
        for collection in &collections {
            let stored: Vec<Value> =
                from_js(&tx.get_all(collection).await?.into(), ErrorCode::Internal)?;
            records.push(stored);
        }
        // Nothing is awaited from here to the commit, so the vault and the random pool are
        // borrowed once.
        {
            let vault = self.vault.borrow();
            let reseal = new_vault.cipher().ok().map(|n| (vault.cipher().ok(), n));
            let mut random = self.random.borrow_mut();
            let mut claim = Claim::new(&self.registry, user_id, reseal, &mut random);
            for row in &mut rows {
                let mut touched = false;
                for c in &mut row.changes {
                    touched |= claim.change(c)?;
                }
                if touched {
                    let value = pending_row(&row.changes, js_sys::Date::now())?;
                    tx.put_at(PENDING, &value, row.key as f64)?;
                }
            }
            for (collection, stored) in collections.iter().zip(records) {
                let mut claimed = Vec::new();
                for record in stored {
                    let Value::Object(mut record) = record else {
                        continue;
                    };
                    if claim.record(collection, &mut record)? {
                        claimed.push(record);
                    }
                }
                if !claimed.is_empty() {
                    let array = parse(&serde_json::to_string(&claimed).map_err(internal)?)?;
                    tx.put_all(collection, &array.into())?;
                }
            }
        }
        tx.put(META, &to_js(&json!({"key": "userId", "value": user_id}))?)?;
        if let Some(check) = new_check {
            let row = json!({"key": "vaultKeyCheck", "value": hex::encode(check)});
            tx.put(META, &to_js(&row)?)?;
        }
        tx.commit().await?;
        *self.user_id.borrow_mut() = user_id.to_owned();
        if let (Some(key), Some(check)) = (new_key, new_check) {
            self.vault.borrow_mut().unlock(key, None)?;
            *self.vault_check.borrow_mut() = Some(check.to_vec());
        }
        for collection in collections {
            self.changed(collection);
        }
        Ok(())
    }
}

#[wasm_bindgen]
impl ManaStore {
    /// A guest store (opened without `userId`) claims its data for `userId`: records and
    /// pending changes move to the user's personal space, in one transaction; with
    /// `vaultKey`, encrypted fields are re-encrypted under it and the vault switches to it.
    /// The next sync uploads it all.
    #[wasm_bindgen(js_name = signIn, unchecked_return_type = "Promise<void>")]
    pub fn sign_in(&self, user_id: String, options: Option<SignInOptionsJs>) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let options: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
            let key = zeroize::Zeroizing::new(sign_in_options(&options)?.vault_key);
            inner.sign_in(&user_id, key.as_deref()).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The signed-in user, or `""` for a guest store.
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> String {
        self.inner.user_id.borrow().clone()
    }
}
