//! Browser adapters and the `#[wasm_bindgen]` API. Thin by design: logic lives in the pure
//! modules; this layer converts between JS values and Rust types.

mod error;
mod hybrid_clock;
mod merge_changes;
mod types;

pub use error::JsCodedError;
pub use hybrid_clock::HybridClock;
pub use merge_changes::merge_changes;
