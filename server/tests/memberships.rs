//! Space memberships (issue #11): from the auth service
//! (`GET /api/v1/internal/users/{userId}/memberships` with `X-Service-Key`, cached per user,
//! fail-open) or from a static file; members read a space's rows, only the author writes,
//! a non-member sees nothing.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use common::ws::{next_json, Ws};
use common::*;
use mana_sync::Change;
use mana_sync_server::{AppState, Config};
use serde_json::{json, Value};

const KEY: &str = "svc-key-for-tests";

/// A stand-in for the auth service: answers each user's memberships from `answers` (a user
/// not in it: `[]`), counts the lookups per user, and refuses a wrong service key.
#[derive(Clone, Default)]
struct FakeAuth {
    answers: Arc<Mutex<HashMap<String, (StatusCode, String)>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    total: Arc<AtomicUsize>,
}

impl FakeAuth {
    async fn start(&self) -> String {
        let me = self.clone();
        let app = axum::Router::new().route(
            "/api/v1/internal/users/{user_id}/memberships",
            axum::routing::get(move |Path(user): Path<String>, headers: HeaderMap| {
                let me = me.clone();
                async move {
                    me.total.fetch_add(1, Ordering::SeqCst);
                    *me.hits.lock().unwrap().entry(user.clone()).or_default() += 1;
                    if headers.get("x-service-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
                        return (StatusCode::UNAUTHORIZED, "bad service key".to_owned());
                    }
                    me.answers
                        .lock()
                        .unwrap()
                        .get(&user)
                        .cloned()
                        .unwrap_or((StatusCode::OK, "[]".to_owned()))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    fn answer(&self, user: &str, status: StatusCode, body: impl Into<String>) {
        self.answers
            .lock()
            .unwrap()
            .insert(user.to_owned(), (status, body.into()));
    }

    fn members(&self, user: &str, list: Value) {
        self.answer(user, StatusCode::OK, list.to_string());
    }

    fn hits(&self, user: &str) -> usize {
        self.hits.lock().unwrap().get(user).copied().unwrap_or(0)
    }
}

async fn with_service(url: String, cache_secs: u64) -> TestServer {
    TestServer::start_with(|c| {
        c.mana_auth_url = Some(url);
        c.mana_service_key = Some(KEY.into());
        c.memberships_cache_secs = cache_secs;
    })
    .await
}

fn team(role: &str) -> Value {
    json!([{"organizationId": "team-1", "role": role}])
}

fn in_space(mut change: Value, space: &str) -> Value {
    change["spaceId"] = json!(space);
    change
}

fn ids(changes: &[Change]) -> Vec<&str> {
    let mut v: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
    v.sort();
    v
}

/// Everything `user` sees of app `notes` from scratch.
async fn sees(s: &TestServer, user: &str) -> Vec<String> {
    let mut c = s.client(user, &format!("{user}-reader"));
    c.pull_all("notes")
        .await
        .iter()
        .map(|c| c.id.clone())
        .collect()
}

async fn first_stream_page(s: &TestServer, user: &str) -> Vec<String> {
    let resp = s
        .http
        .get(format!("{}/sync/notes/stream", s.base))
        .bearer_auth(token(user, 3600))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{user}'s stream opens");
    let mut sse = SseReader::new(resp);
    let ev = sse
        .next(Duration::from_secs(5))
        .await
        .expect("a first page");
    let page: Value = serde_json::from_str(&ev.data).unwrap();
    page["serverChanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// alice and bob are members of team-1, carol is not. The rules are the same whichever
/// provider said so.
async fn members_read_only_the_author_writes(s: &TestServer) {
    let alice = s.client("alice", "a1");
    alice
        .push(
            "notes",
            vec![
                in_space(
                    insert("notes", "s1", json!({"title": "team"}), &hlc(1, 1)),
                    "team-1",
                ),
                insert("notes", "p1", json!({"title": "private"}), &hlc(1, 1)),
            ],
        )
        .await;

    // A member reads the space's rows (pull and stream), not the author's private ones.
    assert_eq!(sees(s, "bob").await, ["s1"]);
    assert_eq!(first_stream_page(s, "bob").await, ["s1"]);
    let mut bob = s.client("bob", "b1");
    bob.cursor = Some("0".into());
    let log = bob.pull_all("notes").await;
    assert_eq!(ids(&log), ["s1"]);
    assert_eq!(log[0].space_id.as_deref(), Some("team-1"));

    // A member cannot write the author's row.
    let (status, body) = bob
        .push_raw(
            "notes",
            json!({"clientId": "b1", "changes": [update("notes", "s1", "title", json!("bob"), &hlc(5, 2))]}),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    // Nor write into a space they are not a member of.
    let (status, _) = bob
        .push_raw(
            "notes",
            json!({"clientId": "b1", "changes": [in_space(insert("notes", "x", json!({}), &hlc(1, 2)), "team-2")]}),
        )
        .await;
    assert_eq!(status, 403, "bob is not a member of team-2");
    // A member creates rows of their own in the space; the other members read them.
    bob.push(
        "notes",
        vec![in_space(
            insert("notes", "s2", json!({"title": "by bob"}), &hlc(2, 2)),
            "team-1",
        )],
    )
    .await;

    // A non-member sees nothing of the space.
    assert!(sees(s, "carol").await.is_empty());
    assert!(first_stream_page(s, "carol").await.is_empty());
    let (status, _) = s
        .client("carol", "c1")
        .push_raw(
            "notes",
            json!({"clientId": "c1", "changes": [in_space(insert("notes", "c", json!({}), &hlc(1, 3)), "team-1")]}),
        )
        .await;
    assert_eq!(status, 403, "carol is not a member of team-1");

    let mut alice_sees = sees(s, "alice").await;
    alice_sees.sort();
    assert_eq!(alice_sees, ["p1", "s1", "s2"]);
    // The author still writes their row.
    alice
        .push(
            "notes",
            vec![update("notes", "s1", "title", json!("edited"), &hlc(6, 1))],
        )
        .await;
}

#[tokio::test]
async fn members_from_the_auth_service_read_a_space_and_only_the_author_writes() {
    let auth = FakeAuth::default();
    let url = auth.start().await;
    auth.members("alice", team("owner"));
    auth.members("bob", team("member"));
    let s = with_service(url, 300).await;
    members_read_only_the_author_writes(&s).await;
}

#[tokio::test]
async fn a_member_is_told_of_a_push_into_their_space_over_websocket() {
    let auth = FakeAuth::default();
    let url = auth.start().await;
    auth.members("alice", team("owner"));
    auth.members("bob", team("member"));
    let s = with_service(url, 300).await;
    let mut bob_ws = open_ws(&s, "bob").await;
    let mut carol_ws = open_ws(&s, "carol").await;
    s.client("alice", "a1")
        .push(
            "notes",
            vec![in_space(
                insert("tasks", "s1", json!({}), &hlc(1, 1)),
                "team-1",
            )],
        )
        .await;
    let frame = next_json(&mut bob_ws, Duration::from_secs(5)).await;
    assert_eq!(
        frame,
        Some(json!({"type": "sync-available", "appId": "notes", "table": "tasks"}))
    );
    assert_eq!(
        next_json(&mut carol_ws, Duration::from_millis(300)).await,
        None,
        "a non-member is not told"
    );
}

#[tokio::test]
async fn memberships_are_cached_per_user() {
    let auth = FakeAuth::default();
    let url = auth.start().await;
    auth.members("bob", team("member"));
    // A user id that needs escaping in a path reaches the service as itself.
    auth.members("dave/x y", team("member"));
    let s = with_service(url.clone(), 300).await;
    for _ in 0..3 {
        assert!(sees(&s, "bob").await.is_empty());
    }
    first_stream_page(&s, "bob").await;
    let _ws = open_ws(&s, "bob").await;
    assert_eq!(
        auth.hits("bob"),
        1,
        "pulls, a stream and a socket: one lookup"
    );
    assert!(sees(&s, "dave/x y").await.is_empty());
    assert!(sees(&s, "dave/x y").await.is_empty());
    assert_eq!(auth.hits("dave/x y"), 1, "each user has their own entry");
    assert_eq!(auth.hits("bob"), 1);

    // A new membership shows once the entry expires (here at once: TTL 0).
    let s = with_service(url, 0).await;
    let before = auth.hits("bob");
    assert!(sees(&s, "bob").await.is_empty());
    assert!(sees(&s, "bob").await.is_empty());
    assert_eq!(
        auth.hits("bob"),
        before + 2,
        "an expired entry is looked up again"
    );
}

#[tokio::test]
async fn an_unreachable_or_wrong_auth_service_fails_open_to_no_shared_spaces() {
    let auth = FakeAuth::default();
    let url = auth.start().await;
    auth.members("alice", team("owner"));
    auth.members("bob", team("member"));
    // TTL 0: every request asks again, so each answer below is the one in force.
    let s = with_service(url, 0).await;
    let alice = s.client("alice", "a1");
    alice
        .push(
            "notes",
            vec![
                in_space(insert("notes", "s1", json!({}), &hlc(1, 1)), "team-1"),
                insert("notes", "p1", json!({}), &hlc(1, 1)),
            ],
        )
        .await;
    assert_eq!(sees(&s, "bob").await, ["s1"]);

    let broken = [
        (StatusCode::INTERNAL_SERVER_ERROR, "[]".to_owned()),
        (StatusCode::OK, "not json".to_owned()),
        (StatusCode::OK, json!({"spaces": ["team-1"]}).to_string()),
        (
            StatusCode::OK,
            json!([{"organizationId": "team-1"}]).to_string(),
        ),
        (
            StatusCode::OK,
            json!([{"organizationId": "", "role": "member"}]).to_string(),
        ),
        (
            StatusCode::OK,
            json!([{"organizationId": 7, "role": "member"}]).to_string(),
        ),
        // A "membership" of someone's personal space would open their private rows.
        (
            StatusCode::OK,
            json!([{"organizationId": "team-1", "role": "member"},
                   {"organizationId": "_personal:alice", "role": "member"}])
            .to_string(),
        ),
    ];
    for (status, body) in broken {
        auth.answer("bob", status, body.clone());
        assert!(
            sees(&s, "bob").await.is_empty(),
            "{status} {body}: no shared spaces, no error"
        );
        assert!(first_stream_page(&s, "bob").await.is_empty());
        let _ws = open_ws(&s, "bob").await;
        // Writing into the space waits for memberships to be known again (403 stays pending
        // on the client).
        let (code, _) = s
            .client("bob", "b1")
            .push_raw(
                "notes",
                json!({"clientId": "b1", "changes": [in_space(insert("notes", "b", json!({}), &hlc(1, 2)), "team-1")]}),
            )
            .await;
        assert_eq!(code, 403);
    }
    // The author still sees their own rows, shared ones included.
    auth.answer("alice", StatusCode::BAD_GATEWAY, "");
    let mut seen = sees(&s, "alice").await;
    seen.sort();
    assert_eq!(seen, ["p1", "s1"]);
    // And once the service answers again, the space is back.
    auth.members("bob", team("member"));
    assert_eq!(sees(&s, "bob").await, ["s1"]);

    // A service that is not there at all.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let s = with_service(gone, 300).await;
    s.client("bob", "b1")
        .push("notes", vec![insert("notes", "own", json!({}), &hlc(1, 2))])
        .await;
    assert_eq!(sees(&s, "bob").await, ["own"]);
    assert_eq!(first_stream_page(&s, "bob").await, ["own"]);
    let _ws = open_ws(&s, "bob").await;
}

#[tokio::test]
async fn a_wrong_service_key_is_a_failed_lookup() {
    let auth = FakeAuth::default();
    let url = auth.start().await;
    auth.members("alice", team("owner"));
    auth.members("bob", team("member"));
    let good = with_service(url.clone(), 300).await;
    good.client("alice", "a1")
        .push(
            "notes",
            vec![in_space(
                insert("notes", "s1", json!({}), &hlc(1, 1)),
                "team-1",
            )],
        )
        .await;
    assert_eq!(sees(&good, "bob").await, ["s1"]);
    let s = TestServer::start_with(|c| {
        c.mana_auth_url = Some(url);
        c.mana_service_key = Some("not-the-key".into());
    })
    .await;
    assert!(sees(&s, "bob").await.is_empty());
}

fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn members_from_a_static_file_read_a_space_and_only_the_author_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        &dir,
        "members.json",
        &json!({
            "alice": [{"organizationId": "team-1", "role": "owner"},
                      {"organizationId": "team-3", "role": "member"}],
            "bob": [{"organizationId": "team-1", "role": "member"}],
            "carol": [],
        })
        .to_string(),
    );
    let s = TestServer::start_with(|c| c.memberships_file = Some(path)).await;
    members_read_only_the_author_writes(&s).await;
}

fn start_error(tweak: impl FnOnce(&mut Config)) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(format!("sqlite://{}", dir.path().join("s.db").display()));
    config.mana_jwt_secret = Some(SECRET.into());
    tweak(&mut config);
    match AppState::new(&config) {
        Ok(_) => panic!("the server started"),
        Err(e) => e,
    }
}

#[test]
fn a_bad_memberships_configuration_refuses_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("not json", "{"),
        ("an array", r#"[{"organizationId": "t", "role": "member"}]"#),
        ("no role", r#"{"bob": [{"organizationId": "t"}]}"#),
        ("a string list", r#"{"bob": ["t"]}"#),
        (
            "empty org",
            r#"{"bob": [{"organizationId": "", "role": "member"}]}"#,
        ),
        (
            "personal",
            r#"{"bob": [{"organizationId": "_personal:alice", "role": "member"}]}"#,
        ),
        (
            "empty user",
            r#"{"": [{"organizationId": "t", "role": "member"}]}"#,
        ),
        (
            "a user twice",
            r#"{"bob": [{"organizationId": "t", "role": "member"}], "bob": []}"#,
        ),
    ];
    for (i, (what, text)) in cases.iter().enumerate() {
        let path = write_file(&dir, &format!("m{i}.json"), text);
        let e = start_error(|c| c.memberships_file = Some(path.clone()));
        assert!(
            e.starts_with("memberships_file_invalid: ") && e.contains(&*path.to_string_lossy()),
            "{what}: {e}"
        );
    }
    let e = start_error(|c| c.memberships_file = Some(dir.path().join("missing.json")));
    assert!(e.starts_with("memberships_file_unreadable: "), "{e}");
    let ok = write_file(&dir, "ok.json", "{}");
    let e = start_error(|c| {
        c.memberships_file = Some(ok.clone());
        c.mana_auth_url = Some("http://127.0.0.1:1".into());
        c.mana_service_key = Some(KEY.into());
    });
    assert!(e.starts_with("memberships_two_sources: "), "{e}");
    let e = start_error(|c| c.mana_auth_url = Some("http://127.0.0.1:1".into()));
    assert!(e.starts_with("memberships_no_service_key: "), "{e}");
    let e = start_error(|c| {
        c.mana_auth_url = Some("auth.internal".into());
        c.mana_service_key = Some(KEY.into());
    });
    assert!(e.starts_with("memberships_bad_auth_url: "), "{e}");
}

#[test]
fn the_binary_refuses_a_bad_memberships_file_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(&dir, "m.json", r#"{"bob": "team-1"}"#);
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_mana-sync-server"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("s.db").display()),
        )
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("MANA_JWT_SECRET", SECRET)
        .env("MEMBERSHIPS_FILE", &path)
        .env_remove("MANA_AUTH_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(out) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        panic!("the server started with a bad memberships file");
    };
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("memberships_file_invalid"), "{stderr}");
    assert!(out.stdout.is_empty(), "it never listened");
}

#[tokio::test]
async fn billing_answers_are_cached_per_user() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let credits = axum::Router::new().route(
        "/api/v1/sync/status",
        axum::routing::get(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"active": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, credits).await.unwrap() });
    let s = TestServer::start_with(|c| {
        c.mana_credits_url = Some(url);
        c.mana_service_key = Some(KEY.into());
    })
    .await;
    for _ in 0..3 {
        sees(&s, "bob").await;
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    sees(&s, "carol").await;
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

async fn open_ws(s: &TestServer, user: &str) -> Ws {
    common::ws::open_ws(&s.ws_url("/ws"), &token(user, 3600), &format!("{user}-ws")).await
}
