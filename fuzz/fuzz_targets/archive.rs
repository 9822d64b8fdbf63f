//! The whole archive open, as `mana-backup` and `importBackup` do it: ZIP layout, entry names and
//! sizes, manifest, then (unsealed) every JSONL line, hash and row count, or (sealed) the AEAD
//! layer with a fixed key and the inner ZIP behind it.
//!
//! Input: a `.mana` file as is, or, after a leading `S`, the *inner* ZIP of a sealed archive: it
//! is sealed here (the manifest of `tests/vectors/backup/ok_sealed.mana`, its key and IV, a fresh
//! `plaintextSha256`) so the fuzzer reaches the inner layer, which it could never do through
//! AES-GCM. Limits are small so a decompression bomb costs milliseconds, not gigabytes.
#![no_main]
use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mana_sync::backup::{open_with_limits, seal, ArchiveData, BackupError, Limits};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// PBKDF2 of ok_sealed's passphrase and salt (its `derivedKeyHex`).
const KEY_HEX: &str = "a69b179e3add3c1e0aaf227a0eb3aa2aa8645ab86fecf6ca00c17512697c719e";
const SEALED_TEMPLATE: &[u8] = include_bytes!("../../tests/vectors/backup/ok_sealed.mana");

fn key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| hex::decode(KEY_HEX).unwrap().try_into().unwrap())
}

fn limits() -> Limits {
    Limits {
        max_archive_bytes: 1 << 20,
        max_entry_bytes: 1 << 20,
        max_total_bytes: 2 << 20,
        max_entries: 256,
        max_directory_bytes: 64 << 10,
        max_line_bytes: 64 << 10,
        max_manifest_bytes: 64 << 10,
    }
}

/// The manifest of the sealed template, as JSON.
fn template_manifest() -> &'static Value {
    static M: OnceLock<Value> = OnceLock::new();
    M.get_or_init(|| {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(SEALED_TEMPLATE)).unwrap();
        let entry = zip.by_name("manifest.json").unwrap();
        serde_json::from_reader(entry).unwrap()
    })
}

/// An outer archive sealing `inner` with the template's manifest, key and IV.
fn seal_inner(inner: &[u8]) -> Vec<u8> {
    let mut manifest = template_manifest().clone();
    let pass = &mut manifest["passphrase"];
    pass["plaintextSha256"] = Value::String(hex::encode(Sha256::digest(inner)));
    let iv: [u8; 12] = seal::b64_decode(pass["ivBase64"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let mut sealed = inner.to_vec();
    seal::encrypt_in_place(key(), &iv, &mut sealed).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    out.start_file("manifest.json", stored).unwrap();
    out.write_all(&serde_json::to_vec_pretty(&manifest).unwrap())
        .unwrap();
    out.start_file("data.sealed", stored).unwrap();
    out.write_all(&sealed).unwrap();
    out.finish().unwrap().into_inner()
}

/// How far the archive got (printed with `FUZZ_ARCHIVE_DEBUG=1`, to check the seeds reach the rows).
fn exercise(bytes: &[u8]) -> Result<usize, BackupError> {
    let archive = open_with_limits(bytes, limits())?;
    let _ = archive.manifest().to_json_bytes();
    let _ = (archive.has_key_check(), archive.seal_params());
    let mut data = if archive.is_sealed() {
        archive.unseal_with_key(key(), &mut |_| {})?
    } else {
        archive.data()?
    };
    let summaries = data.verify(&mut |_| {});
    // The browser's import pulls the tables a few rows at a time, as checked text parsed
    // afterwards: it must reach the same verdict.
    match (&summaries, pull_raw(&mut data)) {
        (Ok(s), Ok(rows)) => assert_eq!(s.iter().map(|s| s.rows).sum::<u64>(), rows),
        (Err(a), Err(b)) => assert_eq!(a.code(), b.code(), "{a} / {b}"),
        (a, b) => panic!("verify {a:?}, the pull reader {b:?}"),
    }
    let summaries = summaries?;
    let names: Vec<String> = data.table_names().iter().map(|s| s.to_string()).collect();
    for name in &names {
        let mut bytes = 0usize;
        data.for_each_line::<BackupError>(name, &mut |line| {
            bytes += line.len();
            Ok(())
        })?;
    }
    Ok(summaries.iter().map(|s| s.rows as usize).sum())
}

/// Every table through `table_rows` and `next_raw_rows`, each row parsed: the rows read.
fn pull_raw(data: &mut ArchiveData<'_>) -> Result<u64, BackupError> {
    let (mut rows, mut bytes) = (0, 0);
    for index in 0.. {
        let Some(mut table) = data.table_rows(index, bytes)? else {
            break;
        };
        let mut raws = Vec::new();
        loop {
            let batch = table.next_raw_rows(7);
            if batch.is_empty() {
                break;
            }
            raws.extend(batch);
        }
        bytes += table.finish()?.bytes;
        for raw in raws {
            raw.parse()?;
            rows += 1;
        }
    }
    Ok(rows)
}

fuzz_target!(|data: &[u8]| {
    let result = match data.strip_prefix(b"S") {
        Some(inner) => exercise(&seal_inner(inner)),
        None => exercise(data),
    };
    if std::env::var_os("FUZZ_ARCHIVE_DEBUG").is_some() {
        eprintln!("archive: {:?}", result.map_err(|e| e.to_string()));
    }
});
