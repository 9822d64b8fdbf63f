//! The fault harness's pieces (fault.rs runs them): the real server as a child process, the
//! storm's writers and what they saw acknowledged, the read-back after the last restart, and
//! the consistency checks of the stored log on either backend (PostgreSQL's own in pg.rs).

pub mod pg;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::common::bin::dev_token;
use crate::common::bin::{server_command, spawn_listening, KillOnDrop};
use crate::common::{event_id, hlc};
use serde_json::{json, Value};

pub const USERS: [&str; 3] = ["alice", "bob", "carol"];
/// Concurrent writers per user.
pub const WRITERS_PER_USER: usize = 2;
const BATCH: usize = 25;

/// Starts `mana-sync-server --dev` on `database_url`; returns the process (killed when dropped,
/// so a failing round leaves no server behind) and its base URL.
pub fn start(database_url: &str) -> (KillOnDrop, String) {
    let mut cmd = server_command(database_url);
    cmd.arg("--dev")
        .env("RUST_LOG", "error")
        // The storm is many pushes a second from one address: out of the rate limiter's way.
        .env("RATE_LIMIT_PER_MINUTE", "10000000")
        .env("RATE_LIMIT_BURST", "1000000")
        .env("RATE_LIMIT_IP_PER_MINUTE", "10000000")
        .env("RATE_LIMIT_IP_BURST", "1000000");
    let (child, base) = spawn_listening(&mut cmd);
    (KillOnDrop(child), base)
}

pub fn kill9(child: &mut KillOnDrop) {
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
}

/// What the test knows was acknowledged.
#[derive(Default, Clone)]
pub struct Acked {
    /// user → record id → title.
    pub records: HashMap<String, BTreeMap<String, String>>,
    pub event_ids: HashSet<String>,
    pub pushes: u64,
}

/// How one push ended.
pub enum Pushed {
    /// 200 with a full body: recorded in [`Acked`].
    Acked,
    /// The server answered 503 `unavailable`: the database was down.
    Refused(u16),
    /// No whole answer: the server went away.
    Gone,
}

/// One push of a batch of inserts; what a 200 acknowledged goes into `acked`.
pub async fn push_batch(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    user: &str,
    tag: &str,
    n: u64,
    acked: &Mutex<Acked>,
) -> Pushed {
    let batch: Vec<(String, String, String)> = (0..BATCH)
        .map(|i| {
            let id = format!("{tag}-{n}-{i}");
            let title = format!("title of {id}");
            (id, title, event_id())
        })
        .collect();
    let changes: Vec<Value> = batch
        .iter()
        .map(|(id, title, eid)| {
            json!({"eventId": eid, "table": "notes", "id": id, "op": "insert",
                   "data": {"title": title, "n": n}, "updatedAt": hlc(n, 7)})
        })
        .collect();
    let sent = http
        .post(format!("{base}/sync/notes"))
        .bearer_auth(token)
        .json(&json!({"clientId": tag, "changes": changes}))
        .send()
        .await;
    let Ok(resp) = sent else { return Pushed::Gone };
    let status = resp.status();
    let retry_after = resp.headers().get("retry-after").cloned();
    // The acknowledgement is the whole 200 answer, not only its status line.
    let Ok(body) = resp.json::<Value>().await else {
        return Pushed::Gone;
    };
    if status != 200 {
        // The database being down is no bug of the request: 503 `unavailable`, retry later.
        assert!(
            status == 503 && body["code"] == "unavailable" && retry_after.is_some(),
            "push refused with {status} (Retry-After {retry_after:?}): {body}"
        );
        return Pushed::Refused(status.as_u16());
    }
    assert!(body.get("syncedUntil").is_some(), "{body}");
    let mut a = acked.lock().unwrap();
    a.pushes += 1;
    let records = a.records.entry(user.to_owned()).or_default();
    let mut eids = Vec::with_capacity(BATCH);
    for (id, title, eid) in batch {
        records.insert(id, title);
        eids.push(eid);
    }
    a.event_ids.extend(eids);
    Pushed::Acked
}

/// What the writers of one round share.
#[derive(Clone)]
pub struct Storm {
    pub http: reqwest::Client,
    pub base: String,
    pub acked: Arc<Mutex<Acked>>,
    pub first_ack: Arc<tokio::sync::Notify>,
    pub stop: Arc<AtomicBool>,
    /// Whether an error answer is expected (the database is crashed during the storm).
    pub refusals_expected: bool,
    pub refused: Arc<AtomicU64>,
}

/// Pushes batches until the server goes away (or, when expected, refuses a push).
pub async fn writer(storm: Storm, token: String, user: &'static str, tag: String) {
    let mut n = 0u64;
    while !storm.stop.load(Ordering::Relaxed) {
        let pushed = push_batch(
            &storm.http,
            &storm.base,
            &token,
            user,
            &tag,
            n,
            &storm.acked,
        )
        .await;
        n += 1;
        match pushed {
            Pushed::Acked => storm.first_ack.notify_one(),
            Pushed::Refused(status) => {
                assert!(
                    storm.refusals_expected,
                    "push refused with {status} while the database was up"
                );
                storm.refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Pushed::Gone => return,
        }
    }
}

/// Every record the user can pull: id → title (paginated, from a first sync).
pub async fn pull_all(http: &reqwest::Client, base: &str, token: &str) -> BTreeMap<String, String> {
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

/// Pulls every user's records back through the server and compares them with what was
/// acknowledged. Returns (acknowledged changes verified, records stored).
pub async fn verify_through_server(
    http: &reqwest::Client,
    base: &str,
    acked: &Acked,
) -> (usize, usize) {
    let mut total = 0usize;
    let mut stored_total = 0usize;
    for user in USERS {
        let token = dev_token(http, base, user).await;
        let stored = pull_all(http, base, &token).await;
        stored_total += stored.len();
        let expected = acked.records.get(user).cloned().unwrap_or_default();
        let missing: Vec<&String> = expected
            .keys()
            .filter(|id| !stored.contains_key(*id))
            .take(5)
            .collect();
        assert!(
            missing.is_empty(),
            "{user}: acknowledged changes lost, e.g. {missing:?}"
        );
        for (id, title) in &expected {
            assert_eq!(&stored[id], title, "{user}/{id}");
        }
        total += expected.len();
    }
    (total, stored_total)
}

/// Consistency of the stored log and state that holds on both backends, each a query whose
/// answer must be 0: (what it would mean, SQL).
pub const LOG_CHECKS: &[(&str, &str)] = &[
    (
        "log rows without their state row",
        "SELECT count(*) FROM changes c WHERE NOT EXISTS (SELECT 1 FROM records r
           WHERE r.app_id = c.app_id AND r.tbl = c.tbl AND r.record_id = c.record_id)",
    ),
    (
        "state rows whose last_seq is not a log row of theirs",
        "SELECT count(*) FROM records r WHERE NOT EXISTS (SELECT 1 FROM changes c
           WHERE c.seq = r.last_seq AND c.app_id = r.app_id AND c.tbl = r.tbl
             AND c.record_id = r.record_id)",
    ),
    (
        "eventIds stored more than once",
        "SELECT count(*) - count(DISTINCT event_id) FROM changes",
    ),
    (
        // Each committed push appends head+1..head+n; a rolled-back one appends nothing.
        "gaps in the log's sequence numbers",
        "SELECT coalesce(max(seq), 0) - count(*) FROM changes",
    ),
];

/// Every acknowledged eventId is among the stored ones.
pub fn assert_event_ids_stored(acked: &Acked, stored: &HashSet<String>) {
    let missing: Vec<&String> = acked
        .event_ids
        .iter()
        .filter(|e| !stored.contains(*e))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged eventIds not in the log, e.g. {missing:?}"
    );
}

/// Durations in milliseconds, for the summary: "median / max".
pub fn median_max(ds: &[Duration]) -> String {
    let mut ms: Vec<f64> = ds.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    if ms.is_empty() {
        return "-".into();
    }
    ms.sort_by(f64::total_cmp);
    format!("{:.0} / {:.0} ms", ms[ms.len() / 2], ms[ms.len() - 1])
}
