//! Runs the real `mana-backup` binary: every subcommand, every failure code and its exit status,
//! passphrases from the environment and from stdin, `unzip -t` on what it writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mana_sync::backup::{self, BackupWriter, ManifestInfo, Scope};
use serde_json::{json, Value};

const PASS: &str = "correct horse battery staple";

fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors/backup")
        .join(format!("{name}.mana"))
}

struct Out {
    status: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// The `error[<code>]` of the last stderr line.
    fn code(&self) -> Option<&str> {
        let last = self.stderr.trim_end().lines().last()?;
        last.strip_prefix("error[")?.split(']').next()
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout not JSON ({e}): {}", self.stdout))
    }
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mana-backup"));
    cmd.args(args)
        .env_remove("MANA_PASS")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn mana-backup");
    if let Some(input) = stdin {
        // The tool may exit before it reads stdin (e.g. output_exists): a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    Out {
        status: out.status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn expect_failure(out: &Out, code: &str, status: i32) {
    assert_eq!(out.code(), Some(code), "stderr: {}", out.stderr);
    assert_eq!(
        out.status, status,
        "exit status for {code}; stderr: {}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on failure: {}",
        out.stdout
    );
}

#[test]
fn inspect_prints_the_manifest_without_a_passphrase() {
    for (name, sealed) in [("ok_unsealed", false), ("ok_sealed", true)] {
        let out = run(&["inspect", p(&vector(name))], &[], None);
        assert_eq!(out.status, 0, "{}", out.stderr);
        let m = out.json();
        assert_eq!(m["formatVersion"], 2);
        assert_eq!(m["rowCounts"]["notes"], 3);
        assert_eq!(m["passphrase"].is_object(), sealed);
        if sealed {
            assert_eq!(m["passphrase"]["kdfIterations"], 1000);
        }
    }
    let out = run(
        &["inspect", p(&vector("fail_unsupported_version"))],
        &[],
        None,
    );
    expect_failure(&out, "unsupported_format_version", 6);
}

#[test]
fn verify_reports_tables_and_takes_the_passphrase_from_env_or_stdin() {
    let out = run(&["verify", p(&vector("ok_unsealed"))], &[], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    let r = out.json();
    assert_eq!(
        (r["ok"].clone(), r["sealed"].clone(), r["rows"].clone()),
        (json!(true), json!(false), json!(5))
    );

    let sealed = vector("ok_sealed");
    let out = run(
        &["verify", p(&sealed), "--passphrase-env", "MANA_PASS"],
        &[("MANA_PASS", PASS)],
        None,
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["sealed"], true);
    assert_eq!(out.json()["tables"][0]["name"], "notes");

    let out = run(
        &["verify", p(&sealed), "--passphrase-stdin"],
        &[],
        Some(&format!("{PASS}\n")),
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    // CRLF from a Windows-made file works too.
    let out = run(
        &["verify", p(&sealed), "--passphrase-stdin"],
        &[],
        Some(&format!("{PASS}\r\n")),
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
}

#[test]
fn every_failure_code_has_its_exit_status() {
    let env = [("MANA_PASS", PASS)];
    let with_pass = |name: &str| {
        run(
            &["verify", p(&vector(name)), "--passphrase-env", "MANA_PASS"],
            &env,
            None,
        )
    };
    // No terminal and no source given: the passphrase is required, never prompted for blindly.
    expect_failure(
        &run(&["verify", p(&vector("ok_sealed"))], &[], None),
        "passphrase_required",
        3,
    );
    expect_failure(
        &run(
            &[
                "verify",
                p(&vector("ok_sealed")),
                "--passphrase-env",
                "MANA_PASS",
            ],
            &[],
            None,
        ),
        "passphrase_required",
        3,
    );
    expect_failure(
        &run(
            &["verify", p(&vector("ok_sealed")), "--passphrase-stdin"],
            &[],
            Some(""),
        ),
        "passphrase_required",
        3,
    );
    expect_failure(
        &run(
            &[
                "verify",
                p(&vector("ok_sealed")),
                "--passphrase-env",
                "MANA_PASS",
            ],
            &[("MANA_PASS", "nope")],
            None,
        ),
        "wrong_passphrase",
        3,
    );
    expect_failure(
        &run(
            &[
                "verify",
                p(&vector("fail_no_keycheck_wrong_passphrase")),
                "--passphrase-stdin",
            ],
            &[],
            Some("nope\n"),
        ),
        "wrong_passphrase_or_tampered",
        3,
    );
    expect_failure(
        &with_pass("fail_tampered_ciphertext"),
        "archive_tampered",
        4,
    );
    expect_failure(
        &with_pass("fail_tampered_plaintext_sha"),
        "archive_tampered",
        4,
    );
    expect_failure(&with_pass("fail_tampered_file_sha"), "archive_tampered", 4);
    let out = with_pass("fail_bad_jsonl_array");
    expect_failure(&out, "archive_corrupt", 4);
    assert!(
        out.stderr.contains("\"notes\"") && out.stderr.contains("line 3"),
        "{}",
        out.stderr
    );
    expect_failure(&with_pass("fail_truncated"), "archive_corrupt", 4);
    expect_failure(&with_pass("fail_zip_bomb_declared"), "archive_too_large", 4);
    for name in [
        "fail_traversal_dotdot",
        "fail_traversal_absolute",
        "fail_traversal_backslash",
    ] {
        expect_failure(&with_pass(name), "invalid_entry_name", 4);
    }
    expect_failure(&with_pass("fail_not_a_zip"), "not_a_mana_archive", 6);
    expect_failure(
        &with_pass("fail_unsupported_version"),
        "unsupported_format_version",
        6,
    );
    expect_failure(
        &run(&["verify", "/nonexistent/x.mana"], &[], None),
        "io_error",
        5,
    );
    // Usage errors, including any attempt to pass the passphrase as an argument.
    expect_failure(
        &run(
            &["verify", p(&vector("ok_sealed")), "--passphrase", PASS],
            &[],
            None,
        ),
        "usage",
        2,
    );
    expect_failure(&run(&["frobnicate"], &[], None), "usage", 2);
    expect_failure(&run(&[], &[], None), "usage", 2);
    expect_failure(
        &run(
            &[
                "verify",
                p(&vector("ok_sealed")),
                "--passphrase-stdin",
                "--passphrase-env",
                "X",
            ],
            &[],
            None,
        ),
        "usage",
        2,
    );
    expect_failure(
        &run(
            &[
                "seal",
                p(&vector("ok_unsealed")),
                "-o",
                "/tmp/x.mana",
                "--iterations",
                "0",
            ],
            &[],
            None,
        ),
        "usage",
        2,
    );
}

#[test]
fn help_documents_the_exit_statuses() {
    let out = run(&["--help"], &[], None);
    assert_eq!(out.status, 0);
    for needle in [
        "2  usage",
        "3  passphrase",
        "4  integrity",
        "5  I/O",
        "6  not an archive",
        "--passphrase-env",
        "--passphrase-stdin",
    ] {
        assert!(
            out.stdout.contains(needle),
            "--help lacks {needle:?}:\n{}",
            out.stdout
        );
    }
}

fn read_rows(bytes: &[u8], pass: Option<&str>) -> Vec<(String, Vec<backup::Row>)> {
    let a = backup::open(bytes).unwrap();
    let mut d = match pass {
        Some(p) => a.unseal(p, &mut |_| {}).unwrap(),
        None => a.data().unwrap(),
    };
    d.read_all(&mut |_| {}).unwrap()
}

#[test]
fn extract_writes_manifest_and_jsonl_files() {
    let dir = tempfile::tempdir().unwrap();
    let outdir = dir.path().join("out");
    let out = run(
        &[
            "extract",
            p(&vector("ok_sealed")),
            "-o",
            p(&outdir),
            "--passphrase-stdin",
        ],
        &[],
        Some(PASS),
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(outdir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["formatVersion"], 2);
    let notes = std::fs::read_to_string(outdir.join("data/notes.jsonl")).unwrap();
    assert_eq!(notes.lines().count(), 3);
    assert!(notes.starts_with("{\"id\":\"n1\""));
    assert_eq!(std::fs::read(outdir.join("data/empty.jsonl")).unwrap(), b"");
    // Exactly those files.
    let mut names: Vec<String> = std::fs::read_dir(outdir.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["empty.jsonl", "notes.jsonl", "todo_items.jsonl"]);

    // Nothing is overwritten without --force.
    let again = run(
        &["extract", p(&vector("ok_unsealed")), "-o", p(&outdir)],
        &[],
        None,
    );
    expect_failure(&again, "output_exists", 5);
    let forced = run(
        &[
            "extract",
            p(&vector("ok_unsealed")),
            "-o",
            p(&outdir),
            "--force",
        ],
        &[],
        None,
    );
    assert_eq!(forced.status, 0, "{}", forced.stderr);

    // A hostile archive writes nothing at all.
    for name in [
        "fail_traversal_dotdot",
        "fail_bad_jsonl_array",
        "fail_tampered_file_sha",
    ] {
        let target = dir.path().join(name);
        let out = run(&["extract", p(&vector(name)), "-o", p(&target)], &[], None);
        assert_eq!(out.status, 4, "{name}: {}", out.stderr);
        assert!(!target.exists(), "{name}: nothing may be written");
    }
    assert!(!dir.path().join("evil.jsonl").exists());
}

#[test]
fn unseal_then_seal_round_trips_and_unzip_accepts_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain.mana");
    let sealed = dir.path().join("sealed.mana");
    let out = run(
        &[
            "unseal",
            p(&vector("ok_sealed")),
            "-o",
            p(&plain),
            "--passphrase-env",
            "MANA_PASS",
        ],
        &[("MANA_PASS", PASS)],
        None,
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    let original = read_rows(&std::fs::read(vector("ok_sealed")).unwrap(), Some(PASS));
    let plain_bytes = std::fs::read(&plain).unwrap();
    assert!(!backup::open(&plain_bytes).unwrap().is_sealed());
    assert_eq!(read_rows(&plain_bytes, None), original);
    // The manifest's own fields survive the rewrite.
    let m = backup::open(&plain_bytes).unwrap().manifest().clone();
    assert_eq!(
        m.produced_by,
        "mana-web 1.4.2 (original writer, Python re-implementation)"
    );
    assert_eq!(m.exported_at, "2026-11-25T10:00:00.000Z");
    assert!(m.files.is_some());
    unzip_t(&plain);

    let out = run(
        &[
            "seal",
            p(&plain),
            "-o",
            p(&sealed),
            "--iterations",
            "1000",
            "--passphrase-stdin",
        ],
        &[],
        Some("new pass\n"),
    );
    assert_eq!(out.status, 0, "{}", out.stderr);
    let sealed_bytes = std::fs::read(&sealed).unwrap();
    let a = backup::open(&sealed_bytes).unwrap();
    assert!(a.is_sealed() && a.has_key_check());
    assert_eq!(a.seal_params().unwrap().iterations, 1000);
    assert_eq!(read_rows(&sealed_bytes, Some("new pass")), original);
    expect_failure(
        &run(
            &["verify", p(&sealed), "--passphrase-stdin"],
            &[],
            Some("old pass\n"),
        ),
        "wrong_passphrase",
        3,
    );

    // Refusals.
    expect_failure(
        &run(
            &["seal", p(&plain), "-o", p(&sealed), "--passphrase-stdin"],
            &[],
            Some("x\n"),
        ),
        "output_exists",
        5,
    );
    expect_failure(
        &run(
            &[
                "seal",
                p(&sealed),
                "-o",
                p(&dir.path().join("twice.mana")),
                "--passphrase-stdin",
            ],
            &[],
            Some("x\n"),
        ),
        "already_sealed",
        6,
    );
    expect_failure(
        &run(
            &[
                "seal",
                p(&plain),
                "-o",
                p(&dir.path().join("empty.mana")),
                "--passphrase-stdin",
            ],
            &[],
            Some("\n"),
        ),
        "invalid_passphrase",
        3,
    );
    assert!(!dir.path().join("empty.mana").exists());
    expect_failure(
        &run(
            &[
                "unseal",
                p(&vector("fail_tampered_ciphertext")),
                "-o",
                p(&dir.path().join("t.mana")),
                "--passphrase-stdin",
            ],
            &[],
            Some(PASS),
        ),
        "archive_tampered",
        4,
    );
    assert!(
        !dir.path().join("t.mana").exists(),
        "a failed unseal leaves no file"
    );

    // Interop: a reader that knows only the original fields (the Python one) reads what we wrote.
    python_check(&sealed, Some("new pass"));
    python_check(&plain, None);
}

#[test]
fn unzip_accepts_an_unsealed_archive_written_by_the_library() {
    let mut w = BackupWriter::new(ManifestInfo::new(
        "u1",
        "2026-11-25T10:00:00.000Z",
        Scope::Full,
    ));
    w.begin_table("notes").unwrap();
    for i in 0..500 {
        w.write_row(&json!({"id": format!("n{i}"), "text": "x".repeat(i % 50)}))
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lib.mana");
    std::fs::write(&path, w.finish_unsealed().unwrap()).unwrap();
    unzip_t(&path);
    let out = run(&["verify", p(&path)], &[], None);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert_eq!(out.json()["rows"], 500);
}

fn unzip_t(path: &Path) {
    match Command::new("unzip").arg("-t").arg(path).output() {
        Ok(o) => assert!(
            o.status.success(),
            "unzip -t failed: {}",
            String::from_utf8_lossy(&o.stdout)
        ),
        Err(_) => println!("note: `unzip` is not installed; skipping the unzip -t check"),
    }
}

fn python_check(path: &Path, pass: Option<&str>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/backup/generate.py");
    let has_crypto = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_crypto {
        println!(
            "note: python3 with `cryptography` is absent; skipping the independent-reader check"
        );
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg("check").arg(path);
    if let Some(pw) = pass {
        cmd.arg(pw);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "independent reader failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["sealed"], pass.is_some());
    assert_eq!(report["rowCounts"]["notes"], 3);
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Entries of `dir`, sorted (to show that nothing, not even a temporary directory, was left).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[cfg(unix)]
#[test]
fn extract_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let archive = vector("ok_unsealed");

    // A symlink where a file goes, where data/ goes, and as the output directory itself.
    let out_file = dir.path().join("out_file");
    std::fs::create_dir(&out_file).unwrap();
    symlink(&victim, &out_file.join("manifest.json"));
    let out_table = dir.path().join("out_table");
    std::fs::create_dir_all(out_table.join("data")).unwrap();
    symlink(&victim, &out_table.join("data/notes.jsonl"));
    let out_data = dir.path().join("out_data");
    std::fs::create_dir(&out_data).unwrap();
    symlink(&elsewhere, &out_data.join("data"));
    let out_link = dir.path().join("out_link");
    symlink(&elsewhere, &out_link);

    for out in [&out_file, &out_table, &out_data, &out_link] {
        for force in [false, true] {
            let mut args = vec!["extract", p(&archive), "-o", p(out)];
            if force {
                args.push("--force");
            }
            let res = run(&args, &[], None);
            expect_failure(&res, "output_symlink", 5);
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
            assert!(listing(&elsewhere).is_empty(), "{:?}", listing(&elsewhere));
        }
    }
    // Nothing else appeared next to them (no temporary directory left).
    assert_eq!(
        listing(dir.path()),
        [
            "elsewhere",
            "out_data",
            "out_file",
            "out_link",
            "out_table",
            "victim.txt"
        ]
    );
}

#[test]
fn extract_failing_halfway_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    // The second table's file exists: without --force nothing at all is written (before, the
    // manifest and the first table were).
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("data")).unwrap();
    std::fs::write(out.join("data/todo_items.jsonl"), "mine").unwrap();
    let res = run(
        &["extract", p(&vector("ok_unsealed")), "-o", p(&out)],
        &[],
        None,
    );
    expect_failure(&res, "output_exists", 5);
    assert_eq!(listing(&out), ["data"]);
    assert_eq!(listing(&out.join("data")), ["todo_items.jsonl"]);
    assert_eq!(
        std::fs::read_to_string(out.join("data/todo_items.jsonl")).unwrap(),
        "mine"
    );

    // The first table is good, the second has a bad line: the extraction fails while writing,
    // and neither the target nor a temporary directory remains.
    for (name, target) in [
        ("fail_sealed_bad_jsonl", "fresh"),
        ("fail_sealed_bad_jsonl", "out"),
    ] {
        let target = dir.path().join(target);
        let res = run(
            &[
                "extract",
                p(&vector(name)),
                "-o",
                p(&target),
                "--force",
                "--passphrase-env",
                "MANA_PASS",
            ],
            &[("MANA_PASS", PASS)],
            None,
        );
        expect_failure(&res, "archive_corrupt", 4);
    }
    assert_eq!(listing(dir.path()), ["out"]);
    assert_eq!(listing(&out), ["data"]);
    assert_eq!(listing(&out.join("data")), ["todo_items.jsonl"]);

    // With --force into the existing directory, the whole archive replaces its files.
    let res = run(
        &[
            "extract",
            p(&vector("ok_unsealed")),
            "-o",
            p(&out),
            "--force",
        ],
        &[],
        None,
    );
    assert_eq!(res.status, 0, "{}", res.stderr);
    assert_eq!(listing(&out), ["data", "manifest.json"]);
    assert_eq!(
        listing(&out.join("data")),
        ["empty.jsonl", "notes.jsonl", "todo_items.jsonl"]
    );
    assert!(std::fs::read_to_string(out.join("data/todo_items.jsonl"))
        .unwrap()
        .starts_with("{\"id\":\"t1\""));
    assert_eq!(listing(dir.path()), ["out"]);
}

/// A table several times larger than the address space the process may use extracts: it is
/// streamed line by line, never held whole (before, `extract` allocated the whole table and was
/// killed). Deterministic: an address-space limit (`ulimit -v`), no timing.
#[cfg(unix)]
#[test]
fn extract_streams_a_table_larger_than_its_address_space() {
    const LINE_BYTES: usize = 1 << 20;
    const LINES: usize = 384; // 384 MiB of JSONL, from an archive of a few hundred KB
    const ADDRESS_SPACE_KIB: u64 = 160 << 10; // 160 MiB
    let line = format!(
        "{{\"id\":\"big\",\"text\":\"{}\"}}",
        "x".repeat(LINE_BYTES - 28)
    );
    let mut w = BackupWriter::new(ManifestInfo::new(
        "u1",
        "2026-11-25T10:00:00.000Z",
        Scope::Full,
    ));
    w.begin_table("big").unwrap();
    for _ in 0..LINES {
        w.write_raw_line(line.as_bytes()).unwrap();
    }
    let bytes = w.finish_unsealed().unwrap();
    assert!(bytes.len() < 8 << 20, "archive of {} bytes", bytes.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mana");
    std::fs::write(&path, &bytes).unwrap();
    drop(bytes);
    let out = dir.path().join("out");
    let cmd = format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" extract \"$1\" -o \"$2\"",);
    let o = Command::new("sh")
        .args([
            "-c",
            &cmd,
            env!("CARGO_BIN_EXE_mana-backup"),
            p(&path),
            p(&out),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "extract under a {ADDRESS_SPACE_KIB} KiB address space: {:?} {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let len = std::fs::metadata(out.join("data/big.jsonl")).unwrap().len();
    assert_eq!(len, (LINES * (line.len() + 1)) as u64);
    // The baseline: the same limit leaves room for the process itself (a run with a tiny
    // archive succeeds), so the limit measures the table, not the binary.
    let small = dir.path().join("small");
    let o = Command::new("sh")
        .args([
            "-c",
            &cmd,
            env!("CARGO_BIN_EXE_mana-backup"),
            p(&vector("ok_unsealed")),
            p(&small),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
