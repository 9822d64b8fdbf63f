//! Every stable machine code an error can carry (docs/client.md, "Errors"): JS reads it as
//! `ManaError.code`, typed by the `ErrorCode` union derived from this enum.
//!
//! Each error enum's `code()` returns one of these, so a code cannot be produced without being
//! declared; `crate::ts_drift` checks the other way round (every declared code is produced).

use serde::{Deserialize, Serialize};
use tsify::Tsify;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// A stable machine code, `snake_case` on the wire and on JS errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Tsify)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* #[serde(rename = $code)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    // Clock and protocol validation (crate::clock, crate::protocol).
    InvalidTimestamp = "invalid_timestamp",
    ClockOutOfRange = "clock_out_of_range",
    InvalidEventId = "invalid_event_id",
    EmptyTable = "empty_table",
    EmptyId = "empty_id",
    UnknownOp = "unknown_op",
    MissingData = "missing_data",
    MissingFields = "missing_fields",
    MissingTimestamp = "missing_timestamp",
    ReservedField = "reserved_field",
    IdMismatch = "id_mismatch",
    TooManyChanges = "too_many_changes",
    /// A change given to `mergeChanges` is not a valid change.
    InvalidChange = "invalid_change",
    // Vault and per-field encryption (crate::crypto).
    VaultLocked = "vault_locked",
    DecryptFailed = "decrypt_failed",
    InvalidKey = "invalid_key",
    WrongVaultKey = "wrong_vault_key",
    // Store configuration, records and queries.
    InvalidConfig = "invalid_config",
    UnknownCollection = "unknown_collection",
    InvalidRecord = "invalid_record",
    NotFound = "not_found",
    InvalidQuery = "invalid_query",
    /// A query names an index the collection does not declare.
    UnknownIndex = "unknown_index",
    InvalidOptions = "invalid_options",
    StoreClosed = "store_closed",
    /// `signIn` on a store that already belongs to another user.
    AlreadySignedIn = "already_signed_in",
    /// IndexedDB refused a write for lack of space.
    QuotaExceeded = "quota_exceeded",
    /// Any other IndexedDB failure.
    Storage = "storage",
    // Sync (crate::sync::SyncError).
    Network = "network",
    Unauthorized = "unauthorized",
    PaymentRequired = "payment_required",
    SchemaVersionUnsupported = "schema_version_unsupported",
    RateLimited = "rate_limited",
    ServerError = "server_error",
    Rejected = "rejected",
    ProtocolError = "protocol_error",
    // Backups (crate::backup::BackupError, docs/backup.md).
    NotAManaArchive = "not_a_mana_archive",
    UnsupportedFormatVersion = "unsupported_format_version",
    PassphraseRequired = "passphrase_required",
    WrongPassphrase = "wrong_passphrase",
    ArchiveTampered = "archive_tampered",
    WrongPassphraseOrTampered = "wrong_passphrase_or_tampered",
    ArchiveCorrupt = "archive_corrupt",
    ArchiveTooLarge = "archive_too_large",
    InvalidEntryName = "invalid_entry_name",
    InvalidInput = "invalid_input",
    /// A migration given to `importBackup` threw or returned no object.
    MigrationFailed = "migration_failed",
    /// A bug of ours: a value we wrote does not read back.
    Internal = "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCode> for &'static str {
    fn from(c: ErrorCode) -> &'static str {
        c.as_str()
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ErrorCode> for &str {
    fn eq(&self, other: &ErrorCode) -> bool {
        *self == other.as_str()
    }
}
