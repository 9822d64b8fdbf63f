//! `Hlc::parse`: never panics; what parses prints back to the same text and parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mana_sync::clock::Hlc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hlc) = Hlc::parse(text) {
        let printed = hlc.to_string();
        let again = Hlc::parse(&printed).expect("a printed HLC parses");
        assert_eq!(again, hlc);
        assert_eq!(again.to_string(), printed);
    }
});
