//! The client sync engine as a sans-IO state machine (docs/sync.md): inputs and the current
//! time go in ([`SyncEngine::handle`], [`SyncEngine::handle_timeout`]), effects come out
//! ([`SyncEngine::poll_effect`], [`SyncEngine::poll_timeout`]). It never calls the network, a
//! timer or IndexedDB; the browser driver (`web::sync`) and the simulation do.
//!
//! - [`engine`]: rounds (push everything pending, then pull), the status machine, syncNow
//!   waiters, the WebSocket's lifecycle, timers.
//! - [`outbox`]: pending rows → push batches, and what an acknowledgement does to the rows.
//! - [`answer`]: an HTTP answer → a validated page or a coded [`SyncError`].
//! - [`apply`]: merging remote changes into stored records (the driver's one commit path).
//! - [`backoff`]: exponential backoff with full jitter.
//! - [`lease`]: which tab runs the engine (Web Locks leader, followers over a channel).

pub mod answer;
pub mod apply;
pub mod backoff;
pub mod engine;
pub mod error;
pub mod lease;
pub mod outbox;
pub mod request;
pub mod status;

pub use backoff::{Backoff, Random, SplitMix64};
pub use engine::{Apply, Effect, EngineConfig, Input, SyncEngine};
pub use error::SyncError;
pub use outbox::{PendingRow, RowEdit};
pub use request::{HttpMethod, HttpRequest};
pub use status::SyncStatus;

/// Milliseconds of the driver's clock (wall or monotonic: only differences matter).
pub type Millis = u64;
