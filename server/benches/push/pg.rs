//! The PostgreSQL cases of the push bench: fresh databases, and the raw baseline.
//!
//! **raw**: the same log and state rows as the server writes, into a database migrated by the
//! server itself (same schema, row-level security forced), connected as the same application
//! role, 500 changes per transaction: `BEGIN`, `set_config` of the user (the policies' `WITH
//! CHECK` needs it), one `INSERT … SELECT FROM unnest(arrays)` into the log and one into the
//! state, pipelined on one connection, `COMMIT` — the fastest honest way we know: the same
//! array shape the server uses (one statement per table whatever the batch's size, prepared).
//! `COPY FROM` is not an option: PostgreSQL refuses it on tables with row-level security.

use std::time::{Duration, Instant};

use mana_sync_server::store::postgres::PgStore;
use tokio_postgres::types::ToSql;

use super::{raw_rows, Timed, BATCH, CLIENT, USER};

#[allow(dead_code)]
#[path = "../../tests/common/pg.rs"]
mod common;

/// The PostgreSQL to measure on, if any.
pub fn base_url() -> Option<String> {
    ["MANA_BENCH_DATABASE_URL", "MANA_TEST_DATABASE_URL"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|u| !u.is_empty())
}

/// The databases this run created (one per case and round), dropped at the end.
#[derive(Default)]
pub struct Databases {
    names: Vec<String>,
}

impl Databases {
    /// A new, empty database next to `base`'s (the role needs CREATEDB); its URL.
    pub async fn fresh(&mut self, base: &str) -> String {
        let name = format!("mana_bench_{}_{}", std::process::id(), self.names.len());
        admin(base, &format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE (the role needs CREATEDB)");
        self.names.push(name.clone());
        common::with_database(base, &name)
    }

    /// Drops them; call once nothing of this run is connected to them any more. A database
    /// still busy after a few seconds (an autovacuum worker, which `FORCE` may not end for
    /// an unprivileged role) is left behind with a warning: the results are out already.
    pub fn drop_all(self, base: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for name in &self.names {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let mut tries = 0;
                while let Err(e) = admin(base, &sql).await {
                    tries += 1;
                    if tries == 25 {
                        let why = e
                            .as_db_error()
                            .map_or(e.to_string(), |d| d.message().into());
                        eprintln!("push bench: database {name} left behind: {why}");
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
    }
}

async fn admin(base: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("connect to the bench's PostgreSQL");
    let driver = tokio::spawn(conn);
    let done = client.batch_execute(sql).await;
    drop(client);
    let _ = driver.await;
    done
}

fn open(url: &str) -> PgStore {
    PgStore::open(url, false).expect("open PostgreSQL (as a role without BYPASSRLS)")
}

pub async fn bench_store(url: String) -> f64 {
    super::bench_store(&open(&url)).await
}

pub async fn bench_raw(url: String) -> f64 {
    let store = open(&url);
    let mut conn = store.pool().get().await.unwrap();
    let rows = raw_rows();
    let set_user = conn
        .prepare_cached("SELECT set_config('app.current_user_id', $1, true)")
        .await
        .unwrap();
    let log = conn
        .prepare_cached(
            "INSERT INTO changes (seq, event_id, app_id, tbl, record_id, author, space_id, op,
               data, fields, updated_at, deleted_at, actor, schema_version, client_id,
               created_at)
             SELECT u.seq, u.event_id, 'notes', 'notes', u.record_id, $1, NULL, 'insert',
               u.data, NULL, u.updated_at, NULL, '{\"kind\":\"user\"}', 1, $2, 0
             FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[])
               AS u(seq, event_id, record_id, data, updated_at)",
        )
        .await
        .unwrap();
    let state = conn
        .prepare_cached(
            "INSERT INTO records (app_id, tbl, record_id, author, space_id, state, updated_at,
               schema_version, last_seq)
             SELECT 'notes', 'notes', u.record_id, $1, NULL, u.state, u.updated_at, 1, u.seq
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[])
               AS u(seq, record_id, state, updated_at)",
        )
        .await
        .unwrap();
    let mut timed = Timed::default();
    for (b, batch) in rows.chunks(BATCH).enumerate() {
        let t = Instant::now();
        let seq: Vec<i64> = (0..batch.len() as i64)
            .map(|i| (b * BATCH) as i64 + i + 1)
            .collect();
        let event_id: Vec<&str> = batch.iter().map(|r| r.event_id.as_str()).collect();
        let id: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
        let data: Vec<&str> = batch.iter().map(|r| r.data.as_str()).collect();
        let at: Vec<&str> = batch.iter().map(|r| r.at.as_str()).collect();
        let st: Vec<&str> = batch.iter().map(|r| r.state.as_str()).collect();
        let tx = conn.transaction().await.unwrap();
        let log_params: [&(dyn ToSql + Sync); 7] =
            [&USER, &CLIENT, &seq, &event_id, &id, &data, &at];
        let state_params: [&(dyn ToSql + Sync); 5] = [&USER, &seq, &id, &st, &at];
        // Pipelined: all three go out before the first answer is awaited.
        let (_, logged, stored) = tokio::try_join!(
            tx.execute(&set_user, &[&USER]),
            tx.execute(&log, &log_params),
            tx.execute(&state, &state_params),
        )
        .unwrap();
        assert_eq!((logged, stored), (batch.len() as u64, batch.len() as u64));
        tx.commit().await.unwrap();
        timed.batch_done(t);
    }
    timed.rate()
}
