//! `.mana` v2 backup archives (docs/backup.md): the pure format.
//!
//! Compiles for native targets and for `wasm32` alike: no file system, no threads, randomness only
//! through `getrandom`. Everything works on byte slices and `Vec<u8>`.
//!
//! Module map:
//! - [`error`]: [`BackupError`] and its stable codes.
//! - [`manifest`]: the serde types of `manifest.json`.
//! - [`seal`]: PBKDF2 key derivation, `keyCheck`, AES-256-GCM, lenient base64.
//! - [`writer`]: [`BackupWriter`], streaming rows table by table into the ZIP.
//! - [`reader`]: [`open`] → [`OpenedArchive`] (no passphrase needed: `inspectBackup`) →
//!   [`ArchiveData`] (after unsealing) → rows, table by table, validated.
//!
//! Writing, unsealed:
//! ```
//! use mana_sync::backup::{self, BackupWriter, ManifestInfo, Scope};
//! let mut w = BackupWriter::new(ManifestInfo::new("u1", "2026-11-25T10:00:00.000Z", Scope::Full));
//! w.begin_table("notes")?;
//! w.write_row(&serde_json::json!({"id": "n1", "title": "hi"}))?;
//! let bytes = w.finish_unsealed()?;
//!
//! let archive = backup::open(&bytes)?;
//! assert!(!archive.is_sealed());
//! let tables = archive.data()?.read_all(&mut |_| {})?;
//! assert_eq!(tables[0].0, "notes");
//! # Ok::<(), backup::BackupError>(())
//! ```
//!
//! Sealed, with the key derived by the caller (what the browser does with WebCrypto's PBKDF2):
//! ```
//! use mana_sync::backup::{self, BackupWriter, ManifestInfo, Scope, SealParams};
//! let mut w = BackupWriter::new(ManifestInfo::new("u1", "2026-11-25T10:00:00.000Z", Scope::Full));
//! w.on_progress(1, |p| println!("{} {}/{}", p.phase.as_str(), p.done, p.total));
//! w.begin_table("notes")?;
//! w.write_row(&serde_json::json!({"id": "n1"}))?;
//! let params = SealParams::random(backup::DEFAULT_ITERATIONS)?;
//! // Browser: crypto.subtle.deriveBits({name: "PBKDF2", hash: "SHA-256", salt: params.salt,
//! // iterations: params.iterations}, passphraseKey, 256). Natively:
//! # let params = SealParams { iterations: 1000, ..params };
//! let key = backup::derive_key(b"passphrase", &params.salt, params.iterations);
//! let bytes = w.finish_sealed_with_key(&key, params)?;
//!
//! let archive = backup::open(&bytes)?; // inspectBackup: manifest + is_sealed, no passphrase
//! assert!(archive.is_sealed());
//! let p = archive.seal_params().unwrap(); // salt, iv, iterations to derive the key from
//! let key = backup::derive_key(b"passphrase", &p.salt, p.iterations);
//! let mut data = archive.unseal_with_key(&key, &mut |_| {})?;
//! let tables = data.read_all(&mut |_| {})?; // everything checked before it returns
//! assert_eq!(tables[0].1.len(), 1);
//! let wrong = backup::derive_key(b"nope", &p.salt, p.iterations);
//! assert_eq!(archive.unseal_with_key(&wrong, &mut |_| {}).unwrap_err().code(), "wrong_passphrase");
//! # Ok::<(), backup::BackupError>(())
//! ```
//!
//! Sealing in the browser derives the key with WebCrypto (`PBKDF2`, SHA-256, `params.iterations`,
//! 256 bits) and calls [`BackupWriter::finish_sealed_with_key`] /
//! [`OpenedArchive::unseal_with_key`]; natively [`derive_key`] gives the same bytes.

mod container;
mod entry;
pub mod error;
mod jsonl;
mod layout;
pub mod manifest;
pub mod reader;
pub mod seal;
pub mod writer;

pub use error::{BackupError, Result};
pub use jsonl::RawRow;
pub use manifest::{FileEntry, Manifest, PassphraseInfo, Scope, FORMAT_VERSION};
pub use reader::{open, open_with_limits, ArchiveData, OpenedArchive, TableRows, TableSummary};
pub use seal::{derive_key, key_check, SealParams, DEFAULT_ITERATIONS, MAX_ITERATIONS};
pub use writer::{BackupWriter, ManifestInfo, SealJob, DEFAULT_COMPRESSION_LEVEL};

/// One row: a JSON object (one JSONL line).
pub type Row = serde_json::Map<String, serde_json::Value>;

/// Name of the manifest entry (always the first entry of archives we write).
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the sealed payload entry.
pub const SEALED_NAME: &str = "data.sealed";
/// Optional human-readable entry.
pub const README_NAME: &str = "README.md";

/// A step of export or import, reported as `(phase, done, total)` to JS progress callbacks
/// (`BackupPhase` in the `.d.ts`, derived from this enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, tsify::Tsify)]
#[serde(rename_all = "lowercase")]
#[tsify(rename = "BackupPhase")]
#[non_exhaustive]
pub enum Phase {
    /// The passphrase's key derivation (PBKDF2; `done`/`total` 0/1 while it runs, then 1/1).
    Derive,
    /// Export: records read from IndexedDB and decrypted (`done`/`total` in collections, then
    /// in rows of the collection being read).
    Read,
    /// Rows serialised to JSONL and deflated into the ZIP (`done`/`total` in rows; `total` is the
    /// hint given to [`BackupWriter::on_progress`], 0 if unknown).
    Serialize,
    /// The ZIP is assembled (`done`/`total` in bytes).
    Compress,
    /// AES-GCM encryption (`done`/`total` in bytes).
    Seal,
    /// AES-GCM decryption (`done`/`total` in bytes).
    Unseal,
    /// Hash checks (`done`/`total` in bytes).
    Verify,
    /// JSONL parsed (`done`/`total` in rows; `total` from the manifest's `rowCounts`).
    Parse,
    /// Import: rows merged into the store and written (`done`/`total` in rows).
    Merge,
}

impl Phase {
    /// Every phase, in the order an export then an import goes through them (`Derive`, with a
    /// passphrase, comes in both).
    pub const ALL: [Phase; 9] = [
        Phase::Derive,
        Phase::Read,
        Phase::Serialize,
        Phase::Compress,
        Phase::Seal,
        Phase::Unseal,
        Phase::Verify,
        Phase::Parse,
        Phase::Merge,
    ];

    /// Lowercase name, as given to JS progress callbacks.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Derive => "derive",
            Phase::Read => "read",
            Phase::Serialize => "serialize",
            Phase::Compress => "compress",
            Phase::Seal => "seal",
            Phase::Unseal => "unseal",
            Phase::Verify => "verify",
            Phase::Parse => "parse",
            Phase::Merge => "merge",
        }
    }
}

/// One progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is being done.
    pub phase: Phase,
    /// Units done so far.
    pub done: u64,
    /// Units in all (0 when unknown).
    pub total: u64,
}

/// Size limits applied when reading an archive, by declared sizes and while decompressing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest archive accepted at all.
    pub max_archive_bytes: u64,
    /// Largest uncompressed entry (one `data/<table>.jsonl`, or `data.sealed`).
    pub max_entry_bytes: u64,
    /// Largest sum of uncompressed data entries.
    pub max_total_bytes: u64,
    /// Most entries in one ZIP, as declared by its end record (checked before it is parsed).
    pub max_entries: usize,
    /// Largest central directory, as declared by its end record (checked before it is parsed).
    pub max_directory_bytes: u64,
    /// Longest JSONL line (one row).
    pub max_line_bytes: u64,
    /// Largest `manifest.json`.
    pub max_manifest_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_archive_bytes: 2 << 30,
            max_entry_bytes: 1 << 30,
            max_total_bytes: 2 << 30,
            max_entries: 10_000,
            max_directory_bytes: 8 << 20,
            max_line_bytes: 16 << 20,
            max_manifest_bytes: 1 << 20,
        }
    }
}

/// Is `name` usable as a table name, i.e. as `data/<name>.jsonl`? ASCII letters, digits, `_`,
/// `-`, `.`; 1 to 128 characters; not starting with `.`.
pub fn is_valid_table_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// What an entry of a `.mana` ZIP is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EntryKind {
    Manifest,
    Sealed,
    Readme,
    /// `data/<table>.jsonl`
    Data(String),
    /// A directory entry (`data/`), ignored.
    Directory,
    /// A safe name this version does not use, ignored.
    Other,
}

/// Classify an entry name, refusing anything that could escape an extraction directory.
pub(crate) fn classify_entry(raw: &[u8]) -> Result<EntryKind> {
    let lossy = String::from_utf8_lossy(raw);
    let Ok(name) = std::str::from_utf8(raw) else {
        return Err(BackupError::bad_name(&lossy, "not UTF-8"));
    };
    if name.is_empty() {
        return Err(BackupError::bad_name(name, "empty name"));
    }
    if name.contains('\\') {
        return Err(BackupError::bad_name(name, "backslash in name"));
    }
    if name.starts_with('/') {
        return Err(BackupError::bad_name(name, "absolute path"));
    }
    if name.contains(':') {
        return Err(BackupError::bad_name(name, "drive or stream separator ':'"));
    }
    if name.chars().any(char::is_control) {
        return Err(BackupError::bad_name(name, "control character"));
    }
    let (body, is_dir) = match name.strip_suffix('/') {
        Some(b) => (b, true),
        None => (name, false),
    };
    for part in body.split('/') {
        match part {
            ".." => return Err(BackupError::bad_name(name, "path traversal '..'")),
            "" | "." => return Err(BackupError::bad_name(name, "empty or '.' path component")),
            _ => {}
        }
    }
    if is_dir {
        return if body == "data" || !body.starts_with("data/") {
            Ok(EntryKind::Directory)
        } else {
            Err(BackupError::bad_name(name, "no directories inside data/"))
        };
    }
    match name {
        MANIFEST_NAME => return Ok(EntryKind::Manifest),
        SEALED_NAME => return Ok(EntryKind::Sealed),
        README_NAME => return Ok(EntryKind::Readme),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix("data/") {
        return match rest.strip_suffix(".jsonl") {
            Some(table) if is_valid_table_name(table) => Ok(EntryKind::Data(table.to_string())),
            _ => Err(BackupError::bad_name(
                name,
                "data/ may only hold <table>.jsonl files with a valid table name",
            )),
        };
    }
    Ok(EntryKind::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        assert_eq!(
            classify_entry(b"manifest.json").unwrap(),
            EntryKind::Manifest
        );
        assert_eq!(
            classify_entry(b"data/notes.jsonl").unwrap(),
            EntryKind::Data("notes".into())
        );
        assert_eq!(classify_entry(b"data/").unwrap(), EntryKind::Directory);
        assert_eq!(classify_entry(b"extra/x.txt").unwrap(), EntryKind::Other);
        for bad in [
            &b"../evil"[..],
            b"data/../../evil.jsonl",
            b"/etc/passwd",
            b"data\\notes.jsonl",
            b"C:evil",
            b"data/sub/x.jsonl",
            b"data/x.txt",
            b"data/.hidden.jsonl",
            b"a//b",
            b"./a",
            b"data/x\n.jsonl",
            b"\xff\xfe",
            b"",
        ] {
            let err = classify_entry(bad).unwrap_err();
            assert_eq!(
                err.code(),
                "invalid_entry_name",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn table_names() {
        assert!(is_valid_table_name("notes"));
        assert!(is_valid_table_name("todo_items-2.v1"));
        for bad in ["", ".x", "a/b", "a b", "é", &"x".repeat(129)] {
            assert!(!is_valid_table_name(bad), "{bad}");
        }
    }
}
