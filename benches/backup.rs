//! `cargo bench --bench backup`: native timings of `.mana` export and import for 100,000 rows of
//! ~200 bytes (printed, not asserted). Numbers go to BENCHMARKS.md, "## Backup (native)".

use std::hint::black_box;
use std::time::{Duration, Instant};

use mana_sync::backup::{self, BackupWriter, ManifestInfo, Row, Scope, SealParams};
use serde_json::json;

const ROWS: usize = 100_000;
const RUNS: usize = 5;

fn rows() -> Vec<Row> {
    (0..ROWS)
        .map(|i| {
            json!({
                "id": format!("0193a5c2-7d4e-7{:03x}-8{:03x}-{:012x}", i % 4096, (i * 7) % 4096, i * 2654435761usize % (1 << 48)),
                "title": format!("Note number {i}: groceries and plans"),
                "content": format!("Buy {} apples, call Anna at {}:00, read chapter {}.", i % 13, 8 + i % 10, i % 40),
                "updatedAt": format!("2026-11-{:02}T{:02}:{:02}:00.000Z", 1 + i % 28, i % 24, i % 60),
                "pinned": i % 9 == 0,
            })
            .as_object()
            .unwrap()
            .clone()
        })
        .collect()
}

fn info() -> ManifestInfo {
    ManifestInfo::new("user-1", "2026-11-25T10:00:00.000Z", Scope::Full)
}

fn write(rows: &[Row], level: i64) -> BackupWriter<'static> {
    let mut w = BackupWriter::with_compression_level(info(), level);
    w.begin_table("notes").unwrap();
    for r in rows {
        w.write_row(r).unwrap();
    }
    w
}

fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut best = Duration::MAX;
    let mut out = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        let v = black_box(f());
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.unwrap())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let rows = rows();
    let jsonl_bytes: usize = rows
        .iter()
        .map(|r| serde_json::to_vec(r).unwrap().len() + 1)
        .sum();
    println!(
        "{ROWS} rows, {:.0} bytes/row on average, {:.1} MB of JSONL; best of {RUNS} runs\n",
        jsonl_bytes as f64 / ROWS as f64,
        jsonl_bytes as f64 / 1e6
    );

    let (t, _) = best(|| {
        let mut buf = Vec::with_capacity(jsonl_bytes);
        for r in &rows {
            serde_json::to_writer(&mut buf, r).unwrap();
            buf.push(b'\n');
        }
        buf
    });
    println!("serialize only (JSONL, no ZIP):                 {}", ms(t));

    let params = SealParams {
        salt: [1; 16],
        iv: [2; 12],
        iterations: backup::DEFAULT_ITERATIONS,
    };
    let (t_kdf, key) = best(|| {
        backup::derive_key(
            b"correct horse battery staple",
            &params.salt,
            params.iterations,
        )
    });
    println!(
        "PBKDF2-SHA256 600k (pbkdf2 crate, native):      {}",
        ms(t_kdf)
    );

    println!("\n| deflate level | serialize+deflate (unsealed) | serialize+deflate+seal | archive size | open+unseal+parse |");
    println!("|---|---|---|---|---|");
    for level in [1, 3, 6, 9] {
        let (t_plain, plain) = best(|| write(&rows, level).finish_unsealed().unwrap());
        let (t_sealed, sealed) = best(|| {
            write(&rows, level)
                .finish_sealed_with_key(&key, params)
                .unwrap()
        });
        let (t_read, n) = best(|| {
            let a = backup::open(&sealed).unwrap();
            let mut d = a.unseal_with_key(&key, &mut |_| {}).unwrap();
            let mut n = 0usize;
            d.for_each_row(&mut |_| {}, &mut |_, row| {
                n += row.len();
                Ok(())
            })
            .unwrap();
            n
        });
        assert!(n > 0);
        println!(
            "| {level} | {} | {} | {:.2} MB ({:.0}%) | {} |",
            ms(t_plain),
            ms(t_sealed),
            sealed.len() as f64 / 1e6,
            100.0 * sealed.len() as f64 / jsonl_bytes as f64,
            ms(t_read)
        );
        black_box(plain);
    }

    let sealed = write(&rows, backup::DEFAULT_COMPRESSION_LEVEL)
        .finish_sealed_with_key(&key, params)
        .unwrap();
    let (t_verify, _) = best(|| {
        let a = backup::open(&sealed).unwrap();
        a.unseal_with_key(&key, &mut |_| {})
            .unwrap()
            .verify(&mut |_| {})
            .unwrap()
    });
    let (t_all, _) = best(|| {
        let a = backup::open(&sealed).unwrap();
        a.unseal_with_key(&key, &mut |_| {})
            .unwrap()
            .read_all(&mut |_| {})
            .unwrap()
    });
    println!(
        "\nimport at the default level {}: open+unseal+verify {}, open+unseal+read_all (rows kept) {}",
        backup::DEFAULT_COMPRESSION_LEVEL,
        ms(t_verify),
        ms(t_all)
    );
}
