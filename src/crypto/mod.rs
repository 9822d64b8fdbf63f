//! Per-field encryption (docs/client.md, "Encryption"): the `enc:1:` AES-256-GCM envelope, the
//! vault that holds the key in memory only, and the registry of which fields of which collection
//! are sealed.

use crate::error_code::ErrorCode;

mod envelope;
mod gcm;
mod random;
mod registry;
mod vault;

pub use envelope::{is_encrypted, FieldCipher, ENVELOPE_PREFIX};
pub use random::RandomPool;
pub use registry::{is_shared_space, EncryptionRegistry};
pub use vault::{key_check, Vault, VAULT_KEY_LEN};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("the vault is locked: unlock it before reading or writing encrypted fields")]
    VaultLocked,
    #[error(
        "{0}: value does not decrypt under the current vault key (wrong key, tampered or moved)"
    )]
    DecryptFailed(String),
    #[error("a vault key is {VAULT_KEY_LEN} bytes, got {0}")]
    InvalidKey(usize),
    #[error("this key is not the vault key this store was first unlocked with")]
    WrongVaultKey,
    #[error("no secure random source: {0}")]
    Random(String),
}

impl CryptoError {
    /// The field at `collection/id/field` does not open under the current key.
    pub fn decrypt_failed(collection: &str, id: &str, field: &str) -> CryptoError {
        CryptoError::DecryptFailed(format!("{collection}/{id}/{field}"))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            CryptoError::VaultLocked => ErrorCode::VaultLocked,
            CryptoError::DecryptFailed(_) => ErrorCode::DecryptFailed,
            CryptoError::InvalidKey(_) => ErrorCode::InvalidKey,
            CryptoError::WrongVaultKey => ErrorCode::WrongVaultKey,
            CryptoError::Random(_) => ErrorCode::Internal,
        }
    }
}
