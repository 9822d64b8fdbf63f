//! One ZIP entry's uncompressed bytes, checked against what its headers declare and against a
//! size cap while they are produced.
//!
//! The `zip` crate gives the entry's raw (compressed) bytes; `flate2` inflates them. Every way the
//! bytes can disagree with the headers has its own class, decided from counts kept here rather
//! than from another crate's error text:
//! - more bytes than the cap, or than the declared size: `archive_too_large` (a zip bomb);
//! - fewer bytes than declared, a CRC-32 mismatch, a broken deflate stream: `archive_corrupt`.
//!
//! The reader fails once and stays failed; [`EntryReader::take_failure`] gives the typed error
//! behind the `io::Error` its `Read` returned.

use std::io::{self, Read};

use flate2::read::DeflateDecoder;
use sha2::{Digest, Sha256};
use zip::CompressionMethod;

use super::error::{BackupError, Result};

/// What the central directory says of an entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Declared {
    pub method: CompressionMethod,
    pub size: u64,
    pub crc32: u32,
}

impl Declared {
    pub fn of(entry: &zip::read::ZipFileEntry<'_>) -> Self {
        Declared {
            method: entry.compression(),
            size: entry.size(),
            crc32: entry.crc32(),
        }
    }
}

/// The compression methods a `.mana` archive may use.
pub(crate) fn is_supported(method: CompressionMethod) -> bool {
    // The constants, not the variants: `Deflated` is only a variant with a `zip` deflate
    // feature, which the library does not enable (it inflates with `flate2` itself).
    method == CompressionMethod::STORE || method == CompressionMethod::DEFLATE
}

enum Decoder<R: Read> {
    Stored(R),
    Deflated(DeflateDecoder<R>),
}

/// Reads one entry, hashing (sha256) and counting what it yields.
pub(crate) struct EntryReader<R: Read> {
    inner: Decoder<R>,
    what: String,
    declared: Declared,
    cap: u64,
    check_crc: bool,
    read: u64,
    crc: crc32fast::Hasher,
    sha: Option<Sha256>,
    /// Reached the end with every byte read (whether or not the end checks passed).
    complete: bool,
    failure: Option<BackupError>,
    failed: bool,
}

impl<R: Read> EntryReader<R> {
    /// `raw` are the entry's compressed bytes. `check_crc` is off for `data.sealed`, whose AEAD
    /// tag is the authority (a changed ciphertext is tampering, not a damaged ZIP).
    pub fn new(raw: R, what: &str, declared: Declared, cap: u64, check_crc: bool) -> Result<Self> {
        let inner = match declared.method {
            m if m == CompressionMethod::STORE => Decoder::Stored(raw),
            m if m == CompressionMethod::DEFLATE => Decoder::Deflated(DeflateDecoder::new(raw)),
            other => return Err(unsupported(what, other)),
        };
        Ok(EntryReader {
            inner,
            what: what.to_string(),
            declared,
            cap,
            check_crc,
            read: 0,
            crc: crc32fast::Hasher::new(),
            sha: None,
            complete: false,
            failure: None,
            failed: false,
        })
    }

    /// Also hash what is read (sha256), for [`Self::finish`].
    pub fn hashing(mut self) -> Self {
        self.sha = Some(Sha256::new());
        self
    }

    /// The typed error behind the last `io::Error`, if this reader produced it.
    pub fn take_failure(&mut self) -> Option<BackupError> {
        self.failure.take()
    }

    /// Whether every byte was read to the end (the sha256 covers the whole entry).
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// Bytes read so far and the lowercase hex sha256 of them (`None` unless [`Self::hashing`]).
    pub fn finish(self) -> (u64, Option<String>) {
        let sha = self.sha.map(|h| hex::encode(h.finalize()));
        (self.read, sha)
    }

    /// Read everything into memory (the manifest, `data.sealed`).
    pub fn read_all(mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        match self.read_to_end(&mut buf) {
            Ok(_) => Ok(buf),
            Err(e) => Err(self.error_for(e)),
        }
    }

    /// The typed error for an `io::Error` this reader returned.
    pub fn error_for(&mut self, e: io::Error) -> BackupError {
        self.take_failure().unwrap_or_else(|| {
            BackupError::corrupt(format!("{}: damaged ZIP entry: {e}", self.what))
        })
    }

    fn fail(&mut self, e: BackupError) -> io::Error {
        let msg = e.to_string();
        self.failure = Some(e);
        self.failed = true;
        io::Error::other(msg)
    }

    fn at_end(&mut self) -> io::Result<()> {
        self.complete = true;
        if self.read != self.declared.size {
            let e = BackupError::corrupt(format!(
                "{} holds {} bytes but its headers declare {}",
                self.what, self.read, self.declared.size
            ));
            return Err(self.fail(e));
        }
        if self.check_crc && self.crc.clone().finalize() != self.declared.crc32 {
            let e = BackupError::corrupt(format!(
                "{}: CRC-32 mismatch (the entry is damaged)",
                self.what
            ));
            return Err(self.fail(e));
        }
        Ok(())
    }
}

impl<R: Read> Read for EntryReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(format!("{}: already failed", self.what)));
        }
        if self.complete || buf.is_empty() {
            return Ok(0);
        }
        let n = match &mut self.inner {
            Decoder::Stored(r) => r.read(buf),
            Decoder::Deflated(r) => r.read(buf),
        };
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                let e =
                    BackupError::corrupt(format!("{}: damaged compressed data: {e}", self.what));
                return Err(self.fail(e));
            }
        };
        if n == 0 {
            self.at_end()?;
            return Ok(0);
        }
        self.read = self.read.saturating_add(n as u64);
        if self.read > self.cap {
            let e = BackupError::ArchiveTooLarge(format!(
                "{} decompresses to more than {} bytes",
                self.what, self.cap
            ));
            return Err(self.fail(e));
        }
        if self.read > self.declared.size {
            let e = BackupError::ArchiveTooLarge(format!(
                "{} inflates past its declared {} bytes (zip bomb)",
                self.what, self.declared.size
            ));
            return Err(self.fail(e));
        }
        self.crc.update(&buf[..n]);
        if let Some(sha) = &mut self.sha {
            sha.update(&buf[..n]);
        }
        Ok(n)
    }
}

pub(crate) fn unsupported(what: &str, method: CompressionMethod) -> BackupError {
    BackupError::UnsupportedFormatVersion(format!(
        "{what} is compressed with {method:?}; a .mana archive uses only stored or deflate"
    ))
}
