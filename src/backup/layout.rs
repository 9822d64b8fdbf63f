//! The byte layout of a ZIP, checked before the `zip` crate parses it, so that every ZIP reader —
//! one that seeks from the end record, one that streams local headers from the start, a lenient
//! one or a strict one — sees the same entries, and so that memory stays bounded by [`Limits`]
//! whatever the end record claims.
//!
//! A `.mana` ZIP must be laid out exactly as the writers lay it out:
//!
//! ```text
//! [local header + data (+ data descriptor)] × N   from offset 0, back to back, no gaps
//! [central directory: N records]                   exactly cd_size bytes
//! [zip64 end record + locator]                     only when the end record needs them
//! [end of central directory record + comment]      exactly one, ending at the end of the file
//! ```
//!
//! Anything else — bytes before the first local header or after the end record, two end
//! records, entries whose bytes overlap, a compressed size that runs past the central directory,
//! an entry count that disagrees with the directory — is `archive_corrupt`. That local headers
//! repeat their central-directory names and metadata ("zip cloaking") is checked by the `zip`
//! crate (`ZipArchive::validate_header_consistency`) once the layout is known to be sound.
//!
//! Only slices are read: no allocation proportional to what the archive declares, except one
//! small record per entry once the entry count is known to be within the limits.

use super::error::{BackupError, Result};
use super::Limits;

const EOCD_SIG: &[u8; 4] = b"PK\x05\x06";
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: &[u8; 4] = b"PK\x06\x07";
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: &[u8; 4] = b"PK\x06\x06";
const ZIP64_EOCD_FIXED: usize = 56;
const CENTRAL_SIG: &[u8; 4] = b"PK\x01\x02";
const CENTRAL_FIXED: usize = 46;
const LOCAL_SIG: &[u8; 4] = b"PK\x03\x04";
const LOCAL_FIXED: usize = 30;
const DESCRIPTOR_SIG: &[u8; 4] = b"PK\x07\x08";
const FLAG_DATA_DESCRIPTOR: u16 = 0x0008;

/// What the end records say, once checked against the limits and the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct End {
    /// Entries in the central directory.
    pub entries: u64,
    /// Offset of the central directory (from the start of the file).
    pub cd_offset: u64,
}

/// One central-directory record, as far as the layout needs it.
#[derive(Debug, Clone, Copy)]
struct Span {
    header: u64,
    flags: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
}

/// Check the layout of `bytes`. `Ok(None)` if there is no end of central directory record at all
/// (not a ZIP, or a ZIP cut short): the caller tells those apart.
pub(crate) fn check(bytes: &[u8], limits: &Limits) -> Result<Option<End>> {
    let Some((eocd, comment_len)) = find_end_record(bytes)? else {
        return Ok(None);
    };
    let comment = &bytes[eocd + EOCD_LEN..eocd + EOCD_LEN + comment_len];
    if contains(comment, EOCD_SIG) {
        return Err(BackupError::corrupt(
            "more than one end of central directory record (one inside the ZIP comment)",
        ));
    }
    let disk = u16_at(bytes, eocd + 4);
    let cd_disk = u16_at(bytes, eocd + 6);
    let entries_here = u16_at(bytes, eocd + 8);
    let mut entries = u64::from(u16_at(bytes, eocd + 10));
    let mut cd_size = u64::from(u32_at(bytes, eocd + 12));
    let mut cd_offset = u64::from(u32_at(bytes, eocd + 16));
    if disk != 0 || cd_disk != 0 || u64::from(entries_here) != entries {
        return Err(BackupError::corrupt(
            "multi-disk ZIP archives are not supported",
        ));
    }
    // Where the central directory must end: at the zip64 end record if there is one, else at
    // the end record itself.
    let mut cd_end = eocd as u64;
    let has_locator = eocd >= ZIP64_LOCATOR_LEN
        && &bytes[eocd - ZIP64_LOCATOR_LEN..eocd - ZIP64_LOCATOR_LEN + 4] == ZIP64_LOCATOR_SIG;
    let needs_zip64 = entries == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF;
    if has_locator {
        let locator = eocd - ZIP64_LOCATOR_LEN;
        let record = u64_at(bytes, locator + 8);
        if u32_at(bytes, locator + 4) != 0 || u32_at(bytes, locator + 16) > 1 {
            return Err(BackupError::corrupt(
                "multi-disk ZIP archives are not supported",
            ));
        }
        let record = usize::try_from(record)
            .ok()
            .filter(|&r| {
                r.checked_add(ZIP64_EOCD_FIXED)
                    .is_some_and(|e| e <= locator)
            })
            .filter(|&r| &bytes[r..r + 4] == ZIP64_EOCD_SIG)
            .ok_or_else(|| {
                BackupError::corrupt("the zip64 end record is not where its locator points")
            })?;
        let record_len = u64_at(bytes, record + 4);
        if record_len.checked_add(12) != Some((locator - record) as u64) {
            return Err(BackupError::corrupt(
                "data between the zip64 end record and its locator",
            ));
        }
        if u32_at(bytes, record + 16) != 0
            || u32_at(bytes, record + 20) != 0
            || u64_at(bytes, record + 24) != u64_at(bytes, record + 32)
        {
            return Err(BackupError::corrupt(
                "multi-disk ZIP archives are not supported",
            ));
        }
        // A 32-bit field either says "see zip64" or agrees with the zip64 record.
        let (e64, s64, o64) = (
            u64_at(bytes, record + 32),
            u64_at(bytes, record + 40),
            u64_at(bytes, record + 48),
        );
        if (entries != 0xFFFF && entries != e64)
            || (cd_size != 0xFFFF_FFFF && cd_size != s64)
            || (cd_offset != 0xFFFF_FFFF && cd_offset != o64)
        {
            return Err(BackupError::corrupt(
                "the end record and the zip64 end record disagree",
            ));
        }
        (entries, cd_size, cd_offset) = (e64, s64, o64);
        cd_end = record as u64;
    } else if needs_zip64 {
        return Err(BackupError::corrupt(
            "the end record refers to a zip64 end record that is missing",
        ));
    }

    // Bounded memory: refuse what the limits do not allow before anything is parsed.
    if entries > limits.max_entries as u64 {
        return Err(BackupError::ArchiveTooLarge(format!(
            "the end record declares {entries} entries (limit {})",
            limits.max_entries
        )));
    }
    if cd_size > limits.max_directory_bytes {
        return Err(BackupError::ArchiveTooLarge(format!(
            "the central directory is {cd_size} bytes (limit {})",
            limits.max_directory_bytes
        )));
    }
    if cd_offset.checked_add(cd_size) != Some(cd_end) {
        return Err(BackupError::corrupt(misplaced_directory(
            bytes, cd_offset, cd_size, cd_end,
        )));
    }

    // The central directory holds exactly `entries` records, back to back.
    let mut spans = Vec::with_capacity(entries as usize);
    let mut pos = cd_offset as usize;
    let cd_end = cd_end as usize;
    for i in 0..entries {
        let span = central_record(bytes, pos, cd_end)
            .ok_or_else(|| {
                BackupError::corrupt(format!(
                    "the central directory holds fewer records than the {entries} its end \
                     record declares (record {i} is damaged or missing)"
                ))
            })
            .and_then(|(span, len)| {
                pos += len;
                span
            })?;
        spans.push(span);
    }
    if pos != cd_end {
        return Err(BackupError::corrupt(format!(
            "the central directory holds more than the {entries} records its end record declares"
        )));
    }
    check_entries(bytes, &mut spans, cd_offset)?;
    Ok(Some(End { entries, cd_offset }))
}

/// Why the central directory does not end where the end records begin.
fn misplaced_directory(bytes: &[u8], cd_offset: u64, cd_size: u64, cd_end: u64) -> String {
    let Some(gap) = cd_end.checked_sub(cd_offset.saturating_add(cd_size)) else {
        return "the central directory runs past the end record".into();
    };
    let between = &bytes[(cd_end - gap) as usize..cd_end as usize];
    let real_start = (cd_end - cd_size) as usize;
    if contains(between, EOCD_SIG) {
        "more than one end of central directory record".into()
    } else if bytes[real_start..].starts_with(CENTRAL_SIG) {
        // The directory sits just before the end record, shifted by `gap`: bytes were put before
        // the archive without its offsets counting them.
        format!("{gap} bytes before the first local header")
    } else {
        format!("{gap} bytes between the central directory and the end record")
    }
}

/// The one end record whose comment reaches the end of the file.
fn find_end_record(bytes: &[u8]) -> Result<Option<(usize, usize)>> {
    if bytes.len() < EOCD_LEN {
        return Ok(None);
    }
    let lowest = bytes.len().saturating_sub(EOCD_LEN + 0xFFFF);
    let mut seen_signature = false;
    let mut found: Option<(usize, usize)> = None;
    for p in (lowest..=bytes.len() - EOCD_LEN).rev() {
        if &bytes[p..p + 4] != EOCD_SIG {
            continue;
        }
        seen_signature = true;
        let comment_len = usize::from(u16_at(bytes, p + 20));
        if p + EOCD_LEN + comment_len == bytes.len() {
            if found.is_some() {
                return Err(BackupError::corrupt(
                    "more than one end of central directory record",
                ));
            }
            found = Some((p, comment_len));
        }
    }
    match found {
        Some(f) => Ok(Some(f)),
        None if seen_signature => Err(BackupError::corrupt(
            "data after the end of central directory record",
        )),
        None => Ok(None),
    }
}

/// The record at `pos` and its length; `None` if it is not a whole record within `end`.
/// `Some((Err, _))` if it is whole but unusable.
fn central_record(bytes: &[u8], pos: usize, end: usize) -> Option<(Result<Span>, usize)> {
    let fixed_end = pos.checked_add(CENTRAL_FIXED)?;
    if fixed_end > end || &bytes[pos..pos + 4] != CENTRAL_SIG {
        return None;
    }
    let name_len = usize::from(u16_at(bytes, pos + 28));
    let extra_len = usize::from(u16_at(bytes, pos + 30));
    let comment_len = usize::from(u16_at(bytes, pos + 32));
    let len = CENTRAL_FIXED + name_len + extra_len + comment_len;
    if pos + len > end {
        return None;
    }
    let extra = &bytes[fixed_end + name_len..fixed_end + name_len + extra_len];
    let mut span = Span {
        header: u64::from(u32_at(bytes, pos + 42)),
        flags: u16_at(bytes, pos + 8),
        crc: u32_at(bytes, pos + 16),
        compressed: u64::from(u32_at(bytes, pos + 20)),
        uncompressed: u64::from(u32_at(bytes, pos + 24)),
    };
    let wants = [
        span.uncompressed == 0xFFFF_FFFF,
        span.compressed == 0xFFFF_FFFF,
        span.header == 0xFFFF_FFFF,
    ];
    if wants.iter().any(|w| *w) {
        let Some(field) = extra_field(extra, 0x0001) else {
            return Some((
                Err(BackupError::corrupt(
                    "a central-directory record lacks its zip64 extra field",
                )),
                len,
            ));
        };
        let mut values = field.chunks_exact(8).map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            u64::from_le_bytes(b)
        });
        let targets = [
            &mut span.uncompressed,
            &mut span.compressed,
            &mut span.header,
        ];
        for (want, target) in wants.into_iter().zip(targets) {
            if want {
                match values.next() {
                    Some(v) => *target = v,
                    None => {
                        return Some((
                            Err(BackupError::corrupt(
                                "a zip64 extra field is shorter than its record needs",
                            )),
                            len,
                        ))
                    }
                }
            }
        }
    }
    Some((Ok(span), len))
}

fn extra_field(mut extra: &[u8], id: u16) -> Option<&[u8]> {
    while extra.len() >= 4 {
        let (tag, size) = (u16_at(extra, 0), usize::from(u16_at(extra, 2)));
        let body = extra.get(4..4 + size)?;
        if tag == id {
            return Some(body);
        }
        extra = &extra[4 + size..];
    }
    None
}

/// The entries tile `[0, cd_offset)` exactly: the first local header at offset 0, each entry's
/// header, data and data descriptor followed at once by the next, the last followed by the
/// central directory.
fn check_entries(bytes: &[u8], spans: &mut [Span], cd_offset: u64) -> Result<()> {
    spans.sort_unstable_by_key(|s| s.header);
    let mut expected = 0u64;
    for span in spans.iter() {
        if span.header != expected {
            return Err(BackupError::corrupt(if expected == 0 {
                format!(
                    "{} bytes before the first local header",
                    span.header.min(cd_offset)
                )
            } else if span.header < expected {
                "two entries overlap (their bytes are shared)".to_string()
            } else {
                format!(
                    "{} unlisted bytes between two entries",
                    span.header - expected
                )
            }));
        }
        let header = usize::try_from(span.header)
            .ok()
            .filter(|&h| (h as u64).saturating_add(LOCAL_FIXED as u64) <= cd_offset)
            .filter(|&h| &bytes[h..h + 4] == LOCAL_SIG)
            .ok_or_else(|| BackupError::corrupt("a local header is missing or damaged"))?;
        let variable =
            u64::from(u16_at(bytes, header + 26)) + u64::from(u16_at(bytes, header + 28));
        let data_end = span
            .header
            .checked_add(LOCAL_FIXED as u64 + variable)
            .and_then(|d| d.checked_add(span.compressed))
            .filter(|&end| end <= cd_offset)
            .ok_or_else(|| {
                BackupError::corrupt(
                    "an entry's compressed size runs past its end (into the central directory \
                     or past the end of the file)",
                )
            })?;
        expected = data_end;
        if span.flags & FLAG_DATA_DESCRIPTOR != 0 {
            expected += descriptor_len(bytes, data_end as usize, cd_offset as usize, span)
                .ok_or_else(|| {
                    BackupError::corrupt("a data descriptor disagrees with the central directory")
                })?;
        }
    }
    if expected != cd_offset {
        return Err(BackupError::corrupt(if spans.is_empty() {
            "data before the central directory of an empty ZIP".to_string()
        } else {
            format!(
                "{} unlisted bytes between the last entry and the central directory",
                cd_offset.saturating_sub(expected)
            )
        }));
    }
    Ok(())
}

/// Length of the data descriptor at `at`: optional signature, CRC-32, then 32- or 64-bit sizes
/// that must repeat the central directory's.
fn descriptor_len(bytes: &[u8], at: usize, end: usize, span: &Span) -> Option<u64> {
    let area = bytes.get(at..end)?;
    let (sig, body) = match area.strip_prefix(DESCRIPTOR_SIG.as_slice()) {
        Some(rest) if u32_at_opt(rest, 0) == Some(span.crc) => (4, rest),
        _ => (0, area),
    };
    if u32_at_opt(body, 0)? != span.crc {
        return None;
    }
    let short = u32_at_opt(body, 4).map(u64::from) == Some(span.compressed)
        && u32_at_opt(body, 8).map(u64::from) == Some(span.uncompressed);
    if short && (span.compressed < 0xFFFF_FFFF && span.uncompressed < 0xFFFF_FFFF) {
        return Some(sig + 12);
    }
    let long = u64_at_opt(body, 4) == Some(span.compressed)
        && u64_at_opt(body, 12) == Some(span.uncompressed);
    long.then_some(sig + 20)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32_at_opt(b, at).unwrap_or(0)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64_at_opt(b, at).unwrap_or(0)
}

fn u32_at_opt(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at_opt(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}
