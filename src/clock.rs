//! Hybrid logical clock (HLC) timestamps.
//!
//! Format: `<ISO-8601 UTC millis>-<4 hex counter>-<16 hex node id>`, e.g.
//! `2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60`. Every part is fixed width, so the
//! lexicographic order of the strings equals the order of `(millis, counter, node)`, which is
//! the causal order the clock maintains.

use crate::error_code::ErrorCode;
use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// Length of a formatted HLC string.
pub const HLC_LEN: usize = 24 + 1 + 4 + 1 + 16;

/// Largest representable wall time: 9999-12-31T23:59:59.999Z (4-digit years keep the
/// string order equal to the numeric order).
pub const MAX_MILLIS: u64 = 253_402_300_799_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    #[error("invalid HLC timestamp {0:?}")]
    InvalidTimestamp(String),
    #[error("wall clock out of range: {0} ms")]
    OutOfRange(u64),
}

impl ClockError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ClockError::InvalidTimestamp(_) => ErrorCode::InvalidTimestamp,
            ClockError::OutOfRange(_) => ErrorCode::ClockOutOfRange,
        }
    }
}

/// Hybrid logical clock timestamp: `<ISO millis>-<4 hex counter>-<16 hex node>`.
// In Rust its parts; as JSON and in the `.d.ts`, that text (see the serde impls below). Field
// order matters: the derived `Ord` is the causal order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, tsify::Tsify)]
#[tsify(type = "string")]
pub struct Hlc {
    pub millis: u64,
    pub counter: u16,
    pub node: u64,
}

impl Hlc {
    pub fn new(millis: u64, counter: u16, node: u64) -> Result<Hlc, ClockError> {
        if millis > MAX_MILLIS {
            return Err(ClockError::OutOfRange(millis));
        }
        Ok(Hlc {
            millis,
            counter,
            node,
        })
    }

    pub fn parse(s: &str) -> Result<Hlc, ClockError> {
        s.parse()
    }
}

impl Hlc {
    /// The fixed-width text form, written digit by digit: a bulk write formats one per
    /// record, and `write!` with padding costs several times more.
    pub fn to_bytes(&self) -> [u8; HLC_LEN] {
        fn digits(out: &mut [u8], mut v: u64, radix: u64) {
            for b in out.iter_mut().rev() {
                *b = b"0123456789abcdef"[(v % radix) as usize];
                v /= radix;
            }
        }
        debug_assert!(self.millis <= MAX_MILLIS, "Hlc::new keeps millis in range");
        let (y, mo, d, h, mi, sec, ms) = civil_from_millis(self.millis);
        let mut out = *b"0000-00-00T00:00:00.000Z-0000-0000000000000000";
        digits(&mut out[0..4], y, 10);
        digits(&mut out[5..7], mo, 10);
        digits(&mut out[8..10], d, 10);
        digits(&mut out[11..13], h, 10);
        digits(&mut out[14..16], mi, 10);
        digits(&mut out[17..19], sec, 10);
        digits(&mut out[20..23], ms, 10);
        digits(&mut out[25..29], self.counter.into(), 16);
        digits(&mut out[30..46], self.node, 16);
        out
    }
}

impl fmt::Display for Hlc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        f.write_str(std::str::from_utf8(&bytes).expect("HLC text is ASCII"))
    }
}

impl FromStr for Hlc {
    type Err = ClockError;

    fn from_str(s: &str) -> Result<Hlc, ClockError> {
        let bad = || ClockError::InvalidTimestamp(s.chars().take(64).collect());
        let b = s.as_bytes();
        if b.len() != HLC_LEN || !s.is_ascii() {
            return Err(bad());
        }
        // Fixed separators of `YYYY-MM-DDTHH:MM:SS.mmmZ-cccc-nnnnnnnnnnnnnnnn`.
        for (i, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (23, b'Z'),
            (24, b'-'),
            (29, b'-'),
        ] {
            if b[i] != c {
                return Err(bad());
            }
        }
        let dec = |r: std::ops::Range<usize>| -> Result<u64, ClockError> {
            let part = &s[r];
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse().map_err(|_| bad())
        };
        // Lower-case hex only: upper case would break the string order.
        let hex = |r: std::ops::Range<usize>| -> Result<u64, ClockError> {
            let part = &s[r];
            if !part.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(bad());
            }
            u64::from_str_radix(part, 16).map_err(|_| bad())
        };
        let (y, mo, d) = (dec(0..4)?, dec(5..7)?, dec(8..10)?);
        let (h, mi, sec, ms) = (dec(11..13)?, dec(14..16)?, dec(17..19)?, dec(20..23)?);
        if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 {
            return Err(bad());
        }
        // No leap seconds: 60 would break the one-to-one mapping to millis.
        if sec > 59 {
            return Err(bad());
        }
        let days = days_from_civil(y as i64, mo as u32, d as u32);
        if days < 0 {
            return Err(bad());
        }
        let millis = days as u64 * 86_400_000 + ((h * 60 + mi) * 60 + sec) * 1000 + ms;
        Ok(Hlc {
            millis,
            counter: hex(25..29)? as u16,
            node: hex(30..46)?,
        })
    }
}

impl serde::Serialize for Hlc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Hlc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hlc, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The 16-hex-digit node id of a client: the first 8 bytes of SHA-256 of its client id.
pub fn node_id_from_client_id(client_id: &str) -> u64 {
    let digest = Sha256::digest(client_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

/// Low bits of a node id that tell apart the stores one device opened (one per tab): the
/// high bits come from the client id, so [`same_device`] still recognises this device's writes.
pub const TAB_BITS: u32 = 24;
const TAB_MASK: u64 = (1 << TAB_BITS) - 1;

/// The node id of one opening of a store: the device's [`node_id_from_client_id`] with its low
/// [`TAB_BITS`] replaced by `tab`, a number no other open store of this device holds. Two tabs
/// keep separate clocks, so without it they could issue the very same timestamp.
pub fn tab_node(client_id: &str, tab: u32) -> u64 {
    (node_id_from_client_id(client_id) & !TAB_MASK) | (u64::from(tab) & TAB_MASK)
}

/// Whether two node ids belong to one device (they differ at most in the tab bits).
pub fn same_device(a: u64, b: u64) -> bool {
    a & !TAB_MASK == b & !TAB_MASK
}

/// A hybrid logical clock. Issues strictly increasing timestamps that never fall below any
/// timestamp it has issued or observed, whatever the wall clock does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    node: u64,
    last_millis: u64,
    last_counter: u16,
}

impl Clock {
    pub fn new(node: u64) -> Clock {
        Clock {
            node,
            last_millis: 0,
            last_counter: 0,
        }
    }

    /// Restores a clock from its persisted last timestamp.
    pub fn resume(node: u64, last: Hlc) -> Clock {
        Clock {
            node,
            last_millis: last.millis,
            last_counter: last.counter,
        }
    }

    pub fn node(&self) -> u64 {
        self.node
    }

    /// The last timestamp issued or observed (what to persist).
    pub fn last(&self) -> Hlc {
        Hlc {
            millis: self.last_millis,
            counter: self.last_counter,
            node: self.node,
        }
    }

    /// Issues a new timestamp, greater than every one issued or observed before.
    pub fn now(&mut self, wall_millis: u64) -> Result<Hlc, ClockError> {
        if wall_millis > MAX_MILLIS {
            return Err(ClockError::OutOfRange(wall_millis));
        }
        if wall_millis > self.last_millis {
            self.last_millis = wall_millis;
            self.last_counter = 0;
        } else {
            self.bump()?;
        }
        Ok(self.last())
    }

    /// Takes a remote timestamp into account so that the next local one is greater.
    pub fn observe(&mut self, remote: &Hlc) {
        if (remote.millis, remote.counter) > (self.last_millis, self.last_counter) {
            self.last_millis = remote.millis;
            self.last_counter = remote.counter;
        }
    }

    fn bump(&mut self) -> Result<(), ClockError> {
        if self.last_counter == u16::MAX {
            // Counter exhausted within one millisecond: borrow from the future.
            if self.last_millis >= MAX_MILLIS {
                return Err(ClockError::OutOfRange(self.last_millis));
            }
            self.last_millis += 1;
            self.last_counter = 0;
        } else {
            self.last_counter += 1;
        }
        Ok(())
    }
}

fn is_leap(y: u64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_millis(millis: u64) -> (u64, u64, u64, u64, u64, u64, u64) {
    let days = (millis / 86_400_000) as i64;
    let rem = millis % 86_400_000;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
    let y = (yoe + era * 400 + i64::from(m <= 2)) as u64;
    (
        y,
        m,
        d,
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tab_nodes_differ_per_tab_and_stay_one_device() {
        let a = tab_node("client-1", 1);
        let b = tab_node("client-1", 2);
        assert_ne!(a, b);
        assert!(same_device(a, b));
        assert!(!same_device(a, tab_node("client-2", 1)));
        // Tab numbers wrap inside their bits instead of spilling into the device's.
        assert!(same_device(a, tab_node("client-1", u32::MAX)));
        let mut one = Clock::new(a);
        let mut two = Clock::new(b);
        assert_ne!(one.now(5).unwrap(), two.now(5).unwrap());
    }

    #[test]
    fn formats_and_parses_the_documented_example() {
        let s = "2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60";
        let h = Hlc::parse(s).unwrap();
        assert_eq!(h.millis, 1_795_600_800_000);
        assert_eq!(h.node, 0x9f2c4e1a7b3d5c60);
        assert_eq!(h.to_string(), s);
    }

    #[test]
    fn epoch_and_max_round_trip() {
        for millis in [0, 951_782_400_000 /* 2000-02-29 */, MAX_MILLIS] {
            let h = Hlc::new(millis, 7, 1).unwrap();
            assert_eq!(Hlc::parse(&h.to_string()).unwrap(), h);
        }
        assert_eq!(
            Hlc::new(0, 0, 0).unwrap().to_string(),
            "1970-01-01T00:00:00.000Z-0000-0000000000000000"
        );
    }

    #[test]
    fn rejects_malformed_timestamps() {
        for bad in [
            "",
            "2026-11-25T10:00:00.000Z",
            "2026-11-25T10:00:00.000Z-0000-9F2C4E1A7B3D5C60",
            "2026-13-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60",
            "2026-02-29T10:00:00.000Z-0000-9f2c4e1a7b3d5c60",
            "2026-11-25T24:00:00.000Z-0000-9f2c4e1a7b3d5c60",
            "2026-11-25T10:00:60.000Z-0000-9f2c4e1a7b3d5c60",
            "2026-11-25 10:00:00.000Z-0000-9f2c4e1a7b3d5c60",
            "2026-11-25T10:00:00.000Z-000g-9f2c4e1a7b3d5c60",
            "+026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c60",
            "2026-11-25T10:00:00.000Z-0000-9f2c4e1a7b3d5c6é",
        ] {
            let err = Hlc::parse(bad).unwrap_err();
            assert_eq!(err.code(), "invalid_timestamp", "{bad}");
        }
    }

    #[test]
    fn counter_overflow_moves_to_next_millisecond() {
        let mut c = Clock::resume(1, Hlc::new(1000, u16::MAX, 1).unwrap());
        let h = c.now(1000).unwrap();
        assert_eq!((h.millis, h.counter), (1001, 0));
    }

    #[test]
    fn observe_keeps_next_timestamp_above_remote() {
        let mut c = Clock::new(1);
        let remote = Hlc::new(5_000, 3, 2).unwrap();
        c.observe(&remote);
        let h = c.now(10).unwrap();
        assert!(h > remote);
        assert!(h.to_string() > remote.to_string());
    }

    #[test]
    fn node_id_is_stable_per_client() {
        assert_eq!(node_id_from_client_id("a"), node_id_from_client_id("a"));
        assert_ne!(node_id_from_client_id("a"), node_id_from_client_id("b"));
    }
}
