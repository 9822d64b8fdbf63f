//! Browser adapters and the `#[wasm_bindgen]` API. Thin by design: logic lives in the pure
//! modules; this layer moves values between JS, IndexedDB and Rust. One file per JS class.

mod backup;
mod backup_types;
mod error;
mod event_loop;
mod hybrid_clock;
mod idb;
mod idb_write;
mod json;
mod listeners;
mod live_query;
mod merge_changes;
mod query;
mod sign_in;
mod store;
mod store_sync;
mod sync;
mod sync_handle;
mod tab_sync;
mod tabs;
mod types;
mod web_lock;
mod webcrypto;

pub use backup::{
    inspect_backup, pack_backup, ExportOptionsJs, ImportOptionsJs, MigrationJs, PackOptionsJs,
};
pub use error::JsCodedError;
pub use hybrid_clock::HybridClock;
pub use live_query::LiveQuery;
pub use merge_changes::merge_changes;
pub use store::ManaStore;
pub use sync_handle::ManaSync;
pub use types::{ListQueryJs, WriteOptionsJs};
