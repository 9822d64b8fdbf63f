//! `GET /metrics` (issue #13): Prometheus text with live streams, pushes and changes, push and
//! fan-out latency, rejections by code; every answer carries an `x-request-id`.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

async fn metrics(s: &TestServer) -> String {
    let r = s
        .http
        .get(format!("{}/metrics", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    r.text().await.unwrap()
}

/// The value of the sample line `name` (with its labels), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_once(' ').is_some_and(|(n, _)| n == name))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

#[tokio::test]
async fn metrics_count_streams_pushes_latency_and_rejections() {
    let s = TestServer::start().await;
    let before = metrics(&s).await;
    assert_eq!(sample(&before, "mana_sync_pushes_total"), Some(0.0));
    assert_eq!(sample(&before, "mana_sync_live_sse_streams"), Some(0.0));

    let alice = token("alice", 3600);
    let mut sse = s
        .http
        .get(format!(
            "{}/sync/notes/stream?collections=notes&clientId=reader",
            s.base
        ))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 200);
    // The backlog page first: the push below then reaches a live stream, not its backlog.
    let first = sse.chunk().await.unwrap().expect("the first event");
    assert!(String::from_utf8_lossy(&first).contains("syncedUntil"));
    let writer = s.client("alice", "writer");
    writer
        .push(
            "notes",
            vec![json!({
                "eventId": event_id(), "table": "notes", "id": "m1", "op": "insert",
                "data": {"id": "m1", "title": "x"}, "updatedAt": hlc(1, 1),
            })],
        )
        .await;
    let unauthorized = s
        .http
        .get(format!("{}/sync/notes/pull?collection=notes", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    // The stream sends the push on: wait until it was counted.
    let mut after = String::new();
    for _ in 0..100 {
        after = metrics(&s).await;
        if sample(&after, "mana_sync_fanout_seconds_count").unwrap_or(0.0) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sample(&after, "mana_sync_live_sse_streams"), Some(1.0));
    assert_eq!(sample(&after, "mana_sync_pushes_total"), Some(1.0));
    assert_eq!(sample(&after, "mana_sync_changes_total"), Some(1.0));
    assert_eq!(sample(&after, "mana_sync_push_seconds_count"), Some(1.0));
    assert_eq!(sample(&after, "mana_sync_fanout_seconds_count"), Some(1.0));
    assert_eq!(
        sample(&after, r#"mana_sync_rejected_total{code="unauthorized"}"#),
        Some(1.0),
        "{after}"
    );
    drop(sse);
    for _ in 0..100 {
        if sample(&metrics(&s).await, "mana_sync_live_sse_streams") == Some(0.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a closed stream is no longer counted");
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_keeps_the_clients() {
    let s = TestServer::start().await;
    let r = s
        .http
        .get(format!("{}/health", s.base))
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let r = s
        .http
        .get(format!("{}/nope", s.base))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
}
