//! The server's sync cursor: never panics; what parses prints back and parses to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mana_sync_server::store::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(cursor) = Cursor::parse(text) {
        let printed = cursor.to_string();
        assert_eq!(Cursor::parse(&printed), Some(cursor), "{printed:?}");
    }
});
