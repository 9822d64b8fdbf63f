//! Push throughput through the real HTTP stack vs raw batched SQLite inserts of the same rows.
//!
//! `cargo bench -p mana-sync-server --bench push` (harness = false: a plain program).
//!
//! - **server**: an in-process server on 127.0.0.1:0 with a temporary database; one client
//!   pushes batches of 500 inserts (JSON bodies prepared beforehand), each with the cursor of
//!   the previous answer, one after the other — every push is a full request: auth, parsing,
//!   validation, dedupe, merge, log + state writes in one transaction, fsync, answer.
//! - **raw**: the same rows (a change-log row and a current-state row per change) inserted with
//!   prepared statements, 500 per transaction, into a database with the server's own schema
//!   and pragmas (WAL, synchronous=FULL).

use std::time::{Duration, Instant};

use mana_sync::clock::Hlc;
use mana_sync::protocol::ValidChange;
use mana_sync::Change;
use mana_sync_server::store::sqlite::open_writer;
use mana_sync_server::store::{push, PushRequest, SqliteStore, Viewer};
use mana_sync_server::{AppState, Config};
use rusqlite::params;
use serde_json::{json, Value};

const BATCH: usize = 500;
const BATCHES: usize = 60;
const WARMUP: usize = 4;

fn hlc(i: usize) -> String {
    Hlc::new(1_795_600_800_000 + i as u64, 0, 0xbe7c)
        .unwrap()
        .to_string()
}

fn event_id(i: usize) -> String {
    format!("0190a6f0-0000-7000-8000-{i:012x}")
}

fn change(i: usize) -> Value {
    json!({
        "eventId": event_id(i),
        "table": "notes",
        "id": format!("note-{i:08}"),
        "op": "insert",
        "data": {"title": format!("Note {i}"), "body": "Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "pinned": i % 7 == 0, "n": i},
        "updatedAt": hlc(i),
        "actor": {"kind": "user"},
    })
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn bench_server() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ));
    config.mana_jwt_secret = Some("bench-secret-bench-secret-bench-secret".into());
    // The bench measures the store, not the per-user limiter.
    config.rate_limit_per_minute = 0;
    let (state, _shutdown) = AppState::new(&config).unwrap();
    let token = state
        .auth
        .sign("bench-user", Duration::from_secs(3600))
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        mana_sync_server::serve_on(listener, state, std::future::pending())
            .await
            .unwrap()
    });
    let http = reqwest::Client::new();

    let batches: Vec<Vec<Value>> = (0..WARMUP + BATCHES)
        .map(|b| (b * BATCH..(b + 1) * BATCH).map(change).collect())
        .collect();
    let mut cursor = String::from("0");
    let mut timed = Duration::ZERO;
    for (b, changes) in batches.into_iter().enumerate() {
        let body = serde_json::to_vec(
            &json!({"clientId": "bench-client", "since": cursor, "changes": changes}),
        )
        .unwrap();
        let t = Instant::now();
        let resp = http
            .post(format!("{base}/sync/notes"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let answer: Value = resp.json().await.unwrap();
        if b >= WARMUP {
            timed += t.elapsed();
        }
        cursor = answer["syncedUntil"].as_str().unwrap().to_owned();
    }
    rate(BATCHES * BATCH, timed)
}

/// The store alone (no HTTP, no JSON parsing): where the server's time goes.
async fn bench_store() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("store.db")).unwrap();
    let batches: Vec<Vec<ValidChange>> = (0..WARMUP + BATCHES)
        .map(|b| {
            (b * BATCH..(b + 1) * BATCH)
                .map(|i| {
                    ValidChange::new(serde_json::from_value::<Change>(change(i)).unwrap()).unwrap()
                })
                .collect()
        })
        .collect();
    let mut timed = Duration::ZERO;
    for (b, changes) in batches.into_iter().enumerate() {
        let t = Instant::now();
        let out = push(
            &store,
            PushRequest {
                app_id: "notes".into(),
                viewer: Viewer::personal("bench-user"),
                client_id: "bench-client".into(),
                changes,
            },
        )
        .await
        .unwrap();
        assert_eq!(out.applied.len(), BATCH);
        if b >= WARMUP {
            timed += t.elapsed();
        }
    }
    rate(BATCHES * BATCH, timed)
}

fn bench_raw() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("raw.db")).unwrap();
    let rows: Vec<(String, String, String, String, String)> = (0..(WARMUP + BATCHES) * BATCH)
        .map(|i| {
            let c = change(i);
            let state = json!({
                "title": {"v": c["data"]["title"], "at": hlc(i), "a": {"kind": "user"}},
                "body": {"v": c["data"]["body"], "at": hlc(i), "a": {"kind": "user"}},
                "pinned": {"v": c["data"]["pinned"], "at": hlc(i), "a": {"kind": "user"}},
                "n": {"v": c["data"]["n"], "at": hlc(i), "a": {"kind": "user"}},
            });
            (
                event_id(i),
                format!("note-{i:08}"),
                c["data"].to_string(),
                hlc(i),
                state.to_string(),
            )
        })
        .collect();
    let mut timed = Duration::ZERO;
    for (b, batch) in rows.chunks(BATCH).enumerate() {
        let t = Instant::now();
        let tx = conn.transaction().unwrap();
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO changes (event_id, app_id, tbl, record_id, author, space_id, op,
                       data, fields, updated_at, deleted_at, actor, schema_version, client_id,
                       created_at)
                     VALUES (?1, 'notes', 'notes', ?2, 'bench-user', NULL, 'insert', ?3, NULL,
                       ?4, NULL, '{\"kind\":\"user\"}', 1, 'bench-client', 0)",
                )
                .unwrap();
            let mut rec = tx
                .prepare_cached(
                    "INSERT INTO records (app_id, tbl, record_id, author, space_id, state,
                       updated_at, schema_version, last_seq)
                     VALUES ('notes', 'notes', ?1, 'bench-user', NULL, ?2, ?3, 1, ?4)",
                )
                .unwrap();
            for (eid, id, data, at, state) in batch {
                ins.execute(params![eid, id, data, at]).unwrap();
                let seq = tx.last_insert_rowid();
                rec.execute(params![id, state, at, seq]).unwrap();
            }
        }
        tx.commit().unwrap();
        if b >= WARMUP {
            timed += t.elapsed();
        }
    }
    rate(BATCHES * BATCH, timed)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = bench_raw();
    let server = rt.block_on(bench_server());
    let store = rt.block_on(bench_store());
    println!(
        "push throughput, {BATCHES} batches of {BATCH} inserts (after {WARMUP} warm-up batches)"
    );
    println!("  server (HTTP, JSON, auth, merge, SQLite FULL sync): {server:>10.0} changes/s");
    println!("  store trait only (no HTTP/JSON):                   {store:>10.0} changes/s");
    println!("  raw batched SQLite inserts of the same rows:       {raw:>10.0} changes/s");
    println!("  ratio server/raw: {:.2}", server / raw);
}
