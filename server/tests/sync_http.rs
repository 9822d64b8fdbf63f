//! End-to-end tests of the sync server over real HTTP (server on 127.0.0.1:0, temp database).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::ws::Ws;
use common::*;
use futures_util::{SinkExt, StreamExt};
use mana_sync::merge::RecordState;
use mana_sync::Change;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn health_answers_ok_with_version() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], mana_sync::VERSION);
}

#[tokio::test]
async fn insert_pull_update_pull_round_trip() {
    let s = TestServer::start().await;
    let mut a = s.client("alice", "client-a");
    let mut b = s.client("alice", "client-b");

    let resp = a
        .push(
            "notes",
            vec![insert(
                "notes",
                "n1",
                json!({"title": "hello", "body": "world"}),
                &hlc(1, 0xa),
            )],
        )
        .await;
    assert_eq!(resp["conflicts"], json!([]));
    a.cursor = Some(resp["syncedUntil"].as_str().unwrap().to_owned());

    let seen = b.pull_all("notes").await;
    assert_eq!(seen.len(), 1);
    let c = &seen[0];
    assert_eq!(c.id, "n1");
    assert!(c.seq.is_some() && c.schema_version == Some(1));
    let state = apply_all(RecordState::default(), &seen, "n1");
    assert_eq!(state.fields["title"].value, json!("hello"));
    assert_eq!(state.fields["body"].value, json!("world"));

    b.push(
        "notes",
        vec![update("notes", "n1", "title", json!("HELLO"), &hlc(5, 0xb))],
    )
    .await;

    let got = a.pull_all("notes").await;
    assert_eq!(got.len(), 1, "A gets exactly B's update: {got:?}");
    assert_eq!(got[0].op, mana_sync::Op::Update);
    let fields = got[0].fields.as_ref().unwrap();
    assert_eq!(fields["title"].value, json!("HELLO"));
    assert!(!fields.contains_key("body"));
    assert_eq!(got[0].schema_version, Some(1));
    assert!(got[0].seq.is_some());
}

/// Both clients start from the same record, edit offline, then sync; every replica ends equal.
async fn concurrent_scenario(
    a_field: &str,
    a_at: u64,
    b_field: &str,
    b_at: u64,
) -> [RecordState; 3] {
    let s = TestServer::start().await;
    let mut a = s.client("alice", "client-a");
    let mut b = s.client("alice", "client-b");
    let base = insert(
        "notes",
        "n1",
        json!({"title": "t0", "body": "b0"}),
        &hlc(1, 0xa),
    );
    a.push("notes", vec![base.clone()]).await;
    let mut a_state = apply_all(RecordState::default(), &[change(base)], "n1");
    a.cursor = None;
    a_state = apply_all(a_state, &a.pull_all("notes").await, "n1");
    let mut b_state = apply_all(RecordState::default(), &b.pull_all("notes").await, "n1");

    let a_edit = update("notes", "n1", a_field, json!("from-a"), &hlc(a_at, 0xa));
    let b_edit = update("notes", "n1", b_field, json!("from-b"), &hlc(b_at, 0xb));
    a_state = apply_all(a_state, &[change(a_edit.clone())], "n1");
    b_state = apply_all(b_state, &[change(b_edit.clone())], "n1");

    a.push("notes", vec![a_edit]).await;
    let resp = b.push("notes", vec![b_edit]).await;
    // B's push answer carries what it missed (A's edit).
    let missed: Vec<Change> = serde_json::from_value(resp["serverChanges"].clone()).unwrap();
    assert!(missed.iter().any(|c| c
        .fields
        .as_ref()
        .unwrap()
        .values()
        .any(|f| f.value == "from-a")));
    b_state = apply_all(b_state, &missed, "n1");
    b.cursor = Some(resp["syncedUntil"].as_str().unwrap().to_owned());
    a_state = apply_all(a_state, &a.pull_all("notes").await, "n1");
    b_state = apply_all(b_state, &b.pull_all("notes").await, "n1");

    // A fresh client's first sync, served from the server's current state.
    let mut c = s.client("alice", "client-c");
    let c_state = apply_all(RecordState::default(), &c.pull_all("notes").await, "n1");
    [a_state, b_state, c_state]
}

#[tokio::test]
async fn concurrent_edits_of_different_fields_both_survive() {
    let [a, b, c] = concurrent_scenario("title", 10, "body", 11).await;
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.fields["title"].value, json!("from-a"));
    assert_eq!(a.fields["body"].value, json!("from-b"));
}

#[tokio::test]
async fn concurrent_edits_of_one_field_converge_to_the_higher_hlc() {
    // A writes later (higher HLC) but pushes first; B's older write arrives second and loses.
    let [a, b, c] = concurrent_scenario("title", 20, "title", 15).await;
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.fields["title"].value, json!("from-a"));
    // And the other way round: the later push wins when its HLC is higher.
    let [a, b, c] = concurrent_scenario("title", 15, "title", 20).await;
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(a.fields["title"].value, json!("from-b"));
}

#[tokio::test]
async fn losing_push_reports_a_conflict() {
    let s = TestServer::start().await;
    let a = s.client("alice", "client-a");
    let b = s.client("alice", "client-b");
    a.push(
        "notes",
        vec![insert("notes", "n1", json!({"title": "t0"}), &hlc(1, 0xa))],
    )
    .await;
    a.push(
        "notes",
        vec![update("notes", "n1", "title", json!("A"), &hlc(20, 0xa))],
    )
    .await;
    let resp = b
        .push(
            "notes",
            vec![update("notes", "n1", "title", json!("B"), &hlc(15, 0xb))],
        )
        .await;
    let conflicts = resp["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{resp}");
    assert_eq!(conflicts[0]["field"], "title");
    assert_eq!(conflicts[0]["wasLocal"], "B");
    assert_eq!(conflicts[0]["nowServer"], "A");
    assert_eq!(conflicts[0]["serverAt"], hlc(20, 0xa));
}

#[tokio::test]
async fn delete_reaches_other_clients_as_a_tombstone() {
    let s = TestServer::start().await;
    let a = s.client("alice", "client-a");
    let mut b = s.client("alice", "client-b");
    a.push(
        "notes",
        vec![insert("notes", "n1", json!({"title": "x"}), &hlc(1, 0xa))],
    )
    .await;
    let first = b.pull_all("notes").await;
    assert_eq!(first.len(), 1);
    let del_at = hlc(9, 0xa);
    a.push("notes", vec![delete("notes", "n1", &del_at)]).await;
    let got = b.pull_all("notes").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].op, mana_sync::Op::Delete);
    assert_eq!(got[0].deleted_at.as_deref(), Some(del_at.as_str()));
    let state = apply_all(apply_all(RecordState::default(), &first, "n1"), &got, "n1");
    assert!(state.is_deleted());

    // A first sync still carries the tombstone (top-level deletedAt).
    let mut c = s.client("alice", "client-c");
    let snap = c.pull_all("notes").await;
    assert_eq!(snap.len(), 1);
    assert_eq!(snap[0].deleted_at.as_deref(), Some(del_at.as_str()));
    assert!(apply_all(RecordState::default(), &snap, "n1").is_deleted());
}

#[tokio::test]
async fn bad_tokens_get_401() {
    let s = TestServer::start().await;
    let url = format!("{}/sync/notes/pull", s.base);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("not-a-jwt".into())),
        (
            "bad signature",
            Some(token_with_secret("alice", 3600, "another-secret")),
        ),
        ("expired", Some(token("alice", -3600))),
        ("empty sub", Some(token("", 3600))),
    ];
    for (what, tok) in cases {
        let mut req = s.http.get(&url);
        if let Some(t) = tok {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "unauthorized", "{what}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // Push too.
    let r = s
        .http
        .post(format!("{}/sync/notes", s.base))
        .json(&json!({"clientId": "c", "changes": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

fn ids(changes: &[Change]) -> Vec<String> {
    changes.iter().map(|c| c.id.clone()).collect()
}

#[tokio::test]
async fn pages_of_2500_changes_lose_nothing_and_repeat_nothing() {
    let s = TestServer::start().await;
    let a = s.client("alice", "client-a");
    let changes: Vec<Value> = (0..2500)
        .map(|i| insert("items", &format!("r{i:05}"), json!({"n": i}), &hlc(i, 0xa)))
        .collect();
    a.push("todo", changes).await;

    // Incremental pulls from the log (since = 0) and a first sync (no since) from the state.
    for start in [Some("0"), None] {
        let mut b = s.client("alice", "client-b");
        b.cursor = start.map(str::to_owned);
        let mut all = Vec::new();
        let mut flags = Vec::new();
        loop {
            let q = match &b.cursor {
                Some(c) => format!("since={c}&limit=1000"),
                None => "limit=1000".into(),
            };
            let (status, body) = b.pull_raw("todo", &q).await;
            assert_eq!(status, 200);
            let page: Vec<Change> = serde_json::from_value(body["serverChanges"].clone()).unwrap();
            assert!(page.len() <= 1000);
            all.extend(page);
            let more = body["hasMore"].as_bool().unwrap();
            flags.push(more);
            b.cursor = Some(body["syncedUntil"].as_str().unwrap().to_owned());
            if !more {
                break;
            }
        }
        assert_eq!(flags, [true, true, false], "start {start:?}");
        let got = ids(&all);
        let unique: HashSet<_> = got.iter().collect();
        assert_eq!(got.len(), 2500, "start {start:?}");
        assert_eq!(unique.len(), 2500, "start {start:?}: duplicates");
        for c in &all {
            assert!(c.seq.is_some() && c.schema_version.is_some(), "{c:?}");
        }
        // Nothing new afterwards.
        assert!(b.pull_all("todo").await.is_empty());
    }

    // limit is capped at 5000 and must be a positive integer.
    let (status, body) = a.pull_raw("todo", "limit=100000").await;
    assert_eq!(status, 200);
    assert_eq!(body["serverChanges"].as_array().unwrap().len(), 2500);
    let (status, body) = a.pull_raw("todo", "limit=abc").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_limit"))
    );
    let (status, body) = a.pull_raw("todo", "since=garbage").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
}

#[tokio::test]
async fn re_pushing_the_same_changeset_changes_nothing() {
    let s = TestServer::start().await;
    let a = s.client("alice", "client-a");
    let batch = vec![
        insert("notes", "n1", json!({"title": "x"}), &hlc(1, 0xa)),
        update("notes", "n1", "title", json!("y"), &hlc(2, 0xa)),
        insert("notes", "n2", json!({"title": "z"}), &hlc(3, 0xa)),
    ];
    let body = json!({"clientId": "client-a", "since": "0", "changes": batch});
    let (st1, r1) = a.push_raw("notes", body.clone()).await;
    assert_eq!(st1, 200);
    let mut observer = s.client("alice", "client-o");
    observer.cursor = Some("0".into());
    let before = observer.pull_all("notes").await;
    let cursor = observer.cursor.clone();

    let (st2, r2) = a.push_raw("notes", body).await;
    assert_eq!(st2, 200, "{r2}");
    assert_eq!(
        r1["syncedUntil"], r2["syncedUntil"],
        "no new sequence numbers"
    );
    assert!(
        observer.pull_all("notes").await.is_empty(),
        "no new changes logged"
    );
    assert_eq!(observer.cursor, cursor);
    let mut fresh = s.client("alice", "client-f");
    let snap = fresh.pull_all("notes").await;
    assert_eq!(before.len(), 3);
    assert_eq!(snap.len(), 2);
    let n1 = snap.iter().find(|c| c.id == "n1").unwrap();
    let state = RecordState::from_change(n1).unwrap();
    assert_eq!(state.fields["title"].value, json!("y"));
}

#[tokio::test]
async fn schema_version_above_the_maximum_is_422_and_writes_nothing() {
    let s = TestServer::start().await;
    let a = s.client("alice", "client-a");
    let mut c = insert("notes", "n1", json!({"title": "x"}), &hlc(1, 0xa));
    c["schemaVersion"] = json!(99);
    let ok = insert("notes", "n0", json!({"title": "x"}), &hlc(1, 0xa));
    let (status, body) = a
        .push_raw("notes", json!({"clientId": "client-a", "changes": [ok, c]}))
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["code"], "schema_version_unsupported");
    assert_eq!(body["index"], 1);
    let (status, body) = a
        .push_raw(
            "notes",
            json!({"clientId": "client-a", "schemaVersion": 99, "changes": []}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("schema_version_unsupported"))
    );
    let mut o = s.client("alice", "o");
    assert!(o.pull_all("notes").await.is_empty());
}

#[tokio::test]
async fn limits_and_malformed_input_get_coded_errors_and_write_nothing() {
    let s = TestServer::start_with(|c| c.max_body_bytes = 256 * 1024).await;
    let a = s.client("alice", "client-a");

    // Body over MAX_BODY_BYTES.
    let big = "x".repeat(300 * 1024);
    let (status, body) = a
        .push_raw(
            "notes",
            json!({"clientId": "client-a", "changes": [insert("notes", "n1", json!({"big": big}), &hlc(1, 1))]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );

    // More than 5000 changes (small enough to pass the body limit on its own server).
    let s2 = TestServer::start().await;
    let a2 = s2.client("alice", "client-a");
    let many: Vec<Value> = (0..5001)
        .map(|i| delete("t", &format!("{i}"), &hlc(1, 1)))
        .collect();
    let (status, body) = a2
        .push_raw("notes", json!({"clientId": "client-a", "changes": many}))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("too_many_changes")),
        "{body}"
    );

    // Malformed JSON.
    let r = s
        .http
        .post(format!("{}/sync/notes", s.base))
        .bearer_auth(&a.token)
        .header("content-type", "application/json")
        .body("{\"clientId\": \"c\", \"changes\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json");

    // An invalid change names its index; the valid ones before it are not written.
    let bad_update = json!({"eventId": event_id(), "table": "notes", "id": "n1", "op": "update"});
    let (status, body) = a
        .push_raw(
            "notes",
            json!({"clientId": "client-a", "changes": [
                insert("notes", "n1", json!({"t": 1}), &hlc(1, 1)),
                insert("notes", "n2", json!({"t": 2}), &hlc(1, 1)),
                bad_update,
            ]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "missing_fields");
    assert_eq!(body["index"], 2);
    assert!(body["message"].as_str().unwrap().contains("changes[2]"));

    // A change that is not even a change (wrong type) also names its index.
    let (status, body) = a
        .push_raw(
            "notes",
            json!({"clientId": "client-a", "changes": [
                insert("notes", "n1", json!({"t": 1}), &hlc(1, 1)),
                {"eventId": 5, "table": "notes"},
            ]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str(), body["index"].as_u64()),
        (400, Some("invalid_change"), Some(1))
    );

    // Bad HLC, bad event id.
    let (status, body) = a
        .push_raw(
            "notes",
            json!({"clientId": "client-a", "changes": [insert("notes", "n1", json!({}), "yesterday")]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_timestamp"))
    );

    let mut o = s.client("alice", "o");
    assert!(o.pull_all("notes").await.is_empty(), "nothing was written");
}

#[tokio::test]
async fn visibility_and_authorship_are_enforced() {
    let s = TestServer::start().await;
    let alice = s.client("alice", "a1");
    let mut bob = s.client("bob", "b1");
    alice
        .push(
            "notes",
            vec![insert(
                "notes",
                "n1",
                json!({"title": "secret"}),
                &hlc(1, 1),
            )],
        )
        .await;
    assert!(
        bob.pull_all("notes").await.is_empty(),
        "bob doesn't see alice's rows"
    );

    let (status, body) = bob
        .push_raw(
            "notes",
            json!({"clientId": "b1", "changes": [
                insert("notes", "b-own", json!({"title": "mine"}), &hlc(1, 2)),
                update("notes", "n1", "title", json!("hijacked"), &hlc(9, 2)),
            ]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str(), body["index"].as_u64()),
        (403, Some("forbidden"), Some(1))
    );
    // Writing into another user's personal space is refused as well.
    let mut c = insert("notes", "b2", json!({"title": "x"}), &hlc(1, 2));
    c["spaceId"] = json!("_personal:alice");
    let (status, _) = bob
        .push_raw("notes", json!({"clientId": "b1", "changes": [c]}))
        .await;
    assert_eq!(status, 403);
    let mut alice2 = s.client("alice", "a2");
    let seen = alice2.pull_all("notes").await;
    assert_eq!(ids(&seen), ["n1"]);
    let state = RecordState::from_change(&seen[0]).unwrap();
    assert_eq!(state.fields["title"].value, json!("secret"));
}

async fn open_sse(s: &TestServer, query: &str, token: &str) -> SseReader {
    let resp = s
        .http
        .get(format!("{}/sync/notes/stream?{query}", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    SseReader::new(resp)
}

async fn open_ws(s: &TestServer, path: &str, token: &str, client_id: &str) -> Ws {
    common::ws::open_ws(&s.ws_url(path), token, client_id).await
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    common::ws::next_json(ws, SECOND).await
}

#[tokio::test]
async fn sse_and_websocket_each_get_another_clients_push_within_a_second() {
    let s = TestServer::start().await;
    let a = s.client("alice", "client-a");
    a.push(
        "notes",
        vec![insert("notes", "old", json!({"v": 0}), &hlc(1, 1))],
    )
    .await;

    let b_token = token("alice", 3600);
    let mut sse = open_sse(&s, "clientId=client-b", &b_token).await;
    // Backlog first: the current state.
    let first = sse.next(SECOND).await.expect("backlog event");
    let page: Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(page["serverChanges"].as_array().unwrap().len(), 1);
    assert_eq!(first.id.as_deref(), page["syncedUntil"].as_str());

    let mut ws = open_ws(&s, "/ws", &b_token, "client-b").await;
    let mut legacy = open_ws(&s, "/ws/notes", &b_token, "client-b").await;
    let mut other_app = open_ws(&s, "/ws/todo", &b_token, "client-b").await;
    // Bob's socket must not hear about alice's rows.
    let mut bob = open_ws(&s, "/ws", &token("bob", 3600), "bob-1").await;

    a.push(
        "notes",
        vec![insert("notes", "n1", json!({"title": "live"}), &hlc(2, 1))],
    )
    .await;

    let ev = sse.next(SECOND).await.expect("SSE event within 1 s");
    let page: Value = serde_json::from_str(&ev.data).unwrap();
    let changes = page["serverChanges"].as_array().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["id"], "n1");
    assert!(changes[0]["seq"].is_string() && changes[0]["eventId"].is_string());

    for sock in [&mut ws, &mut legacy] {
        let frame = next_json(sock).await.expect("WebSocket frame within 1 s");
        assert_eq!(
            frame,
            json!({"type": "sync-available", "appId": "notes", "table": "notes"})
        );
    }
    // The per-app socket of another app and another user's socket stay silent; a ping
    // answered proves they are alive and that nothing was queued before it.
    for sock in [&mut other_app, &mut bob] {
        sock.send(Message::text(r#"{"type":"ping"}"#))
            .await
            .unwrap();
        assert_eq!(next_json(sock).await.unwrap(), json!({"type": "pong"}));
    }

    // The pusher's own client isn't echoed.
    let b = s.client("alice", "client-b");
    b.push(
        "notes",
        vec![update("notes", "n1", "title", json!("mine"), &hlc(3, 2))],
    )
    .await;
    ws.send(Message::text(r#"{"type":"ping"}"#)).await.unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap(), json!({"type": "pong"}));
}

#[tokio::test]
async fn stream_accepts_token_in_query_and_resumes_from_last_event_id() {
    let s = TestServer::start().await;
    let a = s.client("alice", "client-a");
    a.push(
        "notes",
        vec![insert("notes", "n1", json!({"v": 1}), &hlc(1, 1))],
    )
    .await;
    let t = token("alice", 3600);
    let resp = s
        .http
        .get(format!("{}/sync/notes/stream?since=0&token={t}", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut sse = SseReader::new(resp);
    let first = sse.next(SECOND).await.unwrap();
    let last_id = first.id.unwrap();
    drop(sse);
    a.push(
        "notes",
        vec![insert("notes", "n2", json!({"v": 2}), &hlc(2, 1))],
    )
    .await;
    let resp = s
        .http
        .get(format!("{}/sync/notes/stream", s.base))
        .bearer_auth(&t)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(resp);
    let ev = sse.next(SECOND).await.unwrap();
    let page: Value = serde_json::from_str(&ev.data).unwrap();
    let got: Vec<&str> = page["serverChanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["n2"]);

    let r = s
        .http
        .get(format!("{}/sync/notes/stream", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn websocket_with_a_bad_token_is_refused() {
    let s = TestServer::start().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(s.ws_url("/ws"))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "token": token("alice", -3600)}).to_string(),
    ))
    .await
    .unwrap();
    let frame = next_json(&mut ws).await.unwrap();
    assert_eq!(frame["type"], "error");
    assert_eq!(frame["code"], "unauthorized");
    let closed = tokio::time::timeout(SECOND, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => return Some(u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(4401));
}

#[tokio::test]
async fn unknown_routes_and_bad_app_ids_answer_json_errors() {
    let s = TestServer::start().await;
    let r = s.http.get(format!("{}/nope", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn billing_gate_answers_402_unless_subscribed_or_exempt() {
    let credits = axum::Router::new().route(
        "/api/v1/sync/status",
        axum::routing::get(
            |headers: axum::http::HeaderMap,
             axum::extract::Query(q): axum::extract::Query<
                std::collections::HashMap<String, String>,
            >| async move {
                assert_eq!(headers["x-service-key"], "svc-key");
                axum::Json(json!({"active": q["userId"] != "broke"}))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, credits).await.unwrap() });
    let s = TestServer::start_with(|c| {
        c.mana_credits_url = Some(url);
        c.mana_service_key = Some("svc-key".into());
        c.billing_exempt_apps = "demo, free".into();
    })
    .await;
    let broke = s.client("broke", "c1");
    let paid = s.client("paid", "c2");
    let body =
        |cid: &str| json!({"clientId": cid, "changes": [insert("t", "x", json!({}), &hlc(1, 1))]});
    let (status, resp) = broke.push_raw("notes", body("c1")).await;
    assert_eq!(
        (status, resp["code"].as_str()),
        (402, Some("payment_required"))
    );
    assert_eq!(broke.pull_raw("notes", "").await.0, 402);
    assert_eq!(
        broke.push_raw("free", body("c1")).await.0,
        200,
        "exempt app"
    );
    assert_eq!(paid.push_raw("notes", body("c2")).await.0, 200);
}

#[tokio::test]
async fn idle_sse_stream_sends_heartbeat_comments() {
    let s = TestServer::start_with(|c| c.sse_heartbeat_ms = 100).await;
    let resp = s
        .http
        .get(format!("{}/sync/notes/stream", s.base))
        .bearer_auth(token("alice", 3600))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let text = tokio::time::timeout(Duration::from_secs(5), async {
        let mut text = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains(": heartbeat\n\n") {
                return text;
            }
        }
        text
    })
    .await
    .expect("a heartbeat within 5 s at a 100 ms interval");
    assert!(text.contains(": heartbeat\n\n"), "{text}");
}

#[tokio::test]
async fn live_streams_end_when_their_token_expires() {
    let s = TestServer::start().await;
    let short = token("alice", 1);
    let mut sse = open_sse(&s, "", &short).await;
    assert!(sse.next(SECOND).await.is_some(), "backlog");
    let mut ws = open_ws(&s, "/ws", &short, "c").await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        // (Longer than the outer timeout: only the end of the stream makes this return.)
        while sse.next(Duration::from_secs(10)).await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "SSE stream ended at expiry");
    let frame = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return serde_json::from_str::<Value>(t.as_str()).unwrap()
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended without a frame: {other:?}"),
            }
        }
    })
    .await
    .expect("WebSocket told about expiry");
    assert_eq!(frame["code"], "unauthorized");
}

#[tokio::test]
async fn actor_schema_version_and_space_are_re_emitted() {
    let s = TestServer::start().await;
    let a = s.client("alice", "a1");
    let mut with_actor = insert("notes", "n1", json!({"t": 1}), &hlc(1, 1));
    with_actor["actor"] = json!({"kind": "ai", "model": "m-1", "nested": {"x": [1, 2]}});
    let plain = insert(
        "notes",
        "n2",
        json!({"t": 2, "spaceId": "team-9"}),
        &hlc(2, 1),
    );
    let mut fields_space = update("notes", "n2", "t", json!(3), &hlc(3, 1));
    fields_space["fields"]["spaceId"] = json!({"value": "team-9", "updatedAt": hlc(3, 1)});
    a.push("notes", vec![with_actor, plain, fields_space]).await;

    let (status, body) = a.pull_raw("notes", "since=0").await;
    assert_eq!(status, 200);
    let changes = body["serverChanges"].as_array().unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(
        changes[0]["actor"],
        json!({"kind": "ai", "model": "m-1", "nested": {"x": [1, 2]}})
    );
    assert!(
        changes[1].get("actor").is_none(),
        "absent actor stays absent"
    );
    for c in changes {
        assert_eq!(c["schemaVersion"], 1);
        assert!(c["seq"].is_string() && c["eventId"].is_string());
    }
    assert!(changes[0].get("spaceId").is_none(), "personal");
    assert_eq!(changes[1]["spaceId"], "team-9", "from data.spaceId");
    assert_eq!(changes[2]["spaceId"], "team-9", "from the record");
}
