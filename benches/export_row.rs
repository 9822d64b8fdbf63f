//! `cargo bench --bench export_row`: a stored record → its backup row, 100,000 records of ~150
//! bytes with two encrypted fields, by the value path (`serde_json::Value`, `records::export_row`,
//! serialise) and by the text path the export takes (`export_row::write_export_row`). Printed,
//! not asserted; numbers in BENCHMARKS.md, "Backup (browser)".

use std::hint::black_box;
use std::time::{Duration, Instant};

use mana_sync::clock::Clock;
use mana_sync::crypto::{FieldCipher, RandomPool};
use mana_sync::export_row::write_export_row;
use mana_sync::records::{export_row, Writer};
use mana_sync::schema::StoreConfig;
use serde_json::{json, Value};

const ROWS: usize = 100_000;
const RUNS: usize = 7;

fn best(mut f: impl FnMut() -> usize) -> Duration {
    (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed()
        })
        .min()
        .unwrap()
}

fn main() {
    let cfg: StoreConfig = serde_json::from_value(json!({"name": "b", "userId": "u1", "apps": {
        "bench": {"collections": {"notes": {"indexes": ["updatedAt"], "encrypted": ["title", "content"]}}}
    }}))
    .unwrap();
    let registry = cfg.registry();
    let cipher = FieldCipher::new(&[7; 32]);
    let (mut clock, mut random) = (Clock::new(1), RandomPool::default());
    let mut w = Writer {
        config: &cfg,
        registry: &registry,
        cipher: Some(&cipher),
        clock: &mut clock,
        random: &mut random,
        wall_millis: 1_795_600_800_000,
        actor: None,
    };
    // As the export gets them: the JSON text of the stored records.
    let stored: Vec<String> = (0..ROWS)
        .map(|i| {
            let p = w
                .put("notes", json!({
                    "id": format!("row-{i:07}"),
                    "title": format!("Backup row {i} with a short title"),
                    "content": format!("Body of row {i}: the quick brown fox jumps over the lazy dog."),
                    "updatedAt": 1_700_000_000_000u64 + i as u64,
                    "tags": ["a", "b"],
                }))
                .unwrap();
            serde_json::to_string(&p.stored).unwrap()
        })
        .collect();
    let by_value = best(|| {
        let mut out = Vec::new();
        for s in &stored {
            let v: Value = serde_json::from_str(s).unwrap();
            let row = export_row(&registry, Some(&cipher), "notes", v).unwrap();
            serde_json::to_writer(&mut out, &row).unwrap();
            out.push(b'\n');
        }
        out.len()
    });
    let by_text = best(|| {
        let mut out = Vec::new();
        for s in &stored {
            write_export_row(&registry, Some(&cipher), "notes", s, &mut out).unwrap();
            out.push(b'\n');
        }
        out.len()
    });
    let decrypt_only = best(|| {
        let mut n = 0;
        for s in &stored {
            let v: Value = serde_json::from_str(s).unwrap();
            for f in ["title", "content"] {
                let b64 = v[f].as_str().unwrap().strip_prefix("enc:1:").unwrap();
                let id = v["id"].as_str().unwrap();
                n += cipher.open_text("notes", id, f, b64).unwrap().len();
            }
        }
        n
    });
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("{ROWS} stored records, best of {RUNS}");
    println!(
        "value path (parse, export_row, serialise): {:.0} ms",
        ms(by_value)
    );
    println!(
        "text path (write_export_row):              {:.0} ms ({:.2}x)",
        ms(by_text),
        ms(by_text) / ms(by_value)
    );
    println!(
        "of which parse + decrypt (open_text) alone:: {:.0} ms",
        ms(decrypt_only)
    );
}
