//! Where the passphrase comes from: an environment variable, the first line of stdin, or a prompt
//! on the terminal — never a command-line argument (it would show in `ps` and shell history).

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use crate::failure::Failure;

/// Longest passphrase accepted (bytes).
const MAX_LEN: usize = 4096;

pub enum PassphraseSource {
    Env(String),
    Stdin,
    Prompt,
}

/// The passphrase to open a sealed archive.
pub fn read(source: &PassphraseSource) -> Result<Zeroizing<String>, Failure> {
    get(source, false)
}

/// The passphrase to seal with (asked twice on a terminal; never empty).
pub fn read_new(source: &PassphraseSource) -> Result<Zeroizing<String>, Failure> {
    get(source, true)
}

fn get(source: &PassphraseSource, new: bool) -> Result<Zeroizing<String>, Failure> {
    let pass = match source {
        PassphraseSource::Env(var) => match std::env::var(var) {
            Ok(v) => Zeroizing::new(v),
            Err(std::env::VarError::NotPresent) => {
                return Err(Failure::new(
                    "passphrase_required",
                    format!("environment variable {var} is not set"),
                ))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                return Err(Failure::new(
                    "invalid_passphrase",
                    format!("environment variable {var} is not valid UTF-8"),
                ))
            }
        },
        PassphraseSource::Stdin => {
            let mut line = Zeroizing::new(String::new());
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| Failure::io(format!("cannot read the passphrase from stdin: {e}")))?;
            if line.is_empty() {
                return Err(Failure::new(
                    "passphrase_required",
                    "standard input is empty: no passphrase",
                ));
            }
            let trimmed = line.trim_end_matches(['\n', '\r']).len();
            line.truncate(trimmed);
            line
        }
        PassphraseSource::Prompt => {
            if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
                return Err(Failure::new(
                    "passphrase_required",
                    "the archive needs a passphrase: give --passphrase-env VAR or \
                     --passphrase-stdin (no terminal to prompt on)",
                ));
            }
            let first = prompt(if new {
                "New passphrase: "
            } else {
                "Passphrase: "
            })?;
            if new {
                let again = prompt("Repeat passphrase: ")?;
                if *again != *first {
                    return Err(Failure::new(
                        "invalid_passphrase",
                        "the two passphrases differ",
                    ));
                }
            }
            first
        }
    };
    if pass.len() > MAX_LEN {
        return Err(Failure::new(
            "invalid_passphrase",
            format!("passphrase longer than {MAX_LEN} bytes"),
        ));
    }
    if new && pass.is_empty() {
        return Err(Failure::new(
            "invalid_passphrase",
            "refusing to seal with an empty passphrase",
        ));
    }
    Ok(pass)
}

fn prompt(text: &str) -> Result<Zeroizing<String>, Failure> {
    rpassword::prompt_password(text)
        .map(Zeroizing::new)
        .map_err(|e| Failure::io(format!("cannot read the passphrase from the terminal: {e}")))
}
