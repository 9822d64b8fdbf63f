//! `extract`'s output: everything is written into a temporary directory beside the target, then
//! renamed into place once the whole archive was read and checked. A failure at any point before
//! that leaves nothing behind; no path of the output is ever a symbolic link followed.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::failure::Failure;

/// A directory being extracted: the files land in `tmp` and move to `output` on [`Self::commit`].
pub struct Staging {
    output: PathBuf,
    tmp: PathBuf,
    force: bool,
    /// Paths relative to the output directory, in the order written.
    files: Vec<PathBuf>,
    committed: bool,
}

impl Staging {
    /// Check `output` and the files it will hold (`manifest.json`, `data/<table>.jsonl`), then
    /// create the temporary directory beside it.
    pub fn new(output: &Path, tables: &[String], force: bool) -> Result<Self, Failure> {
        let mut planned = vec![PathBuf::from("manifest.json")];
        planned.extend(
            tables
                .iter()
                .map(|t| Path::new("data").join(format!("{t}.jsonl"))),
        );
        check_target(output, &planned, force)?;
        let name = output
            .file_name()
            .ok_or_else(|| Failure::io(format!("{} is not a directory path", output.display())))?;
        let parent = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent)
            .map_err(|e| Failure::io(format!("cannot create {}: {e}", parent.display())))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".extract-{}.tmp", std::process::id()));
        let tmp = parent.join(tmp_name);
        // `create_dir` refuses an existing path (a symlink included): the directory is ours.
        fs::create_dir(&tmp)
            .and_then(|()| fs::create_dir(tmp.join("data")))
            .map_err(|e| Failure::io(format!("cannot create {}: {e}", tmp.display())))?;
        Ok(Staging {
            output: output.to_path_buf(),
            tmp,
            force,
            files: Vec::new(),
            committed: false,
        })
    }

    /// Write one file (`rel` to the output directory) with `fill`.
    pub fn write<F>(&mut self, rel: &Path, fill: F) -> Result<(), Failure>
    where
        F: FnOnce(&mut dyn Write) -> Result<(), Failure>,
    {
        let path = self.tmp.join(rel);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Failure::io(format!("cannot write {}: {e}", path.display())))?;
        self.files.push(rel.to_path_buf());
        let mut w = BufWriter::with_capacity(256 * 1024, file);
        fill(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| Failure::io(format!("cannot write {}: {}", path.display(), e.error())))?;
        file.sync_all()
            .map_err(|e| Failure::io(format!("cannot write {}: {e}", path.display())))
    }

    /// Move everything into place: the temporary directory becomes `output` if there is none,
    /// else each file is renamed into it (after the same checks as at the start).
    pub fn commit(mut self) -> Result<(), Failure> {
        match fs::symlink_metadata(&self.output) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::rename(&self.tmp, &self.output).map_err(|e| {
                    Failure::io(format!("cannot create {}: {e}", self.output.display()))
                })?;
            }
            _ => {
                check_target(&self.output, &self.files, self.force)?;
                let data = self.output.join("data");
                if fs::symlink_metadata(&data).is_err() {
                    fs::create_dir(&data).map_err(|e| {
                        Failure::io(format!("cannot create {}: {e}", data.display()))
                    })?;
                }
                let mut added: Vec<PathBuf> = Vec::new();
                for rel in &self.files {
                    let (src, dst) = (self.tmp.join(rel), self.output.join(rel));
                    let existed = fs::symlink_metadata(&dst).is_ok();
                    let result = check_file(&dst, self.force)
                        .and_then(|()| fs::rename(&src, &dst).map_err(|e| rename_failed(&dst, e)));
                    if let Err(e) = result {
                        // Take back what this run added (files it replaced under --force are
                        // gone: that is what --force asked for).
                        for rel in &added {
                            let _ = fs::remove_file(self.output.join(rel));
                        }
                        return Err(e);
                    }
                    if !existed {
                        added.push(rel.clone());
                    }
                }
                let _ = fs::remove_dir_all(&self.tmp);
            }
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // `remove_dir_all` does not follow symbolic links.
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

fn rename_failed(dst: &Path, e: std::io::Error) -> Failure {
    Failure::io(format!("cannot write {}: {e}", dst.display()))
}

/// `output` is a real directory (or absent), so is `output/data`, and no planned file is a
/// symbolic link (with or without `force`) or, without `force`, exists at all.
fn check_target(output: &Path, files: &[PathBuf], force: bool) -> Result<(), Failure> {
    if !check_dir(output)? {
        return Ok(()); // nothing below it exists either
    }
    let data_exists = check_dir(&output.join("data"))?;
    for rel in files {
        if data_exists || !rel.starts_with("data") {
            check_file(&output.join(rel), force)?;
        }
    }
    Ok(())
}

/// Whether `dir` exists (as a real directory; a symbolic link or a file is refused).
fn check_dir(dir: &Path) -> Result<bool, Failure> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink(dir)),
        Ok(m) if !m.is_dir() => Err(Failure::io(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Failure::io(format!("cannot read {}: {e}", dir.display()))),
    }
}

fn check_file(path: &Path, force: bool) -> Result<(), Failure> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(symlink(path)),
        Ok(m) if m.is_dir() => Err(Failure::io(format!(
            "{} exists and is a directory",
            path.display()
        ))),
        Ok(_) if !force => Err(Failure::new(
            "output_exists",
            format!("{} exists (use --force to overwrite)", path.display()),
        )),
        _ => Ok(()),
    }
}

fn symlink(path: &Path) -> Failure {
    Failure::new(
        "output_symlink",
        format!(
            "{} is a symbolic link: extract never writes through one (with or without --force)",
            path.display()
        ),
    )
}
