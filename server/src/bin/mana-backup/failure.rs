//! `error[<code>]: <message>` on stderr and an exit status per class (see `--help`).

use std::process::ExitCode;

use mana_sync::backup::BackupError;

/// A failed command: a stable code and a message.
#[derive(Debug)]
pub struct Failure {
    code: &'static str,
    message: String,
}

impl Failure {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// One line from clap's rendered error (its usage block is replaced by a pointer to --help).
    pub fn usage(rendered: String) -> Self {
        let first = rendered.lines().next().unwrap_or("invalid arguments");
        let first = first.strip_prefix("error: ").unwrap_or(first);
        Failure::new("usage", format!("{first} (see mana-backup --help)"))
    }

    pub fn io(message: impl Into<String>) -> Self {
        Failure::new("io_error", message)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Failure::new("internal", e.to_string())
    }

    /// Exit status of this failure's class.
    pub fn status(&self) -> u8 {
        status_of(self.code)
    }

    pub fn report(self) -> ExitCode {
        eprintln!("error[{}]: {}", self.code, self.message);
        ExitCode::from(self.status())
    }
}

/// Exit status for a code; kept in step with the table in `--help`.
pub fn status_of(code: &str) -> u8 {
    match code {
        "usage" => 2,
        "passphrase_required"
        | "wrong_passphrase"
        | "wrong_passphrase_or_tampered"
        | "invalid_passphrase" => 3,
        "archive_tampered" | "archive_corrupt" | "archive_too_large" | "invalid_entry_name" => 4,
        "io_error" | "output_exists" | "output_symlink" => 5,
        "not_a_mana_archive" | "unsupported_format_version" | "already_sealed" => 6,
        _ => 1,
    }
}

impl From<BackupError> for Failure {
    fn from(e: BackupError) -> Self {
        Failure::new(e.code().as_str(), e.to_string())
    }
}
