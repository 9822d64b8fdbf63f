//! Fault harness: `kill -9` of the real `mana-sync-server` binary during push storms, on SQLite.
//!
//! Each round starts the server on the same database file, lets several writers (several users)
//! push batches as fast as they can, and kills the process with SIGKILL at a pseudo-random moment
//! while pushes are in flight. A change counts as acknowledged only when its push was answered
//! 200 with a full body. After the last kill the server is started once more and every
//! acknowledged change is read back (paginated pulls, per user) and compared field by field;
//! then the server is killed again and `PRAGMA integrity_check` runs on the file.
//!
//! Loopback only, bounded in rounds and time. `FAULT_KILLS` (default 5: the short version that
//! runs in `make test`) sets the number of kills, `FAULT_STORM_MS` (default 400) the longest
//! storm after the first acknowledgement; `make fault` runs 30 kills of storms up to 1.5 s.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{event_id, hlc};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mana-sync-server");
const USERS: [&str; 3] = ["alice", "bob", "carol"];
/// Concurrent writers per user.
const WRITERS_PER_USER: usize = 2;
const BATCH: usize = 25;
/// No round may take longer than this (a hung server fails the test instead of blocking it).
const ROUND_LIMIT: Duration = Duration::from_secs(20);

fn start(db: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .arg("--dev")
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "error")
        // The storm is many pushes a second from one address: out of the rate limiter's way.
        .env("RATE_LIMIT_PER_MINUTE", "10000000")
        .env("RATE_LIMIT_BURST", "1000000")
        .env("RATE_LIMIT_IP_PER_MINUTE", "10000000")
        .env("RATE_LIMIT_IP_BURST", "1000000")
        .env_remove("MANA_JWT_SECRET")
        .env_remove("MANA_JWKS_URL")
        .env_remove("MANA_AUTH_URL")
        .env_remove("MAX_BODY_BYTES")
        .env_remove("MAX_SCHEMA_VERSION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server printed its address");
    (child, url)
}

fn kill9(child: &mut Child) {
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

async fn dev_token(http: &reqwest::Client, base: &str, user: &str) -> String {
    let r = http
        .post(format!("{base}/dev/token"))
        .json(&json!({"userId": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What the test knows was acknowledged: user → record id → title.
type Acked = Arc<Mutex<HashMap<String, BTreeMap<String, String>>>>;

/// What the writers of one round share.
#[derive(Clone)]
struct Storm {
    http: reqwest::Client,
    base: String,
    acked: Acked,
    pushes: Arc<AtomicU64>,
    first_ack: Arc<tokio::sync::Notify>,
    stop: Arc<AtomicBool>,
}

/// Pushes batches until the server goes away; records what was acknowledged.
async fn writer(storm: Storm, token: String, user: &'static str, tag: String) {
    let Storm {
        http,
        base,
        acked,
        pushes,
        first_ack,
        stop,
    } = storm;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let batch: Vec<(String, String)> = (0..BATCH)
            .map(|i| {
                let id = format!("{tag}-{n}-{i}");
                let title = format!("title of {id}");
                (id, title)
            })
            .collect();
        let changes: Vec<Value> = batch
            .iter()
            .map(|(id, title)| {
                json!({"eventId": event_id(), "table": "notes", "id": id, "op": "insert",
                       "data": {"title": title, "n": n}, "updatedAt": hlc(n, 7)})
            })
            .collect();
        n += 1;
        let sent = http
            .post(format!("{base}/sync/notes"))
            .bearer_auth(&token)
            .json(&json!({"clientId": tag, "changes": changes}))
            .send()
            .await;
        let Ok(resp) = sent else { return };
        let status = resp.status();
        // The acknowledgement is the whole 200 answer, not only its status line.
        let Ok(body) = resp.json::<Value>().await else {
            return;
        };
        assert_eq!(status, 200, "push refused: {body}");
        assert!(body.get("syncedUntil").is_some(), "{body}");
        acked
            .lock()
            .unwrap()
            .entry(user.to_owned())
            .or_default()
            .extend(batch);
        pushes.fetch_add(1, Ordering::Relaxed);
        first_ack.notify_one();
    }
}

/// Every record the user can pull: id → title (paginated, from a first sync).
async fn pull_all(http: &reqwest::Client, base: &str, token: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut since = String::new();
    loop {
        let body: Value = http
            .get(format!("{base}/sync/notes/pull"))
            .query(&[("since", since.as_str()), ("limit", "5000")])
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in body["serverChanges"].as_array().expect("serverChanges") {
            let id = c["id"].as_str().unwrap().to_owned();
            let title = c["data"]["title"]
                .as_str()
                .or_else(|| c["fields"]["title"]["value"].as_str())
                .unwrap_or_default()
                .to_owned();
            out.insert(id, title);
        }
        since = body["syncedUntil"].as_str().unwrap().to_owned();
        if !body["hasMore"].as_bool().unwrap_or(false) {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_pushes_survive_repeated_sigkill() {
    let kills: usize = std::env::var("FAULT_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    // How long, at most, a storm runs after its first acknowledgement before the kill.
    let storm_ms: u64 = std::env::var("FAULT_STORM_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400)
        .max(1);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fault.db");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let acked: Acked = Arc::default();
    let pushes = Arc::new(AtomicU64::new(0));
    // A fixed LCG: the kill moments differ from round to round and from run to run alike.
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        rng >> 33
    };

    for round in 0..kills {
        let round_start = Instant::now();
        let (mut child, base) = start(&db);
        let storm = Storm {
            http: http.clone(),
            base: base.clone(),
            acked: acked.clone(),
            pushes: pushes.clone(),
            first_ack: Arc::new(tokio::sync::Notify::new()),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let mut tasks = Vec::new();
        for user in USERS {
            let token = dev_token(&http, &base, user).await;
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
        // Kill mid-storm: some pushes acknowledged, others in flight.
        tokio::time::timeout(ROUND_LIMIT, storm.first_ack.notified())
            .await
            .expect("a push was acknowledged");
        tokio::time::sleep(Duration::from_millis(20 + next() % storm_ms)).await;
        kill9(&mut child);
        storm.stop.store(true, Ordering::Relaxed);
        for t in tasks {
            tokio::time::timeout(ROUND_LIMIT, t)
                .await
                .expect("writers stop once the server is gone")
                .unwrap();
        }
        assert!(round_start.elapsed() < ROUND_LIMIT * 2);
    }

    // Restart once more and read back every acknowledged change.
    let (mut child, base) = start(&db);
    let acked = acked.lock().unwrap().clone();
    let mut total = 0usize;
    let mut stored_total = 0usize;
    for user in USERS {
        let token = dev_token(&http, &base, user).await;
        let stored = pull_all(&http, &base, &token).await;
        stored_total += stored.len();
        let expected = acked.get(user).cloned().unwrap_or_default();
        let missing: Vec<&String> = expected
            .keys()
            .filter(|id| !stored.contains_key(*id))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "{user}: acknowledged changes lost after kill -9, e.g. {missing:?}"
        );
        for (id, title) in &expected {
            assert_eq!(&stored[id], title, "{user}/{id}");
        }
        total += expected.len();
    }
    kill9(&mut child);

    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(check, ["ok"], "integrity_check");
    drop(conn);

    println!(
        "fault: {kills} kills, {} acknowledged pushes, {total} acknowledged changes, all {total} \
         verified ({stored_total} records stored, in-flight ones included), integrity_check ok, \
         in {:.1}s",
        pushes.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    assert!(total > 0);
}
