//! The fault harness on PostgreSQL: a fresh database, the superuser's view of it (past the
//! row-level security policies) for the checks, and the cluster's `pg_ctl` to crash it.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;

use tokio_postgres::{Client, NoTls};

use super::{assert_event_ids_stored, Acked, LOG_CHECKS};
use crate::common::pg::{fresh_database, with_database};

/// A fresh database of the application role, and the superuser's URL to the same database.
pub struct PgDb {
    pub url: String,
    admin_url: String,
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL: {e}"));
    tokio::spawn(conn);
    client
}

impl PgDb {
    /// `None` when the tests run without PostgreSQL (no `MANA_TEST_DATABASE_URL`).
    pub async fn fresh() -> Option<PgDb> {
        let url = fresh_database().await?;
        let superuser = std::env::var("MANA_TEST_PG_SUPERUSER_URL")
            .expect("MANA_TEST_PG_SUPERUSER_URL with MANA_TEST_DATABASE_URL (scripts/ci/pg.sh)");
        let name = url.rsplit('/').next().unwrap().split('?').next().unwrap();
        let admin_url = with_database(&superuser, name);
        Some(PgDb { url, admin_url })
    }

    /// The superuser on this database: it sees every row (superusers bypass row-level
    /// security) and may run amcheck.
    pub async fn admin(&self) -> Client {
        connect(&self.admin_url).await
    }

    /// Why a database crash would not test durability here, if it would not: with `fsync`
    /// or `synchronous_commit` off a commit is not on disk when the push is acknowledged.
    pub async fn not_durable(&self) -> Option<String> {
        let admin = self.admin().await;
        for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
            let v: String = admin
                .query_one(&format!("SHOW {setting}"), &[])
                .await
                .unwrap()
                .get(0);
            if v != "on" {
                return Some(format!("{setting} = {v}"));
            }
        }
        None
    }

    /// Transactions of this database holding a transaction id: on the log's only writers,
    /// pushes, that is one that took the `log_head` lock (`FOR UPDATE` assigns an xid).
    pub async fn open_push_transactions(&self, admin: &Client) -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND backend_xid IS NOT NULL
                   AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// What `PRAGMA integrity_check` is to SQLite: the log and state are consistent (the
    /// shared checks, and `log_head` is the log's last seq), every acknowledged eventId is
    /// stored once, and amcheck finds the B-tree indexes and the tables' heaps intact.
    /// Returns a summary for the report.
    pub async fn check(&self, acked: &Acked) -> String {
        let admin = self.admin().await;
        for (what, sql) in LOG_CHECKS {
            let n: i64 = admin.query_one(*sql, &[]).await.unwrap().get(0);
            assert_eq!(n, 0, "{what}: {n}");
        }
        let row = admin
            .query_one(
                "SELECT (SELECT seq FROM log_head), coalesce(max(seq), 0), count(*) FROM changes",
                &[],
            )
            .await
            .unwrap();
        let (head, max, rows): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        assert_eq!(head, max, "log_head is not the log's last seq");
        let stored: HashSet<String> = admin
            .query("SELECT event_id FROM changes", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_event_ids_stored(acked, &stored);
        let amcheck = amcheck(&admin).await;
        format!("log_head = max(seq) = {head} = {rows} log rows, log checks ok, {amcheck}")
    }
}

/// amcheck (contrib, in Debian's postgresql package): `bt_index_check` with `heapallindexed`
/// on every B-tree index of the server's tables, `verify_heapam` on the tables.
async fn amcheck(admin: &Client) -> String {
    if let Err(e) = admin
        .batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        .await
    {
        return format!("amcheck not available ({e})");
    }
    const TABLES: &str = "('changes'::regclass, 'records'::regclass, 'log_head'::regclass)";
    let indexes = admin
        .query(
            &format!(
                "SELECT c.relname::text, bt_index_check(c.oid, true)::text
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                 JOIN pg_am am ON am.oid = c.relam
                 WHERE am.amname = 'btree' AND i.indrelid IN {TABLES}"
            ),
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("bt_index_check: {e}"));
    let mut heaps = 0;
    for table in ["changes", "records", "log_head"] {
        let problems = admin
            .query(
                &format!("SELECT blkno, offnum, msg FROM verify_heapam('{table}')"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("verify_heapam({table}): {e}"));
        let msgs: Vec<String> = problems.iter().map(|r| r.get(2)).collect();
        assert!(msgs.is_empty(), "verify_heapam({table}): {msgs:?}");
        heaps += 1;
    }
    format!(
        "amcheck ok ({} B-tree indexes with heapallindexed, {heaps} heaps)",
        indexes.len()
    )
}

/// The throw-away cluster's `pg_ctl` (scripts/ci/pg.sh writes it and sets `MANA_TEST_PG_CTL`),
/// run as the cluster's owner with the cluster's options.
pub struct PgCtl(PathBuf);

impl PgCtl {
    pub fn from_env() -> Option<PgCtl> {
        std::env::var_os("MANA_TEST_PG_CTL").map(|p| PgCtl(p.into()))
    }

    async fn run(&self, args: &'static [&'static str]) {
        let path = self.0.clone();
        let out = tokio::task::spawn_blocking(move || Command::new(path).args(args).output())
            .await
            .unwrap()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Crashes the cluster: `pg_ctl stop -m immediate` (every backend quits at once, no
    /// checkpoint; the next start replays the WAL).
    pub async fn crash(&self) {
        self.run(&["-m", "immediate", "stop"]).await
    }

    pub async fn start(&self) {
        self.run(&["start"]).await
    }
}
