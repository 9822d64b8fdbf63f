//! A push body: parse as a `Changeset`, validate every change. A changeset that validates must
//! survive a serialise/parse round trip and still validate.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mana_sync::protocol::Changeset;

fuzz_target!(|data: &[u8]| {
    let Ok(cs) = serde_json::from_slice::<Changeset>(data) else {
        return;
    };
    let verdict = cs.validate();
    for c in &cs.changes {
        let _ = c.validate();
        let _ = c.effective_space_id();
        let _ = c.schema_version();
    }
    if verdict.is_ok() {
        let text = serde_json::to_vec(&cs).expect("a parsed changeset serialises");
        let again: Changeset = serde_json::from_slice(&text).expect("its own output parses");
        assert!(
            again.validate().is_ok(),
            "a valid changeset is still valid after a round trip"
        );
    }
});
