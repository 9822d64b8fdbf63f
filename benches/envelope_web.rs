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

    /// One stored record (two encrypted fields, a put's `__fieldMeta`) → its backup row, as the
    /// export takes it (`export_row::write_export_row`, from the record's JSON text) and by the
    /// value path it replaced (parse, `records::export_row`, serialise).
    #[wasm_bindgen_bench]
    fn export_row(c: &mut Criterion) {
        use mana_sync::clock::Clock;
        use mana_sync::crypto::RandomPool;
        use mana_sync::records::Writer;
        use mana_sync::schema::StoreConfig;
        *c = std::mem::take(c)
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        let cfg: StoreConfig =
            serde_json::from_value(json!({"name": "b", "userId": "u1", "apps": {
                "bench": {"collections": {"notes": {"encrypted": ["title", "content"]}}}
            }}))
            .unwrap();
        let registry = cfg.registry();
        let cipher = FieldCipher::new(&[7u8; 32]);
        let (mut clock, mut random) = (Clock::new(1), RandomPool::default());
        let stored = Writer {
            config: &cfg,
            registry: &registry,
            cipher: Some(&cipher),
            clock: &mut clock,
            random: &mut random,
            wall_millis: 1_795_600_800_000,
            actor: None,
        }
        .put(
            "notes",
            json!({
                "id": "row-0001234",
                "title": "Backup row 1234 with a short title",
                "content": "Body of row 1234: the quick brown fox jumps over the lazy dog.",
                "updatedAt": 1_700_000_001_234u64,
                "tags": ["a", "b"],
            }),
        )
        .unwrap()
        .stored;
        let text = serde_json::to_string(&stored).unwrap();
        let mut out = Vec::with_capacity(1024);
        c.bench_function("export row: text path", |b| {
            b.iter(|| {
                out.clear();
                mana_sync::export_row::write_export_row(
                    &registry,
                    Some(&cipher),
                    "notes",
                    &text,
                    &mut out,
                )
                .unwrap();
                out.len()
            })
        });
        c.bench_function("export row: value path", |b| {
            b.iter(|| {
                out.clear();
                let v: Value = serde_json::from_str(&text).unwrap();
                let row =
                    mana_sync::records::export_row(&registry, Some(&cipher), "notes", v).unwrap();
                serde_json::to_writer(&mut out, &row).unwrap();
                out.len()
            })
        });
    }
}

/// The runner calls the registered benches; natively this bench is empty.
fn main() {}
