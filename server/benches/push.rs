//! Push throughput through the real HTTP stack vs raw batched inserts of the same rows into the
//! same database, on SQLite and (when a URL is given) PostgreSQL, in one run.
//!
//! `cargo bench -p mana-sync-server --bench push` (harness = false: a plain program). With
//! `MANA_BENCH_DATABASE_URL` (or the `MANA_TEST_DATABASE_URL` that scripts/ci/pg.sh exports) set
//! to a `postgres://` URL of a role that may create databases, PostgreSQL is measured too, each
//! run in a fresh database (dropped at the end). `MANA_BENCH_ROUNDS` (default 5) rounds, each
//! running every case once, server and raw in alternating order, so drift hits both; the
//! summary gives medians and the ratio of the medians.
//!
//! - **server**: an in-process server on 127.0.0.1:0 on a fresh database; one client pushes
//!   batches of 500 inserts (JSON bodies prepared beforehand), each with the cursor of the
//!   previous answer, one after the other — every push is a full request: auth, parsing,
//!   validation, dedupe, merge, log + state writes in one transaction, commit, answer.
//! - **store**: the same pushes through the store trait alone (no HTTP, no JSON).
//! - **raw**: the same rows (a change-log row and a current-state row per change), 500 per
//!   transaction, into a database with the server's own schema and settings: SQLite by prepared
//!   statements (WAL, synchronous=FULL); PostgreSQL see `push/pg.rs`.

use std::time::{Duration, Instant};

use mana_sync::clock::Hlc;
use mana_sync::protocol::ValidChange;
use mana_sync::Change;
use mana_sync_server::store::sqlite::open_writer;
use mana_sync_server::store::{push, PushRequest, SqliteStore, Store, Viewer};
use mana_sync_server::{AppState, Config};
use rusqlite::params;
use serde_json::{json, Value};

#[path = "push/pg.rs"]
mod pg;

const BATCH: usize = 500;
const BATCHES: usize = 60;
const WARMUP: usize = 4;
const USER: &str = "bench-user";
const CLIENT: &str = "bench-client";

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

/// What the raw baselines write per change: the log row's and the state row's own values.
struct RawRow {
    event_id: String,
    id: String,
    data: String,
    at: String,
    state: String,
}

fn raw_rows() -> Vec<RawRow> {
    (0..(WARMUP + BATCHES) * BATCH)
        .map(|i| {
            let c = change(i);
            let state = json!({
                "title": {"v": c["data"]["title"], "at": hlc(i), "a": {"kind": "user"}},
                "body": {"v": c["data"]["body"], "at": hlc(i), "a": {"kind": "user"}},
                "pinned": {"v": c["data"]["pinned"], "at": hlc(i), "a": {"kind": "user"}},
                "n": {"v": c["data"]["n"], "at": hlc(i), "a": {"kind": "user"}},
            });
            RawRow {
                event_id: event_id(i),
                id: format!("note-{i:08}"),
                data: c["data"].to_string(),
                at: hlc(i),
                state: state.to_string(),
            }
        })
        .collect()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// The time of every batch after the warm-up ones.
#[derive(Default)]
struct Timed {
    batches: usize,
    total: Duration,
}

impl Timed {
    /// Counts one batch, begun at `t`.
    fn batch_done(&mut self, t: Instant) {
        if self.batches >= WARMUP {
            self.total += t.elapsed();
        }
        self.batches += 1;
    }

    fn rate(&self) -> f64 {
        assert_eq!(self.batches, WARMUP + BATCHES);
        rate(BATCHES * BATCH, self.total)
    }
}

/// The server over real HTTP on `database_url` (sqlite:// or postgres://).
async fn bench_server(database_url: String) -> f64 {
    let mut config = Config::for_tests(database_url);
    config.mana_jwt_secret = Some("bench-secret-bench-secret-bench-secret".into());
    // The bench measures the store, not the per-user limiter.
    config.rate_limit_per_minute = 0;
    let (state, _shutdown) = AppState::new(&config).unwrap();
    let token = state.auth.sign(USER, Duration::from_secs(3600)).unwrap();
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
    let mut timed = Timed::default();
    for changes in batches {
        let body =
            serde_json::to_vec(&json!({"clientId": CLIENT, "since": cursor, "changes": changes}))
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
        timed.batch_done(t);
        cursor = answer["syncedUntil"].as_str().unwrap().to_owned();
    }
    timed.rate()
}

/// The store alone (no HTTP, no JSON parsing): where the server's time goes.
async fn bench_store(store: &dyn Store) -> f64 {
    let batches: Vec<Vec<ValidChange>> = (0..WARMUP + BATCHES)
        .map(|b| {
            (b * BATCH..(b + 1) * BATCH)
                .map(|i| {
                    ValidChange::new(serde_json::from_value::<Change>(change(i)).unwrap()).unwrap()
                })
                .collect()
        })
        .collect();
    let mut timed = Timed::default();
    for changes in batches {
        let t = Instant::now();
        let out = push(
            store,
            PushRequest {
                app_id: "notes".into(),
                viewer: Viewer::personal(USER),
                client_id: CLIENT.into(),
                changes,
            },
        )
        .await
        .unwrap();
        assert_eq!(out.applied.len(), BATCH);
        timed.batch_done(t);
    }
    timed.rate()
}

async fn bench_sqlite_server() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    bench_server(format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ))
    .await
}

async fn bench_sqlite_store() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    bench_store(&SqliteStore::open(dir.path().join("store.db")).unwrap()).await
}

fn bench_sqlite_raw() -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = open_writer(&dir.path().join("raw.db")).unwrap();
    let rows = raw_rows();
    let mut timed = Timed::default();
    for batch in rows.chunks(BATCH) {
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
            for r in batch {
                ins.execute(params![r.event_id, r.id, r.data, r.at])
                    .unwrap();
                let seq = tx.last_insert_rowid();
                rec.execute(params![r.id, r.state, r.at, seq]).unwrap();
            }
        }
        tx.commit().unwrap();
        timed.batch_done(t);
    }
    timed.rate()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One measured case: its label and the rate of each round.
struct Case {
    label: &'static str,
    runs: Vec<f64>,
}

impl Case {
    fn new(label: &'static str) -> Case {
        Case {
            label,
            runs: Vec::new(),
        }
    }
}

/// Prints a backend's cases, per round and as medians, and the server/raw ratio.
fn report(backend: &str, server: &Case, store: &Case, raw: &Case) {
    println!("{backend}:");
    for c in [server, store, raw] {
        let runs: Vec<String> = c.runs.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "  {:<58} median {:>7.0} changes/s  (runs: {})",
            c.label,
            median(&c.runs),
            runs.join(", ")
        );
    }
    let ratios: Vec<String> = server
        .runs
        .iter()
        .zip(&raw.runs)
        .map(|(s, r)| format!("{:.2}", s / r))
        .collect();
    println!(
        "  ratio server/raw: {:.2} (medians; per round: {})",
        median(&server.runs) / median(&raw.runs),
        ratios.join(", ")
    );
}

fn main() {
    let rounds: usize = std::env::var("MANA_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5)
        .max(1);
    let pg_url = pg::base_url();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sqlite = [
        Case::new("server (HTTP, JSON, auth, merge, SQLite FULL sync)"),
        Case::new("store trait only (no HTTP/JSON)"),
        Case::new("raw batched SQLite inserts of the same rows"),
    ];
    let mut postgres = [
        Case::new("server (HTTP, JSON, auth, merge, PostgreSQL)"),
        Case::new("store trait only (no HTTP/JSON)"),
        Case::new("raw batched PostgreSQL inserts (unnest) of the same rows"),
    ];
    let mut databases = pg::Databases::default();
    for round in 0..rounds {
        // Alternate which of server and raw goes first.
        let server_first = round % 2 == 0;
        rt.block_on(async {
            let [server, store, raw] = &mut sqlite;
            if server_first {
                server.runs.push(bench_sqlite_server().await);
                raw.runs.push(bench_sqlite_raw());
            } else {
                raw.runs.push(bench_sqlite_raw());
                server.runs.push(bench_sqlite_server().await);
            }
            store.runs.push(bench_sqlite_store().await);
            if let Some(base) = &pg_url {
                let [server, store, raw] = &mut postgres;
                // Every case on a fresh database of its own.
                let server_url = databases.fresh(base).await;
                let raw_url = databases.fresh(base).await;
                let store_url = databases.fresh(base).await;
                if server_first {
                    server.runs.push(bench_server(server_url).await);
                    raw.runs.push(pg::bench_raw(raw_url).await);
                } else {
                    raw.runs.push(pg::bench_raw(raw_url).await);
                    server.runs.push(bench_server(server_url).await);
                }
                store.runs.push(pg::bench_store(store_url).await);
            }
        });
        eprintln!("push bench: round {} of {rounds} done", round + 1);
    }
    // Closes every connection (servers, pools, LISTEN tasks) before the databases are dropped.
    drop(rt);
    println!(
        "push throughput, {BATCHES} batches of {BATCH} inserts (after {WARMUP} warm-up batches), \
         {rounds} rounds"
    );
    let [server, store, raw] = &sqlite;
    report("SQLite", server, store, raw);
    match &pg_url {
        Some(base) => {
            let [server, store, raw] = &postgres;
            report("PostgreSQL", server, store, raw);
            databases.drop_all(base);
        }
        None => println!(
            "PostgreSQL: not measured (set MANA_BENCH_DATABASE_URL, or run under scripts/ci/pg.sh)"
        ),
    }
}
