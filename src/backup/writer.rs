//! [`BackupWriter`]: rows are serialised to JSONL and deflated into the ZIP table by table, so a
//! backup never holds the rows as values alongside the archive.
//!
//! Layout of what we write (docs/backup.md): `manifest.json` first, then either the
//! `data/<table>.jsonl` files (unsealed) or `data.sealed` (stored, not deflated) =
//! AES-256-GCM(inner ZIP of the `data/` files) ‖ 16-byte tag.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use flate2::write::DeflateEncoder;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::container::{DosTime, Method, ZipOut};
use super::error::{BackupError, Result};
use super::manifest::{
    FileEntry, Manifest, PassphraseInfo, Scope, CIPHER_AES_GCM_256, FORMAT_VERSION,
    KDF_PBKDF2_SHA256,
};
use super::seal::{self, SealParams, DEFAULT_ITERATIONS};
use super::{is_valid_table_name, Phase, Progress, MANIFEST_NAME, README_NAME, SEALED_NAME};
use crate::strict_json;

/// Deflate level of the `data/` files. Level 1 is several times faster than the default 6 and
/// compresses JSONL rows only a little worse (see `benches/backup.rs` and BENCHMARKS.md).
pub const DEFAULT_COMPRESSION_LEVEL: i64 = 1;

/// Rows are gathered into chunks of this size before they reach the deflater.
const CHUNK: usize = 64 * 1024;
/// A `Serialize` progress report every this many rows.
const PROGRESS_EVERY: u64 = 1024;

/// The manifest fields the caller chooses; `formatVersion`, `rowCounts`, `files`,
/// `fieldsPlaintext` and `passphrase` are filled in by the writer.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestInfo {
    /// `schemaVersion`.
    pub schema_version: u64,
    /// `producedBy`; defaults to `mana-sync <version>`.
    pub produced_by: String,
    /// `exportedAt`, ISO-8601 UTC (the caller's clock: this module has none).
    pub exported_at: String,
    /// `userId`.
    pub user_id: Option<String>,
    /// `scope`.
    pub scope: Scope,
    /// Extra manifest fields, written verbatim (used to carry unknown fields through the CLI's
    /// `seal`/`unseal`). Keys the writer owns are ignored.
    pub extra: Map<String, Value>,
}

impl ManifestInfo {
    /// Schema version 1, `producedBy` = `mana-sync <version>`, no extra fields.
    pub fn new(user_id: &str, exported_at: &str, scope: Scope) -> Self {
        ManifestInfo {
            schema_version: 1,
            produced_by: format!("mana-sync {}", crate::VERSION),
            exported_at: exported_at.to_string(),
            user_id: Some(user_id.to_string()),
            scope,
            extra: Map::new(),
        }
    }

    /// The caller-chosen fields of an existing manifest (to rewrite an archive).
    pub fn from_manifest(m: &Manifest) -> Self {
        ManifestInfo {
            schema_version: m.schema_version,
            produced_by: m.produced_by.clone(),
            exported_at: m.exported_at.clone(),
            user_id: m.user_id.clone(),
            scope: m.scope.clone(),
            extra: m.extra.clone(),
        }
    }
}

type ProgressFn<'p> = Box<dyn FnMut(Progress) + 'p>;

struct OpenTable {
    name: String,
    rows: u64,
    bytes: u64,
    /// `None` when the archive will be sealed (see [`BackupWriter::for_sealing`]).
    hasher: Option<Sha256>,
    /// `None` for a stored entry (level 0), whose bytes go straight into the ZIP.
    deflater: Option<DeflateEncoder<Vec<u8>>>,
    crc: crc32fast::Hasher,
}

/// Streaming writer of one `.mana` archive. See the [module docs](super) for an example.
pub struct BackupWriter<'p> {
    info: ManifestInfo,
    /// The `data/` entries so far (the manifest goes first, so they are copied after it).
    zip: ZipOut,
    /// Deflate level, `None` for stored entries.
    level: Option<u32>,
    time: DosTime,
    current: Option<OpenTable>,
    chunk: Vec<u8>,
    seen: BTreeSet<String>,
    row_counts: BTreeMap<String, u64>,
    files: BTreeMap<String, FileEntry>,
    progress: Option<ProgressFn<'p>>,
    total_rows_hint: u64,
    rows_done: u64,
    readme: Option<String>,
    hash_files: bool,
}

impl<'p> BackupWriter<'p> {
    /// A writer with [`DEFAULT_COMPRESSION_LEVEL`].
    pub fn new(info: ManifestInfo) -> Self {
        Self::with_compression_level(info, DEFAULT_COMPRESSION_LEVEL)
    }

    /// A writer with a given deflate level (0 = stored … 9 = smallest).
    pub fn with_compression_level(info: ManifestInfo, level: i64) -> Self {
        let level = (level > 0).then(|| level.min(9) as u32);
        let time = DosTime::from_iso(&info.exported_at);
        BackupWriter {
            info,
            zip: ZipOut::new(time, 0),
            level,
            time,
            current: None,
            chunk: Vec::with_capacity(CHUNK + 4096),
            seen: BTreeSet::new(),
            row_counts: BTreeMap::new(),
            files: BTreeMap::new(),
            progress: None,
            total_rows_hint: 0,
            rows_done: 0,
            readme: None,
            hash_files: true,
        }
    }

    /// For an archive that will be sealed: skips the per-file sha256, which a sealed manifest
    /// leaves out anyway (`plaintextSha256` and the GCM tag cover the data). Hashing is a
    /// sizeable part of sealing in wasm. An unsealed archive of such a writer has no `files`.
    pub fn for_sealing(mut self) -> Self {
        self.hash_files = false;
        self
    }

    /// Add a `README.md` (plain text, outside the seal) right after `manifest.json`, e.g. to tell
    /// a person who finds the file what it is and how to open it.
    pub fn set_readme(&mut self, text: &str) {
        self.readme = Some(text.to_string());
    }

    /// Report progress to `f`; `total_rows` is the number of rows the caller will write (0 if
    /// unknown), used as the `total` of the `serialize` phase.
    pub fn on_progress(&mut self, total_rows: u64, f: impl FnMut(Progress) + 'p) {
        self.total_rows_hint = total_rows;
        self.progress = Some(Box::new(f));
    }

    fn report(&mut self, phase: Phase, done: u64, total: u64) {
        if let Some(f) = self.progress.as_mut() {
            f(Progress { phase, done, total });
        }
    }

    /// Start `data/<name>.jsonl`. Each table may be written once; an empty table (no rows) is
    /// written as an empty file.
    pub fn begin_table(&mut self, name: &str) -> Result<()> {
        if !is_valid_table_name(name) {
            return Err(BackupError::bad_name(
                name,
                "table names are 1-128 ASCII letters, digits, '_', '-', '.', not starting with '.'",
            ));
        }
        if self.seen.contains(name) {
            return Err(BackupError::InvalidInput(format!(
                "table {name:?} written twice"
            )));
        }
        self.end_table()?;
        let deflater = match self.level {
            Some(level) => Some(DeflateEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            None => {
                self.zip.start_stored(&format!("data/{name}.jsonl"));
                None
            }
        };
        self.seen.insert(name.to_string());
        self.current = Some(OpenTable {
            name: name.to_string(),
            rows: 0,
            bytes: 0,
            hasher: self.hash_files.then(Sha256::new),
            deflater,
            crc: crc32fast::Hasher::new(),
        });
        Ok(())
    }

    /// Append one row (anything that serialises to a JSON object, e.g. a
    /// `serde_json::Map<String, Value>`) as one JSONL line of the current table.
    pub fn write_row<T: Serialize + ?Sized>(&mut self, row: &T) -> Result<()> {
        if self.current.is_none() {
            return Err(BackupError::InvalidInput(
                "write_row before begin_table".into(),
            ));
        }
        let start = self.chunk.len();
        if let Err(e) = serde_json::to_writer(&mut self.chunk, row) {
            self.chunk.truncate(start);
            return Err(BackupError::InvalidInput(format!(
                "row not serialisable: {e}"
            )));
        }
        if self.chunk.get(start) != Some(&b'{') {
            self.chunk.truncate(start);
            return Err(BackupError::InvalidInput(
                "a row must serialise to a JSON object".into(),
            ));
        }
        self.chunk.push(b'\n');
        self.row_written()
    }

    /// Append one row that `write` serialises into the archive's buffer itself (e.g.
    /// `export_row::write_export_row`): one JSON object's text, without a newline. On an
    /// error nothing of it stays.
    pub fn write_row_with<E: From<BackupError>>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if self.current.is_none() {
            return Err(
                BackupError::InvalidInput("write_row_with before begin_table".into()).into(),
            );
        }
        let start = self.chunk.len();
        if let Err(e) = write(&mut self.chunk) {
            self.chunk.truncate(start);
            return Err(e);
        }
        let line = &self.chunk[start..];
        if line.first() != Some(&b'{') || line.contains(&b'\n') {
            self.chunk.truncate(start);
            return Err(BackupError::InvalidInput(
                "a row must be one JSON object on one line".into(),
            )
            .into());
        }
        self.chunk.push(b'\n');
        self.row_written().map_err(E::from)
    }

    /// Append one already-serialised row (without its newline). It is checked to be exactly one
    /// JSON object on one line; its bytes are kept verbatim.
    pub fn write_raw_line(&mut self, line: &[u8]) -> Result<()> {
        if self.current.is_none() {
            return Err(BackupError::InvalidInput(
                "write_raw_line before begin_table".into(),
            ));
        }
        if line.contains(&b'\n') {
            return Err(BackupError::InvalidInput("a row must be one line".into()));
        }
        match strict_json::as_text(line).map(serde_json::from_str::<Value>) {
            Ok(Ok(Value::Object(_))) => {}
            _ => {
                return Err(BackupError::InvalidInput(
                    "a row must be one JSON object".into(),
                ))
            }
        }
        self.chunk.extend_from_slice(line);
        self.chunk.push(b'\n');
        self.row_written()
    }

    fn row_written(&mut self) -> Result<()> {
        if let Some(t) = self.current.as_mut() {
            t.rows += 1;
        }
        self.rows_done += 1;
        if self.chunk.len() >= CHUNK {
            self.flush_chunk()?;
        }
        if self.rows_done % PROGRESS_EVERY == 0 {
            self.report(Phase::Serialize, self.rows_done, self.total_rows_hint);
        }
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        if let Some(t) = self.current.as_mut() {
            if let Some(h) = t.hasher.as_mut() {
                h.update(&self.chunk);
            }
            t.bytes += self.chunk.len() as u64;
            match t.deflater.as_mut() {
                Some(d) => {
                    t.crc.update(&self.chunk);
                    d.write_all(&self.chunk).map_err(io_err)?;
                }
                None => self.zip.write(&self.chunk)?,
            }
        }
        self.chunk.clear();
        Ok(())
    }

    fn end_table(&mut self) -> Result<()> {
        self.flush_chunk()?;
        if let Some(t) = self.current.take() {
            if let Some(d) = t.deflater {
                let data = d.finish().map_err(io_err)?;
                let name = format!("data/{}.jsonl", t.name);
                self.zip
                    .add(&name, Method::Deflated, &data, t.crc.finalize(), t.bytes);
            }
            self.row_counts.insert(t.name.clone(), t.rows);
            if let Some(h) = t.hasher {
                self.files.insert(
                    format!("data/{}.jsonl", t.name),
                    FileEntry {
                        sha256: hex::encode(h.finalize()),
                        bytes: t.bytes,
                    },
                );
            }
        }
        Ok(())
    }

    /// Close the data files; returns the ZIP of the `data/` files and the manifest so far.
    fn finish_data(mut self) -> Result<(ZipOut, Manifest, Option<ProgressFn<'p>>)> {
        self.end_table()?;
        let rows = self.rows_done;
        self.report(Phase::Serialize, rows, rows.max(self.total_rows_hint));
        let data_zip = std::mem::replace(&mut self.zip, ZipOut::new(self.time, 0));
        let mut extra = self.info.extra;
        for owned in [
            "formatVersion",
            "schemaVersion",
            "producedBy",
            "exportedAt",
            "userId",
            "scope",
            "rowCounts",
            "fieldsPlaintext",
            "files",
            "passphrase",
        ] {
            extra.remove(owned);
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            schema_version: self.info.schema_version,
            produced_by: self.info.produced_by,
            exported_at: self.info.exported_at,
            user_id: self.info.user_id,
            scope: self.info.scope,
            row_counts: self.row_counts,
            fields_plaintext: true,
            files: self.hash_files.then_some(self.files),
            passphrase: None,
            extra,
        };
        Ok((data_zip, manifest, self.progress))
    }

    /// Finish an unsealed archive: `manifest.json` then the deflated `data/*.jsonl` files.
    pub fn finish_unsealed(mut self) -> Result<Vec<u8>> {
        let (level, time) = (self.level, self.time);
        let readme = self.readme.take();
        let (data_zip, manifest, mut progress) = self.finish_data()?;
        let total = data_zip.len() as u64;
        let manifest_bytes = manifest.to_json_bytes()?;
        let mut out = ZipOut::new(time, data_zip.len() + manifest_bytes.len() + 1024);
        add_file(&mut out, MANIFEST_NAME, &manifest_bytes, level)?;
        if let Some(text) = readme {
            add_file(&mut out, README_NAME, text.as_bytes(), level)?;
        }
        // The deflated entries verbatim: no second compression.
        out.append(data_zip);
        let bytes = out.finish();
        if let Some(f) = progress.as_mut() {
            f(Progress {
                phase: Phase::Compress,
                done: total,
                total,
            });
        }
        Ok(bytes)
    }

    /// Finish a sealed archive with a random salt and IV and [`DEFAULT_ITERATIONS`], deriving
    /// the key with the `pbkdf2` crate. In the browser prefer [`Self::finish_sealed_with_key`]
    /// with a key from WebCrypto.
    pub fn finish_sealed(self, passphrase: &str) -> Result<Vec<u8>> {
        self.finish_sealed_with_iterations(passphrase, DEFAULT_ITERATIONS)
    }

    /// [`Self::finish_sealed`] with a chosen iteration count.
    pub fn finish_sealed_with_iterations(
        self,
        passphrase: &str,
        iterations: u32,
    ) -> Result<Vec<u8>> {
        let params = SealParams::random(iterations)?;
        let key = seal::derive_key(passphrase.as_bytes(), &params.salt, params.iterations);
        self.finish_sealed_with_key(&key, params)
    }

    /// Finish a sealed archive with a key derived by the caller as
    /// PBKDF2-HMAC-SHA256(passphrase, `params.salt`, `params.iterations`, 32 bytes).
    /// `params` must be fresh (see [`SealParams::random`]): reusing an IV with the same key breaks
    /// AES-GCM.
    pub fn finish_sealed_with_key(self, key: &[u8; 32], params: SealParams) -> Result<Vec<u8>> {
        let job = self.into_sealing()?;
        let sha256: [u8; 32] = Sha256::digest(job.plaintext()).into();
        let mut ciphertext = job.plaintext().to_vec();
        job.report(Phase::Seal, 0);
        seal::encrypt_in_place(key, &params.iv, &mut ciphertext)?;
        job.finish(key, params, ciphertext, sha256)
    }

    /// Finishes the data for sealing elsewhere (e.g. by WebCrypto, off the page's main thread):
    /// the returned job holds the plaintext of `data.sealed`; encrypt it with AES-256-GCM, hash
    /// it with SHA-256 and pass the ciphertext ‖ tag and the hash to [`SealJob::finish`].
    pub fn into_sealing(mut self) -> Result<SealJob<'p>> {
        let (level, time) = (self.level, self.time);
        let readme = self.readme.take();
        let (inner, manifest, progress) = self.finish_data()?;
        let mut job = SealJob {
            inner: inner.finish(),
            manifest,
            level,
            time,
            readme,
            progress: std::cell::RefCell::new(progress),
        };
        job.report(Phase::Compress, job.inner.len() as u64);
        job.manifest.files = None;
        Ok(job)
    }
}

/// A finished archive waiting for its `data.sealed` to be encrypted (see
/// [`BackupWriter::into_sealing`]).
pub struct SealJob<'p> {
    inner: Vec<u8>,
    manifest: Manifest,
    level: Option<u32>,
    time: DosTime,
    readme: Option<String>,
    progress: std::cell::RefCell<Option<ProgressFn<'p>>>,
}

impl SealJob<'_> {
    /// What `data.sealed` encrypts: the inner ZIP of the data files.
    pub fn plaintext(&self) -> &[u8] {
        &self.inner
    }

    /// Reports `done` of the plaintext's bytes in `phase` to the writer's progress callback.
    pub fn report(&self, phase: Phase, done: u64) {
        if let Some(f) = self.progress.borrow_mut().as_mut() {
            f(Progress {
                phase,
                done,
                total: self.inner.len() as u64,
            });
        }
    }

    /// The archive, with `ciphertext` (AES-256-GCM of [`Self::plaintext`] under `key` and
    /// `params.iv`, tag appended) as `data.sealed`, and `params` and `plaintext_sha256` (the
    /// SHA-256 of [`Self::plaintext`]) in the manifest.
    pub fn finish(
        mut self,
        key: &[u8; 32],
        params: SealParams,
        ciphertext: Vec<u8>,
        plaintext_sha256: [u8; 32],
    ) -> Result<Vec<u8>> {
        seal::check_iterations(u64::from(params.iterations))?;
        if ciphertext.len() != self.inner.len() + seal::TAG_LEN {
            return Err(BackupError::InvalidInput(
                "the ciphertext is not the plaintext's length plus a tag".into(),
            ));
        }
        self.report(Phase::Seal, self.inner.len() as u64);
        // Per-file hashes of plaintext stay out of a sealed manifest (see `Manifest::files`).
        self.manifest.passphrase = Some(PassphraseInfo {
            kdf: KDF_PBKDF2_SHA256.into(),
            kdf_iterations: u64::from(params.iterations),
            kdf_salt_base64: seal::b64_encode(&params.salt),
            cipher: CIPHER_AES_GCM_256.into(),
            iv_base64: seal::b64_encode(&params.iv),
            plaintext_sha256: Some(hex::encode(plaintext_sha256)),
            key_check: Some(seal::b64_encode(&seal::key_check(key))),
            extra: Map::new(),
        });
        let manifest_bytes = self.manifest.to_json_bytes()?;
        let mut out = ZipOut::new(self.time, ciphertext.len() + manifest_bytes.len() + 1024);
        add_file(&mut out, MANIFEST_NAME, &manifest_bytes, self.level)?;
        if let Some(text) = &self.readme {
            add_file(&mut out, README_NAME, text.as_bytes(), self.level)?;
        }
        out.add_stored(SEALED_NAME, &ciphertext);
        drop(ciphertext);
        Ok(out.finish())
    }
}

/// A whole small entry (the manifest, the README), deflated at `level` or stored.
fn add_file(out: &mut ZipOut, name: &str, bytes: &[u8], level: Option<u32>) -> Result<()> {
    match level {
        None => out.add_stored(name, bytes),
        Some(level) => {
            let mut d = DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            d.write_all(bytes).map_err(io_err)?;
            let data = d.finish().map_err(io_err)?;
            out.add(
                name,
                Method::Deflated,
                &data,
                crc32fast::hash(bytes),
                bytes.len() as u64,
            );
        }
    }
    Ok(())
}

fn io_err(e: std::io::Error) -> BackupError {
    BackupError::InvalidInput(format!("zip: {e}"))
}
