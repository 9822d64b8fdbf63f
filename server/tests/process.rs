//! Tests against the real `mana-sync-server` binary: durability across SIGKILL, start-up
//! refusal without auth configuration, graceful shutdown on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{event_id, hlc, SseReader};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mana-sync-server");

fn command(db: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("PORT", "0")
        .env("HOST", "127.0.0.1")
        .env("RUST_LOG", "warn")
        .env_remove("MANA_JWT_SECRET")
        .env_remove("MANA_JWKS_URL")
        .env_remove("MANA_AUTH_URL")
        .env_remove("MAX_BODY_BYTES")
        .env_remove("MAX_SCHEMA_VERSION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Starts the binary with `--dev` and returns it with its base URL (read from stdout).
fn start(db: &Path) -> (Child, String) {
    let mut child = command(db).arg("--dev").spawn().unwrap();
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
