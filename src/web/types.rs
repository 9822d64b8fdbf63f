//! TypeScript declarations for the JSON shapes crossing the boundary. Generated into the
//! package's `.d.ts` by wasm-bindgen, next to the exported functions that use them.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Hybrid logical clock timestamp: `<ISO millis>-<4 hex counter>-<16 hex node>`. */
export type Hlc = string;
/** Opaque application JSON stamped on writes, e.g. `{ kind: "user" | "ai" | "system" }`. */
export type Actor = { kind?: "user" | "ai" | "system"; [key: string]: unknown };
export interface FieldChange { value: unknown; updatedAt: Hlc; base?: Hlc }
export interface Change {
  eventId: string;
  table: string;
  id: string;
  op: "insert" | "update" | "delete";
  data?: Record<string, unknown>;
  fields?: Record<string, FieldChange>;
  deletedAt?: Hlc;
  updatedAt?: Hlc;
  schemaVersion?: number;
  actor?: Actor;
  spaceId?: string;
  seq?: string;
}
export interface Conflict {
  collection: string; id: string; field: string;
  wasLocal: unknown; nowServer: unknown; localAt: Hlc; serverAt: Hlc;
}
export interface FieldMeta { at: Hlc; actor?: Actor }
export interface MergeResult {
  record: Record<string, unknown> & { id: string };
  fieldMeta: Record<string, FieldMeta>;
  conflicts: Conflict[];
}
/** A record: a JSON object with a string `id`. `spaceId` and `deletedAt` are reserved. */
export type ManaRecord = { id: string; spaceId?: string; deletedAt?: Hlc | null; [field: string]: unknown };
export interface CollectionConfig {
  /** Fields to index (each index is named after its field). Indexed fields stay plaintext. */
  indexes?: string[];
  /** Fields sealed with the vault key (AES-256-GCM) in the user's own space. */
  encrypted?: string[];
}
export interface AppConfig { collections: Record<string, CollectionConfig> }
export interface StoreConfig {
  /** IndexedDB database name. */
  name: string;
  /** The signed-in user; absent or empty for a guest store (`signIn` claims it later). */
  userId?: string;
  apps: Record<string, AppConfig>;
  /** Stamped on every change (default 1). */
  schemaVersion?: number;
}
export interface KeyBounds { lower?: unknown; upper?: unknown; lowerOpen?: boolean; upperOpen?: boolean }
export interface ListQuery {
  /** Read through this index (a field name); absent = by id. */
  index?: string;
  equals?: unknown;
  range?: KeyBounds;
  /** Tombstones are hidden unless set. */
  includeDeleted?: boolean;
  limit?: number;
  reverse?: boolean;
}
export interface WriteOptions { actor?: Actor }
/** `signIn`'s options: with `vaultKey`, the guest's data is re-encrypted under the user's key. */
export interface SignInOptions { vaultKey?: Uint8Array }
/** Every error thrown by mana-sync is an `Error` with a stable machine-readable code. */
export interface ManaError extends Error { code: string }
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
