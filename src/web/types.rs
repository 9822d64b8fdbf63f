//! TypeScript declarations of the boundary that tsify cannot derive: `Actor` (opaque
//! application JSON, `serde_json::Value` in Rust) and the error interface. Everything else is
//! derived from the Rust types next to the code that (de)serializes them (`#[derive(Tsify)]`),
//! and these refer to the derived types.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Opaque application JSON stamped on writes, e.g. `{ kind: "user" | "ai" | "system" }`. */
export type Actor = { kind?: "user" | "ai" | "system"; [key: string]: unknown };
/** Every error thrown by mana-sync is an `Error` with a stable machine-readable code. */
export interface ManaError extends Error { code: ErrorCode }
"#;

#[wasm_bindgen]
extern "C" {
    /// `WriteOptions` as a JS value (typed in the `.d.ts`; parsed with serde).
    #[wasm_bindgen(typescript_type = "WriteOptions")]
    pub type WriteOptionsJs;
    /// `SignInOptions` as a JS value (read by hand: it holds bytes).
    #[wasm_bindgen(typescript_type = "SignInOptions")]
    pub type SignInOptionsJs;
    /// `ListQuery` as a JS value.
    #[wasm_bindgen(typescript_type = "ListQuery")]
    pub type ListQueryJs;
}
