//! `mana-backup`: inspect, verify, extract, unseal and seal `.mana` v2 backup archives
//! (docs/backup.md) with the same code the browser uses (`mana_sync::backup`).

mod extract;
mod failure;
mod passphrase;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use mana_sync::backup::{self, ArchiveData, BackupWriter, ManifestInfo, OpenedArchive};
use serde_json::json;

use extract::Staging;
use failure::Failure;
use passphrase::PassphraseSource;

const EXIT_HELP: &str = "\
Passphrases are never taken from the command line: use --passphrase-env VAR, --passphrase-stdin
(first line of standard input), or answer the prompt on a terminal.

On failure the last line on stderr is `error[<code>]: <message>` and the exit status tells the class:
  0  success
  2  usage: bad arguments (error[usage])
  3  passphrase: passphrase_required, wrong_passphrase, wrong_passphrase_or_tampered,
     invalid_passphrase (empty, or the two prompts differ)
  4  integrity: archive_tampered, archive_corrupt, archive_too_large, invalid_entry_name
  5  I/O: io_error, output_exists (nothing is overwritten without --force),
     output_symlink (extract never writes through a symbolic link, even with --force)
  6  not an archive this tool reads: not_a_mana_archive, unsupported_format_version,
     already_sealed
  1  anything else (internal)";

#[derive(Parser)]
#[command(
    name = "mana-backup",
    version,
    about = "Inspect, verify, extract, unseal and seal .mana v2 backup archives",
    after_help = EXIT_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the manifest as JSON (sealed or not; no passphrase needed).
    Inspect {
        /// The .mana file.
        file: PathBuf,
    },
    /// Check every hash, line and row count, unsealing when sealed; print a JSON report.
    Verify {
        /// The .mana file.
        file: PathBuf,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Write manifest.json and data/<table>.jsonl into a directory. Tables are streamed into a
    /// temporary directory beside it and renamed into place once all of it was checked: a
    /// failure leaves nothing behind; symbolic links in the output are refused.
    Extract {
        /// The .mana file.
        file: PathBuf,
        /// Output directory (created if missing).
        #[arg(short, long)]
        output: PathBuf,
        /// Overwrite files that already exist in the directory.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Write an unsealed copy of a sealed archive.
    Unseal {
        /// The sealed .mana file.
        file: PathBuf,
        /// The unsealed .mana file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
    /// Write a sealed copy of an unsealed archive (new random salt and IV).
    Seal {
        /// The unsealed .mana file.
        file: PathBuf,
        /// The sealed .mana file to write.
        #[arg(short, long)]
        output: PathBuf,
        /// PBKDF2-SHA256 iterations.
        #[arg(long, default_value_t = backup::DEFAULT_ITERATIONS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(backup::MAX_ITERATIONS)))]
        iterations: u32,
        /// Overwrite the output file if it exists.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        pass: PassArgs,
    },
}

#[derive(Args, Clone)]
struct PassArgs {
    /// Read the passphrase from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_stdin")]
    passphrase_env: Option<String>,
    /// Read the passphrase from the first line of standard input.
    #[arg(long)]
    passphrase_stdin: bool,
}

impl PassArgs {
    fn source(&self) -> PassphraseSource {
        match (&self.passphrase_env, self.passphrase_stdin) {
            (Some(var), _) => PassphraseSource::Env(var.clone()),
            (None, true) => PassphraseSource::Stdin,
            (None, false) => PassphraseSource::Prompt,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return Failure::usage("a subcommand is required".into()).report();
            }
            return Failure::usage(e.to_string()).report();
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Inspect { file } => {
            let bytes = read_file(&file)?;
            let archive = backup::open(&bytes)?;
            print_json(archive.manifest())
        }
        Command::Verify { file, pass } => {
            let bytes = read_file(&file)?;
            let archive = backup::open(&bytes)?;
            let mut data = open_data(&archive, &pass)?;
            let tables = data.verify(&mut |_| {})?;
            let rows: u64 = tables.iter().map(|t| t.rows).sum();
            print_json(&json!({
                "ok": true,
                "sealed": archive.is_sealed(),
                "keyCheck": archive.has_key_check(),
                "rows": rows,
                "tables": tables.iter().map(|t| json!({
                    "name": t.name, "rows": t.rows, "bytes": t.bytes, "sha256": t.sha256,
                })).collect::<Vec<_>>(),
            }))
        }
        Command::Extract {
            file,
            output,
            force,
            pass,
        } => {
            let bytes = read_file(&file)?;
            let archive = backup::open(&bytes)?;
            let mut data = open_data(&archive, &pass)?;
            let names: Vec<String> = data.table_names().iter().map(|s| s.to_string()).collect();
            let manifest =
                serde_json::to_vec_pretty(archive.manifest()).map_err(Failure::internal)?;
            let mut staging = Staging::new(&output, &names, force)?;
            staging.write(Path::new("manifest.json"), |w| {
                w.write_all(&manifest)
                    .map_err(|e| Failure::io(format!("cannot write manifest.json: {e}")))
            })?;
            for name in &names {
                // Table names were validated (ASCII letters, digits, '_', '-', '.'), so the path
                // stays inside data/. Each line is checked, then written: one line in memory.
                let rel = Path::new("data").join(format!("{name}.jsonl"));
                staging.write(&rel, |w| {
                    data.for_each_line(name, &mut |line: &[u8]| {
                        w.write_all(line).map_err(|e| {
                            Failure::io(format!("cannot write {}: {e}", rel.display()))
                        })
                    })?
                    .ok_or_else(|| Failure::internal(format!("table {name} vanished")))
                    .map(drop)
                })?;
            }
            staging.commit()?;
            eprintln!(
                "extracted manifest.json and {} table(s) into {}",
                names.len(),
                output.display()
            );
            Ok(())
        }
        Command::Unseal {
            file,
            output,
            force,
            pass,
        } => {
            let bytes = read_file(&file)?;
            let archive = backup::open(&bytes)?;
            if !archive.is_sealed() {
                eprintln!("note: {} is not sealed; writing a copy", file.display());
            }
            check_output(&output, force)?;
            let mut data = open_data(&archive, &pass)?;
            data.verify(&mut |_| {})?;
            let out = rewrite(&archive, &mut data, BackupWriter::finish_unsealed)?;
            write_atomic(&output, &out, force)
        }
        Command::Seal {
            file,
            output,
            iterations,
            force,
            pass,
        } => {
            let bytes = read_file(&file)?;
            let archive = backup::open(&bytes)?;
            if archive.is_sealed() {
                return Err(Failure::new(
                    "already_sealed",
                    format!("{} is already sealed; unseal it first", file.display()),
                ));
            }
            check_output(&output, force)?;
            let mut data = archive.data()?;
            data.verify(&mut |_| {})?;
            let passphrase = passphrase::read_new(&pass.source())?;
            let out = rewrite(&archive, &mut data, |w| {
                w.finish_sealed_with_iterations(&passphrase, iterations)
            })?;
            write_atomic(&output, &out, force)
        }
    }
}

/// Re-pack the tables of `data` verbatim (rows keep their exact bytes) with the manifest's own
/// fields, then finish with `finish`.
fn rewrite(
    archive: &OpenedArchive<'_>,
    data: &mut ArchiveData<'_>,
    finish: impl FnOnce(BackupWriter<'static>) -> backup::Result<Vec<u8>>,
) -> Result<Vec<u8>, Failure> {
    let mut writer = BackupWriter::new(ManifestInfo::from_manifest(archive.manifest()));
    let names: Vec<String> = data.table_names().iter().map(|s| s.to_string()).collect();
    for name in names {
        writer.begin_table(&name)?;
        // One line at a time: the table is never held whole (only the archive being written).
        data.for_each_line(&name, &mut |line: &[u8]| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.iter().all(u8::is_ascii_whitespace) {
                writer.write_raw_line(line)?;
            }
            Ok::<(), Failure>(())
        })?
        .ok_or_else(|| Failure::internal(format!("table {name} vanished")))?;
    }
    Ok(finish(writer)?)
}

fn open_data<'a>(archive: &OpenedArchive<'a>, pass: &PassArgs) -> Result<ArchiveData<'a>, Failure> {
    if !archive.is_sealed() {
        return Ok(archive.data()?);
    }
    let passphrase = passphrase::read(&pass.source())?;
    Ok(archive.unseal(&passphrase, &mut |_| {})?)
}

fn read_file(path: &Path) -> Result<Vec<u8>, Failure> {
    let meta = fs::metadata(path)
        .map_err(|e| Failure::io(format!("cannot read {}: {e}", path.display())))?;
    let limit = backup::Limits::default().max_archive_bytes;
    if meta.len() > limit {
        return Err(backup::BackupError::ArchiveTooLarge(format!(
            "{} is {} bytes (limit {limit})",
            path.display(),
            meta.len()
        ))
        .into());
    }
    fs::read(path).map_err(|e| Failure::io(format!("cannot read {}: {e}", path.display())))
}

fn print_json(v: &impl serde::Serialize) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(Failure::internal)?;
    writeln!(out).map_err(|e| Failure::io(format!("cannot write to stdout: {e}")))
}

fn check_output(path: &Path, force: bool) -> Result<(), Failure> {
    if !force && path.exists() {
        return Err(Failure::new(
            "output_exists",
            format!("{} exists (use --force to overwrite)", path.display()),
        ));
    }
    Ok(())
}

/// Create `path` (refusing to follow or replace anything unless `force`).
fn write_new(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Failure::new(
                "output_exists",
                format!("{} exists (use --force to overwrite)", path.display()),
            )
        } else {
            Failure::io(format!("cannot write {}: {e}", path.display()))
        }
    })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Failure::io(format!("cannot write {}: {e}", path.display())))
}

/// Write to a temporary file next to `path`, then rename: a failed run leaves no half archive.
fn write_atomic(path: &Path, bytes: &[u8], force: bool) -> Result<(), Failure> {
    check_output(path, force)?;
    let file_name = path
        .file_name()
        .ok_or_else(|| Failure::io(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    write_new(&tmp, bytes, true)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Failure::io(format!("cannot write {}: {e}", path.display()))
    })?;
    eprintln!("wrote {} ({} bytes)", path.display(), bytes.len());
    Ok(())
}
