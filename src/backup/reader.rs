//! Reading `.mana` archives: [`open`] checks the ZIP, the entry names, the declared sizes and the
//! manifest without a passphrase (`inspectBackup`); [`OpenedArchive::unseal`] /
//! [`OpenedArchive::unseal_with_key`] / [`OpenedArchive::data`] give an [`ArchiveData`], which
//! streams the rows table by table, checking each line, each file's sha256 and the row counts.
//!
//! Hostile input never panics and never makes memory grow past the [`Limits`]: sizes are checked
//! as declared in the ZIP and again while decompressing (`Read::take`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Cursor, Read};

use serde_json::Value;
use sha2::{Digest, Sha256};
use zip::{CompressionMethod, ZipArchive};

use super::error::{BackupError, Result};
use super::manifest::{FileEntry, Manifest};
use super::seal::{self, SealParams, IV_LEN, KEY_CHECK_LEN, SALT_LEN, TAG_LEN};
use super::{classify_entry, EntryKind, Limits, Phase, Progress, Row};

type Zip<'a> = ZipArchive<Cursor<Cow<'a, [u8]>>>;

/// One `data/<table>.jsonl` entry.
#[derive(Debug, Clone)]
struct TableEntry {
    name: String,
    index: usize,
    /// Uncompressed size declared by the ZIP headers.
    declared: u64,
}

/// What one table held, after it was read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// Table name.
    pub name: String,
    /// Rows (JSONL lines).
    pub rows: u64,
    /// Uncompressed bytes of `data/<table>.jsonl`.
    pub bytes: u64,
    /// Lowercase hex sha256 of those bytes.
    pub sha256: String,
}

#[derive(Debug, Clone)]
struct SealedInfo {
    index: usize,
    stored: bool,
    params: SealParams,
    key_check: Option<[u8; KEY_CHECK_LEN]>,
    plaintext_sha256: Option<[u8; 32]>,
}

/// An archive whose ZIP structure, entry names, sizes and manifest were checked. Holds no
/// decrypted or decompressed data.
#[derive(Debug)]
pub struct OpenedArchive<'a> {
    bytes: &'a [u8],
    manifest: Manifest,
    limits: Limits,
    sealed: Option<SealedInfo>,
}

/// Open `bytes` with the default [`Limits`]. No passphrase is needed: this is `inspectBackup`.
pub fn open(bytes: &[u8]) -> Result<OpenedArchive<'_>> {
    open_with_limits(bytes, Limits::default())
}

/// [`open`] with explicit limits.
pub fn open_with_limits(bytes: &[u8], limits: Limits) -> Result<OpenedArchive<'_>> {
    if bytes.len() as u64 > limits.max_archive_bytes {
        return Err(BackupError::ArchiveTooLarge(format!(
            "archive of {} bytes (limit {})",
            bytes.len(),
            limits.max_archive_bytes
        )));
    }
    let mut zip = open_zip(Cow::Borrowed(bytes), true)?;
    let scan = scan_entries(&zip, &limits, true)?;
    let Some(manifest_index) = scan.manifest else {
        return Err(BackupError::NotAManaArchive(
            "the ZIP has no manifest.json".into(),
        ));
    };
    let manifest_bytes = read_entry(
        &mut zip,
        manifest_index,
        limits.max_manifest_bytes,
        "manifest.json",
    )?;
    let manifest = Manifest::parse(&manifest_bytes)?;

    let sealed = match (&manifest.passphrase, scan.sealed) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(BackupError::corrupt(
                "the manifest has a passphrase section but there is no data.sealed",
            ))
        }
        (None, Some(_)) => {
            return Err(BackupError::corrupt(
                "data.sealed is present but the manifest has no passphrase section",
            ))
        }
        (Some(p), Some((index, stored))) => {
            if !scan.tables.is_empty() {
                return Err(BackupError::corrupt(
                    "a sealed archive must not also hold plaintext data/ files",
                ));
            }
            let iterations = seal::check_iterations(p.kdf_iterations)
                .map_err(|e| BackupError::corrupt(format!("passphrase.kdfIterations: {e}")))?;
            let salt = seal::b64_decode_exact::<SALT_LEN>("kdfSaltBase64", &p.kdf_salt_base64)?;
            let iv = seal::b64_decode_exact::<IV_LEN>("ivBase64", &p.iv_base64)?;
            let key_check = p
                .key_check
                .as_deref()
                .map(|kc| seal::b64_decode_exact::<KEY_CHECK_LEN>("keyCheck", kc))
                .transpose()?;
            let plaintext_sha256 = p
                .plaintext_sha256
                .as_deref()
                .map(|h| {
                    hex::decode(h.trim())
                        .ok()
                        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
                        .ok_or_else(|| {
                            BackupError::corrupt("passphrase.plaintextSha256 is not 64 hex digits")
                        })
                })
                .transpose()?;
            Some(SealedInfo {
                index,
                stored,
                params: SealParams {
                    salt,
                    iv,
                    iterations,
                },
                key_check,
                plaintext_sha256,
            })
        }
    };
    if sealed.is_none() {
        check_listed_files(&manifest, &scan.tables)?;
    }
    Ok(OpenedArchive {
        bytes,
        manifest,
        limits,
        sealed,
    })
}

impl<'a> OpenedArchive<'a> {
    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether the data is in `data.sealed` (a passphrase is needed to read it).
    pub fn is_sealed(&self) -> bool {
        self.sealed.is_some()
    }

    /// Salt, IV and iterations of a sealed archive: derive the key from them (WebCrypto PBKDF2 in
    /// the browser, [`super::derive_key`] natively) and call [`Self::unseal_with_key`].
    pub fn seal_params(&self) -> Option<SealParams> {
        self.sealed.as_ref().map(|s| s.params)
    }

    /// Whether the manifest carries a `keyCheck` (so a wrong passphrase is told apart from
    /// tampering).
    pub fn has_key_check(&self) -> bool {
        self.sealed.as_ref().is_some_and(|s| s.key_check.is_some())
    }

    /// The data of an unsealed archive; `passphrase_required` if it is sealed.
    pub fn data(&self) -> Result<ArchiveData<'a>> {
        if self.sealed.is_some() {
            return Err(BackupError::PassphraseRequired);
        }
        let zip = open_zip(Cow::Borrowed(self.bytes), true)?;
        ArchiveData::new(zip, &self.manifest, self.limits, true)
    }

    /// Derive the key from `passphrase` (PBKDF2 with the `pbkdf2` crate) and unseal. An unsealed
    /// archive ignores the passphrase and returns its data.
    pub fn unseal(
        &self,
        passphrase: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ArchiveData<'a>> {
        let Some(s) = &self.sealed else {
            return self.data();
        };
        let key = seal::derive_key(passphrase.as_bytes(), &s.params.salt, s.params.iterations);
        self.unseal_with_key(&key, progress)
    }

    /// Unseal with a key derived by the caller. Errors: `wrong_passphrase` (keyCheck mismatch),
    /// `archive_tampered` (keyCheck matches but the AEAD tag or `plaintextSha256` does not),
    /// `wrong_passphrase_or_tampered` (no keyCheck and the tag does not verify). An unsealed
    /// archive ignores the key and returns its data.
    pub fn unseal_with_key(
        &self,
        key: &[u8; 32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ArchiveData<'a>> {
        let Some(s) = &self.sealed else {
            return self.data();
        };
        if let Some(kc) = &s.key_check {
            if !seal::key_check_matches(key, kc) {
                return Err(BackupError::WrongPassphrase);
            }
        }
        let mut zip = open_zip(Cow::Borrowed(self.bytes), true)?;
        let cap = self
            .limits
            .max_entry_bytes
            .min(self.limits.max_archive_bytes);
        // Read the stored bytes without the ZIP's CRC check: the AEAD tag is the authority, so a
        // modified ciphertext is reported as tampering, not as a damaged ZIP.
        let mut buf = if s.stored {
            let f = zip
                .by_index_raw(s.index)
                .map_err(|e| BackupError::corrupt(format!("data.sealed: {e}")))?;
            read_capped(f, cap, "data.sealed")?
        } else {
            read_entry(&mut zip, s.index, cap, "data.sealed")?
        };
        drop(zip);
        if buf.len() < TAG_LEN {
            return Err(BackupError::ArchiveTampered(
                "data.sealed is shorter than an AES-GCM tag".into(),
            ));
        }
        let total = buf.len() as u64;
        progress(Progress {
            phase: Phase::Unseal,
            done: 0,
            total,
        });
        if seal::decrypt_in_place(key, &s.params.iv, &mut buf).is_err() {
            return Err(if s.key_check.is_some() {
                BackupError::ArchiveTampered(
                    "the AES-GCM tag of data.sealed does not verify".into(),
                )
            } else {
                BackupError::WrongPassphraseOrTampered
            });
        }
        progress(Progress {
            phase: Phase::Unseal,
            done: total,
            total,
        });
        if let Some(expected) = &s.plaintext_sha256 {
            let plain_len = buf.len() as u64;
            progress(Progress {
                phase: Phase::Verify,
                done: 0,
                total: plain_len,
            });
            if Sha256::digest(&buf).as_slice() != expected.as_slice() {
                return Err(BackupError::ArchiveTampered(
                    "the unsealed data does not match plaintextSha256".into(),
                ));
            }
            progress(Progress {
                phase: Phase::Verify,
                done: plain_len,
                total: plain_len,
            });
        }
        let inner = open_zip(Cow::Owned(buf), false)?;
        ArchiveData::new(inner, &self.manifest, self.limits, false)
    }
}

/// The readable data of an archive (after unsealing, if it was sealed): the `data/*.jsonl` files.
///
/// Rows are yielded while a file is read; its sha256 (when the manifest lists one) and its row
/// count are checked at its end. A caller that must not act on a bad archive (an import that
/// writes nothing on failure) reads everything first ([`Self::read_all`]) or calls
/// [`Self::verify`] before [`Self::for_each_row`].
pub struct ArchiveData<'a> {
    zip: Zip<'a>,
    tables: Vec<TableEntry>,
    files: Option<BTreeMap<String, FileEntry>>,
    row_counts: BTreeMap<String, u64>,
    limits: Limits,
}

impl std::fmt::Debug for ArchiveData<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveData")
            .field("tables", &self.table_names())
            .finish_non_exhaustive()
    }
}

impl<'a> ArchiveData<'a> {
    fn new(zip: Zip<'a>, manifest: &Manifest, limits: Limits, outer: bool) -> Result<Self> {
        let scan = scan_entries(&zip, &limits, outer)?;
        if !outer {
            check_listed_files(manifest, &scan.tables)?;
        }
        Ok(ArchiveData {
            zip,
            tables: scan.tables,
            files: manifest.files.clone(),
            row_counts: manifest.row_counts.clone(),
            limits,
        })
    }

    /// Table names, in archive order.
    pub fn table_names(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }

    /// Stream every row of every table to `f(table, row)`, table by table in archive order.
    /// An error returned by `f` stops the reading and is returned as is.
    pub fn for_each_row(
        &mut self,
        progress: &mut dyn FnMut(Progress),
        f: &mut dyn FnMut(&str, Row) -> Result<()>,
    ) -> Result<Vec<TableSummary>> {
        let total_rows: u64 = self.row_counts.values().sum();
        let mut rows_before = 0u64;
        let mut remaining = self.limits.max_total_bytes;
        let mut out = Vec::with_capacity(self.tables.len());
        for i in 0..self.tables.len() {
            let table = self.tables[i].clone();
            let cap = self.limits.max_entry_bytes.min(remaining);
            let mut on_row = |row: Row| f(&table.name, row);
            let mut on_progress = |rows: u64| {
                progress(Progress {
                    phase: Phase::Parse,
                    done: rows_before + rows,
                    total: total_rows,
                })
            };
            let summary =
                self.read_table_inner(&table, cap, Some(&mut on_row), None, &mut on_progress)?;
            rows_before += summary.rows;
            remaining -= summary.bytes.min(remaining);
            out.push(summary);
        }
        progress(Progress {
            phase: Phase::Parse,
            done: rows_before,
            total: total_rows.max(rows_before),
        });
        Ok(out)
    }

    /// Read and check everything (every line, every hash, every row count) without keeping rows.
    pub fn verify(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<Vec<TableSummary>> {
        self.for_each_row(progress, &mut |_, _| Ok(()))
    }

    /// Every table with its rows, in archive order (everything is checked before it returns).
    pub fn read_all(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<(String, Vec<Row>)>> {
        let mut out: Vec<(String, Vec<Row>)> = Vec::new();
        self.for_each_row(progress, &mut |table, row| {
            match out.last_mut() {
                Some((name, rows)) if name == table => rows.push(row),
                _ => out.push((table.to_string(), vec![row])),
            }
            Ok(())
        })?;
        // Tables without rows are still listed.
        let mut all = Vec::with_capacity(self.tables.len());
        let mut iter = out.into_iter().peekable();
        for t in &self.tables {
            match iter.peek() {
                Some((name, _)) if *name == t.name => all.extend(iter.next()),
                _ => all.push((t.name.clone(), Vec::new())),
            }
        }
        Ok(all)
    }

    /// The rows of one table (`Ok(None)` if the archive has no such table).
    pub fn read_table(&mut self, name: &str) -> Result<Option<Vec<Row>>> {
        let Some(table) = self.tables.iter().find(|t| t.name == name).cloned() else {
            return Ok(None);
        };
        let mut rows = Vec::new();
        let mut on_row = |row| {
            rows.push(row);
            Ok(())
        };
        self.read_table_inner(
            &table,
            self.limits.max_entry_bytes,
            Some(&mut on_row),
            None,
            &mut |_| {},
        )?;
        Ok(Some(rows))
    }

    /// The exact bytes of `data/<name>.jsonl`, after checking every line, the sha256 and the row
    /// count (`Ok(None)` if there is no such table). Used by the CLI to extract and re-pack
    /// without re-serialising rows.
    pub fn table_jsonl(&mut self, name: &str) -> Result<Option<(Vec<u8>, TableSummary)>> {
        let Some(table) = self.tables.iter().find(|t| t.name == name).cloned() else {
            return Ok(None);
        };
        let mut raw = Vec::new();
        let summary = self.read_table_inner(
            &table,
            self.limits.max_entry_bytes,
            None,
            Some(&mut raw),
            &mut |_| {},
        )?;
        Ok(Some((raw, summary)))
    }

    fn read_table_inner(
        &mut self,
        table: &TableEntry,
        cap: u64,
        mut on_row: Option<&mut dyn FnMut(Row) -> Result<()>>,
        copy: Option<&mut Vec<u8>>,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<TableSummary> {
        let name = table.name.as_str();
        let expected = self
            .files
            .as_ref()
            .and_then(|f| f.get(&format!("data/{name}.jsonl")))
            .cloned();
        let file = self.zip.by_index(table.index).map_err(|e| {
            BackupError::corrupt_at(name, None, format!("cannot read the entry: {e}"))
        })?;
        let mut hashing = HashingReader {
            inner: file.take(cap.saturating_add(1)),
            hasher: Sha256::new(),
            bytes: 0,
            copy,
        };
        let max_line = self.limits.max_line_bytes;
        let mut first_err: Option<BackupError> = None;
        let mut io_err: Option<io::Error> = None;
        let mut rows = 0u64;
        let mut line_no = 0u64;
        let mut blank_line: Option<u64> = None;
        {
            let mut reader = BufReader::with_capacity(64 * 1024, &mut hashing);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut reader)
                    .take(max_line.saturating_add(2))
                    .read_until(b'\n', &mut line)
                {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        io_err = Some(e);
                        break;
                    }
                }
                if first_err.is_some() {
                    // Keep reading only to learn whether the file's hash matches (tampered vs
                    // corrupt); without a hash to check, stop at once.
                    if expected.is_none() {
                        break;
                    }
                    continue;
                }
                line_no += 1;
                if line.len() as u64 > max_line.saturating_add(1) {
                    first_err = Some(BackupError::corrupt_at(
                        name,
                        Some(line_no),
                        format!("line longer than {max_line} bytes"),
                    ));
                    continue;
                }
                let mut content = line.as_slice();
                if let Some(c) = content.strip_suffix(b"\n") {
                    content = c;
                }
                if let Some(c) = content.strip_suffix(b"\r") {
                    content = c;
                }
                if content.iter().all(u8::is_ascii_whitespace) {
                    blank_line.get_or_insert(line_no);
                    continue;
                }
                if let Some(blank) = blank_line {
                    first_err = Some(BackupError::corrupt_at(
                        name,
                        Some(blank),
                        "empty line: every line must be one JSON object",
                    ));
                    continue;
                }
                match serde_json::from_slice::<Value>(content) {
                    Ok(Value::Object(row)) => {
                        rows += 1;
                        if let Some(f) = on_row.as_mut() {
                            f(row)?;
                        }
                        if rows % 1024 == 0 {
                            on_progress(rows);
                        }
                    }
                    Ok(other) => {
                        first_err = Some(BackupError::corrupt_at(
                            name,
                            Some(line_no),
                            format!("expected a JSON object, found {}", json_kind(&other)),
                        ))
                    }
                    Err(e) => {
                        first_err = Some(BackupError::corrupt_at(
                            name,
                            Some(line_no),
                            format!("not valid JSON: {e}"),
                        ))
                    }
                }
            }
        }
        if hashing.bytes > cap {
            return Err(BackupError::ArchiveTooLarge(format!(
                "data/{name}.jsonl decompresses to more than {cap} bytes"
            )));
        }
        let sha256 = hex::encode(hashing.hasher.finalize());
        if let Some(exp) = &expected {
            let complete = first_err.is_none() || io_err.is_none();
            if complete && (!exp.sha256.eq_ignore_ascii_case(&sha256) || exp.bytes != hashing.bytes)
            {
                return Err(BackupError::ArchiveTampered(format!(
                    "data/{name}.jsonl does not match the sha256 in the manifest"
                )));
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if let Some(e) = io_err {
            // The ZIP reader stops an entry that inflates past its declared size (its error text
            // is pinned by the `fail_zip_bomb_inflate` vector).
            if hashing.bytes >= table.declared || e.to_string().contains("declared uncompressed") {
                return Err(BackupError::ArchiveTooLarge(format!(
                    "data/{name}.jsonl inflates past its declared {} bytes (zip bomb)",
                    table.declared
                )));
            }
            return Err(BackupError::corrupt_at(
                name,
                None,
                format!("damaged ZIP entry: {e}"),
            ));
        }
        if let Some(&expected_rows) = self.row_counts.get(name) {
            if expected_rows != rows {
                return Err(BackupError::corrupt_at(
                    name,
                    None,
                    format!("rowCounts says {expected_rows} rows, the file has {rows}"),
                ));
            }
        }
        on_progress(rows);
        Ok(TableSummary {
            name: name.to_string(),
            rows,
            bytes: hashing.bytes,
            sha256,
        })
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

struct HashingReader<'c, R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    copy: Option<&'c mut Vec<u8>>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        if let Some(c) = self.copy.as_mut() {
            c.extend_from_slice(&buf[..n]);
        }
        Ok(n)
    }
}

fn open_zip(bytes: Cow<'_, [u8]>, outer: bool) -> Result<Zip<'_>> {
    let looks_like_zip = bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06");
    ZipArchive::new(Cursor::new(bytes)).map_err(|e| {
        if !outer {
            BackupError::corrupt(format!("the unsealed data is not a valid ZIP: {e}"))
        } else if looks_like_zip {
            BackupError::corrupt(format!("truncated or damaged ZIP: {e}"))
        } else {
            BackupError::NotAManaArchive(format!("not a ZIP archive: {e}"))
        }
    })
}

struct Scan {
    manifest: Option<usize>,
    /// index, stored (not deflated)
    sealed: Option<(usize, bool)>,
    tables: Vec<TableEntry>,
}

fn scan_entries(zip: &Zip<'_>, limits: &Limits, outer: bool) -> Result<Scan> {
    if zip.len() > limits.max_entries {
        return Err(BackupError::ArchiveTooLarge(format!(
            "{} entries (limit {})",
            zip.len(),
            limits.max_entries
        )));
    }
    if zip.has_duplicate_names() {
        return Err(BackupError::corrupt("the ZIP has duplicate entry names"));
    }
    let mut scan = Scan {
        manifest: None,
        sealed: None,
        tables: Vec::new(),
    };
    let mut total: u64 = 0;
    for index in 0..zip.len() {
        let entry = zip
            .by_index_data(index)
            .map_err(|e| BackupError::corrupt(format!("ZIP entry {index}: {e}")))?;
        let kind = classify_entry(entry.name_raw())?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        // Another tool may show a different name (e.g. from a Unicode Path extra field): the
        // name we check must be the one every tool sees.
        match entry.name() {
            Ok(shown) if shown.as_bytes() == entry.name_raw() => {}
            _ => {
                return Err(BackupError::bad_name(
                    &name,
                    "the entry's displayed name differs from its stored name",
                ))
            }
        }
        if entry.encrypted() {
            return Err(BackupError::corrupt(format!(
                "{name}: ZIP-encrypted entries are not supported"
            )));
        }
        let size = entry.size();
        let relevant = matches!(
            kind,
            EntryKind::Manifest | EntryKind::Sealed | EntryKind::Data(_)
        );
        if relevant && size > limits.max_entry_bytes {
            return Err(BackupError::ArchiveTooLarge(format!(
                "{name} declares {size} uncompressed bytes (limit {})",
                limits.max_entry_bytes
            )));
        }
        if relevant {
            total = total.saturating_add(size);
            if total > limits.max_total_bytes {
                return Err(BackupError::ArchiveTooLarge(format!(
                    "entries declare more than {} uncompressed bytes in all",
                    limits.max_total_bytes
                )));
            }
        }
        match kind {
            EntryKind::Manifest if outer => scan.manifest = Some(index),
            EntryKind::Sealed if outer => {
                scan.sealed = Some((index, entry.compression() == CompressionMethod::Stored))
            }
            EntryKind::Data(table) => scan.tables.push(TableEntry {
                name: table,
                index,
                declared: size,
            }),
            // Inside data.sealed only data/ files count; anything else is ignored.
            _ => {}
        }
    }
    Ok(scan)
}

/// Every file listed in `files` exists and every data file is listed (when `files` is present);
/// every data file has a `rowCounts` entry and tables with rows in `rowCounts` have a file.
fn check_listed_files(manifest: &Manifest, tables: &[TableEntry]) -> Result<()> {
    let present: BTreeSet<String> = tables
        .iter()
        .map(|t| format!("data/{}.jsonl", t.name))
        .collect();
    if let Some(files) = &manifest.files {
        if let Some(missing) = files.keys().find(|k| !present.contains(*k)) {
            return Err(BackupError::ArchiveTampered(format!(
                "{missing} is listed in the manifest but missing"
            )));
        }
        if let Some(extra) = present.iter().find(|p| !files.contains_key(*p)) {
            return Err(BackupError::ArchiveTampered(format!(
                "{extra} is not listed in the manifest"
            )));
        }
    }
    if let Some(t) = tables
        .iter()
        .find(|t| !manifest.row_counts.contains_key(&t.name))
    {
        return Err(BackupError::corrupt_at(
            &t.name,
            None,
            format!("data/{}.jsonl has no entry in rowCounts", t.name),
        ));
    }
    for (table, &n) in &manifest.row_counts {
        if n > 0 && !tables.iter().any(|t| &t.name == table) {
            return Err(BackupError::corrupt_at(
                table,
                None,
                format!("rowCounts says {n} rows but data/{table}.jsonl is missing"),
            ));
        }
    }
    Ok(())
}

fn read_entry(zip: &mut Zip<'_>, index: usize, cap: u64, what: &str) -> Result<Vec<u8>> {
    let f = zip
        .by_index(index)
        .map_err(|e| BackupError::corrupt(format!("{what}: {e}")))?;
    read_capped(f, cap, what)
}

fn read_capped(r: impl Read, cap: u64, what: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(cap.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| BackupError::corrupt(format!("{what}: damaged ZIP entry: {e}")))?;
    if buf.len() as u64 > cap {
        return Err(BackupError::ArchiveTooLarge(format!(
            "{what} is larger than {cap} bytes"
        )));
    }
    Ok(buf)
}
