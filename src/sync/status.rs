//! What an app shows of sync (docs/sync.md).

use serde::{Deserialize, Serialize};
use tsify::Tsify;

/// What `ManaSync.status` reads and `on("status")` reports (`SyncStatus` in the `.d.ts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "kebab-case")]
pub enum SyncStatus {
    /// No token (a guest, or signed out): everything works locally, pending accumulates.
    Local,
    Syncing,
    /// Everything pending was acknowledged and every collection pulled to the end.
    Synced,
    /// The network failed (or the browser says offline); retried with backoff.
    Offline,
    /// The server refused the token twice: stopped until `syncNow()` or `start()`.
    AuthRequired,
    /// Sync is not subscribed (402): stopped until `syncNow()` or `start()`.
    PaymentRequired,
    /// Any other coded failure; retried with backoff.
    Error,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 7] = [
        SyncStatus::Local,
        SyncStatus::Syncing,
        SyncStatus::Synced,
        SyncStatus::Offline,
        SyncStatus::AuthRequired,
        SyncStatus::PaymentRequired,
        SyncStatus::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Local => "local",
            SyncStatus::Syncing => "syncing",
            SyncStatus::Synced => "synced",
            SyncStatus::Offline => "offline",
            SyncStatus::AuthRequired => "auth-required",
            SyncStatus::PaymentRequired => "payment-required",
            SyncStatus::Error => "error",
        }
    }
}
