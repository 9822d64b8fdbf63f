//! The shapes `exportBackup`, `importBackup`, `packBackup` and `inspectBackup` read and return.
//! Their TypeScript declarations are derived from these types (tsify); only the callbacks are
//! written by hand, in terms of the derived types.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tsify::Tsify;
use wasm_bindgen::prelude::*;

use crate::backup::Manifest;

#[wasm_bindgen(typescript_custom_section)]
const TS_BACKUP_CALLBACKS: &'static str = r#"
export type ProgressFn = (phase: BackupPhase, done: number, total: number) => void;
/** A migration: turns a row of schema version `toVersion - 1` into one of `toVersion`. */
export type Migration = (row: Record<string, unknown>, table: string) => Record<string, unknown>;
"#;

/// `exportBackup`'s options (`onProgress` is taken out by hand before the rest is parsed).
#[derive(Deserialize, Default, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ExportOptions {
    /// Only these apps' collections (default: every app).
    #[serde(default)]
    pub app_ids: Option<Vec<String>>,
    /// Seal the archive (PBKDF2-SHA256 600,000 iterations + AES-256-GCM).
    #[serde(default)]
    pub passphrase: Option<String>,
    /// Called as the export or import goes (read by hand before the rest is parsed: a
    /// function does not survive `JSON.stringify`); here for the declaration.
    #[serde(default)]
    #[tsify(type = "ProgressFn")]
    #[allow(dead_code)]
    on_progress: Option<IgnoredAny>,
}

/// `packBackup`'s options.
#[derive(Deserialize, Default, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct PackOptions {
    /// The manifest's `userId`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// Seal the archive (PBKDF2-SHA256 600,000 iterations + AES-256-GCM).
    #[serde(default)]
    pub passphrase: Option<String>,
    /// Called as the export or import goes (read by hand before the rest is parsed: a
    /// function does not survive `JSON.stringify`); here for the declaration.
    #[serde(default)]
    #[tsify(type = "ProgressFn")]
    #[allow(dead_code)]
    on_progress: Option<IgnoredAny>,
}

/// `importBackup`'s options.
#[derive(Deserialize, Default, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct ImportOptions {
    /// Needed for a sealed archive.
    #[serde(default)]
    pub passphrase: Option<String>,
    /// Called as the export or import goes (read by hand before the rest is parsed: a
    /// function does not survive `JSON.stringify`); here for the declaration.
    #[serde(default)]
    #[tsify(type = "ProgressFn")]
    #[allow(dead_code)]
    on_progress: Option<IgnoredAny>,
}

/// What `importBackup` resolves to.
#[derive(Debug, Default, Serialize, Tsify)]
pub struct ImportReport {
    /// Rows that changed the store (new records or fields that won the merge).
    pub imported: u64,
    /// Rows that changed nothing (already present, older, or of an unknown collection).
    pub skipped: u64,
    /// The same counts per table.
    pub tables: BTreeMap<String, TableReport>,
}

/// One table's counts in an [`ImportReport`].
#[derive(Debug, Default, Clone, Copy, Serialize, Tsify)]
pub struct TableReport {
    pub imported: u64,
    pub skipped: u64,
}

impl ImportReport {
    /// Totals from per-table counts.
    pub fn new(tables: BTreeMap<String, TableReport>) -> Self {
        let (imported, skipped) = tables
            .values()
            .fold((0, 0), |a, t| (a.0 + t.imported, a.1 + t.skipped));
        ImportReport {
            imported,
            skipped,
            tables,
        }
    }
}

/// What `inspectBackup` returns.
#[derive(Serialize, Tsify)]
pub struct BackupInfo {
    #[tsify(type = "BackupManifest")]
    pub manifest: Manifest,
    /// The data is sealed: importing it needs the passphrase.
    pub sealed: bool,
}
