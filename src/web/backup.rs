//! `.mana` v2 export and import of the store (docs/backup.md), and `inspectBackup`.
//!
//! Export reads one collection at a time, decrypts it and streams its rows into the ZIP.
//! Import unseals, verifies and parses the whole archive and runs migrations first; then,
//! inside one readwrite transaction, it reads the local records and merges and writes chunk
//! by chunk. Any failure aborts that transaction, so a failed import writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use std::future::Future;

use futures::StreamExt;
use std::pin::Pin;

use zeroize::Zeroizing;

use super::backup_types::{
    BackupInfo, ExportOptions, ImportOptions, ImportReport, PackOptions, TableReport,
};
use super::error::JsCodedError;
use super::event_loop::{started, ticking, yield_now, Slicer};
use super::idb_write::ChunkedRead;
use super::json::{from_js, js_text, to_js};
use super::store::{promise, ManaStore, StoreInner, TextBatch};
use super::webcrypto::{aes_gcm_decrypt, aes_gcm_encrypt, pbkdf2_sha256, sha256};
use crate::backup::{
    self, ArchiveData, BackupWriter, ManifestInfo, Phase, Progress, RawRow, Scope, SealParams,
    DEFAULT_ITERATIONS,
};
use crate::error_code::ErrorCode;
use crate::export_row::write_export_row;

/// Records read per step of an export.
const EXPORT_CHUNK: u32 = 1000;

/// Records decrypted and packed per slice of an export.
const EXPORT_SLICE: u32 = 250;

/// Rows merged and put per step of an import (see `Commit`).
const IMPORT_CHUNK: usize = 250;

/// Rows parsed between two looks at the clock while an archive is read (a divisor of 1,000:
/// progress comes every 1,000 rows).
const PARSE_SLICE: usize = 250;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "ExportOptions")]
    pub type ExportOptionsJs;
    #[wasm_bindgen(typescript_type = "ImportOptions")]
    pub type ImportOptionsJs;
    #[wasm_bindgen(typescript_type = "PackOptions")]
    pub type PackOptionsJs;
    #[wasm_bindgen(typescript_type = "Migration")]
    pub type MigrationJs;
}

/// A writer for an archive that [`finish_archive`] will seal when there is a passphrase
/// (refused when empty), reporting its progress to the app's callback.
fn archive_writer<'p>(
    info: ManifestInfo,
    passphrase: &Option<String>,
    total_rows: u64,
    cb: Option<js_sys::Function>,
) -> Result<BackupWriter<'p>, JsCodedError> {
    check_passphrase(passphrase)?;
    let mut writer = BackupWriter::new(info);
    if passphrase.is_some() {
        writer = writer.for_sealing();
    }
    writer.on_progress(total_rows, move |p: Progress| {
        report(&cb, p.phase, p.done, p.total)
    });
    Ok(writer)
}

type KeyResult = Result<Zeroizing<[u8; 32]>, JsCodedError>;

/// A passphrase's key, derived by WebCrypto from the start of an export while the rows are
/// read and packed (the derivation runs off the main thread).
struct SealKey {
    params: SealParams,
    key: Pin<Box<dyn Future<Output = KeyResult>>>,
}

impl SealKey {
    fn start(passphrase: Option<String>) -> Result<Option<SealKey>, JsCodedError> {
        let Some(pass) = passphrase else {
            return Ok(None);
        };
        let params = SealParams::random(DEFAULT_ITERATIONS)?;
        let (salt, iterations) = (params.salt, params.iterations);
        let key = started(async move { pbkdf2_sha256(&pass, &salt, iterations).await });
        Ok(Some(SealKey {
            params,
            key: Box::pin(key),
        }))
    }
}

/// Seals the archive (AES-GCM by WebCrypto, off the main thread), or leaves it unsealed;
/// progress keeps coming while WebCrypto works.
async fn finish_archive(
    writer: BackupWriter<'_>,
    seal: Option<SealKey>,
    cb: &Option<js_sys::Function>,
) -> Result<Vec<u8>, JsCodedError> {
    let Some(SealKey { params, key }) = seal else {
        yield_now().await;
        return Ok(writer.finish_unsealed()?);
    };
    yield_now().await;
    let job = writer.into_sealing()?;
    let key = derived(key, cb).await?;
    job.report(Phase::Seal, 0);
    let work = futures::future::try_join(
        aes_gcm_encrypt(&key, &params.iv, job.plaintext()),
        sha256(job.plaintext()),
    );
    let (ciphertext, hash) = ticking(work, || job.report(Phase::Seal, 0)).await?;
    yield_now().await;
    Ok(job.finish(&key, params, ciphertext, hash)?)
}

/// Awaits a key derivation, reporting the `derive` phase meanwhile.
async fn derived(
    key: impl Future<Output = Result<Zeroizing<[u8; 32]>, JsCodedError>>,
    cb: &Option<js_sys::Function>,
) -> Result<Zeroizing<[u8; 32]>, JsCodedError> {
    report(cb, Phase::Derive, 0, 1);
    let key = ticking(key, || report(cb, Phase::Derive, 0, 1)).await?;
    report(cb, Phase::Derive, 1, 1);
    Ok(key)
}

fn check_passphrase(passphrase: &Option<String>) -> Result<(), JsCodedError> {
    match passphrase {
        Some(p) if p.is_empty() => Err(JsCodedError::new(
            ErrorCode::InvalidOptions,
            "empty passphrase",
        )),
        _ => Ok(()),
    }
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
    Ok((from_js(&v, ErrorCode::InvalidOptions)?, cb))
}

fn report(cb: &Option<js_sys::Function>, phase: Phase, done: u64, total: u64) {
    if let Some(f) = cb {
        let _ = f.call3(
            &JsValue::NULL,
            &phase.as_str().into(),
            &(done as f64).into(),
            &(total as f64).into(),
        );
    }
}

fn iso_now() -> String {
    js_sys::Date::new_0().to_iso_string().into()
}

/// Every table's rows as checked text (everything checked before it returns), a slice at a
/// time; they are parsed when merged.
async fn read_tables(
    data: &mut ArchiveData<'_>,
    row_counts: &BTreeMap<String, u64>,
    cb: &Option<js_sys::Function>,
) -> Result<Vec<(String, Vec<RawRow>)>, JsCodedError> {
    let total: u64 = row_counts.values().sum();
    let (mut done, mut bytes) = (0u64, 0u64);
    let mut slice = Slicer::new();
    let mut out = Vec::new();
    for index in 0.. {
        let Some(mut table) = data.table_rows(index, bytes)? else {
            break;
        };
        let mut rows = Vec::new();
        loop {
            // Kept as checked text until merged: parsed, the rows of a large archive would
            // take several hundred MB.
            let batch = table.next_raw_rows(PARSE_SLICE);
            if batch.is_empty() {
                break;
            }
            done += batch.len() as u64;
            rows.extend(batch);
            if done % 1000 == 0 {
                report(cb, Phase::Parse, done, total.max(done));
            }
            slice.tick().await;
        }
        let summary = table.finish()?;
        bytes += summary.bytes;
        out.push((summary.name, rows));
    }
    report(cb, Phase::Parse, done, total.max(done));
    Ok(out)
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
                        ErrorCode::InvalidOptions,
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
        let mut info = ManifestInfo::new(&self.user_id.borrow(), &iso_now(), scope);
        info.schema_version = u64::from(self.config.schema_version);
        let mut writer = archive_writer(info, &opts.passphrase, 0, cb.clone())?;
        let seal = SealKey::start(opts.passphrase)?;
        let mut slice = Slicer::new();
        for (i, collection) in collections.iter().enumerate() {
            report(&cb, Phase::Read, i as u64, collections.len() as u64);
            // IndexedDB reads ahead while the chunks are decrypted and packed, a slice at a
            // time.
            let mut chunks =
                ChunkedRead::begin(&self.raw()?, collection, EXPORT_CHUNK)?.read_ahead();
            writer.begin_table(collection)?;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk?;
                let mut start = 0;
                while start < chunk.length() {
                    let end = chunk.length().min(start + EXPORT_SLICE);
                    let text = js_text(&chunk.slice(start, end))?;
                    let rows: Vec<&RawValue> = serde_json::from_str(&text)
                        .map_err(|e| JsCodedError::new(ErrorCode::Internal, e.to_string()))?;
                    start = end;
                    for row in rows {
                        // The vault is borrowed per row, not across the writer's progress
                        // call: the app's callback must be free to call back into the store
                        // (e.g. `lock()`).
                        writer.write_row_with(|out| {
                            let vault = self.vault.borrow();
                            write_export_row(
                                &self.registry,
                                vault.cipher().ok(),
                                collection,
                                row.get(),
                                out,
                            )
                            .map_err(JsCodedError::from)
                        })?;
                    }
                    slice.tick().await;
                }
            }
        }
        report(
            &cb,
            Phase::Read,
            collections.len() as u64,
            collections.len() as u64,
        );
        finish_archive(writer, seal, &cb).await
    }

    async fn import_backup(
        &self,
        bytes: Vec<u8>,
        opts: ImportOptions,
        cb: Option<js_sys::Function>,
    ) -> Result<ImportReport, JsCodedError> {
        let archive = backup::open(&bytes)?;
        let archive_version = archive.manifest().schema_version;
        let mut progress = |p: Progress| report(&cb, p.phase, p.done, p.total);
        let mut data = match archive.seal_params() {
            None => archive.data()?,
            Some(params) => {
                let pass = opts
                    .passphrase
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .ok_or(backup::BackupError::PassphraseRequired)?;
                let key =
                    derived(pbkdf2_sha256(pass, &params.salt, params.iterations), &cb).await?;
                let ciphertext = archive.sealed_ciphertext(&key)?;
                let total = ciphertext.len() as u64;
                report(&cb, Phase::Unseal, 0, total);
                let plain = ticking(aes_gcm_decrypt(&key, &params.iv, &ciphertext), || {
                    report(&cb, Phase::Unseal, 0, total)
                })
                .await?
                .ok_or_else(|| archive.tag_failure())?;
                drop(ciphertext);
                report(&cb, Phase::Unseal, total, total);
                let hash = sha256(&plain).await?;
                yield_now().await;
                archive.data_from_plaintext(plain, hash, &mut progress)?
            }
        };
        let tables = read_tables(&mut data, &archive.manifest().row_counts, &cb).await?;

        // Migrations (app callbacks) run before the write transaction opens; the local records
        // are read inside it, so an edit made meanwhile is merged, never overwritten.
        let mut per_table: BTreeMap<String, TableReport> = BTreeMap::new();
        let mut known = Vec::new();
        for (table, rows) in tables {
            if self.config.collection(&table).is_none() {
                per_table.entry(table).or_default().skipped += rows.len() as u64;
                continue;
            }
            let rows = self.migrate(&table, archive_version, rows)?;
            known.push((table, rows));
        }

        // Merge and write chunk by chunk in one transaction, so IndexedDB stores a chunk
        // while the next merges; any error drops the transaction, which aborts it.
        let total: u64 = known.iter().map(|(_, rows)| rows.len() as u64).sum();
        let mut done = 0u64;
        let stores: Vec<&str> = known.iter().map(|(t, _)| t.as_str()).collect();
        // Ids with more than one row (a later row of an id merges onto the earlier row's
        // result), found before the transaction opens (a slice at a time).
        let mut slice = Slicer::new();
        let mut repeated_by_table = Vec::with_capacity(known.len());
        for (_, rows) in &known {
            let mut seen = HashSet::with_capacity(rows.len());
            let mut repeated = HashSet::new();
            for (i, id) in rows.iter().filter_map(RawRow::id).enumerate() {
                if !seen.insert(id) {
                    repeated.insert(id.to_owned());
                }
                if i % PARSE_SLICE == 0 {
                    slice.tick().await;
                }
            }
            repeated_by_table.push(repeated);
        }
        let _turn = self.write_turn().await;
        let mut commit = self.begin(&stores)?;
        for ((table, rows), repeated) in known.into_iter().zip(repeated_by_table) {
            if rows.is_empty() {
                continue;
            }
            // Progress goes on while the local records are read.
            let reading = || report(&cb, Phase::Merge, done, total);
            let mut stored = commit.get_all(&table, &reading).await?;
            // The local records of the rows so far, converted from that read as their chunk
            // comes (a record leaves `stored` when taken, so each is taken once).
            let mut local: HashMap<String, Value> = HashMap::new();
            let mut rows = rows.into_iter();
            loop {
                let chunk: Vec<RawRow> = rows.by_ref().take(IMPORT_CHUNK).collect();
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len() as u64;
                for id in chunk.iter().filter_map(RawRow::id) {
                    if let Some(record) = stored.take(id)? {
                        local.insert(id.to_owned(), record);
                    }
                }
                let batch = self.prepare::<_, JsCodedError>(None, |w| {
                    let mut batch = TextBatch::default();
                    for raw in chunk {
                        // A record this device does not hold, in one row of the archive: the
                        // text path, unless the row is one it leaves to `import_row`.
                        let fresh = raw
                            .id()
                            .is_some_and(|id| !local.contains_key(id) && !repeated.contains(id));
                        if let Some(text) = fresh.then(|| raw.text()) {
                            if let Some(p) = w.import_new_row_text(&table, text) {
                                batch.push_text(p?);
                                continue;
                            }
                        }
                        let row = raw.parse()?;
                        let id = row.get("id").and_then(Value::as_str).unwrap_or_default();
                        let id = id.to_string();
                        // A repeated id keeps its current state for its later rows, whether
                        // or not this row changes it.
                        let base = if repeated.contains(&id) {
                            local.get(&id).cloned()
                        } else {
                            local.remove(&id)
                        };
                        if let Some(p) = w.import_row(&table, base, row)? {
                            if repeated.contains(&id) {
                                local.insert(id, Value::Object(p.stored.clone()));
                            }
                            batch.push(&p)?;
                        }
                    }
                    Ok(batch)
                })?;
                let counts = per_table.entry(table.clone()).or_default();
                counts.imported += batch.len() as u64;
                counts.skipped += n - batch.len() as u64;
                commit.write_text(&table, batch)?;
                commit.breathe(&table).await?;
                done += n;
                // Between chunks, with no store state borrowed: the callback may call back
                // into the store: a `lock()` fails the next chunk that has encrypted personal
                // fields (nothing is written); a write it starts runs after this import.
                report(&cb, Phase::Merge, done, total);
            }
        }
        self.finish(commit).await?;
        Ok(ImportReport::new(per_table))
    }

    /// Passes rows of an older schema version through the registered migrations, in order.
    fn migrate(
        &self,
        table: &str,
        from: u64,
        rows: Vec<RawRow>,
    ) -> Result<Vec<RawRow>, JsCodedError> {
        // Cloned out, so a migration may call back into the store (even registerMigration).
        let steps: Vec<js_sys::Function> = self
            .migrations
            .borrow()
            .range((from + 1) as u32..=self.config.schema_version)
            .map(|(_, f)| f.clone())
            .collect();
        if steps.is_empty() {
            return Ok(rows);
        }
        rows.into_iter()
            .map(|row| {
                let mut v = to_js(&row.parse()?)?;
                for f in &steps {
                    v = f.call2(&JsValue::NULL, &v, &table.into()).map_err(|e| {
                        JsCodedError::new(
                            ErrorCode::MigrationFailed,
                            format!("{table}: {}", super::json::describe(&e)),
                        )
                    })?;
                }
                let row: backup::Row = from_js(&v, ErrorCode::MigrationFailed)?;
                Ok(RawRow::new(&row))
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
        let f: js_sys::Function = JsValue::from(migration).dyn_into().map_err(|_| {
            JsCodedError::new(ErrorCode::InvalidOptions, "a migration is a function")
        })?;
        if to_version < 2 || to_version > self.inner.config.schema_version {
            return Err(JsCodedError::new(
                ErrorCode::InvalidOptions,
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
    Ok(to_js(&BackupInfo {
        manifest: archive.manifest().clone(),
        sealed: archive.is_sealed(),
    })?)
}

/// Writes a `.mana` archive of plain rows without a store: `{ table: rows }` → the archive's
/// bytes (scope `full`, rows as given). For bringing data from elsewhere into the format.
#[wasm_bindgen(js_name = packBackup, unchecked_return_type = "Promise<Uint8Array>")]
pub fn pack_backup(
    #[wasm_bindgen(unchecked_param_type = "Record<string, Record<string, unknown>[]>")]
    tables: JsValue,
    options: Option<PackOptionsJs>,
) -> js_sys::Promise {
    promise(async move {
        let (opts, cb) = split_options::<PackOptions>(options.map(Into::into))?;
        check_passphrase(&opts.passphrase)?;
        let tables: BTreeMap<String, Vec<backup::Row>> =
            from_js(&tables, ErrorCode::InvalidRecord)?;
        let info = ManifestInfo::new(
            opts.user_id.as_deref().unwrap_or(""),
            &iso_now(),
            Scope::Full,
        );
        let total = tables.values().map(|rows| rows.len() as u64).sum();
        let mut writer = archive_writer(info, &opts.passphrase, total, cb.clone())?;
        let seal = SealKey::start(opts.passphrase)?;
        let mut slice = Slicer::new();
        for (table, rows) in &tables {
            writer.begin_table(table)?;
            for row in rows {
                writer.write_row(row)?;
                slice.tick().await;
            }
        }
        let bytes = finish_archive(writer, seal, &cb).await?;
        Ok(js_sys::Uint8Array::from(bytes.as_slice()))
    })
}
