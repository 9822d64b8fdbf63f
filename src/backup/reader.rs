//! Reading `.mana` archives: [`open`] checks the ZIP, the entry names, the declared sizes and the
//! manifest without a passphrase (`inspectBackup`); [`OpenedArchive::unseal`] /
//! [`OpenedArchive::unseal_with_key`] / [`OpenedArchive::data`] give an [`ArchiveData`], which
//! streams the rows table by table, checking each line, each file's sha256 and the row counts.
//!
//! Hostile input never panics and never makes memory grow past the [`Limits`]: the ZIP's layout,
//! entry count and directory size are checked before the `zip` crate parses it (`layout`), and
//! sizes are checked as declared and again while decompressing (`entry`). Ambiguous ZIPs — any
//! whose entries another reader could see differently — are refused (`archive_corrupt`).

use crate::collect::CollectInserted;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufReader, Cursor};

use sha2::{Digest, Sha256};
use zip::read::{ArchiveOffset, Config};
use zip::ZipArchive;

use super::entry::{self, Declared, EntryReader};
use super::error::{BackupError, Result};
use super::jsonl::{Line, Lines, RawRow, Stop};
use super::layout;
use super::manifest::{FileEntry, Manifest};
use super::seal::{self, SealParams, IV_LEN, KEY_CHECK_LEN, SALT_LEN, TAG_LEN};
use super::{classify_entry, EntryKind, Limits, Phase, Progress, Row};

type Zip<'a> = ZipArchive<Cursor<Cow<'a, [u8]>>>;
type ZipEntry<'z, 'a> = zip::read::ZipFile<'z, Cursor<Cow<'a, [u8]>>>;

/// One `data/<table>.jsonl` entry.
#[derive(Debug, Clone)]
struct TableEntry {
    name: String,
    index: usize,
    /// Size, CRC and method declared by the ZIP headers.
    declared: Declared,
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
    /// Lowercase hex sha256 of those bytes; `None` from [`ArchiveData::table_rows`] when the
    /// manifest lists no hash to check it against (a sealed archive's is over the whole
    /// plaintext, checked when it is opened), since no one would read it.
    pub sha256: Option<String>,
}

#[derive(Debug, Clone)]
struct SealedInfo {
    index: usize,
    params: SealParams,
    key_check: Option<[u8; KEY_CHECK_LEN]>,
    plaintext_sha256: Option<[u8; 32]>,
}

/// An archive whose ZIP structure, entry names, sizes and manifest were checked. Holds no
/// decrypted or decompressed data.
#[derive(Debug)]
pub struct OpenedArchive<'a> {
    zip: Zip<'a>,
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
    let mut zip = open_zip(Cow::Borrowed(bytes), true, &limits)?;
    let scan = scan_entries(&zip, &limits, true)?;
    check_local_headers(&mut zip)?;
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
        true,
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
        (Some(p), Some(index)) => {
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
        zip,
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
        ArchiveData::new(self.zip.clone(), &self.manifest, self.limits, true)
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
        let mut buf = self.sealed_ciphertext(key)?;
        let total = buf.len() as u64;
        progress(Progress {
            phase: Phase::Unseal,
            done: 0,
            total,
        });
        if seal::decrypt_in_place(key, &s.params.iv, &mut buf).is_err() {
            return Err(self.tag_failure());
        }
        progress(Progress {
            phase: Phase::Unseal,
            done: total,
            total,
        });
        let sha256: [u8; 32] = Sha256::digest(&buf).into();
        self.data_from_plaintext(buf, sha256, progress)
    }

    /// The first step of unsealing elsewhere (e.g. by WebCrypto, off the page's main thread):
    /// checks `key` against the keyCheck (`wrong_passphrase`) and returns `data.sealed`,
    /// ciphertext ‖ tag, to be decrypted with AES-256-GCM under `key` and the manifest's IV
    /// (no associated data). A tag that does not verify is [`Self::tag_failure`]; the plaintext
    /// goes to [`Self::data_from_plaintext`]. `passphrase_required` on an unsealed archive.
    pub fn sealed_ciphertext(&self, key: &[u8; 32]) -> Result<Vec<u8>> {
        let s = self
            .sealed
            .as_ref()
            .ok_or(BackupError::PassphraseRequired)?;
        if let Some(kc) = &s.key_check {
            if !seal::key_check_matches(key, kc) {
                return Err(BackupError::WrongPassphrase);
            }
        }
        let mut zip = self.zip.clone();
        let cap = self
            .limits
            .max_entry_bytes
            .min(self.limits.max_archive_bytes);
        // Read without the ZIP's CRC check: the AEAD tag is the authority, so a modified
        // ciphertext is reported as tampering, not as a damaged ZIP.
        let buf = read_entry(&mut zip, s.index, cap, "data.sealed", false)?;
        if buf.len() < TAG_LEN {
            return Err(BackupError::ArchiveTampered(
                "data.sealed is shorter than an AES-GCM tag".into(),
            ));
        }
        Ok(buf)
    }

    /// What a `data.sealed` whose AES-GCM tag does not verify means: tampering when the key
    /// matched the keyCheck, else a wrong passphrase or tampering.
    pub fn tag_failure(&self) -> BackupError {
        if self.sealed.as_ref().is_some_and(|s| s.key_check.is_some()) {
            BackupError::ArchiveTampered("the AES-GCM tag of data.sealed does not verify".into())
        } else {
            BackupError::WrongPassphraseOrTampered
        }
    }

    /// The data of a sealed archive from its decrypted `data.sealed` and that plaintext's
    /// SHA-256, after checking the hash against `plaintextSha256`.
    pub fn data_from_plaintext(
        &self,
        plain: Vec<u8>,
        plain_sha256: [u8; 32],
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ArchiveData<'a>> {
        let s = self
            .sealed
            .as_ref()
            .ok_or(BackupError::PassphraseRequired)?;
        if let Some(expected) = &s.plaintext_sha256 {
            let plain_len = plain.len() as u64;
            progress(Progress {
                phase: Phase::Verify,
                done: 0,
                total: plain_len,
            });
            if plain_sha256 != *expected {
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
        let inner = open_zip(Cow::Owned(plain), false, &self.limits)?;
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
    fn new(mut zip: Zip<'a>, manifest: &Manifest, limits: Limits, outer: bool) -> Result<Self> {
        let scan = scan_entries(&zip, &limits, outer)?;
        if !outer {
            // (The outer ZIP's were checked by `open`.)
            check_local_headers(&mut zip)?;
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
            let mut on_line = |line: Line<'_>| match line.row {
                Some(row) => f(&table.name, row),
                None => Ok(()),
            };
            let mut on_progress = |rows: u64| {
                progress(Progress {
                    phase: Phase::Parse,
                    done: rows_before + rows,
                    total: total_rows,
                })
            };
            let summary = self.read_table_rows(&table, cap, &mut on_line, &mut on_progress)?;
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
        let cap = self.limits.max_entry_bytes;
        let mut keep = |line: Line<'_>| {
            rows.extend(line.row);
            Ok::<(), BackupError>(())
        };
        self.read_table_rows(&table, cap, &mut keep, &mut |_| {})?;
        Ok(Some(rows))
    }

    /// Stream the exact bytes of `data/<name>.jsonl`, one line at a time (with its line ending;
    /// trailing blank lines included, so the pieces make up the file byte for byte), to `f`,
    /// checking every line, the sha256 and the row count as it goes. `Ok(None)` if there is no
    /// such table. Memory stays at one line, whatever the table's size.
    ///
    /// The checks of the file as a whole (sha256, row count) come after its last line: a caller
    /// that must not keep anything of a bad archive writes where it can discard it (the CLI
    /// extracts into a temporary directory). An error returned by `f` stops the reading and is
    /// returned as is.
    pub fn for_each_line<E: From<BackupError>>(
        &mut self,
        name: &str,
        f: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<Option<TableSummary>, E> {
        let Some(table) = self.tables.iter().find(|t| t.name == name).cloned() else {
            return Ok(None);
        };
        let cap = self.limits.max_entry_bytes;
        let summary =
            self.read_table_rows(&table, cap, &mut |line: Line<'_>| f(line.raw), &mut |_| {})?;
        Ok(Some(summary))
    }

    /// The exact bytes of `data/<name>.jsonl`, after checking every line, the sha256 and the row
    /// count (`Ok(None)` if there is no such table). Holds the whole table in memory: prefer
    /// [`Self::for_each_line`].
    pub fn table_jsonl(&mut self, name: &str) -> Result<Option<(Vec<u8>, TableSummary)>> {
        let mut raw = Vec::new();
        let summary = self.for_each_line(name, &mut |line: &[u8]| {
            raw.extend_from_slice(line);
            Ok::<(), BackupError>(())
        })?;
        Ok(summary.map(|s| (raw, s)))
    }

    /// Read one table, line by line (each to `on_line`), then check it as a whole.
    fn read_table_rows<E: From<BackupError>>(
        &mut self,
        table: &TableEntry,
        cap: u64,
        on_line: &mut dyn FnMut(Line<'_>) -> Result<(), E>,
        on_progress: &mut dyn FnMut(u64),
    ) -> Result<TableSummary, E> {
        let mut reader = self.open_table(table, cap, true)?;
        while let Some(line) = reader.next_line() {
            let counted = line.row.is_some();
            on_line(line)?;
            if counted && reader.rows % 1024 == 0 {
                on_progress(reader.rows);
            }
        }
        let summary = reader.finish()?;
        on_progress(summary.rows);
        Ok(summary)
    }

    /// `hash`: compute the file's sha256 for the summary even if the manifest has none to check.
    fn open_table(
        &mut self,
        table: &TableEntry,
        cap: u64,
        hash: bool,
    ) -> Result<TableRows<'_, 'a>> {
        let name = table.name.as_str();
        let what = format!("data/{name}.jsonl");
        let expected = self.files.as_ref().and_then(|f| f.get(&what)).cloned();
        let raw = self.zip.by_index_raw(table.index).map_err(|e| {
            BackupError::corrupt_at(name, None, format!("cannot read the entry: {e}"))
        })?;
        let mut entry = EntryReader::new(raw, &what, table.declared, cap, true)?;
        if hash || expected.is_some() {
            entry = entry.hashing();
        }
        Ok(TableRows {
            lines: Lines::new(
                BufReader::with_capacity(64 * 1024, entry),
                name,
                self.limits.max_line_bytes,
            ),
            name: table.name.clone(),
            what,
            expected,
            expected_rows: self.row_counts.get(name).copied(),
            rows: 0,
            stop: None,
        })
    }

    /// Table `index` (in [`Self::table_names`] order) as a pull reader of rows, for callers
    /// that yield to an event loop between batches; `read_before` is the bytes of the tables
    /// read before it (the archive's total limit spans them all). Its checks as a whole come
    /// with [`TableRows::finish`]; `None` past the last table.
    pub fn table_rows(
        &mut self,
        index: usize,
        read_before: u64,
    ) -> Result<Option<TableRows<'_, 'a>>> {
        let Some(table) = self.tables.get(index).cloned() else {
            return Ok(None);
        };
        let remaining = self.limits.max_total_bytes.saturating_sub(read_before);
        let cap = self.limits.max_entry_bytes.min(remaining);
        self.open_table(&table, cap, false).map(Some)
    }
}

type LinesOf<'z, 'a> = Lines<BufReader<EntryReader<ZipEntry<'z, 'a>>>>;

/// One `data/<table>.jsonl` being read (see [`ArchiveData::table_rows`]).
pub struct TableRows<'z, 'a> {
    lines: LinesOf<'z, 'a>,
    name: String,
    what: String,
    expected: Option<FileEntry>,
    expected_rows: Option<u64>,
    rows: u64,
    stop: Option<Stop>,
}

impl TableRows<'_, '_> {
    /// The table's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Up to `max` further rows; empty at the end of the file or at the first bad line (which
    /// [`Self::finish`] reports).
    pub fn next_rows(&mut self, max: usize) -> Vec<Row> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.next_line() {
                Some(line) => out.extend(line.row),
                None => break,
            }
        }
        out
    }

    /// [`Self::next_rows`], each row kept as its checked JSON text (a fraction of the memory of
    /// a parsed row), parsed when used.
    pub fn next_raw_rows(&mut self, max: usize) -> Vec<RawRow> {
        let mut out = Vec::new();
        while out.len() < max && self.stop.is_none() {
            let read = self.lines.next_checked();
            match counted(read, &mut self.rows, &mut self.stop) {
                Some(line) => out.extend(line.row),
                None => break,
            }
        }
        out
    }

    /// The next line; `None` at the end of the file or when reading stopped.
    fn next_line(&mut self) -> Option<Line<'_>> {
        if self.stop.is_some() {
            return None;
        }
        let read = self.lines.next_line();
        counted(read, &mut self.rows, &mut self.stop)
    }

    /// Checks the table as a whole, after its last line: its sha256 (when the manifest lists
    /// one), then any line that stopped the reading, then its row count.
    pub fn finish(mut self) -> Result<TableSummary> {
        let failure = match self.stop.take() {
            None => None,
            Some(Stop::Io(e)) => Some(self.lines.reader_mut().get_mut().error_for(e)),
            Some(Stop::Content(e)) => {
                // Read on only to learn whether the file's hash matches (tampered or corrupt).
                if self.expected.is_some() {
                    let _ = io::copy(self.lines.reader_mut(), &mut io::sink());
                }
                Some(e)
            }
        };
        let entry = self.lines.into_inner().into_inner();
        let complete = entry.complete();
        let (bytes, sha256) = entry.finish();
        // A file hash that does not match is the strongest evidence: it wins over what else went
        // wrong, as long as every byte was read.
        if let Some(exp) = &self.expected {
            let sha = sha256.as_deref().unwrap_or_default();
            if complete && (!exp.sha256.eq_ignore_ascii_case(sha) || exp.bytes != bytes) {
                return Err(BackupError::ArchiveTampered(format!(
                    "{} does not match the sha256 in the manifest",
                    self.what
                )));
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if let Some(expected_rows) = self.expected_rows {
            if expected_rows != self.rows {
                return Err(BackupError::corrupt_at(
                    &self.name,
                    None,
                    format!(
                        "rowCounts says {expected_rows} rows, the file has {}",
                        self.rows
                    ),
                ));
            }
        }
        Ok(TableSummary {
            name: self.name,
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}

/// A line read: its row counted in `rows`; a failure kept in `stop` (and `None`).
fn counted<'l, T>(
    read: std::result::Result<Option<Line<'l, T>>, Stop>,
    rows: &mut u64,
    stop: &mut Option<Stop>,
) -> Option<Line<'l, T>> {
    match read {
        Ok(None) => None,
        Ok(Some(line)) => {
            if line.row.is_some() {
                *rows += 1;
            }
            Some(line)
        }
        Err(e) => {
            *stop = Some(e);
            None
        }
    }
}

fn open_zip<'b>(bytes: Cow<'b, [u8]>, outer: bool, limits: &Limits) -> Result<Zip<'b>> {
    let looks_like_zip = bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06");
    let what = |reason: String| {
        if !outer {
            BackupError::corrupt(format!("the unsealed data is not a valid ZIP: {reason}"))
        } else if looks_like_zip {
            BackupError::corrupt(format!("truncated or damaged ZIP: {reason}"))
        } else {
            BackupError::NotAManaArchive(format!("not a ZIP archive: {reason}"))
        }
    };
    // Our layout checks first: they bound what the zip crate will allocate.
    if layout::check(&bytes, limits)?.is_none() {
        return Err(what("no end of central directory record".into()));
    }
    let config = Config {
        archive_offset: ArchiveOffset::Known(0),
    };
    ZipArchive::with_config(config, Cursor::new(bytes)).map_err(|e| what(e.to_string()))
}

/// Every local header repeats its central-directory record (name, Unicode path, method, flags,
/// sizes, CRC), so a streaming reader sees the same entries as a seeking one. Checked by the
/// `zip` crate, after the names were (an unsafe name is `invalid_entry_name`, whatever else).
fn check_local_headers(zip: &mut Zip<'_>) -> Result<()> {
    zip.validate_header_consistency()
        .map_err(|e| BackupError::corrupt(format!("ambiguous ZIP: {e}")))
}

struct Scan {
    manifest: Option<usize>,
    /// index of `data.sealed`
    sealed: Option<usize>,
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
        if relevant && !entry::is_supported(entry.compression()) {
            return Err(entry::unsupported(&name, entry.compression()));
        }
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
            EntryKind::Sealed if outer => scan.sealed = Some(index),
            EntryKind::Data(table) => scan.tables.push(TableEntry {
                name: table,
                index,
                declared: Declared::of(&entry),
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
        .collect_inserted();
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

fn read_entry(
    zip: &mut Zip<'_>,
    index: usize,
    cap: u64,
    what: &str,
    check_crc: bool,
) -> Result<Vec<u8>> {
    let declared = zip
        .by_index_data(index)
        .map(|e| Declared::of(&e))
        .map_err(|e| BackupError::corrupt(format!("{what}: {e}")))?;
    let raw = zip
        .by_index_raw(index)
        .map_err(|e| BackupError::corrupt(format!("{what}: {e}")))?;
    EntryReader::new(raw, what, declared, cap, check_crc)?.read_all()
}
