//! Data-driven test over `tests/vectors/backup/*.mana` (rage/age `testdata` style).
//!
//! The vectors are written by an independent Python implementation of the original WebCrypto
//! writer (`tests/vectors/backup/generate.py`); each `<name>.mana` has a `<name>.expect.json`
//! with the passphrase and either the rows it must yield or the error code it must fail with.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use mana_sync::backup::{self, BackupError, Limits};
use serde_json::{Map, Value};

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/backup")
}

type Tables = Vec<(String, Vec<Map<String, Value>>)>;

struct Outcome {
    sealed: bool,
    key_check: bool,
    tables: Tables,
}

fn limits_from(expect: &Value) -> Limits {
    let mut limits = Limits::default();
    if let Some(l) = expect.get("limits") {
        let get = |k: &str| l.get(k).and_then(Value::as_u64);
        if let Some(v) = get("maxEntryBytes") {
            limits.max_entry_bytes = v;
        }
        if let Some(v) = get("maxTotalBytes") {
            limits.max_total_bytes = v;
        }
        if let Some(v) = get("maxLineBytes") {
            limits.max_line_bytes = v;
        }
        if let Some(v) = get("maxEntries") {
            limits.max_entries = v as usize;
        }
        if let Some(v) = get("maxDirectoryBytes") {
            limits.max_directory_bytes = v;
        }
    }
    limits
}

/// How the rows are read: every table at once (the CLI, native callers), or table by table
/// through the pull reader, as rows or as checked JSON text parsed afterwards (the browser's
/// import, between its yields).
#[derive(Clone, Copy, Debug)]
enum Reading {
    All,
    Pull,
    PullRaw,
}

const READINGS: [Reading; 3] = [Reading::All, Reading::Pull, Reading::PullRaw];

fn run(
    bytes: &[u8],
    passphrase: Option<&str>,
    limits: Limits,
    reading: Reading,
) -> Result<Outcome, BackupError> {
    let archive = backup::open_with_limits(bytes, limits)?;
    let mut data = match passphrase {
        Some(p) => archive.unseal(p, &mut |_| {})?,
        None => archive.data()?,
    };
    let tables = match reading {
        Reading::All => data.read_all(&mut |_| {})?,
        Reading::Pull => pull_all(&mut data, false)?,
        Reading::PullRaw => pull_all(&mut data, true)?,
    };
    Ok(Outcome {
        sealed: archive.is_sealed(),
        key_check: archive.has_key_check(),
        tables,
    })
}

/// Every table through [`backup::ArchiveData::table_rows`], a few rows at a time; `raw`: as
/// [`backup::RawRow`]s, each parsed once its table is read (an `id` kept is the row's).
fn pull_all(data: &mut backup::ArchiveData<'_>, raw: bool) -> Result<Tables, BackupError> {
    let (mut out, mut bytes) = (Vec::new(), 0);
    for index in 0.. {
        let Some(mut table) = data.table_rows(index, bytes)? else {
            break;
        };
        let mut rows = Vec::new();
        let mut raws = Vec::new();
        loop {
            let n = if raw {
                let batch = table.next_raw_rows(3);
                raws.extend_from_slice(&batch);
                batch.len()
            } else {
                let batch = table.next_rows(3);
                rows.extend_from_slice(&batch);
                batch.len()
            };
            if n == 0 {
                break;
            }
        }
        let summary = table.finish()?;
        for r in raws {
            let row = r.parse()?;
            assert_eq!(r.id(), row.get("id").and_then(Value::as_str));
            rows.push(row);
        }
        bytes += summary.bytes;
        out.push((summary.name, rows));
    }
    Ok(out)
}

fn check_vector(name: &str, bytes: &[u8], expect: &Value) -> Result<(), String> {
    for reading in READINGS {
        check_reading(bytes, expect, reading).map_err(|e| format!("{reading:?}: {e}"))?;
    }
    let _ = name;
    Ok(())
}

fn check_reading(bytes: &[u8], expect: &Value, reading: Reading) -> Result<(), String> {
    let passphrase = expect.get("passphrase").and_then(Value::as_str);
    let result = run(bytes, passphrase, limits_from(expect), reading);
    let exp = &expect["expect"];
    if let Some(ok) = exp.get("ok") {
        let out = result.map_err(|e| format!("expected success, got error[{}]: {e}", e.code()))?;
        if Some(out.sealed) != ok["sealed"].as_bool() {
            return Err(format!(
                "sealed = {}, expected {}",
                out.sealed, ok["sealed"]
            ));
        }
        if Some(out.key_check) != ok["keyCheck"].as_bool() {
            return Err(format!(
                "keyCheck = {}, expected {}",
                out.key_check, ok["keyCheck"]
            ));
        }
        let want = ok["tables"].as_object().ok_or("expect.ok.tables missing")?;
        let got: Map<String, Value> = out
            .tables
            .into_iter()
            .map(|(t, rows)| {
                (
                    t,
                    Value::Array(rows.into_iter().map(Value::Object).collect()),
                )
            })
            .collect();
        if &got != want {
            return Err(format!("rows differ:\n got  {got:?}\n want {want:?}"));
        }
        Ok(())
    } else {
        let code = exp["error"].as_str().ok_or("expect.error missing")?;
        let err = match result {
            Ok(_) => return Err(format!("expected error[{code}], but it imported")),
            Err(e) => e,
        };
        if err.code() != code {
            return Err(format!(
                "expected error[{code}], got error[{}]: {err}",
                err.code()
            ));
        }
        if let Some(t) = exp.get("table") {
            if err.table() != t.as_str() {
                return Err(format!("expected table {t}, got {:?} ({err})", err.table()));
            }
        }
        if let Some(l) = exp.get("line") {
            if err.line() != l.as_u64() {
                return Err(format!("expected line {l}, got {:?} ({err})", err.line()));
            }
        }
        // The message names what went wrong; a corrupt-row error names its table and line.
        let msg = err.to_string();
        if let (Some(t), Some(l)) = (err.table(), err.line()) {
            if !msg.contains(t) || !msg.contains(&l.to_string()) {
                return Err(format!("message {msg:?} does not name table {t} line {l}"));
            }
        }
        Ok(())
    }
}

#[test]
fn every_vector_meets_its_expectation() {
    let mut names: Vec<String> = std::fs::read_dir(vector_dir())
        .expect("vector dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "mana").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    let (mut oks, mut fails) = (0, 0);
    let mut failures = Vec::new();
    for name in &names {
        let dir = vector_dir();
        let bytes = std::fs::read(dir.join(format!("{name}.mana"))).unwrap();
        let expect_path = dir.join(format!("{name}.expect.json"));
        let expect: Value = match std::fs::read(&expect_path) {
            Ok(b) => serde_json::from_slice(&b).expect("expect.json parses"),
            Err(_) => {
                failures.push(format!("{name}: no {name}.expect.json"));
                continue;
            }
        };
        let is_ok = expect["expect"].get("ok").is_some();
        if name.starts_with("ok_") != is_ok {
            failures.push(format!(
                "{name}: name prefix disagrees with its expectation"
            ));
        }
        if is_ok {
            oks += 1;
        } else {
            fails += 1;
        }
        if let Err(e) = check_vector(name, &bytes, &expect) {
            failures.push(format!("{name}: {e}"));
        } else {
            println!("ok   {name}");
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        oks >= 5 && fails >= 25,
        "too few vectors: {oks} ok, {fails} fail"
    );
}

fn sealed_entry(bytes: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    zip.by_name("data.sealed")
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The `pbkdf2` crate gives WebCrypto's/Python's key; sealing the same inner ZIP with the same key
/// and IV reproduces the Python-made `data.sealed` byte for byte; the key checks agree.
#[test]
fn sealing_is_byte_identical_to_the_independent_writer() {
    let dir = vector_dir();
    for name in ["ok_sealed", "ok_sealed_600k"] {
        let bytes = std::fs::read(dir.join(format!("{name}.mana"))).unwrap();
        let expect: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}.expect.json"))).unwrap(),
        )
        .unwrap();
        let archive = backup::open(&bytes).unwrap();
        let params = archive.seal_params().expect("sealed");
        let pass = expect["passphrase"].as_str().unwrap();
        let key = backup::derive_key(pass.as_bytes(), &params.salt, params.iterations);
        assert_eq!(
            hex::encode(*key),
            expect["derivedKeyHex"].as_str().unwrap(),
            "{name}"
        );
        let kc = archive
            .manifest()
            .passphrase
            .as_ref()
            .unwrap()
            .key_check
            .clone()
            .unwrap();
        assert_eq!(
            backup::seal::b64_encode(&backup::key_check(&key)),
            kc,
            "{name}"
        );
    }
    let bytes = std::fs::read(dir.join("ok_sealed.mana")).unwrap();
    let archive = backup::open(&bytes).unwrap();
    let params = archive.seal_params().unwrap();
    let key = backup::derive_key(
        b"correct horse battery staple",
        &params.salt,
        params.iterations,
    );
    let mut inner = std::fs::read(dir.join("ok_sealed.inner.zip")).unwrap();
    backup::seal::encrypt_in_place(&key, &params.iv, &mut inner).unwrap();
    assert_eq!(inner, sealed_entry(&bytes));
}

/// The hand-written layout checks never panic: every truncation of a good archive (deflated,
/// streamed with data descriptors, with a zip64 end record) is refused with a code, and every
/// single-bit flip is read or refused with a code — the same rows or the same code whether the
/// tables are read at once or pulled a few rows at a time.
#[test]
fn every_truncation_and_bit_flip_is_refused_or_read_without_panic() {
    for name in [
        "ok_unsealed",
        "ok_unsealed_streamed",
        "ok_unsealed_zip64_end",
    ] {
        let bytes = std::fs::read(vector_dir().join(format!("{name}.mana"))).unwrap();
        for len in 0..bytes.len() {
            for reading in READINGS {
                let err = run(&bytes[..len], None, Limits::default(), reading)
                    .err()
                    .unwrap_or_else(|| panic!("{name} cut to {len} bytes was read ({reading:?})"));
                assert!(!err.code().as_str().is_empty());
            }
        }
        let mut flipped = bytes.clone();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                flipped[i] ^= 1 << bit;
                let all = run(&flipped, None, Limits::default(), Reading::All);
                for reading in [Reading::Pull, Reading::PullRaw] {
                    let pull = run(&flipped, None, Limits::default(), reading);
                    match (&all, pull) {
                        (Ok(a), Ok(p)) => assert_eq!(a.tables, p.tables, "{name} {bit}/{i}"),
                        (Err(a), Err(p)) => assert_eq!(a.code(), p.code(), "{name} {bit}/{i}"),
                        (a, p) => panic!(
                            "{name}, bit {bit} of byte {i}: read at once {:?}, {reading:?} {:?}",
                            a.as_ref().map(|_| ()),
                            p.map(|_| ())
                        ),
                    }
                }
                flipped[i] ^= 1 << bit;
            }
        }
    }
}
