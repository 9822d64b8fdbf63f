//! `manifest.json`: the serde types of docs/backup.md, field names exactly as the original
//! writer's.
//!
//! Reading is tolerant: unknown fields are kept (and written back by the CLI's `seal`/`unseal`),
//! `files` and `passphrase.keyCheck` are optional (the original writer had neither).

use crate::strict_json;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tsify::Tsify;

use super::error::{BackupError, Result};

/// The only `formatVersion` this module reads and writes.
pub const FORMAT_VERSION: u64 = 2;
/// `passphrase.kdf` of a sealed archive.
pub const KDF_PBKDF2_SHA256: &str = "PBKDF2-SHA256";
/// `passphrase.cipher` of a sealed archive.
pub const CIPHER_AES_GCM_256: &str = "AES-GCM-256";

/// The content of `manifest.json` (`BackupManifest` in the `.d.ts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
#[tsify(rename = "BackupManifest")]
pub struct Manifest {
    /// Always 2.
    pub format_version: u64,
    /// Schema version of the rows (the store's schema version at export).
    #[serde(default = "one")]
    pub schema_version: u64,
    /// Free text naming the writer, e.g. `mana-sync 0.1.0`.
    #[serde(default)]
    pub produced_by: String,
    /// ISO-8601 UTC time of the export.
    #[serde(default)]
    pub exported_at: String,
    /// The exporting user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Which apps the export covers.
    #[serde(default)]
    pub scope: Scope,
    /// Rows per table.
    #[serde(default)]
    pub row_counts: BTreeMap<String, u64>,
    /// Encrypted fields were decrypted before export (always true for v2 writers).
    #[serde(default = "yes")]
    pub fields_plaintext: bool,
    /// Per-file sha256 and size of the `data/*.jsonl` files (absent in the original writer's
    /// archives, and in our sealed archives: there the AEAD tag and `plaintextSha256` already
    /// authenticate every byte, and a cleartext hash of plaintext would let anyone confirm a guess
    /// of a small table's content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<BTreeMap<String, FileEntry>>,
    /// Present exactly when the archive is sealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<PassphraseInfo>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    #[tsify(type = "Record<string, unknown>")]
    pub extra: Map<String, Value>,
}

fn one() -> u64 {
    1
}
fn yes() -> bool {
    true
}

/// `scope`: `{type:"full"}` or `{type:"filtered", appIds:[…]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, Tsify)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Scope {
    /// Every app of the store.
    #[default]
    Full,
    /// Only these apps.
    #[serde(rename_all = "camelCase")]
    Filtered {
        /// The exported apps.
        app_ids: Vec<String>,
    },
}

/// One entry of `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// Lowercase hex sha256 of the file's (uncompressed) bytes.
    pub sha256: String,
    /// Uncompressed size in bytes.
    pub bytes: u64,
}

/// `passphrase`: how `data.sealed` was sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct PassphraseInfo {
    /// `PBKDF2-SHA256`.
    pub kdf: String,
    /// PBKDF2 iterations (600000 by default).
    pub kdf_iterations: u64,
    /// 16-byte salt, base64url without padding when we write it; any base64 when read.
    pub kdf_salt_base64: String,
    /// `AES-GCM-256`.
    pub cipher: String,
    /// 12-byte AES-GCM IV, base64url.
    pub iv_base64: String,
    /// Lowercase hex sha256 of the inner ZIP (the plaintext of `data.sealed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext_sha256: Option<String>,
    /// base64url of the first 16 bytes of HMAC-SHA256(key, "mana-backup-v2/key-check").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
    /// Fields this version does not know, kept verbatim.
    #[serde(flatten)]
    #[tsify(type = "Record<string, unknown>")]
    pub extra: Map<String, Value>,
}

impl Manifest {
    /// Parse and check `manifest.json` bytes: a JSON object with `formatVersion` 2.
    pub fn parse(bytes: &[u8]) -> Result<Manifest> {
        let text = strict_json::as_text(bytes)
            .map_err(|reason| BackupError::NotAManaArchive(format!("manifest.json is {reason}")))?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            BackupError::NotAManaArchive(format!("manifest.json is not valid JSON: {e}"))
        })?;
        let Value::Object(obj) = &value else {
            return Err(BackupError::NotAManaArchive(
                "manifest.json is not a JSON object".into(),
            ));
        };
        match obj.get("formatVersion") {
            None => {
                return Err(BackupError::NotAManaArchive(
                    "manifest.json has no formatVersion".into(),
                ))
            }
            Some(v) if v.as_u64() == Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(BackupError::UnsupportedFormatVersion(format!(
                    "formatVersion {v} (this reader knows {FORMAT_VERSION})"
                )))
            }
        }
        let manifest: Manifest = serde_json::from_value(value)
            .map_err(|e| BackupError::corrupt(format!("manifest.json: {e}")))?;
        if let Some(p) = &manifest.passphrase {
            if p.kdf != KDF_PBKDF2_SHA256 {
                return Err(BackupError::UnsupportedFormatVersion(format!(
                    "key derivation {:?} (this reader knows {KDF_PBKDF2_SHA256})",
                    p.kdf
                )));
            }
            if p.cipher != CIPHER_AES_GCM_256 {
                return Err(BackupError::UnsupportedFormatVersion(format!(
                    "cipher {:?} (this reader knows {CIPHER_AES_GCM_256})",
                    p.cipher
                )));
            }
        }
        Ok(manifest)
    }

    /// Pretty JSON, as written into archives.
    pub fn to_json_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| BackupError::InvalidInput(format!("manifest not serialisable: {e}")))
    }
}
