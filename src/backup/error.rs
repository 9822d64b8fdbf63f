//! The backup layer's error type and its stable machine codes (docs/backup.md).

use crate::error_code::ErrorCode;
use thiserror::Error;

/// Everything that can go wrong while writing, opening, unsealing or reading a `.mana` archive.
///
/// Every variant has a stable machine code ([`BackupError::code`]); the codes of docs/backup.md are
/// used verbatim, so the browser layer can put them on the JS `Error`'s `.code`.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BackupError {
    /// Not a ZIP, a truncated ZIP, or a ZIP without a usable `manifest.json`.
    #[error("not a .mana archive: {0}")]
    NotAManaArchive(String),

    /// `formatVersion` is not 2, or the archive uses a KDF/cipher this version does not know, or
    /// an entry it reads is compressed with a method other than stored or deflate.
    #[error("unsupported .mana format: {0}")]
    UnsupportedFormatVersion(String),

    /// The archive is sealed and no passphrase (or key) was given.
    #[error("this archive is sealed: a passphrase is required")]
    PassphraseRequired,

    /// The `keyCheck` of the manifest does not match the key derived from the passphrase.
    #[error("wrong passphrase")]
    WrongPassphrase,

    /// The key is right (keyCheck matches) but the AEAD tag, `plaintextSha256` or a file sha256
    /// does not: the archive was modified after it was written.
    #[error("archive tampered: {0}")]
    ArchiveTampered(String),

    /// An archive without `keyCheck` (older writers) whose AEAD tag does not verify: either the
    /// passphrase is wrong or the ciphertext was modified; the two cannot be told apart.
    #[error("wrong passphrase, or the archive was tampered with")]
    WrongPassphraseOrTampered,

    /// The archive's content is malformed: a JSONL line that is not one JSON object, a row count
    /// that disagrees with the manifest, a malformed manifest field, a damaged entry (CRC-32
    /// mismatch, fewer bytes than declared), or a ZIP that another reader could see differently
    /// (a local header that disagrees with the central directory, overlapping entries, bytes
    /// before the first entry or after the end record, two end records). `table` and `line`
    /// (1-based) locate the problem when it is inside a `data/<table>.jsonl` file.
    #[error("archive corrupt{}: {reason}", location(table.as_deref(), *line))]
    ArchiveCorrupt {
        /// Table whose `data/<table>.jsonl` is bad, if the problem is in a data file.
        table: Option<String>,
        /// 1-based line number in that file, if the problem is on one line.
        line: Option<u64>,
        /// Human-readable cause.
        reason: String,
    },

    /// The archive (or one entry, or the sum of its entries, or its entry count or central
    /// directory) exceeds a limit ([`Limits`]), by its declared sizes or while it is being
    /// decompressed (an entry that inflates past its declared size is a zip bomb).
    ///
    /// [`Limits`]: super::Limits
    #[error("archive too large: {0}")]
    ArchiveTooLarge(String),

    /// An entry name that could escape the extraction directory or is not allowed in a `.mana`
    /// archive (`../`, absolute, backslashes, control characters, an invalid table name).
    #[error("invalid entry name {name:?}: {reason}")]
    InvalidEntryName {
        /// The offending name (lossily decoded).
        name: String,
        /// Why it is refused.
        reason: String,
    },

    /// Misuse of the writer API (e.g. a row written before `begin_table`, the same table twice,
    /// an invalid iteration count). A bug in the caller, never caused by an archive's content.
    #[error("invalid backup writer use: {0}")]
    InvalidInput(String),
}

fn location(table: Option<&str>, line: Option<u64>) -> String {
    match (table, line) {
        (Some(t), Some(l)) => format!(" (table {t:?}, line {l})"),
        (Some(t), None) => format!(" (table {t:?})"),
        (None, Some(l)) => format!(" (line {l})"),
        (None, None) => String::new(),
    }
}

impl BackupError {
    /// Stable machine code, as listed in docs/backup.md (plus `archive_too_large`,
    /// `invalid_entry_name` and `invalid_input`).
    pub fn code(&self) -> ErrorCode {
        match self {
            BackupError::NotAManaArchive(_) => ErrorCode::NotAManaArchive,
            BackupError::UnsupportedFormatVersion(_) => ErrorCode::UnsupportedFormatVersion,
            BackupError::PassphraseRequired => ErrorCode::PassphraseRequired,
            BackupError::WrongPassphrase => ErrorCode::WrongPassphrase,
            BackupError::ArchiveTampered(_) => ErrorCode::ArchiveTampered,
            BackupError::WrongPassphraseOrTampered => ErrorCode::WrongPassphraseOrTampered,
            BackupError::ArchiveCorrupt { .. } => ErrorCode::ArchiveCorrupt,
            BackupError::ArchiveTooLarge(_) => ErrorCode::ArchiveTooLarge,
            BackupError::InvalidEntryName { .. } => ErrorCode::InvalidEntryName,
            BackupError::InvalidInput(_) => ErrorCode::InvalidInput,
        }
    }

    /// Table of an `archive_corrupt` error, if known.
    pub fn table(&self) -> Option<&str> {
        match self {
            BackupError::ArchiveCorrupt { table, .. } => table.as_deref(),
            _ => None,
        }
    }

    /// 1-based line of an `archive_corrupt` error, if known.
    pub fn line(&self) -> Option<u64> {
        match self {
            BackupError::ArchiveCorrupt { line, .. } => *line,
            _ => None,
        }
    }

    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        BackupError::ArchiveCorrupt {
            table: None,
            line: None,
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt_at(table: &str, line: Option<u64>, reason: impl Into<String>) -> Self {
        BackupError::ArchiveCorrupt {
            table: Some(table.to_string()),
            line,
            reason: reason.into(),
        }
    }

    pub(crate) fn bad_name(name: &str, reason: impl Into<String>) -> Self {
        BackupError::InvalidEntryName {
            name: name.to_string(),
            reason: reason.into(),
        }
    }
}

/// Result alias of the backup layer.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;
