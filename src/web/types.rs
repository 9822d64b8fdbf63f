//! TypeScript declarations for the JSON shapes crossing the boundary. Generated into the
//! package's `.d.ts` by wasm-bindgen, next to the exported functions that use them.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Hybrid logical clock timestamp: `<ISO millis>-<4 hex counter>-<16 hex node>`. */
export type Hlc = string;
/** Opaque application JSON stamped on writes, e.g. `{ kind: "user" | "ai" | "system" }`. */
export type Actor = { kind?: "user" | "ai" | "system"; [key: string]: unknown };
export interface FieldChange { value: unknown; updatedAt: Hlc }
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
/** Every error thrown by mana-sync is an `Error` with a stable machine-readable code. */
export interface ManaError extends Error { code: string }
"#;
