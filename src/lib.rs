//! mana-sync: a local-first data layer for web apps.
//!
//! The pure core (`protocol`, `clock`, `merge`) compiles and tests natively and is shared with
//! the sync server; `web` adapts it to the browser and exists only on `wasm32`.

pub mod backup;
pub mod claim;
pub mod clock;
mod collect;
pub mod crypto;
pub mod error_code;
pub mod export_row;
pub mod field_meta;
mod json_text;
pub mod merge;
pub mod protocol;
pub mod records;
pub mod schema;
pub mod strict_json;
pub mod sync;
#[cfg(test)]
mod ts_drift;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use clock::{Clock, ClockError, Hlc};
pub use error_code::ErrorCode;
pub use merge::{apply, merge, FieldState, RecordState};
pub use protocol::{Change, Changeset, Conflict, FieldChange, Op, ProtocolError, SyncResponse};

/// Version of this crate, reported by the server's `/health` and in backup manifests.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
