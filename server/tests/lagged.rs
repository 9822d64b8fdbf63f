//! A live stream that falls behind the in-process notification feed (tokio `broadcast`
//! `Lagged`) re-reads from its cursor instead of silently missing changes (issue #13).
//!
//! Two servers share one database, like two instances behind a load balancer: a push to `B`
//! commits without notifying `A`'s subscribers, and the test plays `A`'s feed by hand (its
//! `events` sender), with a capacity of 4 so that a burst of notifications skips some.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ws::Ws;
use common::*;
use mana_sync_server::store::LoggedChange;
use mana_sync_server::{AppState, Config, PushEvent, ShutdownHandle};
use serde_json::{json, Value};
use tokio::sync::broadcast;

struct Node {
    base: String,
    events: broadcast::Sender<Arc<PushEvent>>,
    _shutdown: ShutdownHandle,
}

async fn node(db: &std::path::Path, capacity: usize) -> Node {
    let mut config = Config::for_tests(format!("sqlite://{}", db.display()));
    config.mana_jwt_secret = Some(SECRET.into());
    config.mana_auth_url = None;
    config.broadcast_capacity = capacity;
    let (state, shutdown) = AppState::new(&config).unwrap();
    let events = state.events.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(mana_sync_server::serve_on(
        listener,
        state,
        std::future::pending(),
    ));
    Node {
        base,
        events,
        _shutdown: shutdown,
    }
}

fn client(base: &str, user: &str, id: &str) -> Client {
    Client {
        base: base.to_owned(),
        http: reqwest::Client::new(),
        token: token(user, 3600),
        client_id: id.into(),
        cursor: None,
    }
}

fn event(table: &str, id: &str, seq: i64, author: &str) -> Arc<PushEvent> {
    Arc::new(PushEvent {
        committed: Instant::now(),
        app_id: "notes".into(),
        client_id: "elsewhere".into(),
        changes: vec![LoggedChange {
            table: table.into(),
            id: id.into(),
            seq,
            author: author.into(),
            space_id: None,
        }],
    })
}

/// More notifications of other people's pushes than the feed holds: every subscriber that
/// has not read them yet has fallen behind.
fn burst(events: &broadcast::Sender<Arc<PushEvent>>) {
    for i in 0..10 {
        let _ = events.send(event("other", &format!("o{i}"), 0, "someone-else"));
    }
}

/// Commits through `b` (so `a` announces nothing) and returns the change's log position.
async fn commit_elsewhere(b: &Node, table: &str, id: &str, at: u64) -> i64 {
    let alice = client(&b.base, "alice", "a-b");
    alice
        .push(
            "notes",
            vec![insert(table, id, json!({"v": id}), &hlc(at, 1))],
        )
        .await;
    let mut reader = client(&b.base, "alice", "a-reader");
    reader.cursor = Some("0".into());
    let all = reader.pull_all("notes").await;
    let c = all.iter().find(|c| c.id == id).unwrap();
    c.seq.as_deref().unwrap().parse().unwrap()
}

async fn open_ws(base: &str, user: &str) -> Ws {
    let url = format!("{}/ws", base.replacen("http://", "ws://", 1));
    common::ws::open_ws(&url, &token(user, 3600), "ws").await
}

async fn next_frame(ws: &mut Ws) -> Option<Value> {
    common::ws::next_json(ws, Duration::from_secs(5)).await
}

fn announced(table: &str) -> Option<Value> {
    Some(json!({"type": "sync-available", "appId": "notes", "table": table}))
}

#[tokio::test]
async fn a_websocket_that_fell_behind_is_told_what_it_missed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sync.db");
    let a = node(&db, 4).await;
    let b = node(&db, 1024).await;
    let mut ws = open_ws(&a.base, "alice").await;
    commit_elsewhere(&b, "tasks", "t1", 1).await;
    // Nothing about it reaches the socket but the fact that it fell behind.
    burst(&a.events);
    assert_eq!(next_frame(&mut ws).await, announced("tasks"));
}

#[tokio::test]
async fn a_websocket_that_fell_behind_resyncs_from_before_a_notification_that_came_early() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sync.db");
    let a = node(&db, 4).await;
    let b = node(&db, 1024).await;
    let mut ws = open_ws(&a.base, "alice").await;
    let early = commit_elsewhere(&b, "early", "e1", 1).await;
    let late = commit_elsewhere(&b, "late", "l1", 2).await;
    assert!(early < late);
    // Pushes notify in the order they finish, not in log order: the later change's
    // notification arrives first ...
    let _ = a.events.send(event("late", "l1", late, "alice"));
    assert_eq!(next_frame(&mut ws).await, announced("late"));
    // ... and the earlier one's is among those skipped when the socket falls behind. The
    // resync must still cover it (it used to start after the latest notification seen).
    let _ = a.events.send(event("early", "e1", early, "alice"));
    burst(&a.events);
    let mut tables = Vec::new();
    while let Some(f) = next_frame(&mut ws).await {
        tables.push(f["table"].as_str().unwrap().to_owned());
        if tables.iter().any(|t| t == "early") {
            break;
        }
    }
    assert!(tables.iter().any(|t| t == "early"), "told: {tables:?}");
}

#[tokio::test]
async fn an_sse_stream_that_fell_behind_rereads_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sync.db");
    let a = node(&db, 4).await;
    let b = node(&db, 1024).await;
    let resp = reqwest::Client::new()
        .get(format!("{}/sync/notes/stream", a.base))
        .bearer_auth(token("alice", 3600))
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(resp);
    let first = sse.next(Duration::from_secs(5)).await.unwrap();
    let first: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(first["serverChanges"], json!([]));
    for (i, id) in ["n1", "n2", "n3"].iter().enumerate() {
        commit_elsewhere(&b, "notes", id, i as u64 + 1).await;
    }
    burst(&a.events);
    let ev = sse
        .next(Duration::from_secs(5))
        .await
        .expect("a resync page");
    let page: Value = serde_json::from_str(&ev.data).unwrap();
    let ids: Vec<&str> = page["serverChanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["n1", "n2", "n3"]);
    assert_eq!(ev.id.as_deref(), page["syncedUntil"].as_str());
}
