//! The ZIP container of the archives we write (APPNOTE 6.3.10), laid out as `layout` requires:
//! local header + data per entry, back to back from offset 0, then the central directory, then
//! the end record(s). No data descriptors: every header is complete (the sizes and CRC of a
//! streamed entry are patched into its local header once it is done).
//!
//! Written here rather than with the `zip` crate's writer because a `.mana` archive needs only
//! stored and deflated entries, and the wasm package is 39 KB (gzipped) smaller without that
//! writer (BENCHMARKS.md, "Package size"). Deflate is the caller's (`flate2`): an entry's bytes
//! arrive already compressed ([`ZipOut::add`]) or through [`ZipOut::write`] for a stored entry. Reading
//! stays with the `zip` crate (and `layout`), which the tests also use to check what is written
//! here.

use super::error::{BackupError, Result};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
/// Sizes and offsets at or above this go into a zip64 extra field.
const ZIP64_THRESHOLD: u64 = 0xFFFF_FFFF;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// Version made by: Unix (3), APPNOTE 4.5.
const MADE_BY: u16 = (3 << 8) | 45;
/// `-rw-r--r--` regular file, in the high half of the external attributes.
const EXTERNAL_ATTRIBUTES: u32 = 0o100_644 << 16;

/// How an entry's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Stored,
    Deflated,
}

impl Method {
    fn code(self) -> u16 {
        match self {
            Method::Stored => 0,
            Method::Deflated => 8,
        }
    }
}

/// The MS-DOS time and date of every entry (ZIP's timestamp format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DosTime {
    time: u16,
    date: u16,
}

impl DosTime {
    /// 1980-01-01 00:00:00, the earliest DOS date.
    pub const DEFAULT: DosTime = DosTime {
        time: 0,
        date: (1 << 5) | 1,
    };

    /// `None` outside 1980–2107 or for an impossible field.
    pub fn new(
        year: u16,
        month: u16,
        day: u16,
        hour: u16,
        minute: u16,
        second: u16,
    ) -> Option<Self> {
        let ok = (1980..=2107).contains(&year)
            && (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second <= 60;
        ok.then(|| DosTime {
            time: (hour << 11) | (minute << 5) | (second / 2),
            date: ((year - 1980) << 9) | (month << 5) | day,
        })
    }

    /// From `YYYY-MM-DDTHH:MM:SS…` (the manifest's `exportedAt`), or [`Self::DEFAULT`].
    pub fn from_iso(iso: &str) -> Self {
        let num = |r: std::ops::Range<usize>| iso.get(r).and_then(|s| s.parse::<u16>().ok());
        match (
            num(0..4),
            num(5..7),
            num(8..10),
            num(11..13),
            num(14..16),
            num(17..19),
        ) {
            (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => {
                Self::new(y, mo, d, h, mi, s).unwrap_or(Self::DEFAULT)
            }
            _ => Self::DEFAULT,
        }
    }
}

/// One entry, as its central-directory record needs it.
#[derive(Debug, Clone)]
struct Entry {
    name: String,
    method: Method,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    offset: u64,
    time: DosTime,
    /// Sizes in a zip64 extra field (local and central) rather than in the header.
    zip64_sizes: bool,
}

/// The entry being streamed by [`ZipOut::write`].
#[derive(Debug)]
struct Open {
    entry: Entry,
    crc: crc32fast::Hasher,
}

/// A ZIP being written into memory, entry by entry.
#[derive(Debug)]
pub(crate) struct ZipOut {
    out: Vec<u8>,
    entries: Vec<Entry>,
    open: Option<Open>,
    time: DosTime,
}

impl ZipOut {
    pub fn new(time: DosTime, capacity: usize) -> Self {
        ZipOut {
            out: Vec::with_capacity(capacity),
            entries: Vec::new(),
            open: None,
            time,
        }
    }

    /// Bytes of the entries so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Add a whole entry: `data` as stored in the ZIP (deflated already for
    /// [`Method::Deflated`]), `crc32` and `size` those of the uncompressed bytes.
    pub fn add(&mut self, name: &str, method: Method, data: &[u8], crc32: u32, size: u64) {
        self.close();
        let compressed = data.len() as u64;
        let entry = Entry {
            name: name.to_string(),
            method,
            crc32,
            compressed,
            uncompressed: size,
            offset: self.out.len() as u64,
            time: self.time,
            zip64_sizes: compressed >= ZIP64_THRESHOLD || size >= ZIP64_THRESHOLD,
        };
        self.local_header(&entry);
        self.out.extend_from_slice(data);
        self.entries.push(entry);
    }

    /// Add a stored entry from its bytes.
    pub fn add_stored(&mut self, name: &str, data: &[u8]) {
        let crc = crc32fast::hash(data);
        self.add(name, Method::Stored, data, crc, data.len() as u64);
    }

    /// Start a stored entry whose bytes come through [`Self::write`] (under 4 GiB: its local
    /// header has no room for zip64 sizes).
    pub fn start_stored(&mut self, name: &str) {
        self.close();
        let entry = Entry {
            name: name.to_string(),
            method: Method::Stored,
            crc32: 0,
            compressed: 0,
            uncompressed: 0,
            offset: self.out.len() as u64,
            time: self.time,
            zip64_sizes: false,
        };
        self.local_header(&entry);
        self.open = Some(Open {
            entry,
            crc: crc32fast::Hasher::new(),
        });
    }

    /// Append to the entry started by [`Self::start_stored`].
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        let Some(open) = self.open.as_mut() else {
            return Err(BackupError::InvalidInput("zip: no entry is open".into()));
        };
        open.crc.update(data);
        open.entry.uncompressed += data.len() as u64;
        open.entry.compressed += data.len() as u64;
        if open.entry.compressed >= ZIP64_THRESHOLD {
            return Err(BackupError::InvalidInput(format!(
                "zip: {} reaches 4 GiB",
                open.entry.name
            )));
        }
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// Finish the open entry, if any: its CRC and sizes go into its local header.
    fn close(&mut self) {
        let Some(Open { mut entry, crc }) = self.open.take() else {
            return;
        };
        entry.crc32 = crc.finalize();
        let at = entry.offset as usize + 14;
        self.out[at..at + 4].copy_from_slice(&entry.crc32.to_le_bytes());
        self.out[at + 4..at + 8].copy_from_slice(&(entry.compressed as u32).to_le_bytes());
        self.out[at + 8..at + 12].copy_from_slice(&(entry.uncompressed as u32).to_le_bytes());
        self.entries.push(entry);
    }

    /// Append every entry of `other` (its local headers and data verbatim, no central
    /// directory), after this one's.
    pub fn append(&mut self, mut other: ZipOut) {
        self.close();
        other.close();
        let base = self.out.len() as u64;
        self.out.extend_from_slice(&other.out);
        self.entries.extend(other.entries.into_iter().map(|mut e| {
            e.offset += base;
            e
        }));
    }

    /// The whole ZIP: entries, central directory, end record(s).
    pub fn finish(mut self) -> Vec<u8> {
        self.close();
        let cd_offset = self.out.len() as u64;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            self.central_record(e);
        }
        let cd_size = self.out.len() as u64 - cd_offset;
        let count = entries.len() as u64;
        let zip64 = count >= 0xFFFF || cd_offset >= ZIP64_THRESHOLD || cd_size >= ZIP64_THRESHOLD;
        let out = &mut self.out;
        if zip64 {
            let at = out.len() as u64;
            put32(out, ZIP64_EOCD_SIG);
            put64(out, 44); // the size of the rest of this record
            put16(out, MADE_BY);
            put16(out, 45);
            put32(out, 0); // this disk
            put32(out, 0); // the directory's disk
            put64(out, count);
            put64(out, count);
            put64(out, cd_size);
            put64(out, cd_offset);
            put32(out, ZIP64_LOCATOR_SIG);
            put32(out, 0);
            put64(out, at);
            put32(out, 1); // disks
        }
        put32(out, EOCD_SIG);
        put16(out, 0);
        put16(out, 0);
        let short_count = count.min(0xFFFF) as u16;
        put16(out, short_count);
        put16(out, short_count);
        put32(out, cd_size.min(ZIP64_THRESHOLD) as u32);
        put32(out, cd_offset.min(ZIP64_THRESHOLD) as u32);
        put16(out, 0); // comment length
        self.out
    }

    fn version_needed(e: &Entry, zip64: bool) -> u16 {
        match (zip64, e.method) {
            (true, _) => 45,
            (false, Method::Deflated) => 20,
            (false, Method::Stored) => 10,
        }
    }

    /// The fields a local header and a central record share, in the same order (APPNOTE
    /// 4.3.7 and 4.3.12): version needed to extract through the name's length.
    fn shared_fields(out: &mut Vec<u8>, e: &Entry, zip64: bool) {
        put16(out, Self::version_needed(e, zip64));
        put16(out, 0); // flags: ASCII names, no descriptor
        put16(out, e.method.code());
        put16(out, e.time.time);
        put16(out, e.time.date);
        put32(out, e.crc32);
        if e.zip64_sizes {
            put32(out, u32::MAX);
            put32(out, u32::MAX);
        } else {
            put32(out, e.compressed as u32);
            put32(out, e.uncompressed as u32);
        }
        put16(out, e.name.len() as u16);
    }

    fn local_header(&mut self, e: &Entry) {
        let out = &mut self.out;
        put32(out, LOCAL_SIG);
        Self::shared_fields(out, e, e.zip64_sizes);
        put16(out, if e.zip64_sizes { 20 } else { 0 });
        out.extend_from_slice(e.name.as_bytes());
        if e.zip64_sizes {
            put16(out, ZIP64_EXTRA_ID);
            put16(out, 16);
            put64(out, e.uncompressed);
            put64(out, e.compressed);
        }
    }

    fn central_record(&mut self, e: &Entry) {
        let big_offset = e.offset >= ZIP64_THRESHOLD;
        let mut extra = Vec::new();
        if e.zip64_sizes {
            put64(&mut extra, e.uncompressed);
            put64(&mut extra, e.compressed);
        }
        if big_offset {
            put64(&mut extra, e.offset);
        }
        let out = &mut self.out;
        put32(out, CENTRAL_SIG);
        put16(out, MADE_BY);
        Self::shared_fields(out, e, e.zip64_sizes || big_offset);
        put16(
            out,
            if extra.is_empty() {
                0
            } else {
                extra.len() as u16 + 4
            },
        );
        put16(out, 0); // comment
        put16(out, 0); // disk
        put16(out, 0); // internal attributes
        put32(out, EXTERNAL_ATTRIBUTES);
        put32(out, e.offset.min(ZIP64_THRESHOLD) as u32);
        out.extend_from_slice(e.name.as_bytes());
        if !extra.is_empty() {
            put16(out, ZIP64_EXTRA_ID);
            put16(out, extra.len() as u16);
            out.extend_from_slice(&extra);
        }
    }
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    #[test]
    fn the_zip_crate_reads_what_is_written() {
        let mut inner = ZipOut::new(DosTime::from_iso("2026-11-25T10:00:02.000Z"), 0);
        inner.start_stored("data/a.jsonl");
        inner.write(b"{\"id\":1}\n").unwrap();
        inner.write(b"{\"id\":2}\n").unwrap();
        let mut out = ZipOut::new(DosTime::DEFAULT, 0);
        out.add_stored("manifest.json", b"{}");
        out.append(inner);
        let bytes = out.finish();
        assert!(
            super::super::layout::check(&bytes, &super::super::Limits::default())
                .unwrap()
                .is_some()
        );
        let mut z = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        assert_eq!(z.len(), 2);
        let mut s = String::new();
        let mut f = z.by_index(1).unwrap();
        assert_eq!(f.name().unwrap(), "data/a.jsonl");
        assert_eq!(f.compression(), zip::CompressionMethod::Stored);
        let t = f.last_modified().unwrap();
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.second()),
            (2026, 11, 25, 10, 2)
        );
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "{\"id\":1}\n{\"id\":2}\n");
        drop(f);
        z.by_index(0).unwrap().read_to_string(&mut s).unwrap();
        assert!(s.ends_with("{}"));
    }

    /// More than 65,535 entries need the zip64 end record: the zip crate and our own layout
    /// check (with a raised entry limit) must both find every entry through it.
    #[test]
    fn zip64_end_record_for_many_entries() {
        const N: usize = 70_000;
        let mut out = ZipOut::new(DosTime::DEFAULT, 0);
        for i in 0..N {
            out.add_stored(&format!("e{i}"), i.to_string().as_bytes());
        }
        let bytes = out.finish();
        let limits = super::super::Limits {
            max_entries: 100_000,
            ..Default::default()
        };
        assert!(super::super::layout::check(&bytes, &limits)
            .unwrap()
            .is_some());
        let mut z = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        assert_eq!(z.len(), N);
        let mut s = String::new();
        let mut f = z.by_index(N - 1).unwrap();
        assert_eq!(f.name().unwrap(), format!("e{}", N - 1));
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, (N - 1).to_string());
    }

    #[test]
    fn dos_times() {
        assert_eq!(DosTime::from_iso("garbage"), DosTime::DEFAULT);
        assert_eq!(DosTime::from_iso("1979-12-31T23:59:59Z"), DosTime::DEFAULT);
        assert_eq!(DosTime::from_iso("2026-13-01T00:00:00Z"), DosTime::DEFAULT);
        assert_ne!(DosTime::from_iso("2026-12-01T00:00:00Z"), DosTime::DEFAULT);
    }
}
