//! The vault key lives in wasm memory only and is zeroized on `lock()`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{CryptoError, FieldCipher};

pub const VAULT_KEY_LEN: usize = 32;

/// A short, non-reversible fingerprint of a vault key: the first 16 bytes of
/// HMAC-SHA256(key, "mana-vault/key-check"). Stored so a later unlock with another key is
/// refused up front instead of failing on every read.
pub fn key_check(key: &[u8; VAULT_KEY_LEN]) -> [u8; 16] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"mana-vault/key-check");
    let tag = mac.finalize().into_bytes();
    tag[..16].try_into().expect("HMAC-SHA256 has 32 bytes")
}

#[derive(Default)]
pub struct Vault {
    key: Option<Zeroizing<[u8; VAULT_KEY_LEN]>>,
    cipher: Option<FieldCipher>,
}

impl Vault {
    /// Unlocks with `key`. When `expected_check` is given (the store was unlocked before), a
    /// different key is refused.
    pub fn unlock(
        &mut self,
        key: &[u8],
        expected_check: Option<&[u8]>,
    ) -> Result<[u8; 16], CryptoError> {
        let key: Zeroizing<[u8; VAULT_KEY_LEN]> = Zeroizing::new(
            key.try_into()
                .map_err(|_| CryptoError::InvalidKey(key.len()))?,
        );
        let check = key_check(&key);
        if expected_check.is_some_and(|c| c != check) {
            return Err(CryptoError::WrongVaultKey);
        }
        self.cipher = Some(FieldCipher::new(&key));
        self.key = Some(key);
        Ok(check)
    }

    /// Forgets the key; `Zeroizing` and the cipher's `zeroize` feature wipe the memory.
    pub fn lock(&mut self) {
        self.cipher = None;
        self.key = None;
    }

    pub fn is_unlocked(&self) -> bool {
        self.cipher.is_some()
    }

    pub fn cipher(&self) -> Result<&FieldCipher, CryptoError> {
        self.cipher.as_ref().ok_or(CryptoError::VaultLocked)
    }
}
