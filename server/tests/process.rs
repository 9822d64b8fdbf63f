//! Tests against the real `mana-sync-server` binary: durability across SIGKILL, start-up
//! refusal without auth configuration, graceful shutdown on SIGTERM.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::bin::dev_token;
use common::{event_id, hlc, SseReader};
use serde_json::{json, Value};

fn command(db: &Path) -> Command {
    common::bin::server_command(&format!("sqlite://{}", db.display()))
}

/// Starts the binary with `--dev` and returns it with its base URL (read from stdout).
fn start(db: &Path) -> (Child, String) {
    common::bin::spawn_listening(command(db).arg("--dev"))
}

#[tokio::test]
async fn acknowledged_push_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("durable.db");
    let http = reqwest::Client::new();

    let (mut child, base) = start(&db);
    let token = dev_token(&http, &base, "alice").await;
    let changes: Vec<Value> = (0..200)
        .map(|i| {
            json!({"eventId": event_id(), "table": "notes", "id": format!("n{i}"), "op": "insert",
                   "data": {"title": format!("note {i}")}, "updatedAt": hlc(i, 1)})
        })
        .collect();
    let r = http
        .post(format!("{base}/sync/notes"))
        .bearer_auth(&token)
        .json(&json!({"clientId": "c1", "changes": changes}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Killed right after the acknowledgement: no chance to flush or checkpoint anything.
    child.kill().unwrap();
    child.wait().unwrap();

    let (mut child, base) = start(&db);
    let token = dev_token(&http, &base, "alice").await;
    let body: Value = http
        .get(format!("{base}/sync/notes/pull?limit=5000"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let got = body["serverChanges"].as_array().unwrap();
    assert_eq!(got.len(), 200, "every acknowledged change survived");
    assert!(got.iter().any(|c| c["id"] == "n199"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn refuses_to_start_without_auth_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(&dir.path().join("x.db"))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MANA_JWT_SECRET"), "{err}");
}

#[tokio::test]
async fn sigterm_ends_live_streams_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start(&dir.path().join("t.db"));
    let http = reqwest::Client::new();
    let token = dev_token(&http, &base, "alice").await;
    let resp = http
        .get(format!("{base}/sync/notes/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(resp);
    assert!(sse.next(Duration::from_secs(5)).await.is_some());

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // The open stream ends instead of holding the shutdown up.
    assert!(sse.next(Duration::from_secs(10)).await.is_none());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let exit = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server exited after SIGTERM")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}
