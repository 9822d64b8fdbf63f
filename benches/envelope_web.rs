//! Per-field AES-256-GCM envelope in wasm, in headless Chromium (printed, never asserted):
//! `make bench` runs it through wasm-bindgen-test-runner. The reference is WebCrypto's
//! ~12 µs per `encrypt` call; the bench page measures WebCrypto on this machine too.

#[cfg(target_arch = "wasm32")]
mod web {
    use mana_sync::crypto::FieldCipher;
    use serde_json::{json, Value};
    use std::time::Duration;
    use wasm_bindgen_test::{wasm_bindgen_bench, wasm_bindgen_test_configure, Criterion};

    wasm_bindgen_test_configure!(run_in_browser);

    #[wasm_bindgen_bench]
    fn envelope(c: &mut Criterion) {
        // Short runs: the page is blocked while a bench runs, and webdriver gives up after 20 s.
        *c = std::mem::take(c)
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        let cipher = FieldCipher::new(&[7u8; 32]);
        let title = json!("Note number 1234 about things");
        c.bench_function("encrypt one field (title, 31 bytes of JSON)", |b| {
            b.iter(|| cipher.encrypt("notes", "rec-001234", "title", &title, [9; 12]))
        });
        let sealed = Value::String(cipher.encrypt("notes", "rec-001234", "title", &title, [9; 12]));
        c.bench_function("decrypt one field", |b| {
            b.iter(|| {
                cipher
                    .decrypt("notes", "rec-001234", "title", &sealed)
                    .unwrap()
            })
        });
    }
}

/// The runner calls the registered benches; natively this bench is empty.
fn main() {}
