//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 with a temporary
//! database (SQLite, or PostgreSQL with `MANA_TEST_DATABASE_URL`: see pg.rs), HS256 tokens, and a small sync client.
#![allow(dead_code)]

pub mod bin;
pub mod pg;
pub mod ws;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use mana_sync::clock::Hlc;
use mana_sync::merge::{apply, RecordState};
use mana_sync::Change;
use mana_sync_server::{AppState, Config, ShutdownHandle};
use serde_json::{json, Value};

pub const SECRET: &str = "integration-test-secret-of-32-bytes-or-more";

pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
    _shutdown: ShutdownHandle,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL when the suite runs under scripts/ci/pg.sh (a fresh database per
        // server), SQLite in `dir` otherwise: the same tests on both backends.
        let url = match pg::fresh_database().await {
            Some(url) => url,
            None => format!("sqlite://{}", dir.path().join("sync.db").display()),
        };
        let mut config = Config::for_tests(url);
        config.mana_jwt_secret = Some(SECRET.into());
        config.mana_jwks_url = None;
        config.mana_auth_url = None;
        config.max_body_bytes = 8 * 1024 * 1024;
        config.max_schema_version = 1;
        tweak(&mut config);
        let (state, shutdown) = AppState::new(&config).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            mana_sync_server::serve_on(listener, state, std::future::pending())
                .await
                .unwrap();
        });
        TestServer {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _dir: dir,
            _shutdown: shutdown,
        }
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("{}{path}", self.base.replacen("http://", "ws://", 1))
    }

    pub fn client(&self, user: &str, client_id: &str) -> Client {
        Client {
            base: self.base.clone(),
            http: self.http.clone(),
            token: token(user, 3600),
            client_id: client_id.into(),
            cursor: None,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token for `user`, expiring `ttl_secs` from now (negative: already expired).
pub fn token(user: &str, ttl_secs: i64) -> String {
    token_with_secret(user, ttl_secs, SECRET)
}

/// A token with these claims, signed with `alg` under `secret`.
pub fn signed(claims: Value, alg: jsonwebtoken::Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn now_secs() -> u64 {
    unix_now()
}

pub fn token_with_secret(user: &str, ttl_secs: i64, secret: &str) -> String {
    let exp = (unix_now() as i64 + ttl_secs) as u64;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": user, "exp": exp, "iat": unix_now()}),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

static EVENT: AtomicU64 = AtomicU64::new(1);

pub fn event_id() -> String {
    let n = EVENT.fetch_add(1, Ordering::Relaxed);
    format!("0190a6f0-0000-7000-8000-{n:012x}")
}

/// An HLC at `ms` milliseconds after 2026-11-25T10:00Z on `node`.
pub fn hlc(ms: u64, node: u64) -> String {
    Hlc::new(1_795_600_800_000 + ms, 0, node)
        .unwrap()
        .to_string()
}

pub fn insert(table: &str, id: &str, data: Value, at: &str) -> Value {
    json!({"eventId": event_id(), "table": table, "id": id, "op": "insert",
           "data": data, "updatedAt": at})
}

pub fn update(table: &str, id: &str, field: &str, value: Value, at: &str) -> Value {
    json!({"eventId": event_id(), "table": table, "id": id, "op": "update",
           "fields": {field: {"value": value, "updatedAt": at}}})
}

pub fn delete(table: &str, id: &str, at: &str) -> Value {
    json!({"eventId": event_id(), "table": table, "id": id, "op": "delete", "deletedAt": at})
}

pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    pub token: String,
    pub client_id: String,
    /// Where this client's pulls continue from.
    pub cursor: Option<String>,
}

impl Client {
    /// Pushes raw changes; returns status and body.
    pub async fn push_raw(&self, app: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/sync/{app}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Pushes changes with this client's cursor; expects 200.
    pub async fn push(&self, app: &str, changes: Vec<Value>) -> Value {
        let mut body = json!({"clientId": self.client_id, "changes": changes});
        if let Some(c) = &self.cursor {
            body["since"] = json!(c);
        }
        let (status, body) = self.push_raw(app, body).await;
        assert_eq!(status, 200, "push failed: {body}");
        body
    }

    pub async fn pull_raw(&self, app: &str, query: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/sync/{app}/pull?{query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Pulls every page since this client's cursor and advances it.
    pub async fn pull_all(&mut self, app: &str) -> Vec<Change> {
        let mut out = Vec::new();
        loop {
            let q = match &self.cursor {
                Some(c) => format!("since={c}"),
                None => String::new(),
            };
            let (status, body) = self.pull_raw(app, &q).await;
            assert_eq!(status, 200, "pull failed: {body}");
            let changes: Vec<Change> =
                serde_json::from_value(body["serverChanges"].clone()).unwrap();
            out.extend(changes);
            self.cursor = Some(body["syncedUntil"].as_str().unwrap().to_owned());
            if !body["hasMore"].as_bool().unwrap() {
                return out;
            }
        }
    }
}

/// Applies changes to a local replica with the shared merge.
pub fn apply_all(state: RecordState, changes: &[Change], id: &str) -> RecordState {
    changes
        .iter()
        .filter(|c| c.id == id)
        .fold(state, |s, c| apply(s, c).unwrap().0)
}

pub fn change(v: Value) -> Change {
    serde_json::from_value(v).unwrap()
}

/// Reads Server-Sent Events from a streaming response.
pub struct SseReader {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> SseReader {
        SseReader {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next event (comments such as `: heartbeat` are skipped).
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, async {
            loop {
                while let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let mut ev = SseEvent {
                        id: None,
                        event: None,
                        data: String::new(),
                    };
                    let mut any = false;
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("data:") {
                            if !ev.data.is_empty() {
                                ev.data.push('\n');
                            }
                            ev.data.push_str(v.trim_start());
                            any = true;
                        } else if let Some(v) = line.strip_prefix("id:") {
                            ev.id = Some(v.trim().to_owned());
                        } else if let Some(v) = line.strip_prefix("event:") {
                            ev.event = Some(v.trim().to_owned());
                        }
                    }
                    if any {
                        return Some(ev);
                    }
                }
                match self.stream.next().await {
                    Some(Ok(b)) => self.buf.push_str(&String::from_utf8_lossy(&b)),
                    _ => return None,
                }
            }
        })
        .await
        .ok()
        .flatten()
    }
}
