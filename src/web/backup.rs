//! `.mana` v2 export and import of the store (DESIGN §6), and `inspectBackup`.
//!
//! Export reads one collection at a time, decrypts it and streams its rows into the ZIP.
//! Import parses, validates, decrypts, migrates and merges *everything* before it opens a
//! single write transaction, so a failed import writes nothing.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{json, Map, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::JsCodedError;
use super::json::{from_js, to_js};
use super::store::{promise, ManaStore, StoreInner};
use super::webcrypto::pbkdf2_sha256;
use crate::backup::{
    self, BackupWriter, ManifestInfo, Progress, Scope, SealParams, DEFAULT_ITERATIONS,
};
use crate::records::{self, PreparedWrite};

#[wasm_bindgen(typescript_custom_section)]
const TS_BACKUP: &'static str = r#"
export type BackupPhase = "read" | "serialize" | "compress" | "seal" | "unseal" | "verify" | "parse" | "merge" | "write";
export type ProgressFn = (phase: BackupPhase, done: number, total: number) => void;
export interface ExportOptions {
  /** Only these apps' collections (default: every app). */
  appIds?: string[];
  /** Seal the archive (PBKDF2-SHA256 600,000 iterations + AES-256-GCM). */
  passphrase?: string;
  onProgress?: ProgressFn;
}
export interface ImportOptions { passphrase?: string; onProgress?: ProgressFn }
export interface ImportReport {
  /** Rows that changed the store (new records or fields that won the merge). */
  imported: number;
  /** Rows that changed nothing (already present, older, or of an unknown collection). */
  skipped: number;
  tables: Record<string, { imported: number; skipped: number }>;
}
export interface BackupManifest {
  formatVersion: number; schemaVersion: number; producedBy: string; exportedAt: string;
  userId?: string; scope: { type: "full" } | { type: "filtered"; appIds: string[] };
  rowCounts: Record<string, number>; fieldsPlaintext: boolean;
  files?: Record<string, { sha256: string; bytes: number }>;
  passphrase?: { kdf: string; kdfIterations: number; kdfSaltBase64: string; cipher: string;
                 ivBase64: string; plaintextSha256: string; keyCheck?: string };
  [key: string]: unknown;
}
export interface BackupInfo { manifest: BackupManifest; sealed: boolean }
/** A migration: turns a row of schema version `toVersion - 1` into one of `toVersion`. */
export type Migration = (row: Record<string, unknown>, table: string) => Record<string, unknown>;
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "ExportOptions")]
    pub type ExportOptionsJs;
    #[wasm_bindgen(typescript_type = "ImportOptions")]
    pub type ImportOptionsJs;
    #[wasm_bindgen(typescript_type = "Migration")]
    pub type MigrationJs;
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ExportOptions {
    #[serde(default)]
    app_ids: Option<Vec<String>>,
    #[serde(default)]
    passphrase: Option<String>,
}

#[derive(Deserialize, Default)]
struct ImportOptions {
    #[serde(default)]
    passphrase: Option<String>,
}

/// Splits `{…, onProgress}` into the JSON options and the callback.
fn split_options<T: for<'de> Deserialize<'de> + Default>(
    v: Option<JsValue>,
) -> Result<(T, Option<js_sys::Function>), JsCodedError> {
    let Some(v) = v.filter(|v| !v.is_undefined() && !v.is_null()) else {
        return Ok((T::default(), None));
    };
    let cb = js_sys::Reflect::get(&v, &"onProgress".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    Ok((from_js(&v, "invalid_options")?, cb))
}

fn report(cb: &Option<js_sys::Function>, phase: &str, done: u64, total: u64) {
    if let Some(f) = cb {
        let _ = f.call3(
            &JsValue::NULL,
            &phase.into(),
            &(done as f64).into(),
            &(total as f64).into(),
        );
    }
}

fn iso_now() -> String {
    js_sys::Date::new_0().to_iso_string().into()
}

impl StoreInner {
    async fn export_backup(
        &self,
        opts: ExportOptions,
        cb: Option<js_sys::Function>,
    ) -> Result<Vec<u8>, JsCodedError> {
        let scope = match &opts.app_ids {
            None => Scope::Full,
            Some(ids) => {
                if let Some(bad) = ids.iter().find(|a| !self.config.apps.contains_key(*a)) {
                    return Err(JsCodedError::new(
                        "invalid_options",
                        format!("unknown app {bad:?}"),
                    ));
                }
                Scope::Filtered {
                    app_ids: ids.clone(),
                }
            }
        };
        let collections: Vec<String> = self
            .config
            .collections()
            .filter(|(app, _, _)| {
                opts.app_ids
                    .as_ref()
                    .is_none_or(|ids| ids.iter().any(|a| a == app))
            })
            .map(|(_, c, _)| c.to_string())
            .collect();
        let mut info = ManifestInfo::new(&self.config.user_id, &iso_now(), scope);
        info.schema_version = u64::from(self.config.schema_version);
        let mut writer = BackupWriter::new(info);
        let progress_cb = cb.clone();
        writer.on_progress(0, move |p: Progress| {
            report(&progress_cb, p.phase.as_str(), p.done, p.total)
        });
        for (i, collection) in collections.iter().enumerate() {
            report(&cb, "read", i as u64, collections.len() as u64);
            let rows = self.read_all_raw(collection).await?;
            // Decrypt first, then write: the writer calls the app's progress callback, which
            // must be free to call back into the store (e.g. `lock()`).
            let rows = {
                let vault = self.vault.borrow();
                rows.into_iter()
                    .map(|row| {
                        records::export_row(&self.registry, vault.cipher().ok(), collection, row)
                    })
                    .collect::<Result<Vec<_>, _>>()?
            };
            writer.begin_table(collection)?;
            for row in &rows {
                writer.write_row(row)?;
            }
        }
        report(
            &cb,
            "read",
            collections.len() as u64,
            collections.len() as u64,
        );
        match opts.passphrase {
            None => Ok(writer.finish_unsealed()?),
            Some(pass) if pass.is_empty() => {
                Err(JsCodedError::new("invalid_options", "empty passphrase"))
            }
            Some(pass) => {
                let params = SealParams::random(DEFAULT_ITERATIONS)?;
                let key = pbkdf2_sha256(&pass, &params.salt, params.iterations).await?;
                Ok(writer.finish_sealed_with_key(&key, params)?)
            }
        }
    }

    async fn import_backup(
        &self,
        bytes: Vec<u8>,
        opts: ImportOptions,
        cb: Option<js_sys::Function>,
    ) -> Result<Value, JsCodedError> {
        let archive = backup::open(&bytes)?;
        let archive_version = archive.manifest().schema_version;
        let mut progress = |p: Progress| report(&cb, p.phase.as_str(), p.done, p.total);
        let mut data = match archive.seal_params() {
            None => archive.data()?,
            Some(params) => {
                let pass = opts
                    .passphrase
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .ok_or(backup::BackupError::PassphraseRequired)?;
                let key = pbkdf2_sha256(pass, &params.salt, params.iterations).await?;
                archive.unseal_with_key(&key, &mut progress)?
            }
        };
        let tables = data.read_all(&mut progress)?;

        let mut writes: Vec<(String, Vec<PreparedWrite>)> = Vec::new();
        let mut per_table: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let total: u64 = tables.iter().map(|(_, rows)| rows.len() as u64).sum();
        let mut done = 0u64;
        for (table, rows) in tables {
            let counts = per_table.entry(table.clone()).or_default();
            if self.config.collection(&table).is_none() {
                counts.1 += rows.len() as u64;
                done += rows.len() as u64;
                continue;
            }
            let mut local: HashMap<String, Value> = self
                .read_all_raw(&table)
                .await?
                .into_iter()
                .filter_map(|r| Some((r.get("id")?.as_str()?.to_string(), r)))
                .collect();
            let rows = self.migrate(&table, archive_version, rows)?;
            let n = rows.len() as u64;
            // One writer for the whole table; the app's progress callback runs only between
            // tables, never while the store's state is borrowed.
            let (out, skipped) = self.prepare(None, |w| {
                let mut out: Vec<PreparedWrite> = Vec::new();
                let mut merged: HashMap<String, usize> = HashMap::new();
                let mut skipped = 0u64;
                for row in rows {
                    let id = row
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    // A later row of the same id merges onto the earlier one's result.
                    let base = match merged.get(&id) {
                        Some(&i) => Some(Value::Object(out[i].stored.clone())),
                        None => local.remove(&id),
                    };
                    match w.import_row(&table, base, row)? {
                        Some(p) => {
                            merged.insert(id, out.len());
                            out.push(p);
                        }
                        None => skipped += 1,
                    }
                }
                Ok((out, skipped))
            })?;
            counts.0 += n - skipped;
            counts.1 += skipped;
            done += n;
            report(&cb, "merge", done, total);
            writes.push((table, out));
        }
        self.commit(writes).await?;
        let (imported, skipped) = per_table
            .values()
            .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
        let tables: Map<String, Value> = per_table
            .into_iter()
            .map(|(t, (i, s))| (t, json!({"imported": i, "skipped": s})))
            .collect();
        Ok(json!({"imported": imported, "skipped": skipped, "tables": tables}))
    }

    /// Passes rows of an older schema version through the registered migrations, in order.
    fn migrate(
        &self,
        table: &str,
        from: u64,
        rows: Vec<backup::Row>,
    ) -> Result<Vec<backup::Row>, JsCodedError> {
        let migrations = self.migrations.borrow();
        let steps: Vec<&js_sys::Function> = migrations
            .range((from + 1) as u32..=self.config.schema_version)
            .map(|(_, f)| f)
            .collect();
        if steps.is_empty() {
            return Ok(rows);
        }
        rows.into_iter()
            .map(|row| {
                let mut v = to_js(&row)?;
                for f in &steps {
                    v = f.call2(&JsValue::NULL, &v, &table.into()).map_err(|e| {
                        JsCodedError::new(
                            "migration_failed",
                            format!("{table}: {}", super::json::describe(&e)),
                        )
                    })?;
                }
                from_js(&v, "migration_failed")
            })
            .collect()
    }
}

#[wasm_bindgen]
impl ManaStore {
    /// Exports the chosen apps' collections as a `.mana` v2 archive: encrypted fields
    /// decrypted, tombstones included; sealed when a passphrase is given.
    #[wasm_bindgen(js_name = exportBackup, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_backup(&self, options: Option<ExportOptionsJs>) -> js_sys::Promise {
        let inner = self.inner.clone();
        promise(async move {
            let (opts, cb) = split_options::<ExportOptions>(options.map(Into::into))?;
            let bytes = inner.export_backup(opts, cb).await?;
            Ok(js_sys::Uint8Array::from(&bytes[..]))
        })
    }

    /// Imports an archive as a merge: LWW per field, re-encrypted under the current vault
    /// key, queued as pending changes. A failed import writes nothing.
    #[wasm_bindgen(js_name = importBackup, unchecked_return_type = "Promise<ImportReport>")]
    pub fn import_backup(&self, bytes: &[u8], options: Option<ImportOptionsJs>) -> js_sys::Promise {
        let inner = self.inner.clone();
        let bytes = bytes.to_vec();
        promise(async move {
            let (opts, cb) = split_options::<ImportOptions>(options.map(Into::into))?;
            let report = inner.import_backup(bytes, opts, cb).await?;
            to_js(&report)
        })
    }

    /// Registers the migration that upgrades imported rows to schema version `toVersion`.
    #[wasm_bindgen(js_name = registerMigration)]
    pub fn register_migration(
        &self,
        to_version: u32,
        migration: MigrationJs,
    ) -> Result<(), JsValue> {
        let f: js_sys::Function = JsValue::from(migration)
            .dyn_into()
            .map_err(|_| JsCodedError::new("invalid_options", "a migration is a function"))?;
        if to_version < 2 || to_version > self.inner.config.schema_version {
            return Err(JsCodedError::new(
                "invalid_options",
                format!(
                    "migrations target versions 2..={}",
                    self.inner.config.schema_version
                ),
            )
            .into());
        }
        self.inner.migrations.borrow_mut().insert(to_version, f);
        Ok(())
    }
}

/// Reads an archive's manifest without a passphrase.
#[wasm_bindgen(js_name = inspectBackup, unchecked_return_type = "BackupInfo")]
pub fn inspect_backup(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let archive = backup::open(bytes).map_err(JsCodedError::from)?;
    Ok(to_js(
        &json!({"manifest": archive.manifest(), "sealed": archive.is_sealed()}),
    )?)
}
