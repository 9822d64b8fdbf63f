//! Fault harness: `kill -9` of the real `mana-sync-server` binary during push storms, on SQLite
//! and on PostgreSQL, and (PostgreSQL with fsync on) crashes of the database itself.
//!
//! Each round starts the server on the same database, times its first push, lets several
//! writers (several users) push batches as fast as they can, and kills the process with SIGKILL
//! at a pseudo-random moment while pushes are in flight. A change counts as acknowledged only
//! when its push was answered 200 with a full body. After the last kill the server is started
//! once more and every acknowledged change is read back (paginated pulls, per user) and
//! compared field by field; then the server is killed again and the database is checked:
//! `PRAGMA integrity_check` on SQLite, amcheck on PostgreSQL, and on both that every log row
//! has its state row, the log has no gaps, and every acknowledged eventId is stored once.
//!
//! On PostgreSQL `kill -9` kills the server, not the database: what matters there is that a
//! transaction cut off mid-push (most kills find one holding the `log_head` lock) rolls back
//! and does not hold up the next server's first push. The crash rounds stop the cluster with
//! `pg_ctl stop -m immediate` mid-storm and start it again: the running server must take
//! pushes again on its own, and every push it acknowledged must have survived the crash.
//!
//! The kill test runs on PostgreSQL under scripts/ci/pg.sh (a fresh database) and on SQLite
//! otherwise, like the other suites; the crash test only on PostgreSQL with fsync on (with it
//! off a crash may lose committed transactions, so it would test nothing).
//!
//! Loopback only, bounded in rounds and time. `FAULT_KILLS` (default 5: the short version that
//! runs in `make test`, on both backends) sets the number of kills, `FAULT_STORM_MS` (default
//! 400) the longest storm after the first acknowledgement, `FAULT_PG_CRASHES` (default 3) the
//! database crashes; `make fault` (scripts/ci/fault.sh) runs 30 kills of storms up to 1.5 s on
//! each backend and the crashes.

mod common;
mod fault_support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fault_support::pg::{PgCtl, PgDb};
use fault_support::{
    assert_event_ids_stored, dev_token, kill9, median_max, push_batch, start,
    verify_through_server, writer, Acked, Pushed, Storm, LOG_CHECKS, USERS, WRITERS_PER_USER,
};

/// No round may take longer than this (a hung server fails the test instead of blocking it).
const ROUND_LIMIT: Duration = Duration::from_secs(20);
/// A restarted server's first push: far more than it takes, far less than a lock left behind
/// by the killed server would hold it up.
const FIRST_PUSH_LIMIT: Duration = Duration::from_secs(8);
/// How long the running server may take to push again once its crashed database is back.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// The tests of this file one at a time: they share two cores, and a database crash must not
/// hit the other PostgreSQL test.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

enum Fault<'a> {
    /// SIGKILL of the server.
    KillServer,
    /// `pg_ctl stop -m immediate` of the database, then its restart; then SIGKILL of the server.
    CrashDatabase(&'a PgCtl),
}

/// One harness run: what was acknowledged and what the rounds measured.
struct Run {
    http: reqwest::Client,
    acked: Arc<Mutex<Acked>>,
    rng: u64,
    /// How long, at most, a storm runs after its first acknowledgement before the fault.
    storm_ms: u64,
    /// Each round's first push, on a freshly started server.
    first_push: Vec<Duration>,
    /// The push right after it, for comparison: the same server, warm.
    second_push: Vec<Duration>,
    /// Push transactions open just before each kill (PostgreSQL).
    open_at_kill: Vec<i64>,
    /// After each kill that found one open: how long until PostgreSQL had rolled back the dead
    /// server's transactions (no backend of it holding a transaction id any more).
    rolled_back: Vec<Duration>,
    /// After each database crash: how long until the running server acknowledged a push.
    recovery: Vec<Duration>,
    /// Pushes answered with an error while the database was down.
    refused: u64,
}

impl Run {
    fn new() -> Run {
        Run {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            acked: Arc::default(),
            // A fixed LCG: the fault moments differ from round to round and from run to run alike.
            rng: 0x9e37_79b9_7f4a_7c15,
            storm_ms: env_or("FAULT_STORM_MS", 400u64).max(1),
            first_push: Vec::new(),
            second_push: Vec::new(),
            open_at_kill: Vec::new(),
            rolled_back: Vec::new(),
            recovery: Vec::new(),
            refused: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.rng >> 33
    }

    async fn round(&mut self, round: usize, url: &str, pg: Option<&PgDb>, fault: Fault<'_>) {
        let round_start = Instant::now();
        let admin = match pg {
            Some(pg) => Some(pg.admin().await),
            None => None,
        };
        let (mut child, base) = start(url);
        let mut tokens = Vec::new();
        for user in USERS {
            tokens.push((user, dev_token(&self.http, &base, user).await));
        }
        // The first push must not wait on anything the killed server left behind (on
        // PostgreSQL: the log_head lock of a transaction it was in the middle of).
        let first = format!("r{round}-first");
        for n in 0..2 {
            let t = Instant::now();
            let probe = push_batch(
                &self.http,
                &base,
                &tokens[0].1,
                USERS[0],
                &first,
                n,
                &self.acked,
            );
            match tokio::time::timeout(FIRST_PUSH_LIMIT, probe).await {
                Ok(Pushed::Acked) if n == 0 => self.first_push.push(t.elapsed()),
                Ok(Pushed::Acked) => self.second_push.push(t.elapsed()),
                Ok(_) => panic!("round {round}: the restarted server's push {n} failed"),
                Err(_) => panic!(
                    "round {round}: the restarted server's push {n} took over {FIRST_PUSH_LIMIT:?}"
                ),
            }
        }
        let storm = Storm {
            http: self.http.clone(),
            base: base.clone(),
            acked: self.acked.clone(),
            first_ack: Arc::new(tokio::sync::Notify::new()),
            stop: Arc::new(AtomicBool::new(false)),
            refusals_expected: matches!(fault, Fault::CrashDatabase(_)),
            refused: Arc::new(AtomicU64::new(0)),
        };
        let mut tasks = Vec::new();
        for (user, token) in &tokens {
            for w in 0..WRITERS_PER_USER {
                let tag = format!("r{round}-{user}-w{w}");
                tasks.push(tokio::spawn(writer(
                    storm.clone(),
                    token.clone(),
                    user,
                    tag,
                )));
            }
        }
        // The fault comes mid-storm: some pushes acknowledged, others in flight.
        tokio::time::timeout(ROUND_LIMIT, storm.first_ack.notified())
            .await
            .expect("a push was acknowledged");
        let pause = 20 + self.next() % self.storm_ms;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        match fault {
            Fault::KillServer => {
                let open = match (pg, &admin) {
                    (Some(pg), Some(admin)) => pg.open_push_transactions(admin).await,
                    _ => 0,
                };
                kill9(&mut child);
                if let (Some(pg), Some(admin)) = (pg, &admin) {
                    self.open_at_kill.push(open);
                    if open > 0 {
                        self.rolled_back.push(rolled_back(pg, admin, round).await);
                    }
                }
                storm.stop.store(true, Ordering::Relaxed);
                join(tasks).await;
            }
            Fault::CrashDatabase(ctl) => {
                ctl.crash().await;
                // Each writer ends at its first refused push.
                join(tasks).await;
                self.refused += storm.refused.load(Ordering::Relaxed);
                assert!(
                    child.0.try_wait().unwrap().is_none(),
                    "the server exited when its database crashed"
                );
                ctl.start().await;
                self.recovery
                    .push(recover(&self.http, &base, &tokens[0].1, round, &self.acked).await);
                kill9(&mut child);
            }
        }
        assert!(round_start.elapsed() < ROUND_LIMIT * 2);
    }

    /// Restarts the server once more and reads back every acknowledged change through it.
    /// Returns (verified, stored).
    async fn verify(&self, url: &str) -> (usize, usize) {
        let (mut child, base) = start(url);
        let acked = self.acked.lock().unwrap().clone();
        let counts = verify_through_server(&self.http, &base, &acked).await;
        kill9(&mut child);
        counts
    }

    fn acked(&self) -> Acked {
        self.acked.lock().unwrap().clone()
    }
}

/// Waits until no backend of the killed server holds a transaction: its transactions rolled
/// back, the `log_head` lock free. How long that took after the kill.
async fn rolled_back(pg: &PgDb, admin: &tokio_postgres::Client, round: usize) -> Duration {
    let t = Instant::now();
    while pg.open_push_transactions(admin).await > 0 {
        assert!(
            t.elapsed() < FIRST_PUSH_LIMIT,
            "round {round}: the killed server's transaction still open after {FIRST_PUSH_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    t.elapsed()
}

async fn join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        tokio::time::timeout(ROUND_LIMIT, t)
            .await
            .expect("writers stop once the server (or its database) is gone")
            .unwrap();
    }
}

/// Pushes until the running server acknowledges one again (its database back after a
/// crash); how long that took.
async fn recover(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    round: usize,
    acked: &Mutex<Acked>,
) -> Duration {
    let t = Instant::now();
    let tag = format!("r{round}-recover");
    let mut n = 0;
    loop {
        match push_batch(http, base, token, USERS[0], &tag, n, acked).await {
            Pushed::Acked => return t.elapsed(),
            Pushed::Refused(_) => {}
            Pushed::Gone => {
                panic!("round {round}: the server went away after its database came back")
            }
        }
        assert!(
            t.elapsed() < RECOVERY_LIMIT,
            "round {round}: no push acknowledged {RECOVERY_LIMIT:?} after the database came back"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The database of a run: PostgreSQL under scripts/ci/pg.sh (a fresh database), SQLite (a
/// temporary file) otherwise, as for the other suites.
enum Backend {
    Sqlite {
        url: String,
        path: std::path::PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres(PgDb),
}

impl Backend {
    async fn pick() -> Backend {
        if let Some(pg) = PgDb::fresh().await {
            return Backend::Postgres(pg);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fault.db");
        Backend::Sqlite {
            url: format!("sqlite://{}", path.display()),
            path,
            _dir: dir,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    fn url(&self) -> &str {
        match self {
            Backend::Sqlite { url, .. } => url,
            Backend::Postgres(pg) => &pg.url,
        }
    }

    fn pg(&self) -> Option<&PgDb> {
        match self {
            Backend::Sqlite { .. } => None,
            Backend::Postgres(pg) => Some(pg),
        }
    }

    /// The stored database, checked with the server stopped; a summary for the report.
    async fn check(&self, acked: &Acked) -> String {
        match self {
            Backend::Sqlite { path, .. } => sqlite_check(path, acked),
            Backend::Postgres(pg) => pg.check(acked).await,
        }
    }
}

/// `PRAGMA integrity_check`, the shared log checks, every acknowledged eventId stored.
fn sqlite_check(path: &std::path::Path, acked: &Acked) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(check, ["ok"], "integrity_check");
    for (what, sql) in LOG_CHECKS {
        let n: i64 = conn.query_row(sql, [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0, "{what}: {n}");
    }
    let stored: HashSet<String> = conn
        .prepare("SELECT event_id FROM changes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_event_ids_stored(acked, &stored);
    format!(
        "{} log rows, integrity_check ok, log checks ok",
        stored.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_repeated_sigkill() {
    let _one = ONE_AT_A_TIME.lock().await;
    let backend = Backend::pick().await;
    let kills: usize = env_or("FAULT_KILLS", 5);
    let started = Instant::now();
    let mut run = Run::new();
    for round in 0..kills {
        run.round(round, backend.url(), backend.pg(), Fault::KillServer)
            .await;
    }
    let (total, stored_total) = run.verify(backend.url()).await;
    let acked = run.acked();
    let checks = backend.check(&acked).await;
    let mid_tx = match backend {
        Backend::Sqlite { .. } => String::new(),
        Backend::Postgres(_) => {
            let n = run.open_at_kill.iter().filter(|&&n| n > 0).count();
            format!(
                " ({n} with a push transaction open, rolled back {} after the kill)",
                median_max(&run.rolled_back)
            )
        }
    };
    println!(
        "fault ({}): {kills} kills{mid_tx}, {} acknowledged pushes, {total} acknowledged \
         changes, all {total} verified ({stored_total} records stored, in-flight ones \
         included), {checks}, first push after a restart {} (the next one {}; median / max), \
         in {:.1}s",
        backend.name(),
        acked.pushes,
        median_max(&run.first_push),
        median_max(&run.second_push),
        started.elapsed().as_secs_f64()
    );
    assert!(total > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_postgres_crashes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (Some(pg), Some(ctl)) = (PgDb::fresh().await, PgCtl::from_env()) else {
        println!("fault (postgres crash): skipped, no cluster of scripts/ci/pg.sh");
        return;
    };
    if let Some(why) = pg.not_durable().await {
        // A crash with fsync off may lose committed transactions: no test of anything.
        println!("fault (postgres crash): skipped, {why} (PG_FSYNC=on runs it)");
        return;
    }
    let crashes: usize = env_or("FAULT_PG_CRASHES", 3);
    let started = Instant::now();
    let mut run = Run::new();
    for round in 0..crashes {
        run.round(round, &pg.url, Some(&pg), Fault::CrashDatabase(&ctl))
            .await;
    }
    let (total, stored_total) = run.verify(&pg.url).await;
    let acked = run.acked();
    let checks = pg.check(&acked).await;
    println!(
        "fault (postgres crash): {crashes} crashes of the database (pg_ctl stop -m immediate, \
         fsync on), {} pushes refused while it was down, {} acknowledged pushes, {total} \
         acknowledged changes, all {total} verified ({stored_total} records stored), \
         {checks}, running server pushing again {} (median / max) after the restart, in {:.1}s",
        run.refused,
        acked.pushes,
        median_max(&run.recovery),
        started.elapsed().as_secs_f64()
    );
    assert!(total > 0);
}
