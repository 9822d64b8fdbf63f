//! A check that text is one JSON value, as strict as parsing it into a `serde_json::Value`
//! (numbers in range, strings valid UTF-8 with valid escapes: `IgnoredAny` and `RawValue` skip
//! without those checks), that builds nothing.

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Whether `text` is exactly one JSON value (surrounding whitespace allowed).
pub fn is_valid(text: &[u8]) -> bool {
    as_text(text).is_ok_and(|text| {
        let mut de = serde_json::Deserializer::from_str(text);
        Valid.deserialize(&mut de).is_ok() && de.end().is_ok()
    })
}

/// JSON bytes as the text serde_json reads here; the `Err` is the reason they are not JSON.
///
/// The crate parses `str`, never bytes: every type serde_json reads from a byte slice is
/// another copy of its parser in the wasm (BENCHMARKS.md, "Package size").
pub(crate) fn as_text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "not valid JSON: invalid UTF-8 at byte {}",
            e.valid_up_to() + 1
        )
    })
}

/// Any JSON value, parsed as strictly as into a `Value` (numbers in range, strings valid
/// UTF-8 with valid escapes: `IgnoredAny` skips without those checks) but not kept.
pub(crate) struct Valid;

impl<'de> DeserializeSeed<'de> for Valid {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Valid {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Valid)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Valid)?.is_some() {
            map.next_value_seed(Valid)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn as_strict_as_a_value_parse() {
        for ok in [
            r#"{"a":[1,-2.5e3,"x\n",null,true]}"#,
            " 1 ",
            r#""\ud83d\ude00""#,
        ] {
            assert!(is_valid(ok.as_bytes()), "{ok}");
            assert!(serde_json::from_str::<serde_json::Value>(ok).is_ok());
        }
        for bad in ["1e400", r#""\ud800""#, "{", "1 2", "", r#"{"a":1,}"#] {
            assert!(!is_valid(bad.as_bytes()), "{bad}");
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
        }
        for bad in [&b"\"\xff\""[..], b"[\"\xc3\"]", b"\xef\xbb\xbf1"] {
            assert!(!is_valid(bad), "{bad:?}");
            assert!(serde_json::from_slice::<serde_json::Value>(bad).is_err());
        }
    }
}
